//! Timers on a real runtime: ordering, cancellation without leaks, timeout,
//! reset, intervals, timers that move between threads, idle sleeping,
//! misuse outside a runtime, and shutdown.
//!
//! Timing assertions are one-sided where possible ("not early"); upper
//! bounds are generous (the machine running the tests may be busy).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use strata_rt::time::{
    self, Elapsed, MissedTickBehavior, interval_at, sleep, sleep_until, timeout,
};
use strata_rt::{Runtime, spawn, spawn_local};
use support::{Rng, deadline, rounds, rt};

/// How late a timer may fire before a test calls it broken: a detector of
/// timers that fire only when something else wakes their worker, not a
/// performance bound, so generous (a worker of a loaded 2-core machine
/// can wait hundreds of milliseconds for its core); under Miri, which
/// interprets every step, more (as `support::deadline`).
const LATE: Duration = Duration::from_millis(if cfg!(miri) { 15_000 } else { 2_000 });

// --- A per-thread allocation counter, to show cancelled timers free their
// memory. Only the thread that asks is measured, so concurrent tests do not
// disturb the count.

struct CountingAlloc;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn add_live(n: isize) {
    // `try_with`: allocations can happen while thread-locals are torn down.
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + n));
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add_live(layout.size() as isize);
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add_live(-(layout.size() as isize));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add_live(new_size as isize - layout.size() as isize);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

/// Polls `f` once with the current task's context.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

// ---------------------------------------------------------------------------

#[test]
#[cfg_attr(
    miri,
    ignore = "its timers are due before Miri has spawned them all, and it bounds their lateness"
)]
fn timers_fire_in_deadline_order_and_never_early() {
    deadline(60, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        // 1,000 timers on one worker, random deadlines 200..500 ms ahead:
        // the order the tasks wake in must follow the deadlines.
        let order = rt.block_on(handle.spawn_local_on(0, || async {
            let start = Instant::now();
            let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let mut rng = Rng::new(7);
            let mut tasks = Vec::new();
            for _ in 0..1000 {
                let at = start + Duration::from_millis(200 + rng.below(300));
                let log = log.clone();
                tasks.push(spawn_local(async move {
                    sleep_until(at).await;
                    let now = Instant::now();
                    log.borrow_mut().push((at, now));
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            log.take()
        }));
        let order = order.unwrap();
        assert_eq!(order.len(), 1000);
        for w in order.windows(2) {
            assert!(w[0].0 <= w[1].0, "woken out of deadline order");
        }
        for (at, fired) in &order {
            assert!(fired >= at, "fired early");
            assert!(*fired - *at < LATE, "fired {:?} late", *fired - *at);
        }

        // And spread over both workers, polled from anywhere.
        let results = rt.block_on(async {
            let start = Instant::now();
            let mut rng = Rng::new(11);
            let hs: Vec<_> = (0..1000)
                .map(|_| {
                    let at = start + Duration::from_millis(rng.below(300));
                    spawn(async move {
                        sleep_until(at).await;
                        (at, Instant::now())
                    })
                })
                .collect();
            let mut out = Vec::new();
            for h in hs {
                out.push(h.await.unwrap());
            }
            out
        });
        for (at, fired) in results {
            assert!(fired >= at, "fired early");
            assert!(fired - at < LATE, "fired {:?} late", fired - at);
        }
    });
}

#[test]
fn a_million_cancelled_timeouts_leave_nothing_behind() {
    deadline(120, || {
        let rt = rt(1);
        let (before, after, wheel_before, wheel_after, peak_len) = rt.block_on(async {
            spawn(async {
                let wheel_before = time::__wheel_stats();
                // Warm up: let the wheel's slab and buffers reach their size.
                for _ in 0..1000 {
                    let mut t = timeout(Duration::from_secs(30), std::future::pending::<()>());
                    assert!(poll_once(&mut t).await.is_pending());
                }
                let before = live_bytes();
                let mut peak_len = 0;
                for i in 0..rounds(1_000_000) {
                    // The request-timeout pattern: armed, polled, then
                    // dropped because the request finished first.
                    let mut t = timeout(Duration::from_secs(30), std::future::pending::<()>());
                    assert!(poll_once(&mut t).await.is_pending());
                    if i % 100_000 == 0 {
                        peak_len = peak_len.max(time::__wheel_stats().0);
                    }
                }
                let after = live_bytes();
                (before, after, wheel_before, time::__wheel_stats(), peak_len)
            })
            .await
            .unwrap()
        });
        // Each timer was in the wheel while polled, and left it when dropped.
        assert_eq!(peak_len, wheel_before.0 + 1);
        assert_eq!(wheel_after.0, wheel_before.0, "timers left in the wheel");
        // The worker recycles entries: one spare is enough for this pattern.
        assert!(
            wheel_after.1 <= 64,
            "timer entry pool grew to {}",
            wheel_after.1
        );
        // The worker thread's heap is back where it started (a little slack
        // for buffers that may grow once).
        assert!(
            (after - before).abs() < 4096,
            "worker thread leaked {} bytes over 1M timers",
            after - before
        );
    });
}

#[test]
fn timeout_passes_fast_futures_and_cuts_slow_ones() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            assert_eq!(timeout(Duration::from_secs(5), async { 42 }).await, Ok(42));
            // Ready on the first poll wins even with a zero budget.
            assert_eq!(timeout(Duration::ZERO, async { 1 }).await, Ok(1));
            // Finishes before the deadline after some waiting.
            let r = timeout(Duration::from_secs(5), sleep(Duration::from_millis(20))).await;
            assert_eq!(r, Ok(()));

            let start = Instant::now();
            let r = timeout(Duration::from_millis(50), sleep(Duration::from_secs(3600))).await;
            let elapsed: Elapsed = r.unwrap_err();
            assert!(start.elapsed() >= Duration::from_millis(50));
            assert!(start.elapsed() < Duration::from_millis(50) + LATE);
            assert_eq!(elapsed.to_string(), "deadline has elapsed");
            let e: std::io::Error = elapsed.into();
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        });
    });
}

