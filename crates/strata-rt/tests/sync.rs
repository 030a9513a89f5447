//! The sync module: strata's own `Shutdown` and `WaitGroup`, and smoke
//! tests that the re-exported primitives work on the runtime.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use strata_rt::spawn;
use strata_rt::sync::{Semaphore, Shutdown, WaitGroup, mpsc, oneshot};
use strata_rt::time::{sleep, timeout};
use support::{deadline, rt};

#[test]
fn shutdown_wakes_every_waiter_once_and_stays_triggered() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let shutdown = Shutdown::new();
            let woke = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..500)
                .map(|_| {
                    let (shutdown, woke) = (shutdown.clone(), woke.clone());
                    spawn(async move {
                        shutdown.wait().await;
                        woke.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            sleep(Duration::from_millis(20)).await;
            assert_eq!(woke.load(Ordering::SeqCst), 0, "woken before trigger");
            assert!(!shutdown.is_triggered());
            assert!(shutdown.trigger());
            assert!(!shutdown.trigger(), "second trigger reports the first");
            for h in hs {
                timeout(Duration::from_secs(10), h).await.unwrap().unwrap();
            }
            assert_eq!(woke.load(Ordering::SeqCst), 500);
            // Late waiters complete at once.
            timeout(Duration::from_secs(1), shutdown.wait())
                .await
                .unwrap();
            assert!(shutdown.is_triggered());
        });
    });
}

#[test]
fn wait_group_completes_when_the_last_guard_drops() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let group = WaitGroup::new();
            // Empty: completes at once.
            timeout(Duration::from_secs(1), group.wait()).await.unwrap();

            let shutdown = Shutdown::new();
            for i in 0..100u64 {
                let (guard, shutdown) = (group.add(), shutdown.clone());
                spawn(async move {
                    shutdown.wait().await;
                    // Finish "in-flight work" at different speeds.
                    sleep(Duration::from_millis(i % 20)).await;
                    drop(guard);
                });
            }
            assert_eq!(group.count(), 100);
            let all_done = group.wait();
            assert!(
                timeout(Duration::from_millis(30), group.wait())
                    .await
                    .is_err(),
                "completed with guards alive"
            );
            shutdown.trigger();
            timeout(Duration::from_secs(10), all_done).await.unwrap();
            assert_eq!(group.count(), 0);
        });
    });
}

#[test]
fn reexported_channels_and_semaphore_work_across_workers() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let (tx, rx) = oneshot::channel();
            spawn(async move { tx.send(5).unwrap() });
            assert_eq!(rx.await.unwrap(), 5);

            let (tx, rx) = mpsc::channel::<u32>(8);
            for i in 0..4 {
                let mut tx = tx.clone();
                spawn(async move {
                    for j in 0..25 {
                        futures_util::SinkExt::send(&mut tx, i * 100 + j)
                            .await
                            .unwrap();
                    }
                });
            }
            drop(tx);
            assert_eq!(rx.collect::<Vec<_>>().await.len(), 100);

            // At most 3 at a time.
            let sem = Arc::new(Semaphore::new(3));
            let (inside, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let hs: Vec<_> = (0..30)
                .map(|_| {
                    let (sem, inside, max) = (sem.clone(), inside.clone(), max.clone());
                    spawn(async move {
                        let _permit = sem.acquire().await;
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        sleep(Duration::from_millis(2)).await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
            assert!(max.load(Ordering::SeqCst) <= 3);
        });
    });
}

