//! Descriptor hygiene: every descriptor the runtime makes is close-on-exec,
//! nothing leaks on error paths, and running out of descriptors
//! (`RLIMIT_NOFILE`) gives errors, not panics or hangs, and is recovered
//! from once descriptors are free again (edge-triggered readiness must not
//! be lost on an `EMFILE` accept).
//!
//! Every test runs in a child process of its own (`run_as_child`): the
//! descriptor limit is process-wide and the descriptor table is shared with
//! the other tests' threads.
#![cfg(target_os = "linux")]

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use strata_rt::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use strata_rt::signal::{Signal, SignalKind};
use strata_rt::time::timeout;
use support::fds::{Exhausted, fds_seen_by_exec, open_fds, opened_since, without_cloexec};
use support::{deadline, passes_in_child, rt};

const CHILD: &str = "STRATA_FD_HYGIENE_CHILD";

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs `name` in a child and fails with its output unless it passed.
fn in_child(name: &str) {
    passes_in_child(name, CHILD, 120);
}

fn is_emfile(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMFILE)
}

fn unix_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("strata-fd-{}-{tag}.sock", std::process::id()))
}

// ---------------------------------------------------------------------------
// 1. Close-on-exec.

/// Every descriptor made by the runtime and its sockets (epolls, wakers,
/// TCP/UDP/Unix sockets from bind, connect, accept and pair, the signal
/// pipe, what the blocking pool and timers touch) has `FD_CLOEXEC`, and a
/// program exec'd meanwhile inherits none of them.
#[test]
fn every_descriptor_is_close_on_exec() {
    if !is_child() {
        return in_child("every_descriptor_is_close_on_exec");
    }
    let before = open_fds();
    let exec_before = fds_seen_by_exec();
    let rt = rt(2);
    let path = unix_path("cloexec");
    let _ = std::fs::remove_file(&path);
    let held = rt.block_on(async {
        let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = TcpStream::connect(addr).await.unwrap();
        let (a, _) = l.accept().await.unwrap();
        let c2 = TcpStream::connect(("localhost", addr.port()))
            .await
            .unwrap();
        let (a2, _) = l.accept().await.unwrap();
        let rp = TcpListener::builder("127.0.0.1:0".parse().unwrap())
            .reuse_port(true)
            .reuse_port_after_listen(true)
            .bind()
            .unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let u6 = UdpSocket::bind("[::1]:0").ok();
        let ul = UnixListener::bind(&path).unwrap();
        let uc = UnixStream::connect(&path).await.unwrap();
        let (ua, _) = ul.accept().await.unwrap();
        let (p1, p2) = UnixStream::pair().unwrap();
        let sig = Signal::new(SignalKind::user_defined2()).unwrap();
        strata_rt::spawn_blocking(|| 7).await.unwrap();
        strata_rt::time::sleep(Duration::from_millis(5)).await;
        let (r, w) = c.into_split();
        held.push(Box::new((l, r, w, a, c2, a2, rp, u, u6)));
        held.push(Box::new((ul, uc, ua, p1, p2, sig)));
        held
    });
    let bad = without_cloexec(&before);
    let exec_after = fds_seen_by_exec();
    drop(held);
    drop(rt);
    let _ = std::fs::remove_file(&path);
    assert!(bad.is_empty(), "descriptors without FD_CLOEXEC: {bad:?}");
    assert_eq!(
        exec_before, exec_after,
        "an exec'd program inherited descriptors"
    );
}

// ---------------------------------------------------------------------------
// 2. Running out of descriptors.

/// `build` fails with `EMFILE` (no panic, no hang) wherever it runs out,
/// including half-way through its workers, and leaves no descriptor
/// behind; with descriptors back it builds again.
#[test]
fn build_out_of_descriptors_errs_and_leaks_nothing() {
    if !is_child() {
        return in_child("build_out_of_descriptors_errs_and_leaks_nothing");
    }
    deadline(60, || {
        let baseline = open_fds();
        // A worker takes three: its epoll, its eventfd waker, and the
        // registry's duplicate of the epoll. Free 0 to 8 of them: the build
        // of three workers fails at every step of the first two.
        for spare in 0..9 {
            let mut ex = Exhausted::now();
            ex.free(spare);
            let r = strata_rt::Runtime::builder().worker_threads(3).build();
            let err = r
                .err()
                .unwrap_or_else(|| panic!("built with {spare} spare fds"));
            assert!(is_emfile(&err), "spare {spare}: {err:?}");
            drop(ex);
            let now = open_fds();
            assert_eq!(
                now, baseline,
                "a failed build with {spare} spare fds left descriptors open"
            );
        }
        let rt = rt(3);
        assert_eq!(
            rt.block_on(async { strata_rt::spawn(async { 5 }).await.unwrap() }),
            5
        );
    });
}

