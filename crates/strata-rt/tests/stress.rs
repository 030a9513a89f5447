//! Randomized stress tests of strata-rt's cross-thread paths: the reactor's
//! per-source waiters, the executor's remote queue, timers moved between
//! threads, and the sync primitives.
//!
//! Every test is seeded; a failure prints the seed. `STRESS_SEED=<n>` sets
//! the first seed, `STRESS_ITERS=<n>` the iteration count. Hangs are caught
//! by generous guards (never assertions on elapsed time).

mod support;

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{Either, select};
use strata_rt::net::{TcpListener, UdpSocket};
use strata_rt::sync::{Shutdown, WaitGroup, mpsc};
use strata_rt::time::{Instant, sleep, timeout};
use support::{Rng, deadline, rt};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seeds(default_iters: u64) -> std::ops::Range<u64> {
    let base = env_u64("STRESS_SEED", 1);
    base..base + env_u64("STRESS_ITERS", default_iters)
}

/// 0..max spins of `yield_now` (roughly 0-50 µs each on an idle box).
fn jitter(rng: &mut Rng, max: u64) {
    for _ in 0..rng.below(max + 1) {
        std::thread::yield_now();
    }
}

/// Polls `inner` at most `k` times; while it is pending and polls are left,
/// wakes itself (so it really is polled again); then gives up, dropping
/// `inner` while it waits (a cancelled `async fn` call).
struct CancelAfter<F> {
    inner: Option<Pin<Box<F>>>,
    left: u32,
}