/// `broadcast`: every receiver, on either worker, gets every value in
/// order, the sender waiting for the slowest (back-pressure); then the
/// close once the senders are gone. An inactive receiver keeps a channel
/// without subscribers open; in overflow mode a receiver that fell behind
/// is told how many values it missed, and goes on with the newest.
#[test]
fn broadcast_delivers_every_value_to_every_receiver_across_workers() {
    use strata_rt::sync::broadcast::{self, RecvError, TrySendError};
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let (tx, rx) = broadcast::broadcast::<u32>(4);
            let receivers: Vec<_> = (0..6)
                .map(|_| {
                    let mut rx = rx.clone();
                    spawn(async move {
                        let mut got = Vec::new();
                        loop {
                            match rx.recv().await {
                                Ok(v) => got.push(v),
                                Err(RecvError::Closed) => return got,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    })
                })
                .collect();
            drop(rx);
            let sender = spawn(async move {
                for i in 0..1_000 {
                    tx.broadcast(i).await.unwrap();
                }
            });
            sender.await.unwrap();
            for r in receivers {
                assert_eq!(r.await.unwrap(), (0..1_000).collect::<Vec<_>>());
            }

            // No subscriber: an inactive receiver keeps the channel open.
            let (tx, rx) = broadcast::broadcast::<u32>(2);
            let keep = rx.deactivate();
            assert!(matches!(
                tx.try_broadcast(1),
                Err(TrySendError::Inactive(1))
            ));
            let mut late = keep.activate_cloned();
            tx.broadcast(2).await.unwrap();
            assert_eq!(late.recv().await, Ok(2));

            // Overflow mode: the oldest values make room.
            let (mut tx, mut rx) = broadcast::broadcast::<u32>(2);
            tx.set_overflow(true);
            for i in 0..5 {
                tx.broadcast(i).await.unwrap();
            }
            assert_eq!(rx.recv().await, Err(RecvError::Overflowed(3)));
            assert_eq!(rx.recv().await, Ok(3));
            assert_eq!(rx.recv().await, Ok(4));
            drop(keep);
        });
    });
}

#[test]
fn a_wait_woken_by_the_count_reaching_zero_completes_even_if_it_rose_again() {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let group = WaitGroup::new();
    let first = group.add();
    let woken = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(woken.clone());
    let mut wait = group.wait();
    assert!(
        Pin::new(&mut wait)
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    drop(first); // zero: the waiter is woken...
    assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    let _next = group.add(); // ...and a new member arrives before it runs
    assert!(
        Pin::new(&mut wait)
            .poll(&mut Context::from_waker(&waker))
            .is_ready(),
        "woken for the zero, yet still pending"
    );
    // A wait that starts now waits for the new member.
    let mut later = group.wait();
    assert!(
        Pin::new(&mut later)
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
}

/// The `Debug` output of `Shutdown`, `Triggered`, `WaitGroup` and `AllDone`
/// shows their state (triggered, live count), as it is what a log of a
/// stuck shutdown has to go on.
#[test]
fn shutdown_and_wait_group_debug_output_shows_their_state() {
    let shutdown = Shutdown::new();
    let wait = shutdown.wait();
    assert_eq!(format!("{shutdown:?}"), "Shutdown { triggered: false }");
    assert_eq!(format!("{wait:?}"), "Triggered { triggered: false }");
    shutdown.trigger();
    assert_eq!(format!("{shutdown:?}"), "Shutdown { triggered: true }");
    assert_eq!(format!("{wait:?}"), "Triggered { triggered: true }");

    let group = WaitGroup::new();
    let guards = [group.add(), group.add()];
    let all_done = group.wait();
    assert_eq!(format!("{group:?}"), "WaitGroup { count: 2 }");
    assert_eq!(format!("{all_done:?}"), "AllDone { count: 2 }");
    assert_eq!(format!("{:?}", guards[0]), "WaitGuard { .. }");
    drop(guards);
    assert_eq!(format!("{group:?}"), "WaitGroup { count: 0 }");
    assert_eq!(format!("{all_done:?}"), "AllDone { count: 0 }");
}

/// The `mpsc` receiver wrappers pass through what `futures-channel`'s
/// receivers report: the queued count as `size_hint`, `is_terminated` once
/// the stream has ended, the inner receiver (`get_ref`, `into_inner`),
/// and a `Debug` naming the wrapper.
#[test]
fn mpsc_receivers_report_what_the_inner_receiver_does() {
    use futures_util::FutureExt;
    use futures_util::Stream;
    use futures_util::stream::FusedStream;

    let (mut tx, mut rx) = mpsc::channel::<u32>(4);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert!(tx.is_connected_to(rx.get_ref()));
    assert_eq!(rx.size_hint(), (2, None));
    assert!(!rx.is_terminated());
    assert_eq!(format!("{rx:?}"), "Receiver { .. }");
    drop(tx);
    assert_eq!(rx.size_hint(), (2, Some(2)));
    assert_eq!(rx.next().now_or_never(), Some(Some(1)));
    assert!(!rx.is_terminated());
    assert_eq!(rx.next().now_or_never(), Some(Some(2)));
    assert_eq!(rx.next().now_or_never(), Some(None));
    assert!(rx.is_terminated());
    assert_eq!(rx.size_hint(), (0, Some(0)));

    let (tx, mut rx) = mpsc::unbounded::<u32>();
    tx.unbounded_send(3).unwrap();
    assert!(tx.is_connected_to(rx.get_ref()));
    assert_eq!(rx.size_hint(), (1, None));
    assert_eq!(format!("{rx:?}"), "UnboundedReceiver { .. }");
    assert_eq!(rx.next().now_or_never(), Some(Some(3)));
    drop(tx);
    assert_eq!(rx.next().now_or_never(), Some(None));
    assert!(rx.is_terminated());

    // Unwrapped, the inner receiver still gets what is sent.
    let (tx, rx) = mpsc::unbounded::<u32>();
    let mut inner = rx.into_inner();
    tx.unbounded_send(4).unwrap();
    assert!(tx.is_connected_to(&inner));
    assert_eq!(inner.try_recv(), Ok(4));
}

/// A foreign executor's waker that panics when woken.
struct PanickingWaker;

impl std::task::Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("test: a foreign executor's waker panicked");
    }
}

