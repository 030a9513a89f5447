//! The public time API's documented semantics (sleep, timeout, interval)
//! at its edges: an interval moved after its first tick, far and shared
//! deadlines, a timer of a runtime that is gone, a dropped sleep's waker,
//! whom a reset sleep wakes, what a timeout kept after it elapsed holds.
//! Hang-guarded; no "took less than" assertions except where the docs
//! promise readiness at the first poll.
#![allow(clippy::unwrap_used, clippy::async_yields_async)]

mod support;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use strata_rt::spawn;
use strata_rt::time::{self, MissedTickBehavior, interval, sleep, timeout};
use support::{deadline, plain_block_on, rt};

/// Polls `f` once with the current task's context.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

/// `interval`'s docs: "an interval that has ticked in one [runtime] keeps
/// ticking wherever it is moved, while that runtime runs", also one that
/// took only its first tick, which was due at once and did not go through
/// the wheel (its next tick registers then; before, the second tick on a
/// plain thread panicked "polled outside a strata runtime").
#[test]
fn an_interval_that_took_its_first_tick_in_a_task_keeps_ticking_on_a_plain_thread() {
    deadline(20, || {
        let rt = rt(1);
        let iv = rt.block_on(async {
            spawn(async {
                let mut iv = interval(Duration::from_millis(5));
                iv.tick().await;
                iv
            })
            .await
            .unwrap()
        });
        let r = std::thread::spawn(move || {
            let mut iv = iv;
            for _ in 0..2 {
                let due = plain_block_on(iv.tick());
                assert!(Instant::now() >= due);
            }
        })
        .join();
        drop(rt);
        assert!(
            r.is_ok(),
            "an interval ticked in a task panicked when ticked on a plain thread"
        );
    });
}

/// `interval`'s docs, # Panics: waiting for a tick outside a runtime
/// panics, but a tick already due, such as the first, completes anywhere.
#[test]
fn an_interval_s_first_tick_completes_outside_a_runtime_and_its_second_panics() {
    deadline(20, || {
        let mut iv = interval(Duration::from_secs(1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(iv.poll_tick(&mut cx).is_ready());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = iv.poll_tick(&mut cx);
        }));
        assert!(
            r.is_err(),
            "waiting for a tick outside any runtime did not panic"
        );
    });
}

/// The documented `timeout` fast path.
#[test]
fn timeout_zero_of_a_ready_future_is_ok_at_first_poll_and_registers_nothing() {
    deadline(20, || {
        let rt = rt(1);
        rt.block_on(async {
            spawn(async {
                let before = time::__wheel_stats().0;
                let mut t = Box::pin(timeout(Duration::ZERO, async { 5 }));
                assert_eq!(poll_once(&mut t).await, Poll::Ready(Ok(5)));
                assert_eq!(time::__wheel_stats().0, before);
            })
            .await
            .unwrap();
        });
        // Off any runtime too (the timer is never polled).
        assert_eq!(plain_block_on(timeout(Duration::ZERO, async { 6 })), Ok(6));
    });
}

/// An idle worker holding a `Duration::MAX` sleep (clamped to a far
/// instant beyond the wheel's range) neither fires it nor busy-loops.
#[test]
fn a_duration_max_sleep_neither_fires_nor_panics() {
    deadline(20, || {
        let rt = rt(1);
        rt.block_on(async {
            let h = spawn(async {
                let mut s = sleep(Duration::MAX);
                assert!(poll_once(&mut s).await.is_pending());
                let mut s2 =
                    time::sleep_until(Instant::now() + Duration::from_secs(86_400 * 365 * 500));
                assert!(poll_once(&mut s2).await.is_pending());
                let r = timeout(Duration::from_millis(50), async {
                    (&mut s).await;
                    (&mut s2).await
                })
                .await;
                assert!(r.is_err());
                assert!(!s.is_elapsed() && !s2.is_elapsed());
            });
            h.await.unwrap();
        });
    });
}

/// A duration too long to add to now stands for "never": the deadline it
/// gives a sleep or a timeout is decades away (about thirty years, as
/// tokio's), past the life of any process, not merely far.
#[test]
fn a_duration_max_deadline_is_decades_away() {
    let decades = Instant::now() + Duration::from_secs(86_400 * 365 * 20);
    assert!(sleep(Duration::MAX).deadline() > decades);
    let mut t = timeout(Duration::MAX, std::future::pending::<()>());
    assert!(t.sleep_mut().deadline() > decades);
}