#[test]
fn sleep_reset_moves_the_deadline_both_ways() {
    deadline(30, || {
        let rt = rt(2);
        let check = || async {
            // Earlier: from an hour to 30 ms, while pending.
            let start = Instant::now();
            let mut s = sleep(Duration::from_secs(3600));
            assert!(poll_once(&mut s).await.is_pending());
            s.reset(start + Duration::from_millis(30));
            (&mut s).await;
            assert!(start.elapsed() >= Duration::from_millis(30));
            assert!(start.elapsed() < Duration::from_millis(30) + LATE);
            assert!(s.is_elapsed());

            // Later, after it completed: it completes again, not before.
            let again = Instant::now() + Duration::from_millis(80);
            s.reset(again);
            assert!(!s.is_elapsed());
            (&mut s).await;
            assert!(Instant::now() >= again);

            // Later while pending.
            let mut s = sleep(Duration::from_millis(10));
            assert!(poll_once(&mut s).await.is_pending());
            let later = Instant::now() + Duration::from_millis(120);
            s.reset(later);
            s.await;
            assert!(Instant::now() >= later);

            // Into the past: completes at once.
            let mut s = sleep(Duration::from_secs(3600));
            assert!(poll_once(&mut s).await.is_pending());
            s.reset(Instant::now() - Duration::from_millis(5));
            timeout(Duration::from_secs(5), s)
                .await
                .expect("reset into the past");
        };
        // On a worker (the owner resets in place)...
        rt.block_on(async { spawn(check()).await.unwrap() });
        // ...and on the block_on thread (timers owned by a worker).
        rt.block_on(check());
    });
}

