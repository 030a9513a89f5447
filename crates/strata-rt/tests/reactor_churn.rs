//! The reactor under churn: registration, deregistration and drop of
//! sockets across threads, runtimes and shutdown, plus a foreign waker
//! that panics (from a review; that was its finding). Loopback only,
//! bounded, hang-guarded.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream, UdpSocket};
use support::{Rng, deadline, plain_block_on, rt};

/// Live heap bytes, to look for per-socket leaks.
struct Counting;
static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);
// SAFETY: forwards to the system allocator, only counting.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}
#[global_allocator]
static ALLOC: Counting = Counting;

/// Tests in this file that count descriptors must not overlap.
static SERIAL: Mutex<()> = Mutex::new(());
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Runs `once` 21 times and fails if the process holds more than two
/// descriptors more after the last 20 than after the first (slack for
/// the test harness's own).
fn repeats_leak_no_descriptors(once: impl Fn()) {
    once();
    let before = open_fds();
    for _ in 0..20 {
        once();
    }
    let after = open_fds();
    assert!(
        after <= before + 2,
        "descriptors leaked: {before} -> {after}"
    );
}

/// Polls `f` once with `waker`.
fn poll_with<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

// ---------------------------------------------------------------------------
// Probe: a waker called by the reactor panics.
// ---------------------------------------------------------------------------

struct PanicWaker;
impl Wake for PanicWaker {
    fn wake(self: Arc<Self>) {
        panic!("a foreign waker panicked");
    }
}

