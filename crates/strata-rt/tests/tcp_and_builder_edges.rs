//! The public TCP API and `Runtime::builder()` options at their edges:
//! connect to several addresses (and finished off the runtime after it
//! started), half-closes and the writers they wake, split halves, vectored
//! writes with empty slices, listener options; absurd builder values are
//! errors, not panics; dropping a runtime joins its blocking threads.

mod support;

use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream};
use strata_rt::{Runtime, spawn, spawn_blocking};
use support::{deadline, rt};

fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn connect_tries_each_address_in_turn() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let good = l.local_addr().unwrap();
            let bad = refused_addr();
            let s = TcpStream::connect(&[bad, good][..]).await.unwrap();
            assert_eq!(s.peer_addr().unwrap(), good);
            let e = TcpStream::connect(&[good, bad][..]).await;
            assert!(e.is_ok());
            let e = TcpStream::connect(&[bad, bad][..]).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
            let e = TcpStream::connect(&[][..] as &[SocketAddr])
                .await
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        });
    });
}

#[test]
fn shutdown_read_wakes_a_pending_read_with_eof() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let s = Arc::new(TcpStream::connect(addr).await.unwrap());
            let (_peer, _) = l.accept().await.unwrap();
            let s2 = s.clone();
            let h = spawn(async move {
                let mut buf = [0u8; 16];
                (&*s2).read(&mut buf).await
            });
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            s.shutdown(Shutdown::Read).unwrap();
            assert_eq!(h.await.unwrap().unwrap(), 0);
        });
    });
}

#[test]
fn shutdown_write_fails_a_pending_write() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let s = Arc::new(TcpStream::connect(addr).await.unwrap());
            let (_peer, _) = l.accept().await.unwrap();
            let s2 = s.clone();
            let h = spawn(async move {
                let chunk = vec![1u8; 65536];
                loop {
                    if let Err(e) = (&*s2).write(&chunk).await {
                        return e;
                    }
                }
            });
            strata_rt::time::sleep(Duration::from_millis(200)).await;
            s.shutdown(Shutdown::Write).unwrap();
            let e = h.await.unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        });
    });
}

#[test]
fn shutdown_write_peer_sees_eof_and_can_still_answer() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let mut s = TcpStream::connect(addr).await.unwrap();
            let (mut peer, _) = l.accept().await.unwrap();
            s.write_all(b"abc").await.unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut v = Vec::new();
            peer.read_to_end(&mut v).await.unwrap();
            assert_eq!(v, b"abc");
            peer.write_all(b"xyz").await.unwrap();
            drop(peer);
            let mut v = Vec::new();
            s.read_to_end(&mut v).await.unwrap();
            assert_eq!(v, b"xyz");
            // write after shutdown fails, no hang
            let e = s.write(b"q").await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        });
    });
}

#[test]
fn split_reunite_and_drop_write_half() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let a = TcpStream::connect(addr).await.unwrap();
            let (mut pa, _) = l.accept().await.unwrap();
            let b = TcpStream::connect(addr).await.unwrap();
            let (_pb, _) = l.accept().await.unwrap();
            let (ar, aw) = a.into_split();
            let (br, bw) = b.into_split();
            let err = ar.reunite(bw).unwrap_err();
            assert!(err.to_string().contains("different"));
            let strata_rt::net::tcp::ReuniteError(ar, bw) = err;
            let err = br.reunite(aw).unwrap_err();
            let strata_rt::net::tcp::ReuniteError(br, aw) = err;
            let mut a = ar.reunite(aw).unwrap();
            let _b = br.reunite(bw).unwrap();
            a.write_all(b"hi").await.unwrap();
            let mut buf = [0u8; 2];
            pa.read_exact(&mut buf).await.unwrap();
            let (mut ar, aw) = a.into_split();
            drop(aw);
            let mut v = Vec::new();
            pa.read_to_end(&mut v).await.unwrap();
            assert!(v.is_empty());
            pa.write_all(b"back").await.unwrap();
            let mut buf = [0u8; 4];
            ar.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"back");
        });
    });
}

