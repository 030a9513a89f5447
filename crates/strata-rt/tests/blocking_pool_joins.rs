//! The blocking pool keeps its threads' handles and joins them without
//! blocking whoever calls `spawn_blocking`: exited threads past the pool's
//! bound are joined by the next pool thread to exit, and the runtime's
//! drop joins the rest. Hang-guarded; no timing thresholds (the 5 s caps
//! are hang guards).
#![allow(clippy::unwrap_used)]

mod support;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use strata_rt::{Runtime, spawn, spawn_blocking};
use support::{SlowFlags, deadline, wait_for};

/// A thread-local that only records its thread's exit.
struct ExitMark(Arc<AtomicBool>);

impl Drop for ExitMark {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

thread_local! {
    static MARK: RefCell<Option<ExitMark>> = const { RefCell::new(None) };
}

/// `spawn_blocking` from a task does not block the worker thread on
/// another (exited) blocking thread's thread-local destructors, also with
/// the handle list past twice the bound (it joined the finished threads
/// inline, on whatever thread called `spawn_blocking`).
#[test]
fn spawn_blocking_from_a_task_does_not_wait_for_an_exited_thread_s_tls_destructor() {
    deadline(40, || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_blocking_threads(1)
            .blocking_keep_alive(Duration::from_millis(10))
            .build()
            .unwrap();
        let flags = Arc::new(SlowFlags::default());
        // Thread A: leaves a slow thread-local, exits after its keep-alive.
        let f = flags.clone();
        rt.block_on(rt.handle().spawn_blocking(move || {
            support::leave_slow_tls(f, Duration::from_secs(5));
        }))
        .unwrap();
        wait_for(&flags.in_dtor);
        // Thread B: started for the next closure (A is gone), exits too.
        let b_exited = Arc::new(AtomicBool::new(false));
        let b = b_exited.clone();
        rt.block_on(rt.handle().spawn_blocking(move || {
            MARK.with(|m| *m.borrow_mut() = Some(ExitMark(b)));
        }))
        .unwrap();
        wait_for(&b_exited);
        // Thread C, started from a task on the worker: its handle makes
        // three, past twice the bound of one.
        let f = flags.clone();
        let waited = rt.block_on(async move {
            spawn(async move {
                let h = spawn_blocking(|| ());
                let waited = f.done.load(Ordering::SeqCst);
                h.await.unwrap();
                waited
            })
            .await
            .unwrap()
        });
        flags.release.store(true, Ordering::SeqCst);
        drop(rt);
        assert!(
            !waited,
            "spawn_blocking, called on a worker, returned only after another blocking \
             thread's thread-local destructors had run (it joined that thread inline)"
        );
    });
}

/// A runtime with a blocking thread A in a slow thread-local destructor
/// and a thread B that exited after its keep-alive (handles: A, B).
fn runtime_with_two_exited_blocking_threads() -> (Runtime, Arc<SlowFlags>) {
    let rt = Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(1)
        .blocking_keep_alive(Duration::from_millis(10))
        .build()
        .unwrap();
    let flags = Arc::new(SlowFlags::default());
    let f = flags.clone();
    rt.block_on(rt.handle().spawn_blocking(move || {
        support::leave_slow_tls(f, Duration::from_secs(5));
    }))
    .unwrap();
    wait_for(&flags.in_dtor);
    let b_exited = Arc::new(AtomicBool::new(false));
    let b = b_exited.clone();
    rt.block_on(rt.handle().spawn_blocking(move || {
        MARK.with(|m| *m.borrow_mut() = Some(ExitMark(b)));
    }))
    .unwrap();
    wait_for(&b_exited);
    (rt, flags)
}

/// The runtime's drop joins its blocking threads, thread-local
/// destructors included, also those a concurrent `spawn_blocking` moved
/// out of the live list (a caller that joined them itself was not waited
/// for, and the drop returned while a destructor still ran).
#[test]
fn dropping_a_runtime_joins_threads_whose_handles_a_concurrent_submit_took() {
    deadline(40, || {
        let (rt, flags) = runtime_with_two_exited_blocking_threads();
        let handle = rt.handle().clone();
        let (ran_tx, ran_rx) = mpsc::channel::<()>();
        // Starts thread C (handles A, B, C: past twice the bound), then
        // joins A and B itself.
        let caller = std::thread::spawn(move || {
            drop(handle.spawn_blocking(move || ran_tx.send(()).unwrap()));
        });
        ran_rx.recv().unwrap();
        drop(rt);
        let joined = flags.done.load(Ordering::SeqCst);
        flags.release.store(true, Ordering::SeqCst);
        caller.join().unwrap();
        assert!(
            joined,
            "the runtime's drop returned while an exited blocking thread's thread-local \
             destructors still ran (its handle was being joined by a spawn_blocking caller)"
        );
    });
}
