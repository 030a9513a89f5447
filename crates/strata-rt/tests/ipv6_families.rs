//! IPv6 and mixed address families on loopback: `[::1]`, dual-stack
//! `[::]`, v4-mapped peers, `only_v6`, `SO_REUSEPORT` groups across
//! families, and UDP sends to address lists that mix families.
//!
//! Each test returns early (passing) on a machine without IPv6 loopback.
//! Deadlines are hang guards only.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream, UdpSocket};
use support::{deadline, rt};

/// Whether this machine can bind `[::1]`.
fn has_v6() -> bool {
    let ok = std::net::TcpListener::bind("[::1]:0").is_ok();
    if !ok {
        eprintln!("no IPv6 loopback here; skipped");
    }
    ok
}

fn mapped(v4: SocketAddr) -> SocketAddr {
    match v4.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), v4.port()),
        IpAddr::V6(_) => v4,
    }
}

/// A port on `ip` that nothing listens on.
fn refused(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

#[test]
fn a_v6_loopback_connection_carries_data_and_reports_v6_addresses() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(2).block_on(async {
            let l = TcpListener::bind("[::1]:0").unwrap();
            let addr = l.local_addr().unwrap();
            assert_eq!(addr.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
            let mut c = TcpStream::connect(addr).await.unwrap();
            let (mut s, peer) = l.accept().await.unwrap();
            assert_eq!(peer, c.local_addr().unwrap());
            assert_eq!(s.peer_addr().unwrap(), peer);
            assert_eq!(c.peer_addr().unwrap(), addr);
            c.write_all(b"ping").await.unwrap();
            let mut buf = [0; 4];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
        });
    });
}

/// The OS default here is dual-stack (`net.ipv6.bindv6only = 0`), which
/// strata leaves alone: a v4 client reaches `[::]`, and the accepted
/// stream names it as a v4-mapped address, the same from `accept` and
/// from `peer_addr` (not normalized to `127.0.0.1`).
#[test]
fn a_dual_stack_listener_names_a_v4_peer_mapped_in_accept_and_peer_addr() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(2).block_on(async {
            let l = TcpListener::bind("[::]:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let only_v6 = socket2::SockRef::from(&l).only_v6().unwrap();
            if only_v6 {
                eprintln!("the OS default here is v6-only; skipped");
                return;
            }
            let c = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .unwrap();
            let (s, peer) = l.accept().await.unwrap();
            assert_eq!(peer, mapped(c.local_addr().unwrap()));
            assert_eq!(s.peer_addr().unwrap(), peer);
            assert_eq!(s.local_addr().unwrap(), mapped(c.peer_addr().unwrap()));
        });
    });
}

#[test]
fn an_only_v6_listener_refuses_v4_and_leaves_the_v4_port_free() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let l = TcpListener::builder("[::]:0".parse().unwrap())
                .only_v6(true)
                .bind()
                .unwrap();
            let port = l.local_addr().unwrap().port();
            let e = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
            let v4 = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
            assert_eq!(v4.local_addr().unwrap().port(), port);
        });
    });
}

/// The first listener of a `reuse_port` group binds as if alone: a
/// dual-stack `[::]` group and a `0.0.0.0` group cannot split one port,
/// whichever came first; a second `[::1]` group cannot either.
#[test]
fn a_groups_first_listener_refuses_a_port_held_by_the_other_family() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let first = |addr: SocketAddr| {
                TcpListener::builder(addr)
                    .reuse_port(true)
                    .reuse_port_after_listen(true)
                    .bind()
            };
            let join = |addr: SocketAddr| TcpListener::builder(addr).reuse_port(true).bind();
            let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

            let g6 = first(SocketAddr::new(any6, 0)).unwrap();
            let p = g6.local_addr().unwrap().port();
            let _g6b = join(g6.local_addr().unwrap()).unwrap();
            if !socket2::SockRef::from(&g6).only_v6().unwrap() {
                let e = first(SocketAddr::new(any4, p)).err().unwrap();
                assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
            }

            let g4 = first(SocketAddr::new(any4, 0)).unwrap();
            let p = g4.local_addr().unwrap().port();
            let e = first(SocketAddr::new(any6, p)).err().unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);

            let l = first("[::1]:0".parse().unwrap()).unwrap();
            let e = first(l.local_addr().unwrap()).err().unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
            let _ = join(l.local_addr().unwrap()).unwrap();
        });
    });
}

/// `TcpStream::connect` goes on to the next address after a refused v6
/// one (what a name that resolves to `::1` and `127.0.0.1` needs when
/// the server listens on v4 only), and after all fail gives the last
/// error.
#[test]
fn connect_moves_from_a_refused_v6_address_to_a_v4_one() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let good = TcpListener::bind("127.0.0.1:0").unwrap();
            let good_addr = good.local_addr().unwrap();
            let bad6 = refused("::1");
            let s = TcpStream::connect(&[bad6, good_addr][..]).await.unwrap();
            assert_eq!(s.peer_addr().unwrap(), good_addr);
            let e = TcpStream::connect(&[bad6, refused("127.0.0.1")][..])
                .await
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        });
    });
}

