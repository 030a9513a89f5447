//! `TcpServer` over IPv6 loopback (a review): with several workers (one
//! `SO_REUSEPORT` listener each) on `[::1]` and on dual-stack `[::]`,
//! every worker accepts, a v4 client's `ConnectionInfo` names it as a
//! v4-mapped address (as `accept` does), a second server cannot take
//! the port (same address, `[::]` over `[::1]`, `0.0.0.0` over `[::]`,
//! `[::]` over `0.0.0.0`), and shutdown is graceful; with `only_v6`, a
//! v6-only server and a v4 one share a port.
//!
//! Returns early (passing) on a machine without IPv6 loopback. Waits are
//! hang guards only.

mod support;

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use strata_proto::{ServerHandle, TcpServer};
use strata_service::{ConnectionInfo, new_service_fn};
use support::{Client, Echo, TestProto, deadline};

type Seen = Arc<Mutex<(HashSet<ThreadId>, Vec<ConnectionInfo>)>>;

fn has_v6() -> bool {
    let ok = std::net::TcpListener::bind("[::1]:0").is_ok();
    if !ok {
        eprintln!("no IPv6 loopback here; skipped");
    }
    ok
}

fn start(addr: SocketAddr, threads: usize) -> io::Result<(ServerHandle, Seen)> {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let server = TcpServer::new(TestProto, addr)
        .threads(threads)
        .start(new_service_fn(move |info: &ConnectionInfo| {
            let mut s = s.lock().unwrap();
            s.0.insert(std::thread::current().id());
            s.1.push(*info);
            Ok::<_, io::Error>(Echo)
        }))?;
    Ok((server, seen))
}

fn addr(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// 64 connections over 4 workers: a worker that accepts none has odds of
/// about 4 × (3/4)^64, less than one in ten million.
fn every_worker_accepts(seen: &Seen, to: SocketAddr) {
    let mut clients = Vec::new();
    for _ in 0..64 {
        let mut c = Client::connect(to);
        assert_eq!(c.round_trip("hi").as_deref(), Some("hi"));
        clients.push(c);
    }
    assert_eq!(seen.lock().unwrap().0.len(), 4, "workers that accepted");
}

#[test]
fn a_v6_server_uses_every_worker_and_keeps_its_port() {
    if !has_v6() {
        return;
    }
    deadline(60, || {
        let (server, seen) = start("[::1]:0".parse().unwrap(), 4).unwrap();
        let local = server.local_addr();
        assert_eq!(local.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        every_worker_accepts(&seen, local);
        let info = seen.lock().unwrap().1[0];
        assert_eq!(info.local, local);
        assert!(info.peer.is_ipv6());

        for rival in [local, addr(IpAddr::V6(Ipv6Addr::UNSPECIFIED), local.port())] {
            let e = start(rival, 2).expect_err("a second server on the port");
            assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{rival}: {e}");
            assert!(e.to_string().contains(&rival.to_string()), "{e}");
        }
        assert!(server.shutdown());
    })
}

#[test]
fn a_dual_stack_server_serves_v4_on_every_worker_and_keeps_its_port() {
    if !has_v6() {
        return;
    }
    deadline(60, || {
        let (server, seen) = start("[::]:0".parse().unwrap(), 4).unwrap();
        let port = server.local_addr().port();
        let v4 = addr(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        if std::net::TcpStream::connect(v4).is_err() {
            eprintln!("the OS default here is v6-only; skipped");
            return;
        }
        every_worker_accepts(&seen, v4);
        let mut c = Client::connect(v4);
        assert_eq!(c.round_trip("hi").as_deref(), Some("hi"));
        let info = *seen.lock().unwrap().1.last().unwrap();
        let mapped = |a: SocketAddr| match a.ip() {
            IpAddr::V4(ip) => addr(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
            IpAddr::V6(_) => a,
        };
        assert_eq!(info.peer, mapped(c.writer.local_addr().unwrap()));
        assert_eq!(info.local, mapped(v4));

        let rival = addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let e = start(rival, 2).expect_err("a v4 server on the port");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        drop(c);
        assert!(server.shutdown());

        let (v4_server, _) = start("0.0.0.0:0".parse().unwrap(), 2).unwrap();
        let rival = addr(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            v4_server.local_addr().port(),
        );
        let e = start(rival, 2).expect_err("a [::] server on a v4 server's port");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert!(v4_server.shutdown());
    })
}

/// `only_v6(true)`: a `[::]` server and a `0.0.0.0` server share a port,
/// each taking its own family's clients (on every worker); `only_v6(false)`
/// takes v4 clients whatever the system's default.
#[test]
fn a_v6_only_server_shares_its_port_with_a_v4_server() {
    if !has_v6() {
        return;
    }
    deadline(60, || {
        let served = |tag: &'static str| {
            move || {
                Ok::<_, io::Error>(strata_service::service_fn(move |_: String| async move {
                    Ok::<_, io::Error>(tag.to_string())
                }))
            }
        };
        let v6 = TcpServer::new(TestProto, "[::]:0".parse().unwrap())
            .threads(2)
            .only_v6(true)
            .start(served("six"))
            .unwrap();
        let port = v6.local_addr().port();
        let v4 = TcpServer::new(TestProto, addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
            .threads(2)
            .start(served("four"))
            .expect("a v4 server beside a v6-only one");
        for _ in 0..8 {
            let mut c6 = Client::connect(addr(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
            assert_eq!(c6.round_trip("x").as_deref(), Some("six"));
            let mut c4 = Client::connect(addr(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
            assert_eq!(c4.round_trip("x").as_deref(), Some("four"));
        }
        assert!(v4.shutdown());
        assert!(v6.shutdown());

        let dual = TcpServer::new(TestProto, "[::]:0".parse().unwrap())
            .threads(1)
            .only_v6(false)
            .start(served("both"))
            .unwrap();
        let v4 = addr(IpAddr::V4(Ipv4Addr::LOCALHOST), dual.local_addr().port());
        assert_eq!(Client::connect(v4).round_trip("x").as_deref(), Some("both"));
        assert!(dual.shutdown());
    })
}
