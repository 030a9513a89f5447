//! A socket registers with a reactor on its first poll: readiness that
//! arrives between its creation and that poll is not lost, first polls in
//! odd places (off the workers, racing each other or a runtime's drop)
//! work or fail cleanly, and no epoll entry is left behind.

mod support;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use strata_rt::time::timeout;
use support::{deadline, epolls_watching, plain_block_on, rt};

/// A datagram that arrives before a socket's first poll (the socket was
/// bound in `block_on`, first read by a task on the other worker).
#[test]
fn udp_datagram_before_first_poll_is_received() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = sock.local_addr().unwrap();
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            peer.send_to(b"early", to).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let got = handle
                .spawn_on(1, async move {
                    let mut buf = [0u8; 16];
                    let (n, _) = timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
                        .await
                        .expect("datagram sent before the first poll was lost")
                        .unwrap();
                    buf[..n].to_vec()
                })
                .await
                .unwrap();
            assert_eq!(got, b"early");
        });
    });
}

/// Connections queued before a listener's first accept are all accepted,
/// and one arriving after the queue is empty still wakes the acceptor.
#[test]
fn listener_first_polled_after_connections_queued_then_woken() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let early: Vec<_> = (0..3)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            let late = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                std::net::TcpStream::connect(addr).unwrap()
            });
            let n = handle
                .spawn_on(1, async move {
                    let mut n = 0;
                    for _ in 0..4 {
                        timeout(Duration::from_secs(5), listener.accept())
                            .await
                            .expect("accept hung")
                            .unwrap();
                        n += 1;
                    }
                    n
                })
                .await
                .unwrap();
            assert_eq!(n, 4);
            drop((early, late.join().unwrap()));
        });
    });
}

/// A Unix listener likewise.
#[test]
fn unix_listener_first_polled_after_connections_queued() {
    deadline(30, || {
        let dir = std::env::temp_dir().join(format!("strata-first-poll-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("l.sock");
        let _ = std::fs::remove_file(&path);
        let rt = rt(2);
        let handle = rt.handle().clone();
        let p = path.clone();
        rt.block_on(async move {
            let listener = UnixListener::bind(&p).unwrap();
            let early: Vec<_> = (0..2)
                .map(|_| std::os::unix::net::UnixStream::connect(&p).unwrap())
                .collect();
            let n = handle
                .spawn_on(1, async move {
                    let mut n = 0;
                    for _ in 0..2 {
                        timeout(Duration::from_secs(5), listener.accept())
                            .await
                            .expect("accept hung")
                            .unwrap();
                        n += 1;
                    }
                    n
                })
                .await
                .unwrap();
            assert_eq!(n, 2);
            drop(early);
        });
        let _ = std::fs::remove_file(&path);
    });
}

/// A connected stream whose peer wrote and closed before the stream's
/// first read: the data, then end of stream.
#[test]
fn connect_then_peer_writes_and_closes_before_first_read() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = server.local_addr().unwrap();
            let mut s = TcpStream::connect(addr).await.unwrap();
            let (mut peer, _) = server.accept().unwrap();
            peer.write_all(b"bye").unwrap();
            drop(peer);
            std::thread::sleep(Duration::from_millis(20));
            let got = handle
                .spawn_on(1, async move {
                    let mut v = Vec::new();
                    timeout(Duration::from_secs(5), s.read_to_end(&mut v))
                        .await
                        .expect("read hung")
                        .unwrap();
                    v
                })
                .await
                .unwrap();
            assert_eq!(got, b"bye");
        });
    });
}

/// `UnixStream::pair`: one end writes and is dropped before the other's
/// first read, on the other worker.
#[test]
fn unix_pair_peer_gone_before_first_read() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(b"hi").await.unwrap();
            drop(a);
            let got = handle
                .spawn_on(1, async move {
                    let mut v = Vec::new();
                    timeout(Duration::from_secs(5), b.read_to_end(&mut v))
                        .await
                        .expect("read hung")
                        .unwrap();
                    v
                })
                .await
                .unwrap();
            assert_eq!(got, b"hi");
        });
    });
}

/// Accepted outside any runtime, and used there: the stream registers
/// with its listener's reactor and works.
#[test]
fn accepted_and_used_outside_any_runtime() {
    deadline(30, || {
        let rt = rt(2);
        let listener = rt.block_on(async { TcpListener::bind("127.0.0.1:0").unwrap() });
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).unwrap();
            buf
        });
        let got = std::thread::spawn(move || {
            plain_block_on(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(b"pong").await.unwrap();
                buf
            })
        })
        .join()
        .unwrap();
        assert_eq!(&got, b"ping");
        assert_eq!(&client.join().unwrap(), b"pong");
        drop(rt);
    });
}