/// An existing runtime keeps running tasks, timers and the blocking pool
/// while the process is out of descriptors; every API that needs a new
/// descriptor fails with `EMFILE`, and works again once some are free.
#[test]
fn running_runtime_survives_exhaustion() {
    if !is_child() {
        return in_child("running_runtime_survives_exhaustion");
    }
    deadline(60, || {
        let rt = rt(2);
        let path = unix_path("exhaust");
        let _ = std::fs::remove_file(&path);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let ul = UnixListener::bind(&path).unwrap();
            // An established connection, to check it is unaffected.
            let mut c = TcpStream::connect(addr).await.unwrap();
            let (mut a, _) = l.accept().await.unwrap();

            let ex = Exhausted::now();
            assert_eq!(strata_rt::spawn(async { 1 }).await.unwrap(), 1);
            strata_rt::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(strata_rt::spawn_blocking(|| 2).await.unwrap(), 2);
            {
                use futures_util::io::{AsyncReadExt, AsyncWriteExt};
                c.write_all(b"ping").await.unwrap();
                let mut buf = [0; 4];
                a.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"ping");
            }
            let e = TcpStream::connect(addr).await.unwrap_err();
            assert!(is_emfile(&e), "connect: {e:?}");
            let e = TcpListener::bind("127.0.0.1:0").unwrap_err();
            assert!(is_emfile(&e), "bind: {e:?}");
            let e = UdpSocket::bind("127.0.0.1:0").unwrap_err();
            assert!(is_emfile(&e), "udp bind: {e:?}");
            let e = UnixStream::pair().unwrap_err();
            assert!(is_emfile(&e), "pair: {e:?}");
            let e = UnixStream::connect(&path).await.unwrap_err();
            assert!(is_emfile(&e), "unix connect: {e:?}");
            let e = Signal::new(SignalKind::user_defined1()).unwrap_err();
            assert!(is_emfile(&e), "signal: {e:?}");
            drop(ex);

            // Everything works again.
            let c2 = TcpStream::connect(addr).await.unwrap();
            let (a2, _) = l.accept().await.unwrap();
            let _u = UdpSocket::bind("127.0.0.1:0").unwrap();
            let _p = UnixStream::pair().unwrap();
            let uc = UnixStream::connect(&path).await.unwrap();
            let (ua, _) = ul.accept().await.unwrap();
            let mut sig = Signal::new(SignalKind::user_defined1()).unwrap();
            // SAFETY: a handler for SIGUSR1 is installed (`sig`).
            unsafe { libc::raise(libc::SIGUSR1) };
            timeout(Duration::from_secs(10), sig.recv())
                .await
                .expect("SIGUSR1 after a Signal::new that failed for EMFILE");
            drop((c2, a2, uc, ua));
        });
        let _ = std::fs::remove_file(&path);
    });
}