fn cancel_after<F: Future>(k: u32, f: F) -> CancelAfter<F> {
    CancelAfter {
        inner: Some(Box::pin(f)),
        left: k.max(1),
    }
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(f) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            self.inner = None;
            return Poll::Ready(Some(v));
        }
        self.left -= 1;
        if self.left == 0 {
            self.inner = None;
            return Poll::Ready(None);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Polls `f` once and gives up if it is pending: a `poll_*` caller that
/// stopped waiting.
fn poll_once<T>(mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> impl Future<Output = Option<T>> {
    poll_fn(move |cx| {
        Poll::Ready(match f(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
}

/// Like `timeout`, but the deadline is checked *before* the future, so a
/// future that was never woken and only completes when re-polled by the
/// guard's own timer counts as hung.
async fn hang_guard<F: Future>(d: Duration, f: F) -> Option<F::Output> {
    let mut t = pin!(sleep(d));
    let mut f = pin!(f);
    poll_fn(|cx| {
        if t.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        f.as_mut().poll(cx).map(Some)
    })
    .await
}

fn report(name: &str, failures: &[String], iters: usize) {
    assert!(
        failures.is_empty(),
        "{name}: {} of {iters} iterations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Reactor

/// A task waits in `recv_from().await` on a socket it earlier waited on
/// through `poll_recv_from`; another task then polls `poll_recv_from` once
/// and gives up. The datagram sent next must wake the `async fn` call.
#[test]
fn udp_recv_from_is_woken_after_another_task_polls_poll_recv_from() {
    deadline(120, || {
        let mut failures = Vec::new();
        let seeds = seeds(20);
        let iters = seeds.clone().count();
        for seed in seeds {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let rt = rt(workers);
            let h = rt.handle().clone();
            let sock = Arc::new(
                rt.block_on(async { UdpSocket::bind("127.0.0.1:0") })
                    .unwrap(),
            );
            let addr = sock.local_addr().unwrap();
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let phase = Arc::new(AtomicUsize::new(0));
            let (wa, wb) = (
                rng.below(workers as u64) as usize,
                rng.below(workers as u64) as usize,
            );
            // Control: the first wait through `recv_from` too.
            let first_via_poll = rng.below(4) != 0;
            let (s, p) = (sock.clone(), phase.clone());
            let a = h.spawn_on(wa, async move {
                let mut buf = [0u8; 16];
                p.store(1, Ordering::SeqCst);
                if first_via_poll {
                    poll_fn(|cx| s.poll_recv_from(cx, &mut buf)).await.unwrap();
                } else {
                    s.recv_from(&mut buf).await.unwrap();
                }
                p.store(2, Ordering::SeqCst);
                match hang_guard(Duration::from_secs(2), s.recv_from(&mut buf)).await {
                    Some(r) => r.map(|_| "ok").unwrap_or("error"),
                    // Not woken: was the datagram there all along?
                    None => match poll_once(|cx| s.poll_recv_from(cx, &mut buf)).await {
                        Some(Ok(_)) => "lost wake-up (datagram was queued)",
                        _ => "timed out, no datagram",
                    },
                }
            });
            while phase.load(Ordering::SeqCst) < 1 {
                std::thread::yield_now();
            }
            jitter(&mut rng, 400);
            tx.send_to(b"m0", addr).unwrap();
            while phase.load(Ordering::SeqCst) < 2 {
                std::thread::yield_now();
            }
            jitter(&mut rng, 400);
            let s = sock.clone();
            let b = h.spawn_on(wb, async move {
                let mut buf = [0u8; 16];
                poll_once(|cx| s.poll_recv_from(cx, &mut buf))
                    .await
                    .is_some()
            });
            let stole = rt.block_on(b).unwrap();
            jitter(&mut rng, 50);
            tx.send_to(b"m1", addr).unwrap();
            let r = rt.block_on(a).unwrap();
            if r != "ok" && !stole {
                failures.push(format!(
                    "seed {seed} (workers {workers}, A on {wa}, B on {wb}, first wait via {}): {r}",
                    if first_via_poll {
                        "poll_recv_from"
                    } else {
                        "recv_from"
                    }
                ));
            }
        }
        report("udp_recv_from_after_poll_recv_from", &failures, iters);
    });
}

/// The same with a listener: a task waits in `accept().await` after an
/// earlier wait through `poll_accept`; another task polls `poll_accept`
/// once and gives up; the next connection must wake the `accept` call.
#[test]
fn tcp_accept_is_woken_after_another_task_polls_poll_accept() {
    deadline(120, || {
        let mut failures = Vec::new();
        let seeds = seeds(20);
        let iters = seeds.clone().count();
        for seed in seeds {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let rt = rt(workers);
            let h = rt.handle().clone();
            let lis = Arc::new(
                rt.block_on(async { TcpListener::bind("127.0.0.1:0") })
                    .unwrap(),
            );
            let addr = lis.local_addr().unwrap();
            let phase = Arc::new(AtomicUsize::new(0));
            let (wa, wb) = (
                rng.below(workers as u64) as usize,
                rng.below(workers as u64) as usize,
            );
            let first_via_poll = rng.below(4) != 0;
            let (l, p) = (lis.clone(), phase.clone());
            let a = h.spawn_on(wa, async move {
                p.store(1, Ordering::SeqCst);
                if first_via_poll {
                    drop(poll_fn(|cx| l.poll_accept(cx)).await.unwrap());
                } else {
                    drop(l.accept().await.unwrap());
                }
                p.store(2, Ordering::SeqCst);
                match hang_guard(Duration::from_secs(2), l.accept()).await {
                    Some(r) => r.map(|_| "ok").unwrap_or("error"),
                    None => match poll_once(|cx| l.poll_accept(cx)).await {
                        Some(Ok(_)) => "lost wake-up (connection was queued)",
                        _ => "timed out, no connection",
                    },
                }
            });
            while phase.load(Ordering::SeqCst) < 1 {
                std::thread::yield_now();
            }
            jitter(&mut rng, 400);
            let c0 = std::net::TcpStream::connect(addr).unwrap();
            while phase.load(Ordering::SeqCst) < 2 {
                std::thread::yield_now();
            }
            jitter(&mut rng, 400);
            let l = lis.clone();
            let b = h.spawn_on(wb, async move {
                poll_once(|cx| l.poll_accept(cx)).await.is_some()
            });
            let stole = rt.block_on(b).unwrap();
            let c1 = std::net::TcpStream::connect(addr).unwrap();
            let r = rt.block_on(a).unwrap();
            drop((c0, c1));
            if r != "ok" && !stole {
                failures.push(format!(
                    "seed {seed} (workers {workers}, A on {wa}, B on {wb}, first wait via {}): {r}",
                    if first_via_poll {
                        "poll_accept"
                    } else {
                        "accept"
                    }
                ));
            }
        }
        report("tcp_accept_after_poll_accept", &failures, iters);
    });
}

/// Several tasks on several workers share one UDP socket, mixing plain
/// `recv_from().await`, calls cancelled after k polls, and one-shot
/// `poll_recv_from`. Every datagram must be received; at the end only
/// plain `recv_from` calls wait.
#[test]
fn udp_shared_socket_mixed_waiters_receive_everything() {
    deadline(180, || {
        let mut failures = Vec::new();
        let seeds = seeds(40);
        let iters = seeds.clone().count();
        for seed in seeds {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let rt = rt(workers);
            let h = rt.handle().clone();
            let sock = Arc::new(
                rt.block_on(async { UdpSocket::bind("127.0.0.1:0") })
                    .unwrap(),
            );
            let addr = sock.local_addr().unwrap();
            let total = 40 + rng.below(60) as usize;
            let got = Arc::new(AtomicUsize::new(0));
            let sent_all = Arc::new(AtomicBool::new(false));
            let done = Shutdown::new();
            let receivers = 1 + rng.below(4) as usize;
            let mut hs = Vec::new();
            for r in 0..receivers {
                let (s, got, sent_all, done) =
                    (sock.clone(), got.clone(), sent_all.clone(), done.clone());
                let mut trng = Rng::new(seed * 1000 + r as u64);
                hs.push(h.spawn_on(trng.below(workers as u64) as usize, async move {
                    let mut buf = [0u8; 16];
                    while !done.is_triggered() {
                        let mode = if sent_all.load(Ordering::SeqCst) {
                            0
                        } else {
                            trng.below(3)
                        };
                        let n = match mode {
                            0 => match select(pin!(s.recv_from(&mut buf)), done.wait()).await {
                                Either::Left((r, _)) => r.map(|_| 1).unwrap_or(0),
                                Either::Right(_) => 0,
                            },
                            1 => {
                                let k = 1 + trng.below(4) as u32;
                                cancel_after(k, s.recv_from(&mut buf))
                                    .await
                                    .map_or(0, |r| r.map_or(0, |_| 1))
                            }
                            _ => poll_once(|cx| s.poll_recv_from(cx, &mut buf))
                                .await
                                .map_or(0, |r| r.map_or(0, |_| 1)),
                        };
                        if n == 1 && got.fetch_add(1, Ordering::SeqCst) + 1 == total {
                            done.trigger();
                        }
                        if mode != 0 {
                            strata_rt::yield_now().await;
                        }
                    }
                }));
            }
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..total {
                jitter(&mut rng, 20);
                tx.send_to(&(i as u32).to_be_bytes(), addr).unwrap();
            }
            sent_all.store(true, Ordering::SeqCst);
            let finished = rt.block_on({
                let done = done.clone();
                async move { timeout(Duration::from_secs(3), done.wait()).await.is_ok() }
            });
            if !finished {
                failures.push(format!(
                    "seed {seed} (workers {workers}, receivers {receivers}): got {} of {total}",
                    got.load(Ordering::SeqCst)
                ));
                done.trigger();
                if failures.len() >= 5 {
                    break;
                }
            }
            for h in hs {
                rt.block_on(h).unwrap();
            }
        }
        report("udp_shared_socket_mixed_waiters", &failures, iters);
    });
}

/// Acceptor tasks on several workers share a listener, mixing
/// `accept().await`, cancelled accepts and one-shot `poll_accept`;
/// clients connect from plain threads. Every connection must be accepted.
#[test]
fn tcp_shared_listener_mixed_acceptors_accept_everything() {
    deadline(180, || {
        let mut failures = Vec::new();
        let seeds = seeds(30);
        let iters = seeds.clone().count();
        for seed in seeds {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let rt = rt(workers);
            let h = rt.handle().clone();
            let lis = Arc::new(
                rt.block_on(async { TcpListener::bind("127.0.0.1:0") })
                    .unwrap(),
            );
            let addr = lis.local_addr().unwrap();
            let total = 20 + rng.below(30) as usize;
            let got = Arc::new(AtomicUsize::new(0));
            let sent_all = Arc::new(AtomicBool::new(false));
            let done = Shutdown::new();
            let acceptors = 1 + rng.below(4) as usize;
            let mut hs = Vec::new();
            for r in 0..acceptors {
                let (l, got, sent_all, done) =
                    (lis.clone(), got.clone(), sent_all.clone(), done.clone());
                let mut trng = Rng::new(seed * 1000 + r as u64);
                hs.push(h.spawn_on(trng.below(workers as u64) as usize, async move {
                    while !done.is_triggered() {
                        let mode = if sent_all.load(Ordering::SeqCst) {
                            0
                        } else {
                            trng.below(3)
                        };
                        let n = match mode {
                            0 => match select(pin!(l.accept()), done.wait()).await {
                                Either::Left((r, _)) => r.map(|_| 1).unwrap_or(0),
                                Either::Right(_) => 0,
                            },
                            1 => {
                                let k = 1 + trng.below(4) as u32;
                                cancel_after(k, l.accept())
                                    .await
                                    .map_or(0, |r| r.map_or(0, |_| 1))
                            }
                            _ => poll_once(|cx| l.poll_accept(cx))
                                .await
                                .map_or(0, |r| r.map_or(0, |_| 1)),
                        };
                        if n == 1 && got.fetch_add(1, Ordering::SeqCst) + 1 == total {
                            done.trigger();
                        }
                        if mode != 0 {
                            strata_rt::yield_now().await;
                        }
                    }
                }));
            }
            let mut clients = Vec::new();
            for _ in 0..total {
                jitter(&mut rng, 20);
                clients.push(std::net::TcpStream::connect(addr).unwrap());
            }
            sent_all.store(true, Ordering::SeqCst);
            let finished = rt.block_on({
                let done = done.clone();
                async move { timeout(Duration::from_secs(3), done.wait()).await.is_ok() }
            });
            if !finished {
                failures.push(format!(
                    "seed {seed} (workers {workers}, acceptors {acceptors}): accepted {} of {total}",
                    got.load(Ordering::SeqCst)
                ));
                done.trigger();
                if failures.len() >= 5 {
                    break;
                }
            }
            for h in hs {
                rt.block_on(h).unwrap();
            }
        }
        report("tcp_shared_listener_mixed_acceptors", &failures, iters);
    });
}

/// A connection's reader waits in `readable().await` on one worker while
/// the stream is moved between tasks on other workers and peers write with
/// jitter; every byte must arrive.
#[test]
fn tcp_stream_moved_between_workers_reads_everything() {
    use futures_util::io::AsyncReadExt;
    deadline(600, || {
        let mut failures = Vec::new();
        let seeds = seeds(30);
        let iters = seeds.clone().count();
        for seed in seeds {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let rt = rt(workers);
            let h = rt.handle().clone();
            let lis = rt
                .block_on(async { TcpListener::bind("127.0.0.1:0") })
                .unwrap();
            let addr = lis.local_addr().unwrap();
            let mut peer = std::net::TcpStream::connect(addr).unwrap();
            let (stream, _) = rt.block_on(lis.accept()).unwrap();
            let msgs = 30 + rng.below(30) as usize;
            let writer = std::thread::spawn(move || {
                use std::io::Write;
                let mut rng = Rng::new(seed ^ 0xabcdef);
                for i in 0..msgs {
                    jitter(&mut rng, 30);
                    peer.write_all(&[i as u8]).unwrap();
                }
                peer
            });
            let mut stream = Some(stream);
            let mut read = 0usize;
            let mut ok = true;
            while read < msgs {
                let w = rng.below(workers as u64) as usize;
                let use_readable = rng.below(2) == 0;
                let mut s = stream.take().unwrap();
                let r = rt
                    .block_on(h.spawn_on(w, async move {
                        let mut buf = [0u8; 64];
                        let res = timeout(Duration::from_secs(3), async {
                            if use_readable {
                                s.readable().await.unwrap();
                            }
                            s.read(&mut buf).await
                        })
                        .await;
                        (s, res.ok().map(|r| r.unwrap()))
                    }))
                    .unwrap();
                stream = Some(r.0);
                match r.1 {
                    Some(n) => read += n,
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            drop(writer.join().unwrap());
            if !ok {
                failures.push(format!(
                    "seed {seed} (workers {workers}): read {read} of {msgs} bytes"
                ));
                if failures.len() >= 5 {
                    break;
                }
            }
        }
        report("tcp_stream_moved_between_workers", &failures, iters);
    });
}

// ---------------------------------------------------------------------------
// Executor

struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Tasks spawned from several threads wait on oneshots fired from other
/// threads; their handles are awaited, aborted (racing with completion) or
/// dropped (racing with completion) from yet other threads. Every future is
/// dropped exactly once, every awaited un-aborted task returns its value.
#[test]
fn executor_spawn_wake_abort_drop_from_many_threads() {
    use futures_channel::oneshot;
    deadline(180, || {
        for seed in seeds(30) {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let rt = rt(workers);
            let h = rt.handle().clone();
            let spawners = 1 + rng.below(4) as usize;
            let per = 50 + rng.below(100) as usize;
            let dropped = Arc::new(AtomicUsize::new(0));
            let completed = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..spawners)
                .map(|t| {
                    let (h, dropped, completed) = (h.clone(), dropped.clone(), completed.clone());
                    std::thread::spawn(move || {
                        let mut rng = Rng::new(seed * 100 + t as u64);
                        let mut firers = Vec::new();
                        let mut outcomes = Vec::new();
                        for i in 0..per {
                            let (tx, rx) = oneshot::channel::<usize>();
                            let g = DropCount(dropped.clone());
                            let c = completed.clone();
                            let polls = rng.below(3);
                            let fut = async move {
                                let _g = g;
                                for _ in 0..polls {
                                    strata_rt::yield_now().await;
                                }
                                let v = rx.await.unwrap_or(usize::MAX);
                                c.fetch_add(1, Ordering::SeqCst);
                                v
                            };
                            let jh = if rng.below(2) == 0 {
                                h.spawn(fut)
                            } else {
                                h.spawn_on(rng.below(workers as u64) as usize, fut)
                            };
                            let action = rng.below(3); // 0 await, 1 abort, 2 drop
                            let delay = rng.below(40);
                            firers.push(std::thread::spawn(move || {
                                let mut r = Rng::new(delay);
                                jitter(&mut r, delay);
                                let _ = tx.send(i);
                                jitter(&mut r, delay);
                                match action {
                                    1 => {
                                        jh.abort();
                                        Some((1, jh))
                                    }
                                    2 => {
                                        drop(jh);
                                        None
                                    }
                                    _ => Some((0, jh)),
                                }
                            }));
                            if firers.len() >= 8 {
                                for f in firers.drain(..) {
                                    outcomes.extend(f.join().unwrap());
                                }
                            }
                            outcomes.retain(|_| true);
                        }
                        for f in firers {
                            outcomes.extend(f.join().unwrap());
                        }
                        outcomes
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for t in threads {
                outcomes.extend(t.join().unwrap());
            }
            let all = spawners * per;
            rt.block_on(async {
                for (action, jh) in outcomes {
                    let r = timeout(Duration::from_secs(5), jh).await;
                    let r = r.unwrap_or_else(|_| panic!("seed {seed}: a JoinHandle hung"));
                    match action {
                        0 => assert!(r.is_ok(), "seed {seed}: un-aborted task failed: {r:?}"),
                        _ => assert!(
                            r.is_ok() || r.as_ref().unwrap_err().is_cancelled(),
                            "seed {seed}: {r:?}"
                        ),
                    }
                }
                // Detached tasks finish on their own.
                let mut spins = 0;
                while dropped.load(Ordering::SeqCst) < all && spins < 5000 {
                    sleep(Duration::from_millis(1)).await;
                    spins += 1;
                }
            });
            assert_eq!(
                dropped.load(Ordering::SeqCst),
                all,
                "seed {seed}: futures not dropped"
            );
            assert!(completed.load(Ordering::SeqCst) <= all);
            drop(rt);
        }
    });
}

/// Runtimes shut down while other threads keep waking, spawning onto and
/// aborting its tasks: no panic, no hang, and every future is dropped.
#[test]
fn executor_shutdown_races_with_wakes_and_spawns() {
    deadline(600, || {
        for seed in seeds(40) {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let rt = rt(workers);
            let h = rt.handle().clone();
            let dropped = Arc::new(AtomicUsize::new(0));
            let spawned = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let threads: Vec<_> = (0..2)
                .map(|t| {
                    let (h, dropped, spawned, stop) =
                        (h.clone(), dropped.clone(), spawned.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let mut rng = Rng::new(seed * 10 + t);
                        let mut held = Vec::new();
                        while !stop.load(Ordering::SeqCst) {
                            let g = DropCount(dropped.clone());
                            spawned.fetch_add(1, Ordering::SeqCst);
                            let (tx, rx) = futures_channel::oneshot::channel::<()>();
                            let jh = h.spawn(async move {
                                let _g = g;
                                let _ = rx.await;
                            });
                            held.push((tx, jh));
                            if held.len() > 8 {
                                let i = rng.below(held.len() as u64) as usize;
                                let (tx, jh) = held.swap_remove(i);
                                match rng.below(3) {
                                    0 => drop(tx.send(())),
                                    1 => jh.abort(),
                                    _ => drop(tx),
                                }
                            }
                            jitter(&mut rng, 5);
                        }
                        held
                    })
                })
                .collect();
            jitter(&mut rng, 2000);
            drop(rt);
            stop.store(true, Ordering::SeqCst);
            for t in threads {
                drop(t.join().unwrap());
            }
            // Spawns after shutdown are dropped by the spawner.
            assert_eq!(
                dropped.load(Ordering::SeqCst),
                spawned.load(Ordering::SeqCst),
                "seed {seed}: some futures were never dropped"
            );
        }
    });
}

// ---------------------------------------------------------------------------
// Timers

/// `Sleep`s registered on one worker, then sent to another worker or a
/// `block_on` thread, where they are awaited, reset, or dropped at random.
/// Every awaited sleep must complete.
#[test]
fn timers_moved_reset_dropped_across_threads() {
    deadline(180, || {
        for seed in seeds(30) {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let rt = Arc::new(rt(workers));
            let h = rt.handle().clone();
            let n = 100 + rng.below(100) as usize;
            let (tx, rx) = std::sync::mpsc::channel();
            let mut creators = Vec::new();
            for i in 0..n {
                let tx = tx.clone();
                let ms = rng.below(4);
                let polls = rng.below(2);
                creators.push(h.spawn_on(rng.below(workers as u64) as usize, async move {
                    let mut s = Box::pin(sleep(Duration::from_millis(ms)));
                    if polls > 0 {
                        let _ = poll_once(|cx| s.as_mut().poll(cx)).await;
                    }
                    tx.send((i, s)).unwrap();
                }));
            }
            drop(tx);
            let done = Arc::new(AtomicUsize::new(0));
            let mut expected = 0;
            let mut users = Vec::new();
            let block_on_thread = {
                let (btx, brx) = std::sync::mpsc::channel::<Pin<Box<strata_rt::time::Sleep>>>();
                let (rt2, done) = (rt.clone(), done.clone());
                (
                    btx,
                    std::thread::spawn(move || {
                        for s in brx {
                            rt2.block_on(s);
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                    }),
                )
            };
            for (_, mut s) in rx {
                match rng.below(4) {
                    0 => drop(s),
                    1 => {
                        expected += 1;
                        block_on_thread.0.send(s).unwrap();
                    }
                    act => {
                        expected += 1;
                        let d = done.clone();
                        let reset = act == 3;
                        let ms = rng.below(4);
                        let k = rng.below(3) as u32;
                        users.push(h.spawn_on(rng.below(workers as u64) as usize, async move {
                            if k > 0 {
                                let _ = cancel_after(k, s.as_mut()).await;
                            }
                            if reset {
                                s.as_mut().reset(Instant::now() + Duration::from_millis(ms));
                            }
                            s.await;
                            d.fetch_add(1, Ordering::SeqCst);
                        }));
                    }
                }
                jitter(&mut rng, 3);
            }
            drop(block_on_thread.0);
            block_on_thread.1.join().unwrap();
            rt.block_on(async {
                for c in creators {
                    c.await.unwrap();
                }
                for u in users {
                    u.await.unwrap();
                }
            });
            assert_eq!(done.load(Ordering::SeqCst), expected, "seed {seed}");
        }
    });
}

// ---------------------------------------------------------------------------
// Sync

/// Shutdown, WaitGroup and the mpsc wrappers, used from tasks on several
/// workers and plain threads at random moments.
#[test]
fn sync_shutdown_waitgroup_mpsc_across_threads() {
    deadline(180, || {
        for seed in seeds(60) {
            let mut rng = Rng::new(seed);
            let workers = 1 + rng.below(3) as usize;
            let rt = rt(workers);
            let h = rt.handle().clone();
            // Shutdown: waiters everywhere, one trigger from a plain thread.
            let sd = Shutdown::new();
            let woke = Arc::new(AtomicUsize::new(0));
            let waiters = 1 + rng.below(20) as usize;
            let hs: Vec<_> = (0..waiters)
                .map(|_| {
                    let (sd, woke) = (sd.clone(), woke.clone());
                    let k = rng.below(3) as u32;
                    h.spawn_on(rng.below(workers as u64) as usize, async move {
                        if k > 0 {
                            // A cancelled wait first (same task, same waker).
                            let _ = cancel_after(k, sd.wait()).await;
                        }
                        sd.wait().await;
                        woke.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            let t = {
                let sd = sd.clone();
                let d = rng.below(300);
                std::thread::spawn(move || {
                    jitter(&mut Rng::new(d), d);
                    sd.trigger();
                })
            };
            // WaitGroup: guards dropped on other threads and workers.
            let wg = WaitGroup::new();
            let guards = 1 + rng.below(30) as usize;
            let mut gh = Vec::new();
            for i in 0..guards {
                let g = wg.add();
                let d = rng.below(40);
                if i % 2 == 0 {
                    gh.push(std::thread::spawn(move || {
                        jitter(&mut Rng::new(d), d);
                        drop(g);
                    }));
                } else {
                    drop(h.spawn_on(rng.below(workers as u64) as usize, async move {
                        for _ in 0..d % 4 {
                            strata_rt::yield_now().await;
                        }
                        drop(g);
                    }));
                }
            }
            // mpsc: senders on threads and tasks, receiver on a worker.
            let (tx, mut rx) = mpsc::channel::<u32>(rng.below(3) as usize);
            let (utx, mut urx) = mpsc::unbounded::<u32>();
            let senders = 1 + rng.below(4) as u32;
            let per = 50 + rng.below(200) as u32;
            for s in 0..senders {
                let (mut tx, utx) = (tx.clone(), utx.clone());
                h.spawn_on(rng.below(workers as u64) as usize, async move {
                    use futures_util::SinkExt;
                    for i in 0..per {
                        tx.send(s * per + i).await.unwrap();
                        utx.unbounded_send(i).unwrap();
                    }
                });
            }
            drop((tx, utx));
            let recv = h.spawn_on(rng.below(workers as u64) as usize, async move {
                let (mut a, mut b) = (0u64, 0u64);
                while rx.recv().await.is_ok() {
                    a += 1;
                }
                while urx.recv().await.is_ok() {
                    b += 1;
                }
                (a, b)
            });
            let (counts, woke_all) = rt.block_on(async {
                let r = timeout(Duration::from_secs(5), async {
                    wg.wait().await;
                    for h in hs {
                        h.await.unwrap();
                    }
                    recv.await.unwrap()
                })
                .await;
                (r, woke.load(Ordering::SeqCst))
            });
            t.join().unwrap();
            for g in gh {
                g.join().unwrap();
            }
            let counts = counts.unwrap_or_else(|_| {
                panic!(
                    "seed {seed}: hang (woke {woke_all} of {waiters}, wg count {})",
                    wg.count()
                )
            });
            let want = u64::from(senders * per);
            assert_eq!(counts, (want, want), "seed {seed}");
        }
    });
}