/// A stream that registered and is then dropped leaves no epoll entry
/// (checked with a duplicate of its fd keeping the socket open), whatever
/// thread registered it and whatever thread drops it.
#[test]
fn dropped_streams_leave_no_epoll_entry() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            for where_ in 0..3 {
                let _c = std::net::TcpStream::connect(addr).unwrap();
                let (s, _) = listener.accept().await.unwrap();
                let fd = s.as_raw_fd();
                let dup = s.as_fd().try_clone_to_owned().unwrap();
                let s = Arc::new(s);
                // First poll: in block_on, or a task on worker 0 or 1.
                let s2 = s.clone();
                let poll = async move {
                    let _ = futures_util::FutureExt::now_or_never((&*s2).write(b"x"));
                };
                match where_ {
                    0 => poll.await,
                    w => handle.spawn_on(w - 1, poll).await.unwrap(),
                }
                assert_eq!(epolls_watching(fd), 1, "case {where_}");
                drop(s);
                assert_eq!(epolls_watching(fd), 0, "case {where_}: entry left");
                drop(dup);
            }
        });
    });
}

/// A socket whose first poll failed (its runtime gone) and which then
/// registers on another runtime's worker is in exactly one epoll, and the
/// entry goes when it is dropped.
#[test]
fn failed_then_successful_registration_leaves_one_entry() {
    deadline(30, || {
        let first = rt(1);
        let (a, b) = first.block_on(async {
            (
                UdpSocket::bind("127.0.0.1:0").unwrap(),
                UdpSocket::bind("127.0.0.1:0").unwrap(),
            )
        });
        drop(first);
        let to = b.local_addr().unwrap();
        let fd = a.as_raw_fd();
        let dup = a.as_fd().try_clone_to_owned().unwrap();
        assert!(plain_block_on(a.send_to(b"x", to)).is_err());
        assert_eq!(epolls_watching(fd), 0);
        let second = rt(1);
        let handle = second.handle().clone();
        let a = second.block_on(async move {
            handle
                .spawn_on(0, async move {
                    a.send_to(b"x", to).await.unwrap();
                    a
                })
                .await
                .unwrap()
        });
        assert_eq!(epolls_watching(fd), 1);
        drop(a);
        assert_eq!(epolls_watching(fd), 0);
        drop(dup);
    });
}

/// First polls off the workers (a plain thread) racing the drop of the
/// runtime whose worker they register with: each ends with data or the
/// shutdown error, none hangs.
#[test]
fn first_polls_racing_runtime_drop_never_hang() {
    deadline(60, || {
        for round in 0..50 {
            let rt = rt(1);
            let socks: Vec<UdpSocket> = rt.block_on(async {
                (0..8)
                    .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                    .collect()
            });
            let go = Arc::new(std::sync::Barrier::new(2));
            let g = go.clone();
            let t = std::thread::spawn(move || {
                g.wait();
                for s in &socks {
                    let mut buf = [0u8; 4];
                    // Nobody sends: only the shutdown can end the wait.
                    let r = plain_block_on(s.recv_from(&mut buf));
                    assert!(r.is_err(), "round {round}");
                }
            });
            go.wait();
            std::thread::sleep(Duration::from_micros(200 * (round % 5)));
            drop(rt);
            t.join().unwrap();
        }
    });
}

/// The halves of a stream first polled at once by the `block_on` thread
/// and by a task on a worker: registered once, both work.
#[test]
fn halves_first_polled_on_block_on_and_a_worker_register_once() {
    deadline(60, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            for round in 0..300 {
                let mut client = std::net::TcpStream::connect(addr).unwrap();
                client.write_all(b"ping").unwrap();
                let (stream, _) = listener.accept().await.unwrap();
                let fd = stream.as_raw_fd();
                let (mut r, mut w) = stream.into_split();
                let start = Arc::new(std::sync::Barrier::new(2));
                let go = start.clone();
                let reader = handle.spawn_on(round % 2, async move {
                    go.wait();
                    let mut buf = [0u8; 4];
                    r.read_exact(&mut buf).await.map(|()| (r, buf))
                });
                start.wait();
                w.write_all(b"pong").await.unwrap();
                let (r, got) = reader.await.unwrap().unwrap();
                assert_eq!(&got, b"ping");
                assert_eq!(epolls_watching(fd), 1, "round {round}");
                drop((r, w));
                let mut buf = [0u8; 4];
                client.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"pong");
            }
        });
    });
}
