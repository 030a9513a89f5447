//! The executor around a task's completion and placement: an output whose
//! destructor panics, a foreign executor's waker that panics (when woken or
//! when dropped), `is_finished` of an aborted task, and tasks spawned
//! off-worker spreading over the workers. No wall-clock
//! thresholds: `deadline` is a hang guard.
//!
//! Two tests run their scenario in a child process (this test binary
//! re-executed with `STRATA_TEST_CHILD` set): what they check is that the
//! process survives, which an `abort()` would not.

mod support;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, RawWaker, RawWakerVTable, Wake, Waker};
use std::time::Duration;

use strata_rt::net::TcpListener;
use strata_rt::{JoinHandle, spawn, yield_now};
use support::{Rng, deadline, rounds, rt};

const CHILD_ENV: &str = "STRATA_TEST_CHILD";

/// In the parent: re-runs test `name` alone in a child process and fails
/// unless the child exits successfully. In the child (`STRATA_TEST_CHILD` names
/// this test): returns `true`, and the caller runs the scenario.
fn in_child(name: &str) -> bool {
    // Miri cannot start processes: under it the scenario runs in the test's
    // own process, where an abort still fails the run.
    if cfg!(miri) || std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("re-run the test binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr: String = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(12)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "the scenario took the process down ({}); child stderr:\n{stderr}",
        out.status
    );
    // The child must really have run the test (not filtered it out).
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 passed"),
        "child did not run {name}:\n{stdout}"
    );
    false
}

/// Panics when dropped (the way a guard that checks an invariant on drop
/// does); the panic is the task's, not the worker's.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("audit9: PanicsOnDrop dropped");
    }
}

/// Checks that the runtime's only worker still runs tasks.
fn worker_still_runs(rt: &strata_rt::Runtime) {
    let v = rt.block_on(async { spawn(async { 7 }).await.unwrap() });
    assert_eq!(v, 7);
}

// ---------------------------------------------------------------------------
// A detached task whose output panics when dropped.
//
// Dropping the JoinHandle detaches the task; when it then completes, its
// output is dropped by the worker, which async-task does under an
// abort-on-panic guard: the output's drop must be caught as the future's
// is (it used to abort the process). tokio catches it too
// (`Harness::complete`).

#[test]
fn detached_task_output_that_panics_on_drop_does_not_abort_the_process() {
    const NAME: &str = "detached_task_output_that_panics_on_drop_does_not_abort_the_process";
    if !in_child(NAME) {
        return;
    }
    deadline(20, || {
        let rt = rt(1);
        rt.block_on(async {
            let go = Arc::new(AtomicBool::new(false));
            let g = go.clone();
            let handle = spawn(async move {
                while !g.load(Ordering::Acquire) {
                    yield_now().await;
                }
                PanicsOnDrop
            });
            // Detach before it completes: the worker drops the output.
            drop(handle);
            go.store(true, Ordering::Release);
        });
        worker_still_runs(&rt);
        // The same for a blocking closure: the pool thread drops the output.
        rt.block_on(async {
            let go = Arc::new(AtomicBool::new(false));
            let g = go.clone();
            drop(strata_rt::spawn_blocking(move || {
                while !g.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                PanicsOnDrop
            }));
            go.store(true, Ordering::Release);
            // Let the closure finish (and drop its output) before the
            // runtime goes: it must not take the process with it.
            for _ in 0..200 {
                strata_rt::time::sleep(Duration::from_millis(1)).await;
            }
        });
        worker_still_runs(&rt);
    });
}

// ---------------------------------------------------------------------------
// A JoinHandle awaited under a foreign executor's waker that panics when
// woken. async-task wakes the handle's awaiter under an abort-on-panic
// guard; the crate's policy (`wake_contained`, used by the reactor and the
// timer driver) is that a foreign waker's panic is contained and logged
// (it used to abort the process when the task completed or was aborted);
// tokio catches it too.