#[test]
fn udp_on_v6_loopback_round_trips_unconnected_and_connected() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let a = UdpSocket::bind("[::1]:0").unwrap();
            let b = UdpSocket::bind("[::1]:0").unwrap();
            a.send_to(b"one", b.local_addr().unwrap()).await.unwrap();
            let mut buf = [0; 8];
            let (n, from) = b.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"one"[..], a.local_addr().unwrap()));
            a.connect(b.local_addr().unwrap()).unwrap();
            a.send(b"two").await.unwrap();
            let n = b.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"two");
        });
    });
}

/// A v4 socket given `[v6, v4]` reaches the v4 address, with `connect`
/// and with `send_to` alike: `send_to` skips the v6 address, which the OS
/// refuses for its family, and sends to the v4 one. This is what
/// `send_to("localhost:PORT")` from a v4 socket needs where the resolver
/// lists `::1` first.
#[test]
fn send_to_a_list_reaches_the_address_of_the_sockets_family() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let to4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to6 = UdpSocket::bind("[::1]:0").unwrap();
            let targets = [to6.local_addr().unwrap(), to4.local_addr().unwrap()];

            let connected = UdpSocket::bind("127.0.0.1:0").unwrap();
            connected.connect(&targets[..]).unwrap();
            assert_eq!(connected.peer_addr().unwrap(), targets[1]);

            let from = UdpSocket::bind("127.0.0.1:0").unwrap();
            let sent = from.send_to(b"ping", &targets[..]).await;
            assert!(
                matches!(sent, Ok(4)),
                "send_to a [v6, v4] list from a v4 socket: {sent:?} \
                 (connect with the same list picked the v4 address)"
            );
            let mut buf = [0; 8];
            let (n, sender) = to4.recv_from(&mut buf).await.unwrap();
            assert_eq!(
                (&buf[..n], sender),
                (&b"ping"[..], from.local_addr().unwrap())
            );
        });
    });
}

/// `send_to` sends its datagram once: to the first address that takes it,
/// never on to the next one in the list.
#[test]
fn send_to_a_list_sends_to_the_first_address_that_takes_it_only() {
    deadline(30, || {
        rt(1).block_on(async {
            let first = UdpSocket::bind("127.0.0.1:0").unwrap();
            let second = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            second.set_nonblocking(true).unwrap();
            let targets = [first.local_addr().unwrap(), second.local_addr().unwrap()];
            let from = UdpSocket::bind("127.0.0.1:0").unwrap();
            assert_eq!(from.send_to(b"once", &targets[..]).await.unwrap(), 4);
            let mut buf = [0; 8];
            let (n, _) = first.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"once");
            let e = second.recv_from(&mut buf).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        });
    });
}

/// When no address is of a family the socket can send to, `send_to`
/// sends nothing and fails with `InvalidInput`, naming the target and the
/// socket's family; an empty list is an `InvalidInput` too.
#[test]
fn send_to_with_no_address_of_the_sockets_family_is_an_invalid_input() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let to6 = UdpSocket::bind("[::1]:0").unwrap();
            let target = to6.local_addr().unwrap();
            let from = UdpSocket::bind("127.0.0.1:0").unwrap();
            let e = from.send_to(b"x", &[target][..]).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            let msg = e.to_string();
            assert!(msg.contains(&target.to_string()), "{msg}");
            assert!(msg.contains("IPv4 socket"), "{msg}");
            let e = from.send_to(b"x", target).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            let e = from.send_to(b"x", &[][..]).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        });
    });
}

/// A v6-only socket given `[v4, v6]` skips the v4 address and reaches the
/// v6 one.
#[test]
fn a_v6_only_socket_sends_to_the_v6_address_of_a_list() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let to4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to6 = UdpSocket::bind("[::1]:0").unwrap();
            let targets = [to4.local_addr().unwrap(), to6.local_addr().unwrap()];
            let sock = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )
            .unwrap();
            sock.set_only_v6(true).unwrap();
            sock.bind(&"[::1]:0".parse::<SocketAddr>().unwrap().into())
                .unwrap();
            let from = UdpSocket::from_std(sock.into()).unwrap();
            assert_eq!(from.send_to(b"six", &targets[..]).await.unwrap(), 3);
            let mut buf = [0; 8];
            let (n, sender) = to6.recv_from(&mut buf).await.unwrap();
            assert_eq!(
                (&buf[..n], sender),
                (&b"six"[..], from.local_addr().unwrap())
            );
            let e = from.send_to(b"x", targets[0]).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("IPv6-only socket"), "{e}");
        });
    });
}