#[test]
fn an_interval_s_first_tick_and_burst_catch_up_come_at_once() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            spawn(async {
                let mut cx = Context::from_waker(Waker::noop());
                for _ in 0..20 {
                    let mut iv = time::interval(Duration::from_secs(1));
                    assert!(iv.poll_tick(&mut cx).is_ready(), "first tick pending");
                }
                // Three periods behind: the overdue ticks are ready at once.
                let p = Duration::from_millis(10);
                let mut iv = interval_at(Instant::now(), p);
                iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
                assert!(iv.poll_tick(&mut cx).is_ready());
                std::thread::sleep(p * 3);
                for k in 1..=3 {
                    assert!(iv.poll_tick(&mut cx).is_ready(), "overdue tick {k} pending");
                }
            })
            .await
            .unwrap()
        });
    });
}

#[test]
fn an_interval_with_an_endless_period_never_ticks_again_and_never_panics() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            for behavior in [
                MissedTickBehavior::Burst,
                MissedTickBehavior::Delay,
                MissedTickBehavior::Skip,
            ] {
                let mut iv = time::interval(Duration::MAX);
                iv.set_missed_tick_behavior(behavior);
                iv.tick().await;
                assert!(timeout(Duration::from_millis(20), iv.tick()).await.is_err());
                iv.reset();
                assert!(timeout(Duration::from_millis(5), iv.tick()).await.is_err());
            }
        });
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "compares tick times at 40 ms resolution, which interpretation stretches"
)]
fn interval_missed_ticks_follow_the_chosen_behaviour() {
    deadline(60, || {
        let rt = rt(2);
        let p = Duration::from_millis(40);
        let run = |behavior: MissedTickBehavior| {
            rt.block_on(async move {
                spawn(async move {
                    let start = Instant::now();
                    let mut iv = interval_at(start, p);
                    iv.set_missed_tick_behavior(behavior);
                    assert_eq!(iv.tick().await, start);
                    // Stall the worker for 3.5 periods: ticks 1, 2 and 3 are
                    // missed.
                    std::thread::sleep(p * 7 / 2);
                    let mut got = Vec::new();
                    for _ in 0..4 {
                        let due = iv.tick().await;
                        assert!(Instant::now() >= due, "tick before it was due");
                        got.push(due.duration_since(start));
                    }
                    got
                })
                .await
                .unwrap()
            })
        };
        // The overdue tick (due at 1p) comes at once in every mode.
        let burst = run(MissedTickBehavior::Burst);
        assert_eq!(burst, vec![p, p * 2, p * 3, p * 4]);
        let skip = run(MissedTickBehavior::Skip);
        assert_eq!(skip, vec![p, p * 4, p * 5, p * 6]);
        let delay = run(MissedTickBehavior::Delay);
        assert_eq!(delay[0], p);
        // After that the schedule restarts from when the overdue tick was
        // taken (at about 3.5p), one period apart.
        assert!(delay[1] >= p * 9 / 2, "{delay:?}");
        assert!(
            delay[2] >= delay[1] + p && delay[3] >= delay[2] + p,
            "{delay:?}"
        );
        assert_eq!(
            time::interval(p).missed_tick_behavior(),
            MissedTickBehavior::Skip
        );
    });
}

#[test]
#[allow(clippy::async_yields_async)] // returning a registered `Sleep` is the point
fn a_sleep_moved_to_another_worker_or_thread_still_fires() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            for target in ["worker", "block_on"] {
                // Registered on worker 0...
                let start = Instant::now();
                let s = handle
                    .spawn_on(0, async {
                        let mut s = sleep(Duration::from_millis(60));
                        assert!(poll_once(&mut s).await.is_pending());
                        s
                    })
                    .await
                    .unwrap();
                // ...awaited on worker 1, or here on the block_on thread.
                if target == "worker" {
                    handle.spawn_on(1, s).await.unwrap();
                } else {
                    s.await;
                }
                assert!(start.elapsed() >= Duration::from_millis(60), "{target}");
                assert!(
                    start.elapsed() < Duration::from_millis(60) + LATE,
                    "{target}"
                );
            }
            // Registered from the block_on thread, awaited on a worker.
            let start = Instant::now();
            let mut s = sleep(Duration::from_millis(60));
            assert!(poll_once(&mut s).await.is_pending());
            handle.spawn_on(1, s).await.unwrap();
            assert!(start.elapsed() >= Duration::from_millis(60));
        });
    });
}