/// A task that yields until `go` is set, then returns `v`.
fn held_task(rt: &strata_rt::Runtime, v: u32) -> (Arc<AtomicBool>, JoinHandle<u32>) {
    let go = Arc::new(AtomicBool::new(false));
    let g = go.clone();
    let handle = rt.handle().spawn(async move {
        while !g.load(Ordering::Acquire) {
            yield_now().await;
        }
        v
    });
    (go, handle)
}

/// Lets a `held_task` finish (its worker then wakes whatever waits on its
/// handle) and waits until it has.
fn release(go: &AtomicBool, handle: &JoinHandle<u32>) {
    go.store(true, Ordering::Release);
    while !handle.is_finished() {
        std::thread::yield_now();
    }
}

struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("a foreign executor's waker panicked");
    }
}

#[test]
fn join_handle_awaiter_waker_that_panics_does_not_abort_the_process() {
    const NAME: &str = "join_handle_awaiter_waker_that_panics_does_not_abort_the_process";
    if !in_child(NAME) {
        return;
    }
    deadline(20, || {
        let rt = rt(1);
        let (go, mut handle) = held_task(&rt, 3);
        // Poll the handle once from this thread (no runtime needed) with a
        // waker of "another executor" that panics when woken.
        let waker = Waker::from(Arc::new(PanickingWaker));
        let mut cx = Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut handle).poll(&mut cx).is_pending());
        release(&go, &handle);
        worker_still_runs(&rt);
        // The output is still there for a poll with a sane waker.
        assert_eq!(support::plain_block_on(handle).unwrap(), 3);
    });
}

/// The same from a blocking-pool thread: another executor, run in a
/// `spawn_blocking` closure, polls the handle with its own waker, which
/// panics when woken (blocking threads counted as inside the runtime and
/// got no forwarding waker, so the process aborted).
#[test]
fn panicking_foreign_waker_on_a_blocking_thread_does_not_abort() {
    const NAME: &str = "panicking_foreign_waker_on_a_blocking_thread_does_not_abort";
    if !in_child(NAME) {
        return;
    }
    deadline(20, || {
        let rt = rt(1);
        let (go, mut handle) = held_task(&rt, 5);
        // Another executor, run from a blocking closure, polls the handle
        // once with its own waker, which panics when woken.
        let polled = rt.block_on(rt.handle().spawn_blocking(move || {
            let waker = Waker::from(Arc::new(PanickingWaker));
            let pending = Pin::new(&mut handle)
                .poll(&mut Context::from_waker(&waker))
                .is_pending();
            (pending, handle)
        }));
        let (pending, handle) = polled.unwrap();
        assert!(pending);
        release(&go, &handle);
        worker_still_runs(&rt);
    });
}

/// The same on a worker: a task polls a handle of a task on the other
/// worker with the waker of an executor nested in it, which panics when
/// woken. Being on a worker does not make a waker the task's own: only the
/// polling task's own waker goes to async-task unwrapped (every waker on a
/// worker did, and the process aborted).
#[test]
fn panicking_waker_of_an_executor_nested_in_a_task_does_not_abort() {
    const NAME: &str = "panicking_waker_of_an_executor_nested_in_a_task_does_not_abort";
    if !in_child(NAME) {
        return;
    }
    deadline(20, || {
        let rt = rt(2);
        let go = Arc::new(AtomicBool::new(false));
        let g = go.clone();
        let target: JoinHandle<u32> = rt.handle().spawn_on(1, async move {
            while !g.load(Ordering::Acquire) {
                yield_now().await;
            }
            9
        });
        let polled = rt.block_on(rt.handle().spawn_on(0, async move {
            let mut target = target;
            let waker = Waker::from(Arc::new(PanickingWaker));
            let pending = Pin::new(&mut target)
                .poll(&mut Context::from_waker(&waker))
                .is_pending();
            (pending, target)
        }));
        let (pending, target) = polled.unwrap();
        assert!(pending);
        release(&go, &target);
        worker_still_runs(&rt);
        assert_eq!(support::plain_block_on(target).unwrap(), 9);
    });
}

