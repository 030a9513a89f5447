//! `time` and `sync` against what a tokio user expects (from a review; the
//! first five tests were its findings). No timing thresholds except
//! generous hang guards (`deadline`).

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use strata_rt::sync::{Shutdown, WaitGroup, mpsc};
use strata_rt::time::{MissedTickBehavior, Sleep, interval_at, sleep, sleep_until, timeout_at};
use strata_rt::{spawn, yield_now};
use support::{deadline, rt};

/// Runs `looper` (a task that loops on always-ready futures) next to a task
/// that only needs one turn once `go` is set, on a one-worker runtime.
/// `looper` sets `go` when its loop starts, and gets a flag that turns
/// `true` once the other task has had that turn; it returns the iteration
/// at which it saw it (or `None` if it never did).
fn other_task_gets_a_turn<F, Fut>(looper: F) -> Option<u32>
where
    F: FnOnce(Arc<AtomicBool>, Arc<AtomicBool>) -> Fut + Send + 'static,
    Fut: Future<Output = Option<u32>> + Send + 'static,
{
    deadline(60, move || {
        let rt = rt(1);
        rt.block_on(async move {
            spawn(async move {
                let ran = Arc::new(AtomicBool::new(false));
                let go = Arc::new(AtomicBool::new(false));
                let (r, g) = (ran.clone(), go.clone());
                // Same worker, queued behind the looping task.
                spawn(async move {
                    while !g.load(Ordering::SeqCst) {
                        yield_now().await;
                    }
                    r.store(true, Ordering::SeqCst);
                });
                looper(go, ran).await
            })
            .await
            .unwrap()
        })
    })
}

/// As tokio's, a `Sleep` spends the task's coop budget, so a loop of sleeps
/// (or timeouts) whose deadline has passed yields every 128 iterations
/// (it used to starve the other task on the worker).
#[test]
fn a_loop_of_past_deadline_sleeps_yields_to_the_worker() {
    let seen = other_task_gets_a_turn(|go, ran| async move {
        let past = Instant::now();
        // One real sleep so that the wheel's clock is past `past`.
        sleep(Duration::from_millis(2)).await;
        go.store(true, Ordering::SeqCst);
        for n in 0..100_000u32 {
            sleep_until(past).await;
            if ran.load(Ordering::SeqCst) {
                return Some(n);
            }
        }
        None
    });
    assert!(
        seen.is_some(),
        "100000 ready sleeps in a row never yielded to the other task"
    );
}

/// Same, with `timeout_at` around a future that is never ready: the
/// classic "poll with a deadline in a loop" after the deadline has passed.
#[test]
fn a_loop_of_elapsed_timeouts_yields_to_the_worker() {
    let seen = other_task_gets_a_turn(|go, ran| async move {
        let past = Instant::now();
        sleep(Duration::from_millis(2)).await;
        go.store(true, Ordering::SeqCst);
        for n in 0..100_000u32 {
            let r = timeout_at(past, std::future::pending::<()>()).await;
            assert!(r.is_err());
            if ran.load(Ordering::SeqCst) {
                return Some(n);
            }
        }
        None
    });
    assert!(
        seen.is_some(),
        "100000 elapsed timeouts in a row never yielded to the other task"
    );
}

/// Polling one completed `Sleep` over and over (e.g. a `select!` arm that
/// keeps being chosen) spends budget too.
#[test]
fn polling_a_completed_sleep_in_a_loop_yields_to_the_worker() {
    let seen = other_task_gets_a_turn(|go, ran| async move {
        let mut s = sleep(Duration::from_millis(1));
        (&mut s).await;
        go.store(true, Ordering::SeqCst);
        for n in 0..100_000u32 {
            (&mut s).await;
            if ran.load(Ordering::SeqCst) {
                return Some(n);
            }
        }
        None
    });
    assert!(
        seen.is_some(),
        "100000 polls of a completed sleep never yielded to the other task"
    );
}

/// `Skip`: "the next tick is the first one of the original schedule that is
/// still in the future", even when the number of skipped periods passes
/// `u32::MAX` (a tiny period, a long stall), where it used to saturate and
/// leave the "next" tick seconds in the past.
#[test]
fn skip_never_schedules_a_tick_in_the_past() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            spawn(async {
                let t0 = Instant::now();
                let Some(start) = t0.checked_sub(Duration::from_secs(10)) else {
                    return; // machine up for less than 10 s
                };
                let mut iv = interval_at(start, Duration::from_nanos(1));
                iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
                assert_eq!(iv.tick().await, start, "the overdue tick");
                let second = iv.tick().await;
                assert!(
                    second > t0,
                    "Skip's next tick was due {:?} before the overdue tick was even taken",
                    t0 - second
                );
            })
            .await
            .unwrap();
        });
    });
}