#[test]
#[cfg(target_pointer_width = "64")]
fn sleep_is_small_and_unpin() {
    // Stored inline by the thousand: a deadline, its registration and the
    // worker a reset off the workers left it with (two pointers).
    assert_eq!(std::mem::size_of::<time::Sleep>(), 32);
    fn unpin<T: Unpin + Send + Sync>() {}
    unpin::<time::Sleep>();
}

#[test]
#[allow(clippy::async_yields_async)] // returning registered sleeps is the point
fn sleeps_dropped_on_another_worker_or_thread_leave_their_wheel() {
    deadline(60, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let base = handle
                .spawn_on(0, async { time::__wheel_stats().0 })
                .await
                .unwrap();
            for target in ["worker", "block_on"] {
                // Registered on worker 0...
                let sleeps = handle
                    .spawn_on(0, async {
                        let mut all = Vec::new();
                        for i in 0..rounds(10_000) {
                            let mut s = sleep(Duration::from_secs(60 + i % 600));
                            assert!(poll_once(&mut s).await.is_pending());
                            all.push(s);
                        }
                        all
                    })
                    .await
                    .unwrap();
                // ...dropped on worker 1, or here on the block_on thread.
                if target == "worker" {
                    handle
                        .spawn_on(1, async move { drop(sleeps) })
                        .await
                        .unwrap();
                } else {
                    drop(sleeps);
                }
                // Worker 0 applies the queued cancellations before it runs
                // the next task queued to it from another thread.
                let left = handle
                    .spawn_on(0, async { time::__wheel_stats().0 })
                    .await
                    .unwrap();
                assert_eq!(left, base, "{target}: cancelled timers left in the wheel");
            }
        });
    });
}

/// Registers an hour-long sleep from `block_on` (the caller's) while the
/// runtime's only worker is busy, hands the sleep to that worker before it
/// took the queued registration, and returns what `on_worker` makes of it
/// there.
async fn on_the_busy_worker<F, R>(on_worker: impl FnOnce(time::Sleep) -> F + Send + 'static) -> R
where
    F: Future<Output = R> + Send,
    R: Send + 'static,
{
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (sleep_tx, sleep_rx) = std::sync::mpsc::channel::<time::Sleep>();
    // Keeps the only worker busy until it gets the sleep.
    let busy = spawn(async move {
        started_tx.send(()).unwrap();
        on_worker(sleep_rx.recv().unwrap()).await
    });
    started_rx.recv().unwrap();
    let mut s = sleep(Duration::from_secs(3600));
    assert!(poll_once(&mut s).await.is_pending());
    sleep_tx.send(s).unwrap();
    busy.await.unwrap()
}

/// A sleep registered from `block_on` and dropped on its worker before the
/// worker took the registration (it was busy) leaves no timer in the wheel:
/// the queued registration is skipped as cancelled.
#[test]
fn a_sleep_dropped_on_its_worker_before_its_registration_arrived_leaves_no_timer() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            on_the_busy_worker(|s| async move { drop(s) }).await;
            let left = spawn(async { time::__wheel_stats().0 }).await.unwrap();
            assert_eq!(left, 0, "the cancelled registration was linked");
        });
    });
}

/// The same, reset there instead of dropped: the sleep fires at its new
/// deadline, once, and leaves nothing in the wheel. (The reset cannot move
/// the timer in place: it is in no wheel yet, and linking it there would
/// link it a second time when the queued registration arrives.)
#[test]
fn a_sleep_reset_on_its_worker_before_its_registration_arrived_fires_at_the_new_deadline() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let left = on_the_busy_worker(|mut s| async move {
                let target = Instant::now() + Duration::from_millis(5);
                s.reset(target);
                (&mut s).await;
                assert!(Instant::now() >= target, "fired early");
                drop(s);
                time::__wheel_stats().0
            })
            .await;
            assert_eq!(left, 0, "timers left in the wheel");
        });
    });
}

