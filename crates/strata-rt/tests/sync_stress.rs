//! The sync primitives under stress, across workers and with threads
//! outside the runtime: lost wake-ups, cancelled waits, close and drop
//! semantics, leaks, the receivers' cooperative budget. Timeouts only
//! detect hangs.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use strata_rt::sync::{Semaphore, Shutdown, WaitGroup, mpsc};
use strata_rt::time::timeout;
use support::{Rng, deadline, rt};

/// Counts live values, to see that none leaks and none is dropped twice.
struct Tracked(Arc<AtomicUsize>, u64);
impl Tracked {
    fn new(live: &Arc<AtomicUsize>, v: u64) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(live.clone(), v)
    }
}
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Polls `f` at most `polls` times (yielding in between), then drops it.
struct PollSome<F> {
    f: Option<Pin<Box<F>>>,
    left: u32,
}
impl<F: Future> Future for PollSome<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(f) = self.f.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        self.left -= 1;
        if self.left == 0 {
            self.f = None;
            return Poll::Ready(None);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
fn poll_some<F: Future>(f: F, polls: u32) -> PollSome<F> {
    PollSome {
        f: Some(Box::pin(f)),
        left: polls.max(1),
    }
}

/// Producers on every worker and on plain threads send into small bounded
/// channels; some `send` futures are dropped mid-wait. Every message whose
/// send completed is received, exactly once; nothing hangs or leaks.
#[test]
fn bounded_mpsc_with_cancelled_sends_across_workers_and_threads() {
    // Channels of 0 to 2 slots hand nearly every message from one thread
    // to another: with the cores shared with other load (CI, two CPU hogs)
    // each hand-off can wait out a time slice, so the rounds are few and
    // the guard long (40 rounds took 13 s to over 60 s under two hogs,
    // 0.1 s on a quiet machine).
    deadline(120, || {
        let rt = rt(2);
        let live = Arc::new(AtomicUsize::new(0));
        for round in 0..12u64 {
            let live2 = live.clone();
            let (sent, received) = rt.block_on(async move {
                let live = live2;
                let buffer = (round % 3) as usize;
                let (tx, mut rx) = mpsc::channel::<Tracked>(buffer);
                let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
                let mut tasks = Vec::new();
                for p in 0..6u64 {
                    let (mut tx, sent, live) = (tx.clone(), sent.clone(), live.clone());
                    tasks.push(strata_rt::spawn(async move {
                        let mut rng = Rng::new(round * 100 + p);
                        for i in 0..200u64 {
                            let v = Tracked::new(&live, p << 32 | i);
                            let polls = if rng.below(4) == 0 {
                                1 + rng.below(3) as u32
                            } else {
                                u32::MAX
                            };
                            if let Some(r) = poll_some(tx.send(v), polls).await {
                                r.unwrap();
                                sent.lock().unwrap().push(p << 32 | i);
                            }
                        }
                    }));
                }
                let mut threads = Vec::new();
                for p in 6..8u64 {
                    let (mut tx, sent, live) = (tx.clone(), sent.clone(), live.clone());
                    threads.push(std::thread::spawn(move || {
                        for i in 0..200u64 {
                            futures_executor_block_on(tx.send(Tracked::new(&live, p << 32 | i)))
                                .unwrap();
                            sent.lock().unwrap().push(p << 32 | i);
                        }
                    }));
                }
                drop(tx);
                let mut received = Vec::new();
                let mut rng = Rng::new(round);
                loop {
                    // Sometimes give up on a recv mid-wait, too.
                    let polls = if rng.below(3) == 0 { 1 } else { u32::MAX };
                    match poll_some(rx.recv(), polls).await {
                        None => continue,
                        Some(Ok(v)) => received.push(v.1),
                        Some(Err(_)) => break,
                    }
                }
                for t in tasks {
                    t.await.unwrap();
                }
                for t in threads {
                    t.join().unwrap();
                }
                let sent = std::mem::take(&mut *sent.lock().unwrap());
                (sent, received)
            });
            // A `send` dropped mid-wait may still have queued its message
            // (futures-channel's `Sink` semantics), so: every completed
            // send received, nothing twice, per-producer order kept.
            let mut uniq = received.clone();
            uniq.sort_unstable();
            uniq.dedup();
            assert_eq!(uniq.len(), received.len(), "round {round}: duplicates");
            for id in &sent {
                assert!(
                    uniq.binary_search(id).is_ok(),
                    "round {round}: {id:#x} lost"
                );
            }
            for p in 0..8u64 {
                let mine: Vec<_> = received.iter().filter(|v| *v >> 32 == p).collect();
                assert!(
                    mine.windows(2).all(|w| w[0] < w[1]),
                    "round {round}: reordered"
                );
            }
            assert_eq!(
                live.load(Ordering::SeqCst),
                0,
                "round {round}: leaked values"
            );
        }
    });
}

/// A tiny block_on for plain threads (futures-executor is not a dev-dep
/// of strata-rt): parks until woken.
fn futures_executor_block_on<F: Future>(f: F) -> F::Output {
    support::plain_block_on(f)
}

/// The receiver is dropped while senders on both workers wait on a full
/// channel: every send ends (a waiting one with `Ok`: its message was
/// queued, and goes with the queue), later ones fail, and the queued
/// values are dropped.
#[test]
fn receiver_dropped_while_senders_wait() {
    deadline(60, || {
        let rt = rt(2);
        for round in 0..200u64 {
            let live = Arc::new(AtomicUsize::new(0));
            let live2 = live.clone();
            rt.block_on(async move {
                let live = live2;
                let (tx, rx) = mpsc::channel::<Tracked>(1);
                let started = Arc::new(AtomicUsize::new(0));
                let hs: Vec<_> = (0..8)
                    .map(|p| {
                        let (mut tx, live, started) = (tx.clone(), live.clone(), started.clone());
                        strata_rt::spawn(async move {
                            started.fetch_add(1, Ordering::SeqCst);
                            let mut n = 0;
                            loop {
                                if tx.send(Tracked::new(&live, p)).await.is_err() {
                                    return n;
                                }
                                n += 1;
                            }
                        })
                    })
                    .collect();
                drop(tx);
                while started.load(Ordering::SeqCst) < 8 {
                    strata_rt::yield_now().await;
                }
                for _ in 0..(round % 5) {
                    strata_rt::yield_now().await;
                }
                drop(rx);
                for h in hs {
                    timeout(Duration::from_secs(10), h)
                        .await
                        .expect("a sender hung after the receiver was dropped")
                        .unwrap();
                }
            });
            assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
        }
    });
}

/// Shutdown triggered from a plain thread while many tasks on both
/// workers wait, some through `select` with a timer that re-polls them
/// with the same waker, some moved between tasks.
#[test]
fn shutdown_from_outside_with_repolled_and_moved_waiters() {
    deadline(60, || {
        let rt = rt(2);
        for round in 0..300u64 {
            rt.block_on(async move {
                let shutdown = Shutdown::new();
                let woke = Arc::new(AtomicUsize::new(0));
                let mut hs = Vec::new();
                for i in 0..16u64 {
                    let (shutdown, woke) = (shutdown.clone(), woke.clone());
                    hs.push(strata_rt::spawn(async move {
                        let mut wait = shutdown.wait();
                        match i % 3 {
                            0 => (&mut wait).await,
                            1 => loop {
                                // Re-polled by a timer often.
                                let tick =
                                    Box::pin(strata_rt::time::sleep(Duration::from_micros(50)));
                                if let futures_util::future::Either::Left(_) =
                                    futures_util::future::select(&mut wait, tick).await
                                {
                                    break;
                                }
                            },
                            _ => {
                                // Polled once here, finished in another task.
                                let _ = std::future::poll_fn(|cx| {
                                    Poll::Ready(Pin::new(&mut wait).poll(cx))
                                })
                                .await;
                                strata_rt::spawn(wait).await.unwrap();
                            }
                        }
                        woke.fetch_add(1, Ordering::SeqCst);
                    }));
                }
                let s2 = shutdown.clone();
                let t = std::thread::spawn(move || {
                    for _ in 0..(round % 7) * 50 {
                        std::hint::spin_loop();
                    }
                    s2.trigger();
                });
                for h in hs {
                    timeout(Duration::from_secs(10), h)
                        .await
                        .expect("a shutdown waiter was never woken")
                        .unwrap();
                }
                t.join().unwrap();
                assert_eq!(woke.load(Ordering::SeqCst), 16);
            });
        }
    });
}

/// Guards dropped on plain threads and on both workers while tasks wait;
/// some waits are dropped mid-wait and restarted.
#[test]
fn wait_group_guards_dropped_everywhere() {
    deadline(60, || {
        let rt = rt(2);
        for round in 0..300u64 {
            rt.block_on(async move {
                let group = WaitGroup::new();
                let guards: Vec<_> = (0..8).map(|_| group.add()).collect();
                let mut waiters = Vec::new();
                for i in 0..6u64 {
                    let group = group.clone();
                    waiters.push(strata_rt::spawn(async move {
                        if i % 2 == 0 {
                            let _ = poll_some(group.wait(), 2).await;
                        }
                        group.wait().await;
                    }));
                }
                let mut it = guards.into_iter();
                let outside: Vec<_> = it.by_ref().take(4).collect();
                let t = std::thread::spawn(move || {
                    for _ in 0..(round % 5) * 100 {
                        std::hint::spin_loop();
                    }
                    drop(outside);
                });
                for g in it {
                    strata_rt::spawn(async move { drop(g) });
                }
                for w in waiters {
                    timeout(Duration::from_secs(10), w)
                        .await
                        .expect("a WaitGroup waiter was never woken")
                        .unwrap();
                }
                t.join().unwrap();
            });
        }
    });
}

/// Semaphore acquires dropped mid-wait must pass their wake-up on.
#[test]
fn semaphore_cancelled_acquires_do_not_swallow_permits() {
    deadline(60, || {
        let rt = rt(2);
        rt.block_on(async {
            let sem = Arc::new(Semaphore::new(2));
            let done = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..200u64)
                .map(|i| {
                    let (sem, done) = (sem.clone(), done.clone());
                    strata_rt::spawn(async move {
                        let mut rng = Rng::new(i);
                        for _ in 0..50 {
                            if rng.below(3) == 0 {
                                let _ = poll_some(sem.acquire(), 1 + rng.below(2) as u32).await;
                                continue;
                            }
                            let _g = sem.acquire().await;
                            strata_rt::yield_now().await;
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for h in hs {
                timeout(Duration::from_secs(20), h)
                    .await
                    .expect("an acquire hung")
                    .unwrap();
            }
            assert!(sem.try_acquire().is_some());
        });
    });
}

/// The receiving task drains an unbounded channel fed by a plain thread
/// that never stops; a task on the same (single) worker must still run.
#[test]
fn draining_a_never_empty_channel_lets_the_worker_run_others() {
    deadline(60, || {
        let rt = rt(1);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::unbounded::<u64>();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s2 = stop.clone();
            let feeder = std::thread::spawn(move || {
                let mut i = 0;
                while !s2.load(Ordering::SeqCst) {
                    for _ in 0..1000 {
                        if tx.unbounded_send(i).is_err() {
                            return;
                        }
                        i += 1;
                    }
                    std::thread::yield_now();
                }
            });
            let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let f2 = flag.clone();
            let stop2 = stop.clone();
            let drain = handle.spawn_on(0, async move {
                let mut n = 0u64;
                while !f2.load(Ordering::SeqCst) {
                    rx.next().await.unwrap();
                    n += 1;
                }
                stop2.store(true, Ordering::SeqCst);
                n
            });
            // Same worker: only runs if the drainer yields.
            let other = handle.spawn_on(0, async move {
                flag.store(true, Ordering::SeqCst);
            });
            timeout(Duration::from_secs(10), other)
                .await
                .expect("starved by the draining task")
                .unwrap();
            drain.await.unwrap();
            stop.store(true, Ordering::SeqCst);
            feeder.join().unwrap();
        });
    });
}