/// A client connects while the process is out of descriptors: the
/// listener's edge-triggered event comes, accept fails with `EMFILE`; once
/// a descriptor is free, the next accept takes the queued connection
/// without any new event. With two queued and one fd free, one is taken
/// and the other waits for the next free fd.
#[test]
fn accept_emfile_then_recovers() {
    if !is_child() {
        return in_child("accept_emfile_then_recovers");
    }
    deadline(60, || {
        let rt = rt(1);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            // The clients' sockets exist before the table is full.
            let clients: Vec<socket2::Socket> = (0..3)
                .map(|_| {
                    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                        .unwrap()
                })
                .collect();
            // Registered and waiting before anything is queued.
            let mut accept = Box::pin(l.accept());
            let pending = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(accept.as_mut().poll(cx).is_pending())
            })
            .await;
            assert!(pending, "accept with nothing queued");

            let mut ex = Exhausted::now();
            clients[0].connect(&addr.into()).unwrap();
            let e = timeout(Duration::from_secs(10), accept)
                .await
                .expect("accept never reported the queued connection")
                .unwrap_err();
            assert!(is_emfile(&e), "accept: {e:?}");
            // Still out: still EMFILE (not a hang, not `WouldBlock` lost).
            let e = timeout(Duration::from_secs(10), l.accept())
                .await
                .expect("second accept hung while out of fds")
                .unwrap_err();
            assert!(is_emfile(&e), "accept again: {e:?}");

            ex.free(1);
            let (s, peer) = timeout(Duration::from_secs(10), l.accept())
                .await
                .expect("the queued connection was never accepted after an fd was freed")
                .unwrap();
            assert_eq!(peer, clients[0].local_addr().unwrap().as_socket().unwrap());

            // Two more queue while out again.
            clients[1].connect(&addr.into()).unwrap();
            clients[2].connect(&addr.into()).unwrap();
            let e = timeout(Duration::from_secs(10), l.accept())
                .await
                .expect("accept hung")
                .unwrap_err();
            assert!(is_emfile(&e), "{e:?}");
            drop(s);
            let (s1, _) = timeout(Duration::from_secs(10), l.accept())
                .await
                .expect("hung with one free fd")
                .unwrap();
            let e = timeout(Duration::from_secs(10), l.accept())
                .await
                .expect("hung out of fds")
                .unwrap_err();
            assert!(is_emfile(&e), "{e:?}");
            drop(ex);
            let (s2, _) = timeout(Duration::from_secs(10), l.accept())
                .await
                .expect("the last queued connection was lost")
                .unwrap();
            drop((s1, s2, clients));
        });
    });
}

// ---------------------------------------------------------------------------
// 3. Leaks on error paths.

/// Failed connects, binds and accepts close what they opened, and a
/// runtime with live sockets dropped and rebuilt leaves nothing behind.
#[test]
fn error_paths_leak_no_descriptors() {
    if !is_child() {
        return in_child("error_paths_leak_no_descriptors");
    }
    deadline(60, || {
        let baseline = open_fds();
        let path = unix_path("leak");
        for _ in 0..5 {
            let rt = rt(2);
            let _ = std::fs::remove_file(&path);
            let kept = rt.block_on(async {
                // A refused connect (bound but not listening).
                let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let refused = closed.local_addr().unwrap();
                drop(closed);
                for _ in 0..20 {
                    assert!(TcpStream::connect(refused).await.is_err());
                }
                let two: [SocketAddr; 2] = [refused, refused];
                assert!(TcpStream::connect(&two[..]).await.is_err());
                // Binds that fail: address in use.
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                for _ in 0..20 {
                    assert!(
                        TcpListener::builder(addr)
                            .reuse_address(false)
                            .bind()
                            .is_err()
                    );
                }
                let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                for _ in 0..20 {
                    assert!(UdpSocket::bind(u.local_addr().unwrap()).is_err());
                }
                let ul = UnixListener::bind(&path).unwrap();
                for _ in 0..20 {
                    assert!(UnixListener::bind(&path).is_err());
                    assert!(UnixStream::connect(unix_path("nobody")).await.is_err());
                }
                // Connections reset before they are accepted.
                for _ in 0..5 {
                    let s = std::net::TcpStream::connect(addr).unwrap();
                    socket2::SockRef::from(&s)
                        .set_linger(Some(Duration::ZERO))
                        .unwrap();
                    drop(s);
                }
                while let Ok(Ok(_)) = timeout(Duration::from_millis(50), l.accept()).await {}
                // Sockets that outlive the runtime, one registered and one
                // not yet.
                let c = TcpStream::connect(addr).await.unwrap();
                let (a, _) = l.accept().await.unwrap();
                let mut std_c = std::net::TcpStream::connect(addr).unwrap();
                std_c.write_all(b"x").unwrap();
                let (b, _) = l.accept().await.unwrap();
                (c, a, b, std_c, ul, u, l)
            });
            drop(rt);
            let (c, a, b, mut std_c, ul, u, l) = kept;
            drop((c, a, b, ul, u, l));
            let mut buf = [0; 1];
            let _ = std_c.read(&mut buf);
        }
        let _ = std::fs::remove_file(&path);
        let leaked = opened_since(&baseline);
        assert!(leaked.is_empty(), "descriptors left open: {leaked:?}");
    });
}