#[test]
fn a_recycled_timer_lets_go_of_its_waker_after_the_turn() {
    struct Flag;
    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {}
    }
    deadline(30, || {
        let rt = rt(1);
        let flag = Arc::new(Flag);
        let waker = Waker::from(flag.clone());
        rt.block_on(async {
            spawn(async move {
                // Armed with our own waker, then cancelled on the worker: the
                // worker pools the entry, waker included, for reuse.
                let mut cx = Context::from_waker(&waker);
                let mut s = sleep(Duration::from_secs(60));
                assert!(Pin::new(&mut s).poll(&mut cx).is_pending());
                drop(s);
                drop(waker);
            })
            .await
            .unwrap();
            // A few more turns of the worker's loop.
            for _ in 0..3 {
                spawn(async {}).await.unwrap();
            }
            assert_eq!(
                Arc::strong_count(&flag),
                1,
                "a spare timer entry kept a waker past its turn"
            );
        });
    });
}

/// CPU time (user + system) of this process's threads whose name starts
/// with `prefix`, from /proc. `None` where /proc is not available.
fn threads_cpu(prefix: &str) -> Option<Duration> {
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = entry.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the parenthesised name: state is field 3; utime and
        // stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        total += f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    }
    Some(Duration::from_secs_f64(total as f64 / ticks_per_sec))
}

#[test]
fn an_idle_runtime_with_a_timer_blocks_instead_of_spinning() {
    deadline(30, || {
        let rt = Runtime::builder()
            .worker_threads(2)
            .thread_name("idle-timer-wk")
            .build()
            .unwrap();
        let Some(before) = threads_cpu("idle-timer-wk") else {
            eprintln!("no /proc: skipping the CPU check");
            return;
        };
        rt.block_on(async {
            // A timer on each worker and one owned via the block_on thread.
            let a = spawn(sleep(Duration::from_millis(300)));
            let b = spawn(sleep(Duration::from_millis(300)));
            sleep(Duration::from_millis(300)).await;
            a.await.unwrap();
            b.await.unwrap();
        });
        let used = threads_cpu("idle-timer-wk").unwrap() - before;
        // Two spinning workers would burn ~600 ms of CPU here; blocking ones
        // a few ms. 150 ms leaves room for a slow, shared machine.
        assert!(
            used < Duration::from_millis(150),
            "workers used {used:?} of CPU"
        );
    });
}

/// Polls `s` once (with a no-op waker), expecting a panic; its message.
fn poll_panic_message(s: &mut time::Sleep) -> String {
    let mut cx = Context::from_waker(Waker::noop());
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = Pin::new(s).poll(&mut cx);
    }))
    .unwrap_err();
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .expect("a string panic")
}

#[test]
fn polling_a_timer_outside_a_runtime_panics_with_a_clear_message() {
    // Creating one is fine.
    let mut s = sleep(Duration::from_millis(1));
    let msg = poll_panic_message(&mut s);
    assert!(msg.contains("outside a strata runtime"), "{msg}");
    assert!(msg.contains("timer"), "{msg}");
}