/// Records that it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// A handle polled by another executor, then polled again with a different
/// waker (the future moved to another of its tasks, say): the task's
/// completion wakes the latest waker, not the first one.
#[test]
fn a_handle_polled_again_with_another_waker_wakes_the_latest_one() {
    deadline(20, || {
        let rt = rt(1);
        let (go, mut handle) = held_task(&rt, 6);
        let first = Arc::new(Flag(AtomicBool::new(false)));
        let latest = Arc::new(Flag(AtomicBool::new(false)));
        for flag in [&first, &latest] {
            let waker = Waker::from(flag.clone());
            let polled = Pin::new(&mut handle).poll(&mut Context::from_waker(&waker));
            assert!(polled.is_pending());
        }
        go.store(true, Ordering::Release);
        while !first.0.load(Ordering::Acquire) && !latest.0.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        assert!(
            latest.0.load(Ordering::Acquire),
            "the latest waker was not woken"
        );
        assert!(
            !first.0.load(Ordering::Acquire),
            "a replaced waker was woken"
        );
        assert_eq!(support::plain_block_on(handle).unwrap(), 6);
    });
}

/// A waker whose data pointer is null (a static waker of another executor)
/// and that panics when woken.
fn null_data_panicking_waker() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(std::ptr::null(), &NULL_DATA_PANICKING)
    }
    fn wake(_: *const ()) {
        panic!("a foreign executor's static waker panicked");
    }
    fn drop(_: *const ()) {}
    static NULL_DATA_PANICKING: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);
    // SAFETY: the vtable's functions ignore the (null) data pointer, and
    // `clone` returns a waker with the same vtable: the `RawWaker`
    // contract holds.
    unsafe { Waker::from_raw(clone(std::ptr::null())) }
}

/// The same with a foreign waker whose data pointer is null, polled off
/// the runtime, where no task is being polled: it is not taken for the
/// polling task's own waker (whose record there is null too), so it is
/// wrapped, and its panic is contained.
#[test]
fn a_panicking_foreign_waker_with_null_data_is_not_taken_for_a_tasks_own() {
    const NAME: &str = "a_panicking_foreign_waker_with_null_data_is_not_taken_for_a_tasks_own";
    if !in_child(NAME) {
        return;
    }
    deadline(20, || {
        let rt = rt(1);
        let (go, mut handle) = held_task(&rt, 4);
        let waker = null_data_panicking_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
        release(&go, &handle);
        worker_still_runs(&rt);
        assert_eq!(support::plain_block_on(handle).unwrap(), 4);
    });
}

// ---------------------------------------------------------------------------
// `spawn` from `block_on` spreads tasks over the workers, also when the
// caller creates a socket or polls a timer between spawns. One round-robin
// count shared by spawning, socket and timer registration moved twice per
// connection in the ordinary accept loop in `block_on` (accept registers
// the stream, then spawn), and with two workers put every connection task
// on the same worker; a `sleep` per job did the same.

fn worker_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no TCP sockets")]
fn accept_loop_in_block_on_spreads_connection_tasks_over_workers() {
    deadline(20, || {
        let rt = rt(2);
        let names = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let clients = std::thread::spawn(move || {
                (0..8)
                    .map(|_| std::net::TcpStream::connect(addr).unwrap())
                    .collect::<Vec<_>>()
            });
            let mut handles = Vec::new();
            for _ in 0..8 {
                let (stream, _) = listener.accept().await.unwrap();
                handles.push(spawn(async move {
                    drop(stream);
                    worker_name()
                }));
            }
            let mut names = HashSet::new();
            for h in handles {
                names.insert(h.await.unwrap());
            }
            drop(clients.join().unwrap());
            names
        });
        assert_eq!(
            names.len(),
            2,
            "8 connection tasks spawned from block_on all ran on {names:?}"
        );
    });
}

