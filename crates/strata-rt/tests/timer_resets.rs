//! Timer resets made off the timer's worker stay cheap: on another worker
//! the timer moves there (later resets there are in place and allocate
//! nothing), and resets off the workers while the owner is busy queue
//! nothing beyond the first; and a sleep armed and dropped on its own worker
//! reuses its entry. Measured with a counting allocator (counts,
//! not times), so these tests have a binary of their own.
// The tests hand registered sleeps out of tasks on purpose.
#![allow(clippy::async_yields_async)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use strata_rt::Runtime;
use strata_rt::time::Sleep;

// ---------------------------------------------------------------------------
// An allocator that counts live bytes (process-wide) and allocations made by
// a thread while it asks for it.

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
    static ALLOCS_HERE: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    LIVE.fetch_add(size as isize, Ordering::Relaxed);
    let _ = COUNT_HERE.try_with(|c| {
        if c.get() {
            let _ = ALLOCS_HERE.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        note_alloc(new_size);
        // SAFETY: the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocs_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCS_HERE.with(|n| n.set(0));
    COUNT_HERE.with(|c| c.set(true));
    let r = f();
    COUNT_HERE.with(|c| c.set(false));
    (r, ALLOCS_HERE.with(|n| n.get()))
}

/// Polls `sleep` once with the current task's waker.
async fn poll_once(sleep: &mut Sleep) {
    std::future::poll_fn(|cx| {
        let _ = Pin::new(&mut *sleep).poll(cx);
        Poll::Ready(())
    })
    .await
}

// ---------------------------------------------------------------------------
// A sleep reset on another worker moves to that worker. A review found an
// intermediate version that kept it with its first worker for good: every
// later reset there took the slow path (a new entry, a Cancel and a
// Register op, a cross-thread wake-up of the owner).

#[test]
fn a_sleep_reset_and_polled_on_another_worker_keeps_allocating_per_reset() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    let allocs = rt.block_on(async {
        // A task on one worker registers the sleep there and hands it over.
        let (owner_thread, sleep) = strata_rt::spawn(async {
            let mut s = strata_rt::time::sleep(Duration::from_secs(3600));
            poll_once(&mut s).await;
            (std::thread::current().id(), s)
        })
        .await
        .unwrap();
        // Find a task on the other worker (spawns from here go round-robin).
        let mut sleep = Some(sleep);
        loop {
            let s = sleep.take().unwrap();
            let (moved, back) = strata_rt::spawn(async move {
                let mut s = s;
                if std::thread::current().id() == owner_thread {
                    return (None, s);
                }
                // Migrate: one reset and poll, as the old code needed.
                s.reset(Instant::now() + Duration::from_secs(3600));
                poll_once(&mut s).await;
                strata_rt::yield_now().await;
                let mut total = 0;
                for i in 0..1000u64 {
                    strata_rt::yield_now().await;
                    let ((), n) = allocs_during(|| {
                        s.reset(Instant::now() + Duration::from_secs(3600 + i));
                    });
                    total += n;
                    poll_once(&mut s).await;
                }
                (Some(total), s)
            })
            .await
            .unwrap();
            if let Some(n) = moved {
                drop(back);
                break n;
            }
            sleep = Some(back);
        }
    });
    assert!(
        allocs < 100,
        "1000 resets of a sleep polled on this worker allocated {allocs} times"
    );
}

// ---------------------------------------------------------------------------
// Resets off the workers while the owner is busy queue nothing beyond the
// first: one that moves a pending timer later only changes its deadline in
// place (the owner links it again when the old deadline comes). Two
// intermediate versions queued two ops and a fresh entry per reset, first
// for every reset, then (inside `block_on`, a reset only stored its
// deadline until the next poll) for every reset on a thread outside any
// runtime and every tick of an `Interval` catching up in `block_on`: while
// the owner was busy the queue grew without bound.

/// Runs `f` while the runtime's only worker is kept busy (a task that
/// blocks its thread); returns what `f` returns.
fn while_the_worker_is_busy<R>(rt: &Runtime, f: impl FnOnce() -> R) -> R {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let blocker = rt.handle().spawn(async move {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    started_rx.recv().unwrap();
    let r = f();
    release_tx.send(()).unwrap();
    rt.block_on(blocker).unwrap();
    r
}

/// Resets (and catch-up ticks) per test: fewer under Miri, an interpreter.
const RESETS: u64 = if cfg!(miri) { 2_000 } else { 200_000 };

/// Allocations made by [`RESETS`] resets of `s`, each later than the last,
/// on this thread.
fn allocs_of_resets(s: &mut Sleep) -> usize {
    let base = Instant::now() + Duration::from_secs(3600);
    let ((), n) = allocs_during(|| {
        for i in 0..RESETS {
            s.reset(base + Duration::from_millis(i));
        }
    });
    n
}

#[test]
fn resets_in_block_on_while_the_owner_is_busy_queue_nothing() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let mut s = rt.block_on(async {
        let mut s = strata_rt::time::sleep(Duration::from_secs(3600));
        // Registered (through the op queue) with the only worker.
        poll_once(&mut s).await;
        // Let the worker take the registration.
        strata_rt::time::sleep(Duration::from_millis(20)).await;
        s
    });
    let allocs = while_the_worker_is_busy(&rt, || rt.block_on(async { allocs_of_resets(&mut s) }));
    assert!(
        allocs < 100,
        "{RESETS} resets in block_on while the owner was busy allocated {allocs} times"
    );
}

#[test]
fn resets_on_a_plain_thread_while_the_owner_is_busy_queue_nothing() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    // Registered directly in the only worker's wheel.
    let mut s = rt.block_on(async {
        strata_rt::spawn(async {
            let mut s = strata_rt::time::sleep(Duration::from_secs(3600));
            poll_once(&mut s).await;
            s
        })
        .await
        .unwrap()
    });
    // This thread is in no runtime now.
    let allocs = while_the_worker_is_busy(&rt, || allocs_of_resets(&mut s));
    assert!(
        allocs < 100,
        "{RESETS} resets on a plain thread while the owner was busy allocated {allocs} times"
    );
}

#[test]
fn an_interval_catching_up_in_block_on_while_the_owner_is_busy_queues_nothing() {
    use strata_rt::time::{MissedTickBehavior, interval};
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let mut iv = rt.block_on(async {
        let mut iv = interval(Duration::from_micros(10));
        iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
        iv.tick().await; // due at once; registers the next tick
        iv.tick().await; // through the wheel, on the only worker
        iv
    });
    let allocs = while_the_worker_is_busy(&rt, || {
        // Held up for 200 ms: 20,000 missed ticks, more than the loop below
        // takes, so each of its ticks is overdue and completes at once.
        std::thread::sleep(Duration::from_millis(200));
        rt.block_on(async {
            let ((), n) = allocs_during(|| {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                for _ in 0..RESETS.min(15_000) {
                    assert!(iv.poll_tick(&mut cx).is_ready());
                }
            });
            n
        })
    });
    assert!(
        allocs < 100,
        "{} catch-up ticks in block_on while the worker was busy allocated {allocs} times",
        RESETS.min(15_000)
    );
}

// ---------------------------------------------------------------------------
// Arming a sleep and dropping it on its own worker (the request-timeout
// pattern) recycles the timer's entry: after the first, the cycle
// allocates nothing.

/// On a task of a fresh one-worker runtime: `cycle` run 10 times to warm
/// up (the first makes the entry, buffers take their size), then 1,000
/// times with allocations counted. `cycle` is given a context with the
/// task's own waker. Returns the count, and the worker's wheel stats
/// before the first cycle and after the last.
fn allocs_of_cycles_on_a_worker(
    cycle: impl Fn(&mut Context<'_>) + Send + Sync + 'static,
) -> (usize, (usize, usize), (usize, usize)) {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    rt.block_on(async {
        strata_rt::spawn(async move {
            let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
            let once = || cycle(&mut Context::from_waker(&waker));
            let before = strata_rt::time::__wheel_stats();
            for _ in 0..10 {
                once();
                strata_rt::yield_now().await;
            }
            let mut total = 0;
            for _ in 0..1000 {
                let ((), n) = allocs_during(once);
                total += n;
                strata_rt::yield_now().await;
            }
            (total, before, strata_rt::time::__wheel_stats())
        })
        .await
        .unwrap()
    })
}

#[test]
fn arming_and_dropping_sleeps_on_their_worker_reuses_one_entry() {
    let (allocs, before, after) = allocs_of_cycles_on_a_worker(|cx| {
        let mut s = strata_rt::time::sleep(Duration::from_secs(3600));
        assert!(Pin::new(&mut s).poll(cx).is_pending());
    });
    // A fresh worker: no timer, no spare entry; at the end the one entry,
    // kept as a spare.
    assert_eq!(before, (0, 0));
    assert_eq!(after, (0, 1));
    assert!(
        allocs < 10,
        "1000 sleeps armed and dropped on their worker allocated {allocs} times"
    );
}

// The same for sleeps that complete (here at their first poll, their
// deadline past) and are then dropped on their worker: the fired entry is
// kept as a spare too.

#[test]
fn completing_and_dropping_sleeps_on_their_worker_reuses_one_entry() {
    // Before the worker's wheel first read the clock, so before any time
    // the wheel can hold as "now": such a sleep completes at its first
    // poll. (A deadline just past now may not: the wheel reads the clock
    // once per turn, and not at all while it is empty; see `sleep_until`.)
    let past = Instant::now() - Duration::from_millis(10);
    let (allocs, _, _) = allocs_of_cycles_on_a_worker(move |cx| {
        let mut s = strata_rt::time::sleep_until(past);
        assert!(Pin::new(&mut s).poll(cx).is_ready());
    });
    assert!(
        allocs < 10,
        "1000 sleeps completed and dropped on their worker allocated {allocs} times"
    );
}