#[test]
#[allow(clippy::async_yields_async)] // a registered `Sleep` outlives its runtime on purpose
fn timers_left_at_shutdown_do_not_hang_or_keep_tasks_alive() {
    struct DropFlag(Arc<AtomicUsize>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    deadline(30, || {
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt1 = rt(2);
        let pending = rt1.block_on({
            let dropped = dropped.clone();
            async move {
                for _ in 0..100 {
                    let flag = DropFlag(dropped.clone());
                    spawn(async move {
                        let _flag = flag;
                        sleep(Duration::from_secs(3600)).await;
                    });
                }
                // One registered from this thread, outliving the runtime.
                let mut s = sleep(Duration::from_secs(3600));
                assert!(poll_once(&mut s).await.is_pending());
                s
            }
        });
        drop(rt1);
        assert_eq!(dropped.load(Ordering::SeqCst), 100, "tasks kept alive");

        // The survivor, polled outside any runtime: a clear panic, no hang.
        let mut s = pending;
        let msg = poll_panic_message(&mut s);
        assert!(
            msg.contains("shut down"),
            "the message says the runtime is gone: {msg}"
        );

        // Polled inside another runtime, it registers there and fires.
        let rt2 = rt(1);
        let mut s = sleep(Duration::from_millis(20));
        rt2.block_on(async {
            assert!(poll_once(&mut s).await.is_pending());
        });
        drop(rt2);
        let rt3 = rt(1);
        rt3.block_on(async move {
            timeout(Duration::from_secs(5), s)
                .await
                .expect("re-registered timer fired");
        });
    });
}

#[test]
fn zero_past_and_far_deadlines() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            sleep(Duration::ZERO).await;
            sleep_until(Instant::now() - Duration::from_secs(1)).await;
            // `Duration::MAX` must not overflow; it just never fires here.
            let r = timeout(Duration::from_millis(10), sleep(Duration::MAX)).await;
            assert!(r.is_err());
            // Days away: sits in the upper levels, cancels cleanly.
            let far = spawn(async {
                let mut s = sleep(Duration::from_secs(3 * 86_400));
                assert!(poll_once(&mut s).await.is_pending());
                let n = time::__wheel_stats().0;
                drop(s);
                (n, time::__wheel_stats().0)
            });
            let (with, without) = far.await.unwrap();
            assert_eq!(with, without + 1);
        });
    });
}

#[test]
fn many_sleepers_across_threads_all_wake() {
    deadline(60, || {
        let rt = rt(2);
        let woke = Arc::new(Mutex::new(0usize));
        rt.block_on({
            let woke = woke.clone();
            async move {
                let hs: Vec<_> = (0..rounds(20_000))
                    .map(|i| {
                        let woke = woke.clone();
                        spawn(async move {
                            sleep(Duration::from_millis(i % 50)).await;
                            *woke.lock().unwrap() += 1;
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            }
        });
        assert_eq!(*woke.lock().unwrap() as u64, rounds(20_000));
    });
}

/// A Burst interval that is far behind has every tick "due already". Its
/// loop must still yield to the other tasks of its worker, after a budget
/// of ticks (counted, not timed).
#[test]
fn a_burst_interval_that_cannot_keep_up_still_yields() {
    deadline(60, || {
        let rt = rt(1);
        rt.block_on(async {
            // Both tasks go to the one worker, the looping one first; the
            // other only has to get a turn.
            let other_ran = Arc::new(AtomicBool::new(false));
            let (ran, go) = (other_ran.clone(), Arc::new(AtomicBool::new(false)));
            let start = go.clone();
            let ticks_before_other = strata_rt::spawn(async move {
                while !start.load(Ordering::SeqCst) {
                    strata_rt::yield_now().await;
                }
                // Half a minute behind: 30,000 ticks due at once. (Not
                // more: the monotonic clock may start at boot, and a fresh
                // machine may not be up long.)
                let behind = Instant::now()
                    .checked_sub(Duration::from_secs(30))
                    .expect("the machine has been up for 30 s");
                let mut iv = interval_at(behind, Duration::from_millis(1));
                iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
                for n in 0..100_000u32 {
                    iv.tick().await;
                    if ran.load(Ordering::SeqCst) {
                        return Some(n);
                    }
                }
                None
            });
            let o = other_ran.clone();
            strata_rt::spawn(async move {
                go.store(true, Ordering::SeqCst);
                strata_rt::yield_now().await;
                o.store(true, Ordering::SeqCst);
            });
            let n = ticks_before_other.await.unwrap();
            assert!(
                n.is_some_and(|n| n < 10_000),
                "the other task got no turn during {n:?} ticks"
            );
        });
    });
}