/// A foreign waker that panics when the reactor wakes it takes the whole
/// worker down: every other socket registered with that worker then hangs
/// forever (its reactor is gone but never marked shut down).
#[test]
fn a_panicking_foreign_waker_does_not_hang_other_sockets_of_its_worker() {
    let _s = serial();
    deadline(30, || {
        let rt = rt(1);
        let (a_tx, a_rx, b_tx, b_rx) = rt.block_on(async {
            let a_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let a_tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let b_tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            (a_tx, a_rx, b_tx, b_rx)
        });
        // A foreign future waits on `a_rx` with a panicking waker.
        let waker = Waker::from(Arc::new(PanicWaker));
        let mut buf = [0u8; 8];
        {
            let mut recv = Box::pin(a_rx.recv_from(&mut buf));
            assert!(poll_with(&mut recv, &waker).is_pending());
            a_tx.send_to(b"x", a_rx.local_addr().unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        // Then a read on another socket of the same (only) worker, whose
        // datagram arrives only after the read has started waiting.
        let addr = b_rx.local_addr().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            b_tx.send_to(b"y", addr).unwrap();
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(plain_block_on(async {
                let mut buf = [0u8; 8];
                b_rx.recv_from(&mut buf).await.map(|(n, _)| n)
            }));
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(r) => assert_eq!(r.unwrap(), 1),
            Err(_) => panic!("recv on a socket of the worker whose waker panicked hung (5 s)"),
        }
    });
}

// ---------------------------------------------------------------------------
// Churn: many sockets opened and closed quickly across threads.
// ---------------------------------------------------------------------------

/// Connect, accept, echo, cancel and drop in random orders from worker
/// tasks and from `block_on` threads; every operation must finish and every
/// descriptor must be closed afterwards.
#[test]
fn churn_connect_accept_echo_cancel_drop_across_threads() {
    let _s = serial();
    support::raise_fd_limit(4096);
    deadline(120, || {
        let rt = Arc::new(rt(2));
        let listener = rt.block_on(async { TcpListener::bind("127.0.0.1:0").unwrap() });
        let addr = listener.local_addr().unwrap();
        let before = open_fds();
        let served = Arc::new(AtomicUsize::new(0));
        let served2 = served.clone();
        let server = rt.handle().spawn(async move {
            loop {
                let (mut s, _) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => panic!("accept failed: {e}"),
                };
                let served = served2.clone();
                strata_rt::spawn(async move {
                    let mut buf = [0u8; 512];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        let client = move |seed: u64, iters: usize| {
            let mut rng = Rng::new(seed);
            async move {
                for i in 0..iters {
                    let mode = rng.below(4);
                    let len = 1 + rng.below(2000) as usize;
                    let mut c = TcpStream::connect(addr).await.unwrap();
                    match mode {
                        // Full echo.
                        0 | 1 => {
                            let data: Vec<u8> = (0..len).map(|k| (k + i) as u8).collect();
                            c.write_all(&data).await.unwrap();
                            let mut back = vec![0u8; len];
                            c.read_exact(&mut back).await.unwrap();
                            assert_eq!(back, data);
                        }
                        // Drop right after connecting.
                        2 => drop(c),
                        // Start a read that is cancelled by a timer, then drop.
                        _ => {
                            let mut buf = [0u8; 4];
                            let r = strata_rt::time::timeout(
                                Duration::from_millis(rng.below(3)),
                                c.read(&mut buf),
                            )
                            .await;
                            assert!(r.is_err(), "read returned {r:?}");
                        }
                    }
                }
            }
        };
        let mut threads = Vec::new();
        for t in 0..3u64 {
            let rt = rt.clone();
            threads.push(std::thread::spawn(move || rt.block_on(client(t, 150))));
        }
        let mut tasks = Vec::new();
        for t in 10..14u64 {
            tasks.push(rt.handle().spawn(client(t, 150)));
        }
        for t in threads {
            t.join().unwrap();
        }
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        // Every server-side connection ended too.
        let total = 7 * 150;
        for _ in 0..200 {
            if served.load(Ordering::Relaxed) == total {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(served.load(Ordering::Relaxed), total);
        let after = open_fds();
        assert!(
            after <= before + 2,
            "descriptors leaked: {before} -> {after}"
        );
        server.abort();
    });
}

// ---------------------------------------------------------------------------
// Shutdown while sockets are in use elsewhere.
// ---------------------------------------------------------------------------

/// Runtime A is dropped while its sockets are waited on from runtime B's
/// tasks and from plain threads: every waiter ends with an error.
#[test]
fn dropping_a_runtime_fails_waiters_on_other_runtimes_and_threads() {
    let _s = serial();
    deadline(60, || {
        for seed in 0..10u64 {
            let mut rng = Rng::new(seed);
            let a = rt(2);
            let b = rt(2);
            let (listener, pairs) = a.block_on(async {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let mut pairs = Vec::new();
                for _ in 0..8 {
                    let c = TcpStream::connect(addr).await.unwrap();
                    let (s, _) = l.accept().await.unwrap();
                    pairs.push((c, s));
                }
                (l, pairs)
            });
            let mut keep = Vec::new();
            let mut joins = Vec::new();
            let mut threads = Vec::new();
            for (i, (c, s)) in pairs.into_iter().enumerate() {
                keep.push(s);
                if i % 2 == 0 {
                    joins.push(b.handle().spawn(async move {
                        let mut c = c;
                        let mut buf = [0u8; 1];
                        c.read(&mut buf).await
                    }));
                } else {
                    threads.push(std::thread::spawn(move || {
                        let mut c = c;
                        let mut buf = [0u8; 1];
                        plain_block_on(c.read(&mut buf))
                    }));
                }
            }
            let lt = std::thread::spawn(move || plain_block_on(listener.accept()).map(|_| ()));
            std::thread::sleep(Duration::from_millis(rng.below(30)));
            drop(a);
            for t in threads {
                let r = t.join().unwrap();
                assert!(r.is_err(), "seed {seed}: read returned {r:?}");
            }
            assert!(lt.join().unwrap().is_err());
            b.block_on(async {
                for j in joins {
                    let r = j.await.unwrap();
                    assert!(r.is_err(), "seed {seed}: read returned {r:?}");
                }
            });
            drop(keep);
        }
    });
}

/// Creating and dropping runtimes with sockets must not leak descriptors
/// (epoll, eventfd, sockets).
#[test]
fn runtimes_with_sockets_leak_no_descriptors() {
    let _s = serial();
    deadline(60, || {
        let once = || {
            let rt = rt(2);
            let kept = rt.block_on(async {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
                let (s, _) = l.accept().await.unwrap();
                (l, c, s)
            });
            drop(rt);
            drop(kept);
        };
        repeats_leak_no_descriptors(once);
    });
}

/// Nor must runtimes whose workers kept spare timer entries (a sleep armed
/// and dropped on a worker): each spare holds its worker's shared state,
/// and with it the worker's eventfd and epoll.
#[test]
fn runtimes_with_spare_timer_entries_leak_no_descriptors() {
    let _s = serial();
    deadline(60, || {
        let once = || {
            let rt = rt(1);
            rt.block_on(async {
                strata_rt::spawn(async {
                    let mut s = strata_rt::time::sleep(Duration::from_secs(3600));
                    let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut s).poll(cx)));
                    assert!(polled.await.is_pending());
                })
                .await
                .unwrap();
            });
            drop(rt);
        };
        repeats_leak_no_descriptors(once);
    });
}

// ---------------------------------------------------------------------------
// Dropping sockets from a waker the reactor calls.
// ---------------------------------------------------------------------------

/// A foreign waker that, when the reactor wakes it, drops a socket of the
/// same reactor and opens a new one (likely the same slot and descriptor).
#[test]
fn a_waker_that_drops_and_opens_sockets_during_dispatch() {
    let _s = serial();
    deadline(30, || {
        let rt = rt(1);
        let socks = rt.block_on(async {
            (0..16)
                .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                .collect::<Vec<_>>()
        });
        struct DropOnWake {
            victims: Mutex<Vec<UdpSocket>>,
            fresh: Mutex<Vec<std::io::Result<UdpSocket>>>,
            hits: AtomicUsize,
        }
        impl Wake for DropOnWake {
            fn wake(self: Arc<Self>) {
                self.wake_by_ref();
            }
            fn wake_by_ref(self: &Arc<Self>) {
                self.hits.fetch_add(1, Ordering::SeqCst);
                let v = std::mem::take(&mut *self.victims.lock().unwrap());
                drop(v);
                for _ in 0..4 {
                    let s = UdpSocket::bind("127.0.0.1:0");
                    self.fresh.lock().unwrap().push(s);
                }
            }
        }
        let mut socks = socks;
        let watched = socks.remove(0);
        let w = Arc::new(DropOnWake {
            victims: Mutex::new(socks),
            fresh: Mutex::new(Vec::new()),
            hits: AtomicUsize::new(0),
        });
        let waker = Waker::from(w.clone());
        let mut buf = [0u8; 8];
        // Drain the seeded readiness, then wait.
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut recv = Box::pin(watched.recv_from(&mut buf));
        assert!(poll_with(&mut recv, &waker).is_pending());
        tx.send_to(b"x", watched.local_addr().unwrap()).unwrap();
        for _ in 0..200 {
            if w.hits.load(Ordering::SeqCst) > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(w.hits.load(Ordering::SeqCst) > 0);
        assert!(matches!(
            poll_with(&mut recv, &waker),
            Poll::Ready(Ok((1, _)))
        ));
        drop(recv);
        let fresh: Vec<UdpSocket> = std::mem::take(&mut *w.fresh.lock().unwrap())
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        // The fresh sockets work: each receives a datagram.
        rt.block_on(async {
            for s in &fresh {
                tx.send_to(b"y", s.local_addr().unwrap()).unwrap();
                let mut b = [0u8; 8];
                let r = strata_rt::time::timeout(Duration::from_secs(5), s.recv_from(&mut b)).await;
                assert!(matches!(r, Ok(Ok((1, _)))), "{r:?}");
            }
        });
    });
}

// ---------------------------------------------------------------------------
// Memory after churn.
// ---------------------------------------------------------------------------

/// Opening and closing sockets on a live runtime must not grow the heap
/// per socket (reactor slots, readiness entries, parked wakers).
#[test]
fn socket_churn_does_not_grow_the_heap() {
    let _s = serial();
    deadline(120, || {
        let rt = rt(2);
        let l = rt.block_on(async { TcpListener::bind("127.0.0.1:0").unwrap() });
        let addr = l.local_addr().unwrap();
        let l = Arc::new(l);
        let round = |n: usize| {
            let l = l.clone();
            rt.block_on(async move {
                for i in 0..n {
                    let l2 = l.clone();
                    let server = strata_rt::spawn(async move {
                        let (mut s, _) = l2.accept().await.unwrap();
                        let mut b = [0u8; 16];
                        let n = s.read(&mut b).await.unwrap();
                        s.write_all(&b[..n]).await.unwrap();
                    });
                    let mut c = TcpStream::connect(addr).await.unwrap();
                    c.write_all(b"hello").await.unwrap();
                    let mut b = [0u8; 5];
                    c.read_exact(&mut b).await.unwrap();
                    // Also a UDP socket, waited on and dropped.
                    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                    let mut ub = [0u8; 4];
                    let _ =
                        strata_rt::time::timeout(Duration::from_micros(1 + i as u64 % 3), async {
                            loop {
                                u.recv_from(&mut ub).await.unwrap();
                            }
                        })
                        .await;
                    server.await.unwrap();
                }
            })
        };
        round(300);
        std::thread::sleep(Duration::from_millis(50));
        let before = LIVE.load(Ordering::Relaxed);
        round(3000);
        std::thread::sleep(Duration::from_millis(50));
        let after = LIVE.load(Ordering::Relaxed);
        let grown = after - before;
        assert!(
            grown < 64 * 1024,
            "heap grew by {grown} bytes over 3000 sockets"
        );
    });
}

/// Slots and descriptors reused quickly while events for their previous
/// owners are in flight: sockets are dropped with datagrams (and events)
/// pending, from several threads, and the next socket in the slot must
/// neither miss its own datagram nor see the old one's.
#[test]
fn slot_and_fd_reuse_with_events_in_flight() {
    let _s = serial();
    deadline(120, || {
        let rt = Arc::new(rt(1));
        let mut threads = Vec::new();
        for t in 0..4u64 {
            let rt = rt.clone();
            threads.push(std::thread::spawn(move || {
                let mut rng = Rng::new(t);
                rt.block_on(async move {
                    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                    for i in 0..400u32 {
                        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                        let mut b = [0u8; 8];
                        // Drain the optimistic readiness so the next
                        // datagram must come through the reactor.
                        let _ = strata_rt::time::timeout(Duration::ZERO, s.recv_from(&mut b)).await;
                        let dst = s.local_addr().unwrap();
                        let tag = (t as u32) << 24 | i;
                        let send = move || tx_send(&tag, dst);
                        fn tx_send(tag: &u32, dst: std::net::SocketAddr) {
                            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                            tx.send_to(&tag.to_le_bytes(), dst).unwrap();
                        }
                        match rng.below(3) {
                            0 => {
                                // Dropped with a datagram pending.
                                send();
                                drop(s);
                            }
                            _ => {
                                send();
                                let r = strata_rt::time::timeout(
                                    Duration::from_secs(5),
                                    s.recv_from(&mut b),
                                )
                                .await;
                                let (n, _) = r.expect("datagram missed (5 s)").unwrap();
                                assert_eq!(n, 4);
                                assert_eq!(u32::from_le_bytes(b[..4].try_into().unwrap()), tag);
                            }
                        }
                        let _ = &tx;
                    }
                })
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
    });
}