/// A runtime dropped with tasks in every state (waiting on sockets of
/// other workers, on timers, on blocking closures, spawned from a kept
/// handle after the drop) releases its epolls and wakers: none of its
/// descriptors is left once everything it handed out is dropped.
#[test]
fn dropped_runtime_releases_its_descriptors() {
    if !is_child() {
        return in_child("dropped_runtime_releases_its_descriptors");
    }
    deadline(60, || {
        let baseline = open_fds();
        for round in 0..4 {
            let rt = rt(3);
            let handle = rt.handle().clone();
            let (kept, std_clients) = rt.block_on(async {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let mut std_clients = Vec::new();
                let mut kept = Vec::new();
                for w in 0..3 {
                    std_clients.push(std::net::TcpStream::connect(addr).unwrap());
                    let (s, _) = l.accept().await.unwrap();
                    // Waits forever on a read, on worker `w`.
                    kept.push(handle.spawn_on(w, async move {
                        use futures_util::io::AsyncReadExt;
                        let mut s = s;
                        let mut b = [0; 1];
                        let _ = s.read(&mut b).await;
                        s
                    }));
                    // A local task holding a socket and a handle.
                    let h = handle.clone();
                    std_clients.push(std::net::TcpStream::connect(addr).unwrap());
                    let (s2, _) = l.accept().await.unwrap();
                    drop(handle.spawn_local_on(w, move || async move {
                        use futures_util::io::AsyncReadExt;
                        let _h = h;
                        let mut s2 = s2;
                        let mut b = [0; 1];
                        let _ = s2.read(&mut b).await;
                    }));
                    // A timer far away, holding a handle.
                    let h = handle.clone();
                    drop(handle.spawn_on(w, async move {
                        let _h = h;
                        strata_rt::time::sleep(Duration::from_secs(3600)).await;
                    }));
                }
                // A task waiting on a blocking closure that outlives the
                // runtime (briefly).
                let h = handle.clone();
                drop(strata_rt::spawn(async move {
                    let _h = h;
                    let _ =
                        strata_rt::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)))
                            .await;
                }));
                (kept, std_clients)
            });
            if round % 2 == 0 {
                drop(rt);
            } else {
                rt.shutdown_background();
                std::thread::sleep(Duration::from_millis(100));
            }
            // Spawns after the drop, through a kept handle, holding it.
            for w in 0..3 {
                let h = handle.clone();
                drop(handle.spawn_on(w, async move {
                    let _h = h;
                }));
                let h = handle.clone();
                drop(handle.spawn_local_on(w, move || async move {
                    let _h = h;
                }));
            }
            drop(handle);
            drop(kept);
            drop(std_clients);
        }
        std::thread::sleep(Duration::from_millis(200));
        let leaked = opened_since(&baseline);
        assert!(leaked.is_empty(), "descriptors left open: {leaked:?}");
    });
}

/// The same for a Unix listener: `EMFILE`, then the queued connection
/// once a descriptor is free.
#[test]
fn unix_accept_emfile_then_recovers() {
    if !is_child() {
        return in_child("unix_accept_emfile_then_recovers");
    }
    deadline(60, || {
        let rt = rt(1);
        let path = unix_path("accept");
        let _ = std::fs::remove_file(&path);
        rt.block_on(async {
            let l = UnixListener::bind(&path).unwrap();
            let client =
                socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
            let ex = Exhausted::now();
            client
                .connect(&socket2::SockAddr::unix(&path).unwrap())
                .unwrap();
            let e = timeout(Duration::from_secs(10), l.accept())
                .await
                .expect("accept hung while out of fds")
                .unwrap_err();
            assert!(is_emfile(&e), "{e:?}");
            drop(ex);
            let (s, _) = timeout(Duration::from_secs(10), l.accept())
                .await
                .expect("the queued Unix connection was never accepted")
                .unwrap();
            drop((s, client));
        });
        let _ = std::fs::remove_file(&path);
    });
}