/// A dual-stack `[::]` socket can send to v4 addresses, so a v4 address
/// it fails to send to for another reason (here port 0, which Linux
/// answers with `EINVAL`; likewise `ENETUNREACH` on a host without a v4
/// route) is no family mismatch: the call ends with that error, and the
/// datagram does not go on to the next address. (Such errors were once
/// taken for the OS refusing the family.)
#[test]
fn a_dual_stack_socket_does_not_skip_a_v4_address_that_fails_for_another_reason() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let to6 = std::net::UdpSocket::bind("[::1]:0").unwrap();
            to6.set_nonblocking(true).unwrap();
            let bad4: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let sock = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )
            .unwrap();
            sock.set_only_v6(false).unwrap();
            sock.bind(&"[::]:0".parse::<SocketAddr>().unwrap().into())
                .unwrap();
            let from = UdpSocket::from_std(sock.into()).unwrap();
            // The socket does send to v4 addresses.
            let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            assert_eq!(
                from.send_to(b"v4", v4.local_addr().unwrap()).await.unwrap(),
                2
            );

            let lone = from.send_to(b"x", bad4).await.unwrap_err();
            assert!(
                !lone.to_string().contains("no address of a family"),
                "a dual-stack socket's failed send to a v4 address is reported as a \
                 family mismatch: {lone}"
            );

            let sent = from
                .send_to(b"y", &[bad4, to6.local_addr().unwrap()][..])
                .await;
            let mut buf = [0; 8];
            let got = to6.recv_from(&mut buf).map(|(n, _)| buf[..n].to_vec());
            assert!(
                sent.is_err() && got.is_err(),
                "after a send to {bad4} failed with EINVAL, the datagram went on to the \
                 next address: send_to gave {sent:?}, [::1] received {got:?}"
            );
        });
    });
}

/// A v6 socket bound to `[::ffff:127.0.0.1]` sends to v4 addresses only
/// (the OS refuses a real v6 one with `EAFNOSUPPORT`). Given `[::1, v4]`,
/// `send_to` sends to the v4 address, as `connect` would.
#[test]
fn send_to_from_a_socket_bound_to_a_v4_mapped_address_skips_a_v6_address() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let to4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to6 = UdpSocket::bind("[::1]:0").unwrap();
            let from = UdpSocket::bind("[::ffff:127.0.0.1]:0").unwrap();
            let targets = [to6.local_addr().unwrap(), to4.local_addr().unwrap()];
            let sent = from.send_to(b"ping", &targets[..]).await;
            assert!(
                matches!(sent, Ok(4)),
                "send_to [::1, 127.0.0.1] from a socket bound to a v4-mapped address: {sent:?}"
            );
        });
    });
}

/// The same socket given a lone v6 address: the documented `InvalidInput`
/// naming the socket's family, not the raw `EAFNOSUPPORT`.
#[test]
fn send_to_a_lone_v6_address_from_a_v4_mapped_socket_is_an_invalid_input() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let to6 = UdpSocket::bind("[::1]:0").unwrap();
            let from = UdpSocket::bind("[::ffff:127.0.0.1]:0").unwrap();
            let e = from
                .send_to(b"ping", to6.local_addr().unwrap())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        });
    });
}

/// A socket bound to `[::1]` (v6-only on Linux) cannot send to a
/// v4-mapped v6 address (`ENETUNREACH`); given `[mapped v4, ::1]` it
/// sends to `[::1]`.
#[test]
fn send_to_from_a_v6_only_socket_skips_a_v4_mapped_address() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let to4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to6 = UdpSocket::bind("[::1]:0").unwrap();
            let from = UdpSocket::bind("[::1]:0").unwrap();
            let targets = [mapped(to4.local_addr().unwrap()), to6.local_addr().unwrap()];
            let sent = from.send_to(b"ping", &targets[..]).await;
            assert!(
                matches!(sent, Ok(4)),
                "send_to [::ffff:127.0.0.1, ::1] from a [::1] socket: {sent:?}"
            );
        });
    });
}

/// A dual-stack `[::]` socket connected to a v6 peer: its local address
/// becomes `[::1]`, but it stays dual-stack (`IPV6_V6ONLY` off) and the OS
/// sends to v4 addresses from it, and so does `send_to` given a list of
/// them. (A first version judged by the local address, took the socket
/// for v6-only and refused the list as having none of its family.)
#[test]
fn send_to_v4_addresses_from_a_dual_stack_socket_connected_to_a_v6_peer() {
    if !has_v6() {
        return;
    }
    deadline(30, || {
        rt(1).block_on(async {
            let to4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to6 = UdpSocket::bind("[::1]:0").unwrap();
            let from = UdpSocket::bind("[::]:0").unwrap();
            if socket2::SockRef::from(&from).only_v6().unwrap() {
                return; // the OS default here is v6-only
            }
            from.connect(to6.local_addr().unwrap()).unwrap();
            let a = to4.local_addr().unwrap();
            // The lone address is sent to: the OS allows it.
            assert_eq!(from.send_to(b"one", a).await.unwrap(), 3);
            // The same address twice (a resolver's answer, say): refused.
            let sent = from.send_to(b"two", &[a, a][..]).await;
            assert!(
                matches!(sent, Ok(3)),
                "send_to [v4, v4] from a dual-stack socket connected to [::1]: {sent:?}"
            );
        });
    });
}
