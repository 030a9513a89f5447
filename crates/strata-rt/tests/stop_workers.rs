//! Stopping a runtime joins its workers (they drop their tasks) whenever
//! nothing asked it not to wait: also while panicking (a review found the
//! drop detached them then).

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