#[test]
fn spawn_after_a_timer_in_block_on_spreads_tasks_over_workers() {
    deadline(20, || {
        let rt = rt(2);
        let names = rt.block_on(async {
            let mut handles = Vec::new();
            for _ in 0..8 {
                // A paced producer: one short sleep per job.
                strata_rt::time::sleep(Duration::from_millis(1)).await;
                handles.push(spawn(async { worker_name() }));
            }
            let mut names = HashSet::new();
            for h in handles {
                names.insert(h.await.unwrap());
            }
            names
        });
        assert_eq!(
            names.len(),
            2,
            "8 tasks spawned from block_on all ran on {names:?}"
        );
    });
}

/// `abort` does not interrupt a poll under way: a task that aborts itself
/// and then returns in the same poll completes, and its handle gives the
/// output (as documented, and as in tokio).
#[test]
fn a_task_aborted_in_its_last_poll_completes() {
    deadline(20, || {
        let rt = rt(1);
        let slot: Arc<std::sync::Mutex<Option<JoinHandle<u32>>>> = Default::default();
        let s = slot.clone();
        let h = rt.handle().spawn(async move {
            loop {
                if let Some(me) = s.lock().unwrap().as_ref() {
                    assert!(!me.is_finished());
                    me.abort();
                    return 1;
                }
                yield_now().await;
            }
        });
        *slot.lock().unwrap() = Some(h);
        let h = loop {
            let done = slot
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|h| h.is_finished());
            if done {
                break slot.lock().unwrap().take().unwrap();
            }
            std::thread::yield_now();
        };
        assert_eq!(support::plain_block_on(h).unwrap(), 1);
    });
}

struct PanicsWhenDropped;
impl Wake for PanicsWhenDropped {
    fn wake(self: Arc<Self>) {}
}
impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic!("test: a foreign waker panicked while being dropped");
    }
}

/// A handle polled once by another executor, then dropped before its task
/// ends (a `select` that lost): the task's completion wakes and drops the
/// last copy of that executor's waker under async-task's abort-on-panic
/// guard. A waker whose destructor panics used to abort the process; the
/// panic is now caught and logged, and the runtime carries on.
#[test]
fn a_foreign_waker_that_panics_when_dropped_does_not_abort_the_process() {
    const NAME: &str = "a_foreign_waker_that_panics_when_dropped_does_not_abort_the_process";
    if !in_child(NAME) {
        return;
    }
    deadline(20, || {
        let rt = rt(1);
        let go = Arc::new(AtomicBool::new(false));
        let g = go.clone();
        let mut handle = rt.handle().spawn(async move {
            while !g.load(Ordering::Acquire) {
                yield_now().await;
            }
            1u32
        });
        {
            let waker = Waker::from(Arc::new(PanicsWhenDropped));
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
        }
        drop(handle);
        go.store(true, Ordering::Release);
        for _ in 0..3 {
            let v = rt.block_on(async { spawn(async { 7 }).await.unwrap() });
            assert_eq!(v, 7);
        }
    });
}

/// Says that its destructor has started, then blocks it until released.
struct BlocksInDrop {
    dropping: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}
impl Drop for BlocksInDrop {
    fn drop(&mut self) {
        let _ = self.dropping.send(());
        let _ = self.release.recv();
    }
}

/// `is_finished` of an aborted task is `true` only once its future has
/// been dropped, so that the handle is then ready (as tokio's): it used to
/// turn `true` as the worker began dropping the future.
#[test]
fn an_aborted_task_is_not_finished_while_its_future_is_being_dropped() {
    deadline(30, || {
        let rt = rt(1);
        let (release_tx, release) = std::sync::mpsc::channel();
        let (dropping, dropping_rx) = std::sync::mpsc::channel();
        let (polled_tx, polled_rx) = std::sync::mpsc::channel();
        let guard = BlocksInDrop { dropping, release };
        let mut handle = rt.handle().spawn(async move {
            let _guard = guard;
            let _ = polled_tx.send(());
            std::future::pending::<()>().await
        });
        polled_rx.recv().unwrap();
        handle.abort();
        dropping_rx.recv().unwrap();
        let early = handle.is_finished();
        release_tx.send(()).unwrap();
        while !handle.is_finished() {
            std::thread::yield_now();
        }
        let ready = Pin::new(&mut handle)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready();
        assert!(!early, "finished while the future was still being dropped");
        assert!(ready, "finished, yet the handle was not ready");
    });
}