#[test]
fn vectored_writes_with_empty_slices() {
    use std::io::IoSlice;
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let mut s = TcpStream::connect(addr).await.unwrap();
            let (mut p, _) = l.accept().await.unwrap();
            assert_eq!(s.write_vectored(&[]).await.unwrap(), 0);
            assert_eq!(
                s.write_vectored(&[IoSlice::new(b""), IoSlice::new(b"")])
                    .await
                    .unwrap(),
                0
            );
            let n = s
                .write_vectored(&[
                    IoSlice::new(b""),
                    IoSlice::new(b"ab"),
                    IoSlice::new(b""),
                    IoSlice::new(b"cd"),
                ])
                .await
                .unwrap();
            assert_eq!(n, 4);
            assert_eq!(s.write(b"").await.unwrap(), 0);
            let mut buf = [0u8; 4];
            p.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"abcd");
        });
    });
}

#[test]
fn listener_ttl_applies_to_accepted_sockets() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_ttl(7).unwrap();
            let addr = l.local_addr().unwrap();
            let _c = TcpStream::connect(addr).await.unwrap();
            let (p, _) = l.accept().await.unwrap();
            assert_eq!(socket2::SockRef::from(&p).ttl_v4().unwrap(), 7);
            assert_eq!(socket2::SockRef::from(&l).ttl_v4().unwrap(), 7);
        });
    });
}

#[test]
fn listener_builder_options() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let l = TcpListener::builder(any).backlog(0).bind().unwrap();
            let addr = l.local_addr().unwrap();
            let _c = TcpStream::connect(addr).await.unwrap();
            let _ = l.accept().await.unwrap();
            let e = TcpListener::bind(addr).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
            let e = TcpListener::builder(addr)
                .reuse_port(true)
                .bind()
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
            let e = TcpListener::builder(addr)
                .reuse_port(true)
                .reuse_port_after_listen(true)
                .bind()
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
            let big = TcpListener::builder(any).backlog(u32::MAX).bind().unwrap();
            drop(big);
            // a connected socket holding the address
            let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let la = std_l.local_addr().unwrap();
            let from = TcpListener::from_std(std_l).unwrap();
            assert_eq!(from.local_addr().unwrap(), la);
            let _c = TcpStream::connect(la).await.unwrap();
            let (s, _) = from.accept().await.unwrap();
            assert!(!s.nodelay().unwrap());
            s.set_nodelay(true).unwrap();
            assert!(s.nodelay().unwrap());
        });
    });
}

#[test]
fn readable_and_writable() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let s = Arc::new(TcpStream::connect(addr).await.unwrap());
            let (mut p, _) = l.accept().await.unwrap();
            s.writable().await.unwrap();
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    let s = s.clone();
                    spawn(async move { s.readable().await })
                })
                .collect();
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            p.write_all(b"x").await.unwrap();
            for h in hs {
                h.await.unwrap().unwrap();
            }
            let mut b = [0u8; 1];
            assert_eq!((&*s).read(&mut b).await.unwrap(), 1);
            let s2 = s.clone();
            let h = spawn(async move {
                let mut b = [0u8; 1];
                let n = (&*s2).read(&mut b).await.unwrap();
                assert_eq!(n, 0);
                s2.readable().await
            });
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            drop(p);
            h.await.unwrap().unwrap();
        });
    });
}

#[test]
fn keep_alive_zero_works() {
    deadline(60, || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .blocking_keep_alive(Duration::ZERO)
            .max_blocking_threads(0)
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 0..200 {
                assert_eq!(spawn_blocking(move || i).await.unwrap(), i);
            }
        });
    });
}