/// Many timers with one identical deadline, registered from
/// workers and from the `block_on` thread, all fire.
#[test]
fn many_timers_with_one_deadline_all_fire() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let at = Instant::now() + Duration::from_millis(30);
            let tasks: Vec<_> = (0..2000)
                .map(|_| spawn(async move { time::sleep_until(at).await }))
                .collect();
            let local: Vec<_> = (0..500).map(|_| time::sleep_until(at)).collect();
            futures_util::future::join_all(local).await;
            for t in tasks {
                t.await.unwrap();
            }
            assert!(Instant::now() >= at);
        });
    });
}

/// The driver's docs: a timer whose runtime shut down, polled outside any
/// runtime, "panics with a message saying that its runtime is gone", also
/// after a `reset` on a plain thread (which gave the generic "polled
/// outside a strata runtime" message).
#[test]
fn a_reset_timer_of_a_shut_down_runtime_panics_saying_the_runtime_is_gone() {
    deadline(20, || {
        let rt = rt(1);
        let s = rt.block_on(async {
            spawn(async {
                let mut s = sleep(Duration::from_secs(3600));
                assert!(poll_once(&mut s).await.is_pending());
                s
            })
            .await
            .unwrap()
        });
        drop(rt);
        let msg = std::thread::spawn(move || {
            let mut s = s;
            s.reset(Instant::now() + Duration::from_millis(10));
            let mut cx = Context::from_waker(Waker::noop());
            let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = Pin::new(&mut s).poll(&mut cx);
            }))
            .expect_err("polling after shutdown must panic");
            err.downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap()
        })
        .join()
        .unwrap();
        assert!(msg.contains("shut down"), "{msg}");
    });
}

/// `Sleep`'s docs: dropped on its worker's thread, the timer's slot and
/// the waker in it are kept for reuse until the end of the worker's
/// current turn, and then let go.
#[test]
fn a_sleep_dropped_on_its_worker_lets_go_of_its_waker_by_the_end_of_the_turn() {
    struct Flag;
    impl std::task::Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    deadline(20, || {
        let rt = rt(1);
        rt.block_on(async {
            spawn(async {
                let flag = std::sync::Arc::new(Flag);
                {
                    let waker = Waker::from(flag.clone());
                    let mut cx = Context::from_waker(&waker);
                    let mut s = sleep(Duration::from_secs(60));
                    assert!(Pin::new(&mut s).poll(&mut cx).is_pending());
                }
                // A few turns of the worker.
                for _ in 0..3 {
                    strata_rt::yield_now().await;
                }
                assert_eq!(
                    std::sync::Arc::strong_count(&flag),
                    1,
                    "the dropped sleep still holds its waker after the turn"
                );
            })
            .await
            .unwrap();
        });
    });
}

