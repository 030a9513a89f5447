//! Stopping a runtime joins its workers (they drop their tasks) whenever
//! nothing asked it not to wait: also while panicking (a review found the
//! drop detached them then). With a time limit it waits no longer than
//! that, and a worker stops after the task it is running.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use strata_rt::Runtime;

struct SlowDrop(Arc<AtomicBool>);
impl Drop for SlowDrop {
    fn drop(&mut self) {
        // A task whose destructor does a little work (closing a file, a
        // socket, flushing a log line).
        std::thread::sleep(Duration::from_millis(20));
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The Runtime docs: "Dropping the runtime stops the workers, drops the
/// tasks that are left, and joins the threads" -- only the wait for
/// blocking closures is skipped while panicking. Since 6166b2a, Drop while
/// panicking passes `Until(now)` to `stop`, which now also applies to the
/// workers: they are detached at once, and the tasks are dropped after
/// the runtime's drop (and the catch_unwind) returned.
#[test]
fn drop_while_panicking_still_drops_the_tasks_before_returning() {
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let r = std::panic::catch_unwind(move || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let guard = SlowDrop(d);
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        rt.handle().spawn(async move {
            let _g = guard;
            s.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        panic!("test panic with a runtime in scope");
    });
    assert!(r.is_err());
    assert!(
        dropped.load(Ordering::SeqCst),
        "the runtime's drop during unwinding returned before its workers dropped their tasks"
    );
}

/// Same with a plain `shutdown_timeout` generous enough for the workers:
/// control (expected to pass).
#[test]
fn shutdown_timeout_waits_for_workers_dropping_tasks() {
    let dropped = Arc::new(AtomicBool::new(false));
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let guard = SlowDrop(dropped.clone());
    rt.block_on(async {
        let (tx, rx) = futures_channel_like();
        strata_rt::spawn(async move {
            let _g = guard;
            tx.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await
        });
        while !rx.load(Ordering::SeqCst) {
            strata_rt::time::sleep(Duration::from_millis(1)).await;
        }
    });
    assert!(rt.shutdown_timeout(Duration::from_secs(5)));
    assert!(dropped.load(Ordering::SeqCst));
}

fn futures_channel_like() -> (Arc<AtomicBool>, Arc<AtomicBool>) {
    let a = Arc::new(AtomicBool::new(false));
    (a.clone(), a)
}

static RELEASE_TLS: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>> =
    std::sync::Mutex::new(None);

struct SlowTlsDtor;
impl Drop for SlowTlsDtor {
    fn drop(&mut self) {
        let rx = RELEASE_TLS.lock().unwrap().take();
        if let Some(rx) = rx {
            let _ = rx.recv();
        }
    }
}

thread_local! {
    static SLOW_TLS: SlowTlsDtor = const { SlowTlsDtor };
}

/// `shutdown_timeout` "waits at most `timeout` in all": a worker thread
/// reports itself finished before its thread-locals' destructors have run,
/// and joining it used to wait for them, without bound.
#[test]
fn shutdown_timeout_does_not_wait_for_a_worker_s_thread_local_destructors() {
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    *RELEASE_TLS.lock().unwrap() = Some(release_rx);
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    rt.block_on(async {
        strata_rt::spawn(async { SLOW_TLS.with(|_| ()) })
            .await
            .unwrap();
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let stopper = std::thread::spawn(move || {
        let r = rt.shutdown_timeout(Duration::from_millis(100));
        let _ = done_tx.send(r);
    });
    // A hang guard, far above the 100 ms asked for.
    let got = done_rx.recv_timeout(Duration::from_secs(10));
    let _ = release_tx.send(());
    stopper.join().unwrap();
    assert!(
        got.is_ok(),
        "shutdown_timeout(100ms) had not returned after 10 s: it joined a worker \
         blocked in a thread-local destructor"
    );
}

/// A worker stops after the task it is running: a task queued behind it
/// is dropped, never polled, once `shutdown_background` has returned. It
/// used to run the rest of its batch of up to 64 tasks first.
#[test]
fn a_task_queued_behind_a_running_one_is_not_polled_after_shutdown_background() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let (running_tx, running_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (queued_tx, queued_rx) = std::sync::mpsc::channel();
    let polled_after_stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(AtomicBool::new(false));
    let (p, s) = (polled_after_stop.clone(), stopped.clone());
    rt.handle().spawn(async move {
        // Queued on this worker, behind this task.
        let queued = strata_rt::spawn(async move {
            if s.load(Ordering::SeqCst) {
                p.store(true, Ordering::SeqCst);
            }
        });
        let _ = queued_tx.send(queued);
        let _ = running_tx.send(());
        let _ = go_rx.recv();
    });
    let queued = queued_rx.recv().unwrap();
    running_rx.recv().unwrap();
    rt.shutdown_background();
    stopped.store(true, Ordering::SeqCst);
    go_tx.send(()).unwrap();
    let r = support::plain_block_on(queued);
    assert!(
        !polled_after_stop.load(Ordering::SeqCst),
        "a task queued before the stop was polled after shutdown_background returned ({r:?})"
    );
    assert!(r.unwrap_err().is_cancelled());
}

static BETWEEN_RT: std::sync::Mutex<Option<Runtime>> = std::sync::Mutex::new(None);
static BETWEEN_TARGET: std::sync::Mutex<Option<std::task::Waker>> = std::sync::Mutex::new(None);
static BETWEEN_STOPPED: AtomicBool = AtomicBool::new(false);
static BETWEEN_POLLED_AFTER: AtomicBool = AtomicBool::new(false);

/// A timer's waker: stops the runtime, then wakes the target task. It
/// runs on the worker while it fires timers, between two batches of tasks.
struct StopThenWake;
impl std::task::Wake for StopThenWake {
    fn wake(self: Arc<Self>) {
        if let Some(rt) = BETWEEN_RT.lock().unwrap().take() {
            rt.shutdown_background();
            BETWEEN_STOPPED.store(true, Ordering::SeqCst);
        }
        if let Some(w) = BETWEEN_TARGET.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// A stop requested while the worker runs no task (here from a timer's
/// waker, while it fires timers) lets no further task run: it used to
/// let the first task of the next batch run, the stop being looked for
/// only after a task.
#[test]
fn a_worker_asked_to_stop_between_batches_polls_no_further_task() {
    struct SendOnDrop(std::sync::mpsc::Sender<()>);
    impl Drop for SendOnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let handle = rt.handle().clone();
    *BETWEEN_RT.lock().unwrap() = Some(rt);
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
    let (armed_tx, armed_rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _guard = SendOnDrop(dropped_tx);
        let mut first = true;
        std::future::poll_fn(|cx| {
            if first {
                first = false;
                *BETWEEN_TARGET.lock().unwrap() = Some(cx.waker().clone());
                return std::task::Poll::Pending;
            }
            if BETWEEN_STOPPED.load(Ordering::SeqCst) {
                BETWEEN_POLLED_AFTER.store(true, Ordering::SeqCst);
            }
            std::task::Poll::Ready(())
        })
        .await;
        std::future::pending::<()>().await
    });
    while BETWEEN_TARGET.lock().unwrap().is_none() {
        std::thread::yield_now();
    }
    handle.spawn(async move {
        let mut s = strata_rt::time::sleep(Duration::from_millis(20));
        {
            let w = std::task::Waker::from(Arc::new(StopThenWake));
            let mut cx = std::task::Context::from_waker(&w);
            assert!(std::pin::Pin::new(&mut s).poll(&mut cx).is_pending());
        }
        armed_tx.send(()).unwrap();
        std::future::pending::<()>().await;
        drop(s);
    });
    armed_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    dropped_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the task was never dropped");
    assert!(BETWEEN_STOPPED.load(Ordering::SeqCst));
    assert!(
        !BETWEEN_POLLED_AFTER.load(Ordering::SeqCst),
        "the worker polled a task after it had been asked to stop, between batches"
    );
}

static OPS_RT: std::sync::Mutex<Option<Runtime>> = std::sync::Mutex::new(None);
static OPS_STOPPED: AtomicBool = AtomicBool::new(false);
static OPS_POLLED_AFTER: AtomicBool = AtomicBool::new(false);
static OPS_BUSY: AtomicBool = AtomicBool::new(false);
static OPS_GO: AtomicBool = AtomicBool::new(false);
static OPS_WHEEL_KEPT: AtomicBool = AtomicBool::new(false);

/// A timer's waker that stops the runtime (on the worker, which is where
/// the worker fires a registration that was already due when applied).
struct StopFromTimerOp;
impl std::task::Wake for StopFromTimerOp {
    fn wake(self: Arc<Self>) {
        if let Some(rt) = OPS_RT.lock().unwrap().take() {
            rt.shutdown_background();
            OPS_STOPPED.store(true, Ordering::SeqCst);
        }
    }
}

struct OpsSendOnDrop(std::sync::mpsc::Sender<()>);
impl Drop for OpsSendOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// The same for a stop made by a timer's waker while the worker applies
/// the timer ops other threads queued (a registration already due fires
/// there): the ops were applied after the look at the stop, and the next
/// batch's first task ran (a review found it).
#[test]
#[allow(clippy::async_yields_async)] // the registered sleep is handed out on purpose
fn a_stop_from_a_timer_op_applied_between_batches_lets_no_further_task_run() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let handle = rt.handle().clone();
    // A long timer keeps the wheel non-empty, so that each turn advances
    // it to "now" (a registration behind "now" is then due at once).
    handle.spawn(async {
        OPS_WHEEL_KEPT.store(true, Ordering::SeqCst);
        strata_rt::time::sleep(Duration::from_secs(3600)).await;
    });
    while !OPS_WHEEL_KEPT.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _guard = OpsSendOnDrop(dropped_tx);
        let mut first = true;
        std::future::poll_fn(|cx| -> std::task::Poll<()> {
            if first {
                first = false;
                // Keep the worker busy while the registration is queued,
                // then until its deadline has passed; then yield.
                OPS_BUSY.store(true, Ordering::SeqCst);
                while !OPS_GO.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                std::thread::sleep(Duration::from_millis(50));
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            if OPS_STOPPED.load(Ordering::SeqCst) {
                OPS_POLLED_AFTER.store(true, Ordering::SeqCst);
            }
            std::task::Poll::Pending
        })
        .await
    });
    while !OPS_BUSY.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // Off the workers (in block_on): the registration is a queued op.
    let sleep = rt.block_on(async {
        let mut s = strata_rt::time::sleep(Duration::from_millis(5));
        let w = std::task::Waker::from(Arc::new(StopFromTimerOp));
        let mut cx = std::task::Context::from_waker(&w);
        assert!(std::pin::Pin::new(&mut s).poll(&mut cx).is_pending());
        s
    });
    *OPS_RT.lock().unwrap() = Some(rt);
    OPS_GO.store(true, Ordering::SeqCst);
    dropped_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the task was never dropped");
    drop(sleep);
    assert!(
        OPS_STOPPED.load(Ordering::SeqCst),
        "the timer's waker never ran"
    );
    assert!(
        !OPS_POLLED_AFTER.load(Ordering::SeqCst),
        "the worker polled a task after it had been asked to stop, between batches"
    );
}

/// `shutdown_timeouts`: the workers get their limit to drop their tasks,
/// the blocking closures theirs, both counted from the call.
#[test]
fn shutdown_timeouts_waits_for_the_workers_and_not_for_blocking_closures() {
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let guard = SlowDrop(dropped.clone());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    rt.handle().spawn(async move {
        let _g = guard;
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await
    });
    started_rx.recv().unwrap();
    let (running_tx, running_rx) = std::sync::mpsc::channel();
    let f = finished.clone();
    rt.handle().spawn_blocking(move || {
        running_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        f.store(true, Ordering::SeqCst);
    });
    running_rx.recv().unwrap();
    assert!(
        !rt.shutdown_timeouts(Duration::from_secs(30), Duration::ZERO),
        "a blocking closure was still running"
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the workers were not waited for"
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "the blocking closure was waited for"
    );
}

/// The same with workers slower to stop than the closure runs: the
/// closures are counted at their own (earlier) limit. They used to be
/// counted after the wait for the workers, by when this one had ended,
/// and the call said nothing was left running (a review).
#[test]
fn shutdown_timeouts_counts_blocking_closures_at_their_own_limit() {
    struct SlowerDrop;
    impl Drop for SlowerDrop {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(600));
        }
    }
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    rt.handle().spawn(async move {
        let _g = SlowerDrop;
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await
    });
    started_rx.recv().unwrap();
    let (running, is_running) = std::sync::mpsc::channel();
    rt.handle().spawn_blocking(move || {
        running.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    });
    is_running.recv().unwrap();
    assert!(
        !rt.shutdown_timeouts(Duration::from_secs(10), Duration::ZERO),
        "a closure running past its zero limit was counted as done"
    );
}
