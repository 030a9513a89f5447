//! Checks of claims made in strata-rt's public documentation.

mod support;

use std::io;
use std::net::Shutdown;
use std::time::Duration;

use futures_util::io::AsyncWriteExt;
use strata_rt::Runtime;
use strata_rt::net::{TcpListener, TcpStream, UdpSocket};

/// `TcpListener::set_ttl`: "Sets the IP time-to-live (`IP_TTL`) of
/// accepted sockets."
#[test]
fn listener_set_ttl_reaches_accepted_sockets() {
    support::deadline(30, || {
        let rt = support::rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_ttl(42).unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(addr).unwrap();
            let (conn, _) = listener.accept().await.unwrap();
            let ttl = socket2::SockRef::from(&conn).ttl_v4().unwrap();
            assert_eq!(ttl, 42);
            drop(client);
        });
    });
}

/// `Builder::thread_name`: workers are named `NAME-0`, `NAME-1`…,
/// blocking threads `NAME-blocking`.
#[test]
fn thread_names_are_as_documented() {
    support::deadline(30, || {
        let rt = Runtime::builder()
            .worker_threads(2)
            .thread_name("docname")
            .build()
            .unwrap();
        let names = rt.block_on(async {
            let mut names = Vec::new();
            for w in 0..2 {
                names.push(
                    rt.handle()
                        .spawn_on(w, async {
                            std::thread::current().name().map(str::to_owned)
                        })
                        .await
                        .unwrap(),
                );
            }
            names.push(
                strata_rt::spawn_blocking(|| std::thread::current().name().map(str::to_owned))
                    .await
                    .unwrap(),
            );
            names
        });
        assert_eq!(
            names,
            [
                Some("docname-0".to_owned()),
                Some("docname-1".to_owned()),
                Some("docname-blocking".to_owned())
            ]
        );
    });
}

/// `spawn_blocking`: "`JoinHandle::abort` cancels a closure that has not
/// started yet; one that is running runs to completion", and `abort`:
/// a task aborted while it runs that finishes in that poll "completes as
/// usual, and the handle gives its output".
#[test]
fn abort_of_a_running_blocking_closure_gives_its_output() {
    support::deadline(30, || {
        let rt = support::rt(1);
        rt.block_on(async {
            let (started_tx, started_rx) = std::sync::mpsc::channel();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let handle = strata_rt::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                7
            });
            started_rx.recv().unwrap();
            handle.abort();
            go_tx.send(()).unwrap();
            assert_eq!(handle.await.unwrap(), 7);
        });
    });
}

/// `Runtime::shutdown_timeout`: "Called on one of the runtime's own
/// workers it can neither join them nor wait, and returns `false` at once."
#[test]
fn shutdown_timeout_on_own_worker_returns_false() {
    support::deadline(30, || {
        let rt = support::rt(1);
        let handle = rt.handle().clone();
        let (rt_tx, rt_rx) = std::sync::mpsc::channel::<Runtime>();
        let (out_tx, out_rx) = std::sync::mpsc::channel();
        drop(handle.spawn(async move {
            let rt = rt_rx.recv().unwrap();
            out_tx
                .send(rt.shutdown_timeout(Duration::from_secs(600)))
                .unwrap();
        }));
        rt_tx.send(rt).unwrap();
        assert!(!out_rx.recv().unwrap());
    });
}

/// `UdpSocket`: after `connect`, datagrams "already queued before
/// `connect` are still received".
#[test]
fn udp_datagrams_queued_before_connect_are_received() {
    support::deadline(30, || {
        let rt = support::rt(1);
        rt.block_on(async {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            other.send_to(b"early", sock.local_addr().unwrap()).unwrap();
            // Loopback delivery is synchronous: the datagram is queued.
            sock.connect(peer.local_addr().unwrap()).unwrap();
            let mut buf = [0u8; 16];
            let n = sock.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"early");
        });
    });
}

/// `TcpStream::shutdown`: "Tasks waiting to write on this stream are woken
/// once its write direction is shut down, and their writes fail
/// (`BrokenPipe`)."
#[test]
fn shutdown_write_wakes_a_blocked_writer_with_broken_pipe() {
    support::deadline(30, || {
        let rt = support::rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let _peer = std::net::TcpStream::connect(addr).unwrap();
            let (conn, _) = listener.accept().await.unwrap();
            let conn = std::sync::Arc::new(conn);
            let writer = {
                let conn = conn.clone();
                strata_rt::spawn(async move {
                    let chunk = vec![0u8; 64 * 1024];
                    loop {
                        if let Err(e) = (&*conn).write(&chunk).await {
                            return e;
                        }
                    }
                })
            };
            // Let the writer fill the socket and wait.
            strata_rt::time::sleep(Duration::from_millis(200)).await;
            conn.shutdown(Shutdown::Write).unwrap();
            let err = writer.await.unwrap();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
        });
    });
}

/// `TcpStream::connect`: "`ConnectionRefused` when nothing listens on the
/// port. Never hangs on a refused connect."
#[test]
fn refused_connect_is_connection_refused() {
    support::deadline(30, || {
        let rt = support::rt(1);
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = rt.block_on(TcpStream::connect(addr)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

/// `time`: "A timer never fires before its deadline" (millisecond
/// resolution, rounded up), for sleeps off and on the millisecond grid,
/// and timeouts' `Elapsed` likewise.
#[test]
fn timers_never_fire_before_their_deadline() {
    support::deadline(60, || {
        let rt = support::rt(2);
        rt.block_on(async {
            strata_rt::spawn(async {
                let mut early = Vec::new();
                for k in 0..400u64 {
                    let d = Duration::from_nanos((k * 7_919_113) % 3_000_000);
                    let deadline = std::time::Instant::now() + d;
                    if k % 2 == 0 {
                        strata_rt::time::sleep_until(deadline).await;
                    } else {
                        let r = strata_rt::time::timeout_at(deadline, std::future::pending::<()>())
                            .await;
                        assert!(r.is_err());
                    }
                    let now = std::time::Instant::now();
                    if now < deadline {
                        early.push((k, deadline - now));
                    }
                }
                assert!(early.is_empty(), "fired early: {early:?}");
            })
            .await
            .unwrap();
        });
    });
}