/// `build()` refuses more than 4,096 workers with `InvalidInput` (it
/// reserved room for `usize::MAX` of them and panicked).
#[test]
fn worker_threads_huge_is_an_error_not_a_panic() {
    let r = std::panic::catch_unwind(|| {
        Runtime::builder()
            .worker_threads(usize::MAX)
            .build()
            .map(|_| ())
    });
    let err = r.expect("build() panicked").expect_err("built");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

/// An event capacity over 65,536 is taken as 65,536 (each worker keeps a
/// buffer that size; `usize::MAX` panicked in `build()`).
#[test]
fn event_capacity_huge_is_an_error_not_a_panic() {
    let r = std::panic::catch_unwind(|| {
        Runtime::builder()
            .worker_threads(1)
            .event_capacity(usize::MAX)
            .build()
            .map(|_| ())
    });
    r.expect("build() panicked").expect("a runtime");
}

/// A thread name with a NUL byte is `InvalidInput` from `build()`
/// (`std::thread::Builder::spawn` panicked on it).
#[test]
fn thread_name_with_nul_is_an_error_not_a_panic() {
    let r = std::panic::catch_unwind(|| {
        Runtime::builder()
            .worker_threads(1)
            .thread_name("a\0b")
            .build()
            .map(|_| ())
    });
    let err = r.expect("build() panicked").expect_err("built");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn reuse_port_after_listen_group_shares_connections() {
    deadline(60, || {
        let rt = rt(2);
        rt.block_on(async {
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let first = TcpListener::builder(any)
                .reuse_port(true)
                .reuse_port_after_listen(true)
                .bind()
                .unwrap();
            let addr = first.local_addr().unwrap();
            let second = TcpListener::builder(addr).reuse_port(true).bind().unwrap();
            let mut conns = Vec::new();
            for _ in 0..64 {
                conns.push(TcpStream::connect(addr).await.unwrap());
            }
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            use std::task::Poll;
            let mut counts = [0usize; 2];
            for (i, l) in [&first, &second].iter().enumerate() {
                loop {
                    let r = std::future::poll_fn(|cx| Poll::Ready(l.poll_accept(cx))).await;
                    match r {
                        Poll::Ready(Ok(_)) => counts[i] += 1,
                        _ => break,
                    }
                }
            }
            assert_eq!(counts[0] + counts[1], 64, "{counts:?}");
            assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
        });
    });
}

/// `reuse_port_after_listen` only modifies `reuse_port`: on its own it sets
/// no `SO_REUSEPORT`, so a later `reuse_port` listener cannot join.
#[test]
fn reuse_port_after_listen_without_reuse_port_leaves_the_port_unshared() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let first = TcpListener::builder(any)
                .reuse_port_after_listen(true)
                .bind()
                .unwrap();
            assert!(!socket2::SockRef::from(&first).reuse_port().unwrap());
            let addr = first.local_addr().unwrap();
            let e = TcpListener::builder(addr)
                .reuse_port(true)
                .bind()
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        });
    });
}

#[test]
fn echo_with_event_capacity_one() {
    deadline(60, || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .event_capacity(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            spawn(async move {
                loop {
                    let (s, _) = l.accept().await.unwrap();
                    spawn(async move {
                        let (mut r, mut w) = s.into_split();
                        let _ = futures_util::io::copy(&mut r, &mut w).await;
                    });
                }
            });
            let hs: Vec<_> = (0..50)
                .map(|i| {
                    spawn(async move {
                        let c = TcpStream::connect(addr).await.unwrap();
                        let data = vec![i as u8; 100_000];
                        let (mut r, mut w) = c.into_split();
                        let wr = spawn(async move {
                            w.write_all(&data).await.unwrap();
                            w.close().await.unwrap();
                        });
                        let mut v = Vec::new();
                        r.read_to_end(&mut v).await.unwrap();
                        wr.await.unwrap();
                        assert_eq!(v.len(), 100_000);
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        });
    });
}

/// The runtime's docs: dropping it "joins the threads" and waits for the
/// running blocking closures "as tokio's runtime does" (tokio joins its
/// blocking threads): not only until each has counted itself out, but
/// until it has exited (its thread-local destructors run). The destructor
/// below takes a while, so that a drop that does not join is caught every
/// time rather than by chance.
#[test]
fn dropping_the_runtime_joins_its_blocking_threads() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DONE: AtomicUsize = AtomicUsize::new(0);
    struct SlowExit;
    impl Drop for SlowExit {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(200));
            DONE.fetch_add(1, Ordering::SeqCst);
        }
    }
    thread_local! {
        static PER_THREAD: std::cell::RefCell<Option<SlowExit>> = const { std::cell::RefCell::new(None) };
    }
    deadline(60, || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .thread_name("join-check")
            .build()
            .unwrap();
        rt.block_on(async {
            spawn_blocking(|| PER_THREAD.with(|p| *p.borrow_mut() = Some(SlowExit)))
                .await
                .unwrap();
        });
        drop(rt);
        assert_eq!(
            DONE.load(Ordering::SeqCst),
            1,
            "runtime drop returned while its blocking thread was still running \
             (its thread-local destructor had not finished)"
        );
    });
}

