//! Timers moved out of the runtime: a `Sleep` or `Interval` registered in
//! a task keeps working when reset and awaited on a plain thread, as a
//! tokio `Sleep` does. No wall-clock thresholds: only "not early"
//! (Instant comparisons) and a generous hang guard.
// The tests hand registered timers (futures) out of tasks on purpose.
#![allow(clippy::unwrap_used, clippy::async_yields_async)]

mod support;

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use strata_rt::spawn;
use strata_rt::time::{interval, sleep};
use support::{deadline, rounds, rt};

/// Polls `f` once with the current task's context.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

struct Unparker(Thread);
impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A sleep of `dur` registered (polled once) by a task on `rt`'s worker,
/// handed out.
fn registered_in_a_task(rt: &strata_rt::Runtime, dur: Duration) -> strata_rt::time::Sleep {
    rt.block_on(async move {
        spawn(async move {
            let mut s = sleep(dur);
            assert!(poll_once(&mut s).await.is_pending());
            s
        })
        .await
        .unwrap()
    })
}

/// Drives `f` on the calling thread, which is in no runtime.
fn plain_block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = Waker::from(Arc::new(Unparker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// A `Sleep` registered (polled) by a task, then moved to a plain thread
/// while its runtime lives on, reset there and awaited. An off-owner
/// `reset` used to drop the registration, and the next poll, finding no
/// runtime on the thread, panicked "polled outside a strata runtime".
#[test]
fn a_registered_sleep_reset_on_a_plain_thread_still_fires() {
    deadline(20, || {
        let rt = rt(1);
        let s = registered_in_a_task(&rt, Duration::from_secs(3600));
        let r = std::thread::spawn(move || {
            let mut s = s;
            let target = Instant::now() + Duration::from_millis(20);
            s.reset(target);
            plain_block_on(&mut s);
            Instant::now() >= target
        })
        .join();
        let not_early = r.expect("reset + await on a plain thread panicked");
        assert!(not_early);
        drop(rt);
    });
}

/// The same through `Interval`, whose every tick ends with
/// `sleep.reset(next)`: created and ticked in a task, it keeps ticking
/// when driven from a plain thread (tokio's does).
#[test]
fn an_interval_ticked_in_a_task_keeps_ticking_on_a_plain_thread() {
    deadline(20, || {
        let rt = rt(1);
        let iv = rt.block_on(async {
            spawn(async {
                let mut iv = interval(Duration::from_millis(5));
                iv.tick().await;
                iv.tick().await;
                iv
            })
            .await
            .unwrap()
        });
        let r = std::thread::spawn(move || {
            let mut iv = iv;
            for _ in 0..3 {
                let due = plain_block_on(iv.tick());
                assert!(Instant::now() >= due);
            }
        })
        .join();
        assert!(r.is_ok(), "ticking on a plain thread panicked");
        drop(rt);
    });
}

/// A `Sleep` reset inside the runtime but off its worker (here in
/// `block_on`; the same on another worker), then awaited on a plain
/// thread. Such a reset used to cancel the registration and leave the
/// next poll to make one, which a thread outside any runtime cannot: it
/// panicked "polled outside a strata runtime" while the runtime ran.
#[test]
fn a_sleep_reset_off_its_worker_in_the_runtime_then_awaited_on_a_plain_thread_fires() {
    deadline(20, || {
        let rt = rt(1);
        let mut s = registered_in_a_task(&rt, Duration::from_secs(3600));
        let due = Instant::now() + Duration::from_millis(20);
        rt.block_on(async { s.reset(due) });
        let fired_at = std::thread::spawn(move || {
            plain_block_on(s);
            Instant::now()
        })
        .join()
        .expect("awaiting the reset sleep on a plain thread panicked");
        assert!(fired_at >= due, "fired early");
        drop(rt);
    });
}

/// The same through `Interval`: reset in `block_on`, then ticked on a
/// plain thread.
#[test]
fn an_interval_reset_off_its_worker_in_the_runtime_keeps_ticking_on_a_plain_thread() {
    deadline(20, || {
        let rt = rt(1);
        let mut every = rt.block_on(async {
            spawn(async {
                let mut every = interval(Duration::from_millis(20));
                every.tick().await;
                every.tick().await;
                every
            })
            .await
            .unwrap()
        });
        let reset_at = Instant::now();
        rt.block_on(async { every.reset() });
        let (due, at) = std::thread::spawn(move || {
            let due = plain_block_on(every.tick());
            (due, Instant::now())
        })
        .join()
        .expect("ticking the reset interval on a plain thread panicked");
        assert!(
            due >= reset_at + Duration::from_millis(20),
            "tick due before the reset schedule"
        );
        assert!(at >= due, "ticked early");
        drop(rt);
    });
}

/// An interval reset in `block_on` (which leaves it to register with its
/// worker on the next poll), whose runtime is then dropped, polled on a
/// plain thread: the panic says the runtime is gone. The registration
/// made quietly after a tick that was due at once used to drop the
/// worker it had been left, and the next poll then blamed the caller
/// ("polled outside a strata runtime").
#[test]
fn an_interval_reset_in_block_on_whose_runtime_is_gone_says_so_when_polled() {
    let rt = rt(1);
    let mut iv = rt.block_on(async {
        // A period longer than a poll takes even under Miri (up to 20 ms).
        let mut iv = interval(Duration::from_millis(100));
        iv.tick().await;
        iv.tick().await;
        iv.reset();
        iv
    });
    drop(rt);
    std::thread::sleep(Duration::from_millis(120));
    let r = std::thread::spawn(move || {
        let mut cx = Context::from_waker(Waker::noop());
        // Two polls, unless this thread is held up for a whole period
        // between them (a loaded host): a tick found due is returned, and
        // the first poll that has to wait panics.
        for _ in 0..100 {
            let _ = iv.poll_tick(&mut cx);
        }
    })
    .join();
    let payload = r.expect_err("polling a timer whose runtime is gone must panic");
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(text.contains("shut down"), "{text}");
}

/// A waker that records that it was woken.
struct Flag(std::sync::atomic::AtomicBool);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A sleep polled on a plain thread, with a different waker each time,
/// while its worker fires it: a poll that returns `Pending` has its waker
/// woken, even when the timer fires in the middle of that poll (after the
/// poll first looked at the state, before it stored its waker).
#[test]
fn a_sleep_polled_with_changing_wakers_as_it_fires_wakes_the_last_one() {
    use std::sync::atomic::Ordering::SeqCst;
    deadline(60, || {
        let rt = rt(1);
        for _ in 0..rounds(2000) {
            let mut s = rt.block_on(async {
                let mut s = sleep(Duration::from_millis(1));
                assert!(poll_once(&mut s).await.is_pending());
                s
            });
            let mut last = None;
            loop {
                let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
                let waker = Waker::from(flag.clone());
                if Pin::new(&mut s)
                    .poll(&mut Context::from_waker(&waker))
                    .is_ready()
                {
                    break;
                }
                last = Some(flag);
                if s.is_elapsed() {
                    break;
                }
            }
            if let Some(flag) = last.filter(|_| s.is_elapsed()) {
                // A hang guard, not a bound on the wake-up's latency.
                let until = Instant::now() + Duration::from_secs(10);
                while !flag.0.load(SeqCst) {
                    assert!(
                        Instant::now() < until,
                        "the last poller's waker was never woken"
                    );
                    std::thread::yield_now();
                }
            }
        }
    });
}

/// A pending sleep moved later off the workers keeps its registration and
/// only changes its deadline; its owner, finding it at the old deadline,
/// must link it again rather than fire it.
#[test]
fn a_sleep_postponed_off_its_worker_fires_at_the_new_deadline_not_the_old() {
    deadline(20, || {
        let rt = rt(1);
        let s = registered_in_a_task(&rt, Duration::from_millis(20));
        let (fired_at, due) = std::thread::spawn(move || {
            let mut s = s;
            let due = Instant::now() + Duration::from_millis(150);
            s.reset(due);
            plain_block_on(&mut s);
            (Instant::now(), due)
        })
        .join()
        .expect("awaiting the postponed sleep on a plain thread panicked");
        assert!(fired_at >= due, "fired before its new deadline");
        // The same in `block_on`, where the worker's wheel holds it.
        let mut s = rt.block_on(async {
            let mut s = sleep(Duration::from_millis(20));
            assert!(poll_once(&mut s).await.is_pending());
            s
        });
        let due = Instant::now() + Duration::from_millis(150);
        let fired_at = rt.block_on(async {
            s.reset(due);
            (&mut s).await;
            Instant::now()
        });
        assert!(fired_at >= due, "fired before its new deadline in block_on");
    });
}

/// Postponing from a plain thread races with the owner firing the timer at
/// its old deadline: in every interleaving the sleep completes, and never
/// before the deadline it was last given.
#[test]
fn postponing_off_the_worker_as_the_owner_fires_is_never_early() {
    deadline(60, || {
        let rt = rt(1);
        let mut rng = support::Rng::new(17);
        for _ in 0..rounds(300) {
            let s = registered_in_a_task(&rt, Duration::from_millis(1));
            let spins: Vec<u64> = (0..4).map(|_| rng.below(20_000)).collect();
            let late: u64 = rng.below(3);
            std::thread::spawn(move || {
                let mut s = s;
                let mut due = Instant::now();
                for spin in spins {
                    for _ in 0..spin {
                        std::hint::spin_loop();
                    }
                    due = Instant::now() + Duration::from_millis(late);
                    s.reset(due);
                }
                plain_block_on(&mut s);
                assert!(Instant::now() >= due, "fired before its last deadline");
            })
            .join()
            .expect("a postponed sleep fired early or panicked");
        }
    });
}