/// `abort` racing the worker's run of the task: an abort that landed
/// after the worker looked at the abort flag, but before async-task
/// marked the task running, was lost (its wake-up found the task still
/// scheduled), and the task was polled and left pending for good, so
/// awaiting its handle hung (seen once in CI; here within thousands of
/// rounds under load). Random spins move the abort across the window.
#[test]
fn an_abort_racing_the_run_of_its_task_is_not_lost() {
    deadline(120, || {
        let rt = rt(1);
        let mut rng = Rng::new(0x5eed_ab07);
        rt.block_on(async move {
            for _ in 0..rounds(20_000) {
                let t = strata_rt::spawn(std::future::pending::<()>());
                for _ in 0..rng.below(rounds(20_000)) {
                    std::hint::spin_loop();
                }
                t.abort();
                assert!(t.await.unwrap_err().is_cancelled());
            }
        });
    });
}

/// A panic payload whose own destructor panics.
struct PayloadPanicsOnDrop;

impl Drop for PayloadPanicsOnDrop {
    fn drop(&mut self) {
        panic!("test: the payload panicked while dropped");
    }
}

/// A future whose destructor panics with a [`PayloadPanicsOnDrop`]: the
/// panic was caught, but its payload was then dropped outside any guard,
/// unwinding into async-task's abort-on-panic guard, which aborted the
/// process. It is leaked now, as an output's already was.
#[test]
// The payload is leaked on purpose, which Miri reports as a leak.
#[cfg_attr(miri, ignore)]
fn a_future_dropped_with_a_panic_whose_payload_panics_does_not_abort() {
    struct PanicsWithAPanickyPayload;
    impl Drop for PanicsWithAPanickyPayload {
        fn drop(&mut self) {
            std::panic::panic_any(PayloadPanicsOnDrop);
        }
    }
    if !in_child("a_future_dropped_with_a_panic_whose_payload_panics_does_not_abort") {
        return;
    }
    deadline(8, || {
        let rt = rt(1);
        let (started_tx, started) = std::sync::mpsc::channel();
        drop(rt.handle().spawn(async move {
            let _guard = PanicsWithAPanickyPayload;
            let _ = started_tx.send(());
            std::future::pending::<()>().await
        }));
        started.recv().unwrap();
        // Dropped at shutdown, on the worker.
        drop(rt);
    });
}

/// The same payload from a foreign waker's `wake`: the handle's awaiter is
/// woken under `contain`, which caught the panic and then dropped the
/// payload unguarded, into async-task's abort-on-panic guard.
#[test]
// The payload is leaked on purpose, which Miri reports as a leak.
#[cfg_attr(miri, ignore)]
fn a_foreign_waker_panicking_with_a_panicky_payload_does_not_abort() {
    struct PanicsWithAPanickyPayload;
    impl Wake for PanicsWithAPanickyPayload {
        fn wake(self: Arc<Self>) {
            std::panic::panic_any(PayloadPanicsOnDrop);
        }
    }
    if !in_child("a_foreign_waker_panicking_with_a_panicky_payload_does_not_abort") {
        return;
    }
    deadline(20, || {
        let rt = rt(1);
        let (go, mut handle) = held_task(&rt, 5);
        let waker = Waker::from(Arc::new(PanicsWithAPanickyPayload));
        assert!(
            Pin::new(&mut handle)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        release(&go, &handle);
        worker_still_runs(&rt);
        assert_eq!(support::plain_block_on(handle).unwrap(), 5);
    });
}
