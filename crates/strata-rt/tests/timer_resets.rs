//! Timer resets made off the timer's worker stay cheap: on another worker
//! the timer moves there (later resets there are in place and allocate
//! nothing), and resets inside `block_on` while the owner is busy queue
//! nothing beyond the first; and a sleep armed and dropped on its own worker
//! reuses its entry. Measured with a counting allocator (counts,
//! not times), so these tests have a binary of their own.

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
// Resets inside `block_on`, with no poll in between, cancel the
// registration once and then only store their deadline. The intermediate
// version queued two ops and a fresh entry per reset: while the owner was
// busy the queue grew without bound.

#[test]
fn resets_off_a_busy_owner_grow_its_op_queue_without_bound() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let grown = rt.block_on(async move {
        let mut s = strata_rt::time::sleep(Duration::from_secs(3600));
        // Registered (through the op queue) with the only worker.
        poll_once(&mut s).await;
        // Let the worker take the registration, then keep it busy.
        strata_rt::time::sleep(Duration::from_millis(20)).await;
        let blocker = strata_rt::spawn(async move {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        started_rx.recv().unwrap();
        let before = LIVE.load(Ordering::Relaxed);
        let base = Instant::now() + Duration::from_secs(3600);
        for i in 0..200_000u64 {
            s.reset(base + Duration::from_millis(i));
        }
        let grown = LIVE.load(Ordering::Relaxed) - before;
        release_tx.send(()).unwrap();
        blocker.await.unwrap();
        drop(s);
        grown
    });
    assert!(
        grown < 4 << 20,
        "200000 resets while the owner was busy left {} MB queued",
        grown >> 20
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