/// A waker that records being dropped.
struct DropFlag(Arc<AtomicBool>);
impl Wake for DropFlag {
    fn wake(self: Arc<Self>) {}
}
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An hour's sleep, registered (polled once) with a waker that sets
/// `dropped` when the last of it is dropped.
fn an_hour_polled_with(dropped: Arc<AtomicBool>) -> Sleep {
    let mut s = sleep(Duration::from_secs(3600));
    let w = Waker::from(Arc::new(DropFlag(dropped)));
    assert!(
        Pin::new(&mut s)
            .poll(&mut Context::from_waker(&w))
            .is_pending()
    );
    s
}

/// Whether `flag` is set within 3 s: "did it ever happen", not a latency
/// bound.
fn becomes_set(flag: &AtomicBool) -> bool {
    for _ in 0..300 {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A `Sleep` dropped on a thread other than its owner worker lets go of the
/// waker of the task that last polled it at once (as tokio's does); it used
/// to keep it until the owner's next turn, which for an idle owner is the
/// cancelled timer's own deadline (here an hour).
#[test]
#[allow(clippy::async_yields_async)] // returning a registered `Sleep` is the point
fn a_sleep_dropped_off_its_owner_lets_go_of_its_waker() {
    deadline(60, || {
        let rt = rt(2);
        let dropped = Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        let handle = rt.handle().clone();
        let s = rt.block_on(async move {
            handle
                .spawn_on(0, async move { an_hour_polled_with(d) })
                .await
                .unwrap()
        });
        // Worker 0 now idles with only this timer (the pause only makes sure
        // it has gone to sleep; it cannot make the test fail wrongly).
        std::thread::sleep(Duration::from_millis(200));
        drop(s);
        if becomes_set(&dropped) {
            return;
        }
        // Only the owner's next turn lets go of it.
        rt.block_on(rt.handle().spawn_on(0, async {})).unwrap();
        panic!(
            "3 s after the sleep was dropped, its owner still held the poller's waker \
             (dropped once worker 0 ran a turn: {})",
            dropped.load(Ordering::SeqCst)
        );
    });
}

/// A `Sleep` dropped on its own worker, which then has nothing to do, lets
/// go of its poller's waker before the worker sleeps: its entry goes to the
/// worker's spare pool, whose wakers used to be dropped only after the
/// worker's next wait for I/O, which on an idle worker never ends.
#[test]
fn a_sleep_dropped_on_its_owner_lets_go_of_its_waker_before_the_owner_idles() {
    deadline(60, || {
        let rt = rt(1);
        let dropped = Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        rt.block_on(async move {
            spawn(async move {
                // Dropped here, on the worker.
                drop(an_hour_polled_with(d));
            })
            .await
            .unwrap();
        });
        assert!(
            becomes_set(&dropped),
            "3 s after the sleep was dropped on its idle owner, the owner still held the waker"
        );
    });
}

/// Reset from another thread while a task waits on the sleep: the task is
/// woken, re-registers, and completes not before the new deadline (later)
/// or at all (earlier).
#[test]
fn reset_from_another_thread_while_a_task_waits() {
    deadline(60, || {
        let rt = rt(2);
        rt.block_on(async {
            for later in [true, false] {
                let s = Arc::new(Mutex::new(sleep(Duration::from_secs(if later {
                    0
                } else {
                    3600
                }))));
                // Make it long first, so the waiter is surely pending.
                s.lock()
                    .unwrap()
                    .reset(Instant::now() + Duration::from_secs(3600));
                let s2 = s.clone();
                let waiter = spawn(async move {
                    std::future::poll_fn(|cx| Pin::new(&mut *s2.lock().unwrap()).poll(cx)).await;
                    Instant::now()
                });
                // Let the waiter register.
                sleep(Duration::from_millis(20)).await;
                let new = Instant::now() + Duration::from_millis(if later { 50 } else { 0 });
                s.lock().unwrap().reset(new);
                let done = waiter.await.unwrap();
                assert!(done >= new, "woke early");
            }
        });
    });
}

/// Control for the three tests above: the same harness with a loop that
/// does spend budget (a Burst interval far behind) sees the other task run.
#[test]
fn control_a_budgeted_loop_is_seen_to_yield() {
    let seen = other_task_gets_a_turn(|go, ran| async move {
        let past = Instant::now() - Duration::from_secs(1);
        let mut iv = interval_at(past, Duration::from_micros(1));
        iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
        go.store(true, Ordering::SeqCst);
        for n in 0..100_000u32 {
            iv.tick().await;
            if ran.load(Ordering::SeqCst) {
                return Some(n);
            }
        }
        None
    });
    assert!(seen.is_some_and(|n| n < 1_000), "{seen:?}");
}

// --- Checks that pass (kept as regression coverage of what was reviewed).

#[test]
fn mpsc_close_and_try_recv_semantics() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            // close(): queued messages still come out, then Closed.
            let (mut tx, mut rx) = mpsc::channel::<u32>(4);
            tx.send(1).await.unwrap();
            tx.send(2).await.unwrap();
            rx.close();
            assert!(tx.send(3).await.is_err());
            assert_eq!(rx.try_recv(), Ok(1));
            assert_eq!(rx.recv().await, Ok(2));
            assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Closed));
            assert!(rx.recv().await.is_err());
            // All senders dropped: drain, then end.
            let (mut tx, mut rx) = mpsc::channel::<u32>(4);
            let mut tx2 = tx.clone();
            tx.send(1).await.unwrap();
            tx2.send(2).await.unwrap();
            drop((tx, tx2));
            assert_eq!(rx.next().await, Some(1));
            assert_eq!(rx.next().await, Some(2));
            assert_eq!(rx.next().await, None);
            assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Closed));
            // Receiver dropped: sends fail as disconnected.
            let (mut tx, rx) = mpsc::channel::<u32>(4);
            drop(rx);
            assert!(tx.send(1).await.unwrap_err().is_disconnected());
            // Capacity: buffer + one for the (only) sender.
            let (mut tx, _rx) = mpsc::channel::<u32>(2);
            for i in 0..3 {
                tx.try_send(i).unwrap();
            }
            assert!(tx.try_send(9).unwrap_err().is_full());
        });
    });
}

