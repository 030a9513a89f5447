//! An interval's first tick, due at once, registers the next one quietly
//! (no budget spent, no panic where no runtime can take it); a runtime's
//! drop joins blocking threads that exited after their keep-alive, while
//! `shutdown_background` waits for none. All hang-guarded.
#![allow(clippy::unwrap_used)]

mod support;

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use strata_rt::time::interval;
use strata_rt::{Runtime, spawn, yield_now};
use support::{SlowFlags, deadline, plain_block_on, rt};

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// `interval`'s docs: "an interval that has ticked in one [runtime] keeps
/// ticking wherever it is moved, while that runtime runs", also when the
/// first tick (due at once, not through the wheel) took the task's last
/// budget unit: the next tick registers without spending budget (through
/// `Sleep::poll` it got `Pending` from the budget check and registered
/// nothing, and on a plain thread the next tick panicked).
#[test]
fn an_interval_whose_first_tick_took_the_last_budget_unit_keeps_ticking_on_a_plain_thread() {
    deadline(20, || {
        let rt = rt(1);
        let iv = rt.block_on(async {
            spawn(async {
                // Measure one poll's budget...
                let mut budget = 0usize;
                poll_fn(|cx| {
                    loop {
                        match strata_rt::coop::poll_proceed(cx) {
                            Poll::Ready(unit) => {
                                unit.made_progress();
                                budget += 1;
                            }
                            Poll::Pending => return Poll::Ready(()),
                        }
                    }
                })
                .await;
                assert!(budget > 1, "budget {budget}");
                // ... start a fresh poll ...
                yield_now().await;
                // ... and take the first tick with its last unit.
                let mut iv = interval(Duration::from_millis(5));
                let iv_ref = &mut iv;
                poll_fn(|cx| {
                    for _ in 0..budget - 1 {
                        match strata_rt::coop::poll_proceed(cx) {
                            Poll::Ready(unit) => unit.made_progress(),
                            Poll::Pending => panic!("budget ran out early"),
                        }
                    }
                    assert!(strata_rt::coop::has_budget_remaining());
                    assert!(iv_ref.poll_tick(cx).is_ready(), "first tick is due");
                    Poll::Ready(())
                })
                .await;
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
        if let Err(e) = r {
            panic!(
                "an interval that took its first tick in a task panicked on a plain thread: {}",
                panic_text(&*e)
            );
        }
    });
}

/// `interval`'s docs: "a tick already due, such as the first, completes
/// anywhere", also in a blocking closure still running after its runtime
/// stopped, where registering the next tick is refused: it is left
/// unregistered, not a panic.
#[test]
fn an_interval_s_first_tick_completes_in_a_blocking_closure_that_outlives_its_runtime() {
    deadline(30, || {
        let rt = rt(1);
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (res_tx, res_rx) = mpsc::channel::<Result<bool, String>>();
        let _closure = rt.handle().spawn_blocking(move || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            let r = catch_unwind(AssertUnwindSafe(|| {
                let mut iv = interval(Duration::from_secs(1));
                let mut cx = Context::from_waker(Waker::noop());
                iv.poll_tick(&mut cx).is_ready()
            }))
            .map_err(|e| panic_text(&*e));
            res_tx.send(r).unwrap();
        });
        started_rx.recv().unwrap();
        // The workers stop (their timer queues refuse registrations); the
        // closure is still running, waiting for `go`.
        assert!(!rt.shutdown_timeout(Duration::from_millis(500)));
        go_tx.send(()).unwrap();
        let r = res_rx.recv().unwrap();
        assert_eq!(
            r,
            Ok(true),
            "the first tick, already due, did not complete in a blocking closure \
             whose runtime had stopped"
        );
    });
}

// ---------------------------------------------------------------------------
// 2882092: the blocking pool keeps its threads' handles and joins them.
// `std::thread::JoinHandle::is_finished` is true once the thread's main
// function has returned, *before* its thread-locals' destructors run; the
// pool reads it as "exited".

/// A runtime whose one blocking thread ran a closure that left a slow
/// thread-local (`support::leave_slow_tls`), and has since exited after
/// its keep-alive: its main function returned and its thread-local
/// destructor is running.
fn runtime_with_a_blocking_thread_in_its_tls_destructor() -> (Runtime, Arc<SlowFlags>) {
    let rt = Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(1)
        .blocking_keep_alive(Duration::from_millis(10))
        .build()
        .unwrap();
    let flags = Arc::new(SlowFlags::default());
    let f = flags.clone();
    rt.block_on(rt.handle().spawn_blocking(move || {
        support::leave_slow_tls(f, Duration::from_secs(3));
    }))
    .unwrap();
    while !flags.in_dtor.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    (rt, flags)
}

/// The runtime's docs: dropping the runtime joins the blocking threads,
/// their thread-locals' destructors included, also one that exited after
/// its keep-alive before the next started (`is_finished` turns true before
/// those destructors run, so a handle dropped on it is not enough).
#[test]
fn dropping_a_runtime_joins_a_blocking_thread_that_exited_after_its_keep_alive() {
    deadline(30, || {
        let (rt, flags) = runtime_with_a_blocking_thread_in_its_tls_destructor();
        // A new thread starts for the next closure (the pool has none).
        rt.block_on(rt.handle().spawn_blocking(|| ())).unwrap();
        drop(rt);
        let joined = flags.done.load(Ordering::SeqCst);
        flags.release.store(true, Ordering::SeqCst);
        assert!(
            joined,
            "the runtime's drop returned while a blocking thread's thread-local \
             destructors still ran (the thread was not joined)"
        );
    });
}

/// `shutdown_background`'s docs: it stops the runtime "without waiting"
/// (`shutdown_timeout` with no time, which "waits at most `timeout` in
/// all"): not for a finished thread's thread-local destructors either,
/// which take what they take (here until released, at most 3 s).
#[test]
fn shutdown_background_does_not_wait_for_a_blocking_thread_s_tls_destructors() {
    deadline(30, || {
        let (rt, flags) = runtime_with_a_blocking_thread_in_its_tls_destructor();
        rt.shutdown_background();
        let waited = flags.done.load(Ordering::SeqCst);
        flags.release.store(true, Ordering::SeqCst);
        assert!(
            !waited,
            "shutdown_background waited for a blocking thread's thread-local destructors"
        );
    });
}