/// A connect started in a task may be finished on a thread outside any
/// runtime, as any `Send` future may: the sockets it makes after the
/// first poll (after a name lookup on the blocking pool, or after a
/// refused address) join the reactor it started with. They looked the
/// runtime up again on the thread polling them, and panicked there saying
/// `connect` "was called outside a strata runtime".
#[test]
fn a_connect_moved_to_a_plain_thread_mid_way_finishes() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    type Connect = Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;
    deadline(30, || {
        let rt = rt(1);
        let l = rt.block_on(async { TcpListener::bind("127.0.0.1:0").unwrap() });
        let good = l.local_addr().unwrap();
        let cases: Vec<(&str, Connect)> = vec![
            // Looked up on the blocking pool first.
            (
                "name",
                Box::pin(TcpStream::connect(("localhost", good.port()))),
            ),
            (
                "refused, then good",
                Box::pin(TcpStream::connect([refused_addr(), good])),
            ),
        ];
        for (what, connect) in cases {
            // First polled, and left pending, by a task on the worker...
            let (pending, connect) = rt
                .block_on(rt.handle().spawn(async move {
                    let mut f = connect;
                    let first = std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await;
                    (first.is_pending(), f)
                }))
                .unwrap();
            assert!(pending, "{what}: set-up: the first poll is pending");
            // ...then finished on a plain thread while the runtime runs.
            let r = std::thread::spawn(move || support::plain_block_on(connect).map(|_| ()))
                .join()
                .map_err(|p| p.downcast_ref::<String>().cloned());
            match what {
                // Whatever the host's resolver makes of the name, no panic.
                "name" => assert!(r.is_ok(), "{what}: {r:?}"),
                _ => assert!(matches!(r, Ok(Ok(()))), "{what}: {r:?}"),
            }
        }
    });
}

/// `shutdown(Write)` wakes the tasks waiting to write (the kernel reports
/// nothing for it on Unix sockets), and wakes them as the reactor does: a
/// foreign executor's waker that panics is contained. Woken plainly, its
/// panic came out of `shutdown` (which returns `io::Result`; from a write
/// half's drop while unwinding, an abort), and the waiters after it were
/// never woken.
#[test]
fn shutdown_write_wakes_every_writer_though_a_foreign_waker_panics() {
    use futures_util::io::AsyncWrite;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Wake, Waker};
    struct PanickingWaker;
    impl Wake for PanickingWaker {
        fn wake(self: Arc<Self>) {
            panic!("test: a foreign executor's waker panicked");
        }
    }
    deadline(30, || {
        let rt = rt(1);
        let (c, _s) = rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            (c, l.accept().await.unwrap())
        });
        let c = Arc::new(c);
        rt.block_on(async {
            let mut w = &*c;
            support::fill_send_queue(&mut w, |w| w.unsent_bytes().unwrap()).await;
        });
        // A foreign poller waits to write, then a strata task.
        let foreign = Waker::from(Arc::new(PanickingWaker));
        let big = vec![0u8; 1 << 20];
        let mut cx = Context::from_waker(&foreign);
        assert!(Pin::new(&mut &*c).poll_write(&mut cx, &big).is_pending());
        let waiting = Arc::new(AtomicBool::new(false));
        let (c2, w2) = (c.clone(), waiting.clone());
        let task = rt.handle().spawn(async move {
            let mut f = std::pin::pin!(c2.writable());
            std::future::poll_fn(|cx| {
                let r = f.as_mut().poll(cx);
                w2.store(r.is_pending(), Ordering::SeqCst);
                r
            })
            .await
        });
        while !waiting.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // The worker is held while `shutdown` runs, so that the kernel's
        // event for it cannot take the waiters first.
        let (held_tx, held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        drop(rt.handle().spawn(async move {
            held_tx.send(()).unwrap();
            let _ = released.recv();
        }));
        held.recv().unwrap();
        let res =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.shutdown(Shutdown::Write)));
        drop(release);
        assert!(matches!(res, Ok(Ok(()))), "shutdown panicked or failed");
        rt.block_on(task).unwrap().unwrap();
    });
}