#[test]
fn signals_before_and_after_waiters_and_across_runtimes() {
    deadline(30, || {
        let s = Shutdown::new();
        let g = WaitGroup::new();
        let guard = g.add();
        let (a, b) = (rt(1), rt(1));
        let (s2, g2) = (s.clone(), g.clone());
        let waiter = a.handle().spawn(async move {
            s2.wait().await;
            g2.wait().await;
        });
        b.block_on(async {
            s.trigger();
            drop(guard);
        });
        a.block_on(waiter).unwrap();
        // Late waiters complete at once.
        b.block_on(async {
            s.wait().await;
            g.wait().await;
        });
    });
}

/// One of two timers in the test below: the sleep, the deadline a waker
/// moves it to, and when the waker registered after that move was woken.
struct Slot {
    sleep: Mutex<Option<Sleep>>,
    later: Instant,
    /// A waker was registered after the move.
    armed: AtomicBool,
    woken_at: Mutex<Option<Instant>>,
}

/// Records the first wake-up of its slot's (moved) timer.
struct Record(Arc<Slot>);
impl Wake for Record {
    fn wake(self: Arc<Self>) {
        let mut at = self.0.woken_at.lock().unwrap();
        if at.is_none() {
            *at = Some(Instant::now());
        }
    }
}

/// Woken when its own timer fires, on the worker: moves the *other* timer
/// (which fired in the same batch) to its later deadline and polls it
/// again with a [`Record`] waker, as a waker that re-enters the runtime
/// may (the driver wakes "after releasing every borrow, so a waker may
/// re-enter the runtime").
struct ResetOther {
    other: Arc<Slot>,
    done: AtomicBool,
}
impl Wake for ResetOther {
    fn wake(self: Arc<Self>) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut g = self.other.sleep.lock().unwrap();
        let Some(s) = g.as_mut() else { return };
        s.reset(self.other.later);
        let w = Waker::from(Arc::new(Record(self.other.clone())));
        let pending = Pin::new(s).poll(&mut Context::from_waker(&w)).is_pending();
        self.other.armed.store(pending, Ordering::SeqCst);
    }
}