/// A waker that counts its wake-ups.
struct Count(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Count {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn count_waker() -> (std::sync::Arc<Count>, Waker) {
    let count = std::sync::Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    (count, waker)
}

fn wakes(count: &Count) -> usize {
    count.0.load(std::sync::atomic::Ordering::SeqCst)
}

/// A sleep armed right after another sleep was dropped on the same worker
/// (in the same turn, so the dropped one's timer slot, waker and all, is
/// reused) wakes its own task, not the waker the dropped one was polled
/// with.
#[test]
fn a_sleep_reusing_a_dropped_sleep_s_slot_wakes_its_own_task() {
    deadline(20, || {
        rt(1).block_on(async {
            spawn(async {
                let (count, waker) = count_waker();
                {
                    let mut s = sleep(Duration::from_secs(3600));
                    assert!(
                        Pin::new(&mut s)
                            .poll(&mut Context::from_waker(&waker))
                            .is_pending()
                    );
                }
                sleep(Duration::from_millis(5)).await;
                assert_eq!(wakes(&count), 0, "the dropped sleep's waker was woken");
            })
            .await
            .unwrap()
        })
    });
}

/// `Sleep::reset`'s docs: a sleep that has completed keeps no waker; a
/// poll after the reset registers one, woken at the new deadline.
#[test]
fn a_completed_sleep_reset_on_its_worker_wakes_whoever_polls_it_next() {
    deadline(20, || {
        rt(1).block_on(async {
            spawn(async {
                let (count, waker) = count_waker();
                let poll = |s: &mut time::Sleep| Pin::new(s).poll(&mut Context::from_waker(&waker));
                let mut s = sleep(Duration::from_millis(5));
                assert!(poll(&mut s).is_pending());
                while !s.is_elapsed() {
                    sleep(Duration::from_millis(5)).await;
                }
                assert!(poll(&mut s).is_ready());
                let fired = wakes(&count);
                s.reset(Instant::now() + Duration::from_secs(1));
                assert!(poll(&mut s).is_pending());
                while wakes(&count) == fired {
                    sleep(Duration::from_millis(5)).await;
                }
                assert!(poll(&mut s).is_ready());
            })
            .await
            .unwrap()
        })
    });
}

/// `Sleep::reset`'s docs: "a sleep that has completed keeps no waker",
/// also one that completes on its first poll (its deadline already past),
/// which used to keep its poller's waker, and so that task, as long as it
/// lived.
#[test]
fn a_sleep_completed_on_its_first_poll_keeps_no_waker() {
    deadline(20, || {
        rt(1).block_on(async {
            spawn(async {
                let (count, waker) = count_waker();
                let mut s = time::sleep_until(Instant::now() - Duration::from_secs(1));
                assert!(
                    Pin::new(&mut s)
                        .poll(&mut Context::from_waker(&waker))
                        .is_ready()
                );
                drop(waker);
                assert_eq!(
                    std::sync::Arc::strong_count(&count),
                    1,
                    "the completed sleep still holds its poller's waker"
                );
            })
            .await
            .unwrap();
        });
    });
}

/// `Sleep::reset`'s docs: reset on a thread outside any runtime, a pending
/// sleep's waker is not woken at once but at the new deadline (registered
/// with the timer's worker straight away).
#[test]
fn a_pending_sleep_reset_outside_any_runtime_wakes_its_poller_at_the_new_deadline() {
    deadline(20, || {
        let rt = rt(1);
        let (count, waker) = count_waker();
        let s = rt.block_on(async {
            let mut s = sleep(Duration::from_secs(3600));
            assert!(
                Pin::new(&mut s)
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
            );
            s
        });
        std::thread::spawn(move || {
            let mut s = s;
            s.reset(Instant::now() + Duration::from_secs(1));
            assert_eq!(wakes(&count), 0, "woken at once");
            while wakes(&count) == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(s.is_elapsed());
        })
        .join()
        .unwrap();
    });
}

/// `timeout`'s docs: the future goes with the `Timeout`, so one kept
/// pinned after `Err(Elapsed)` still holds it.
#[test]
fn a_timeout_kept_after_it_elapsed_still_holds_its_future() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    deadline(20, || {
        rt(1).block_on(async {
            let dropped = Arc::new(AtomicBool::new(false));
            let guard = SetOnDrop(dropped.clone());
            let mut t = Box::pin(timeout(Duration::from_millis(5), async move {
                let _guard = guard;
                std::future::pending::<()>().await
            }));
            assert!(t.as_mut().await.is_err());
            assert!(!dropped.load(Ordering::SeqCst));
            drop(t);
            assert!(dropped.load(Ordering::SeqCst));
        })
    });
}

/// `Interval::period` and `missed_tick_behavior` report what the interval
/// was made with and what was set last, for every behaviour.
#[test]
fn an_interval_reports_its_period_and_the_missed_tick_behavior_set_last() {
    let mut iv = interval(Duration::from_millis(7));
    assert_eq!(iv.period(), Duration::from_millis(7));
    for behavior in [
        MissedTickBehavior::Burst,
        MissedTickBehavior::Delay,
        MissedTickBehavior::Skip,
    ] {
        iv.set_missed_tick_behavior(behavior);
        assert_eq!(iv.missed_tick_behavior(), behavior);
    }
    let far = time::interval_at(Instant::now(), Duration::from_secs(86_400));
    assert_eq!(far.period(), Duration::from_secs(86_400));
}

/// `Sleep`'s `Debug` output shows its deadline and whether it has fired.
#[test]
fn a_sleep_s_debug_output_shows_its_deadline_and_whether_it_fired() {
    deadline(20, || {
        let rt = rt(1);
        rt.block_on(async {
            spawn(async {
                let mut s = sleep(Duration::from_millis(1));
                let shown = format!("deadline: {:?}", s.deadline());
                let before = format!("{s:?}");
                assert!(before.starts_with("Sleep {"), "{before}");
                assert!(before.contains(&shown), "{before}");
                assert!(before.contains("elapsed: false"), "{before}");
                (&mut s).await;
                let after = format!("{s:?}");
                assert!(after.contains(&shown), "{after}");
                assert!(after.contains("elapsed: true"), "{after}");
            })
            .await
            .unwrap();
        });
    });
}