/// Counts its wake-ups.
struct Counts(AtomicUsize);

impl std::task::Wake for Counts {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Two waiters, the first polled by another executor whose waker panics:
/// `notify` (a trigger, the last guard's drop) wakes both and does not
/// panic. Woken plainly, under event-listener's lock, the panic came out
/// of `trigger` (or the guard's drop), the second waiter was never woken,
/// and event-listener's list was left broken (dropping a waiter then
/// panicked). The waiters are leaked so that the old code fails on the
/// asserts rather than aborting in that drop.
fn every_waiter_is_woken_though_a_foreign_waker_panics<F: std::future::Future + Unpin>(
    first: F,
    second: F,
    notify: impl FnOnce(),
) {
    use std::task::{Context, Waker};
    let foreign = Waker::from(Arc::new(PanickingWaker));
    let counts = Arc::new(Counts(AtomicUsize::new(0)));
    let ours = Waker::from(counts.clone());
    let (mut first, mut second) = (first, second);
    assert!(
        std::pin::Pin::new(&mut first)
            .poll(&mut Context::from_waker(&foreign))
            .is_pending()
    );
    assert!(
        std::pin::Pin::new(&mut second)
            .poll(&mut Context::from_waker(&ours))
            .is_pending()
    );
    let notified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(notify));
    let woken = counts.0.load(Ordering::SeqCst);
    std::mem::forget((first, second));
    assert!(notified.is_ok(), "the foreign waker's panic came out");
    assert_eq!(woken, 1, "the waiter after the panicking one was not woken");
}

#[test]
fn shutdown_trigger_wakes_every_waiter_though_a_foreign_waker_panics() {
    let signal = Shutdown::new();
    every_waiter_is_woken_though_a_foreign_waker_panics(
        Box::pin(signal.wait()),
        Box::pin(signal.wait()),
        || assert!(signal.trigger()),
    );
}

#[test]
fn the_last_guard_wakes_every_waiter_though_a_foreign_waker_panics() {
    let group = WaitGroup::new();
    let guard = group.add();
    every_waiter_is_woken_though_a_foreign_waker_panics(
        Box::pin(group.wait()),
        Box::pin(group.wait()),
        move || drop(guard),
    );
}