/// Two timers fire in one batch, and the first one's waker (run on the
/// worker, as a waker that re-enters the runtime may) moves the other to a
/// later deadline and polls it with a new waker. That new waker is for the
/// new deadline: the batch must wake the waker it took when it fired the
/// entry, not whatever the slot holds by the time it gets there. (A
/// version that took the wakers after firing the whole batch woke the new
/// waker 300 ms early, and then nothing at the new deadline; found by a
/// review.)
#[test]
fn a_timer_reset_by_a_waker_of_its_batch_is_not_woken_early() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            strata_rt::spawn(async {
                for round in 0..5 {
                    let due = Instant::now() + Duration::from_millis(30);
                    let later = due + Duration::from_millis(300);
                    let slot = |s| {
                        Arc::new(Slot {
                            sleep: Mutex::new(Some(s)),
                            later,
                            armed: AtomicBool::new(false),
                            woken_at: Mutex::new(None),
                        })
                    };
                    let a = slot(sleep_until(due));
                    let b = slot(sleep_until(due));
                    // Each timer's waker moves the other: whichever the
                    // batch wakes first moves the one woken after it.
                    for (mine, other) in [(&a, &b), (&b, &a)] {
                        let w = Waker::from(Arc::new(ResetOther {
                            other: other.clone(),
                            done: AtomicBool::new(false),
                        }));
                        let mut g = mine.sleep.lock().unwrap();
                        let s = g.as_mut().unwrap();
                        assert!(Pin::new(s).poll(&mut Context::from_waker(&w)).is_pending());
                    }
                    // Wait until every moved timer has woken its waker
                    // (a hang here is a lost wake-up).
                    loop {
                        sleep(Duration::from_millis(5)).await;
                        let waiting = [&a, &b].iter().any(|s| {
                            s.armed.load(Ordering::SeqCst) && s.woken_at.lock().unwrap().is_none()
                        });
                        let moved = [&a, &b].iter().any(|s| s.armed.load(Ordering::SeqCst));
                        if moved && !waiting {
                            break;
                        }
                    }
                    for (name, s) in [("a", &a), ("b", &b)] {
                        if !s.armed.load(Ordering::SeqCst) {
                            continue;
                        }
                        let at = s.woken_at.lock().unwrap().unwrap();
                        assert!(
                            at >= s.later,
                            "round {round}: timer {name}, moved to {:?} after its first \
                             deadline, had its new waker woken {:?} early",
                            s.later - due,
                            s.later - at,
                        );
                    }
                    drop(a.sleep.lock().unwrap().take());
                    drop(b.sleep.lock().unwrap().take());
                }
            })
            .await
            .unwrap();
        });
    });
}

/// A sleep polled by another executor whose waker panics, then reset to a
/// deadline already due on its worker: the reset fires it and wakes that
/// waker with the panic contained, as the owner's firing does (it came
/// out of `reset`).
#[test]
fn a_reset_to_a_due_deadline_contains_a_foreign_wakers_panic() {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct PanickingWaker;
    impl Wake for PanickingWaker {
        fn wake(self: Arc<Self>) {
            panic!("test: a foreign executor's waker panicked");
        }
    }
    support::deadline(30, || {
        let rt = support::rt(1);
        // Due by the wheel's clock too: the idle worker, woken by the
        // spawn below, advances its wheel past this before it runs the
        // task (a deadline just before the reset could still be ahead of
        // a wheel last advanced earlier: under Miri it was).
        let long_ago = Instant::now() - Duration::from_secs(1);
        let (reset_ok, fired) = rt
            .block_on(rt.handle().spawn(async move {
                let foreign = Waker::from(Arc::new(PanickingWaker));
                let mut sleep = Box::pin(strata_rt::time::sleep(Duration::from_secs(3600)));
                assert!(
                    sleep
                        .as_mut()
                        .poll(&mut Context::from_waker(&foreign))
                        .is_pending()
                );
                let reset = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sleep.as_mut().reset(long_ago);
                }));
                let after = sleep.as_mut().poll(&mut Context::from_waker(Waker::noop()));
                (reset.is_ok(), after == Poll::Ready(()))
            }))
            .unwrap();
        assert!(reset_ok, "the foreign waker's panic came out of reset");
        assert!(fired, "the sleep is not complete");
    });
}
