//! `Handle::spawn_local_on`: a local task made on its worker from another
//! thread. Its handle is the local task's own: an abort drops the future
//! `make` built before the handle reports it cancelled, and an output the
//! task produced before the abort is kept. No wall-clock thresholds:
//! `deadline` is a hang guard, and the order of events is set by holding
//! the worker with blocking tasks.

mod support;

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use support::{deadline, plain_block_on, rt};

struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Queues a task that holds worker `worker` once it runs, until the
/// returned sender is dropped; the receiver hears when it starts holding.
fn holder(rt: &strata_rt::Runtime, worker: usize) -> (mpsc::Sender<()>, mpsc::Receiver<()>) {
    let (release, released) = mpsc::channel::<()>();
    let (running_tx, running) = mpsc::channel();
    drop(rt.handle().spawn_on(worker, async move {
        let _ = running_tx.send(());
        let _ = released.recv();
    }));
    (release, running)
}

/// An out-of-range worker index names the API that was called.
#[test]
fn an_out_of_range_worker_names_the_api() {
    let rt = rt(1);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(rt.handle().spawn_local_on(3, || async {}));
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().expect("a formatted message");
    assert!(msg.contains("spawn_local_on(3)"), "{msg}");
}

#[test]
fn aborting_the_handle_cancels_the_local_task() {
    deadline(30, || {
        let rt = rt(1);
        let h = rt.handle().clone();
        let (started, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (s, d) = (started.clone(), drops.clone());
        rt.block_on(async move {
            let jh = h.spawn_local_on(0, move || async move {
                let _rc = Rc::new(());
                let _count = DropCount(d);
                s.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await
            });
            let pause = std::time::Duration::from_millis(1);
            while started.load(Ordering::SeqCst) == 0 {
                strata_rt::time::sleep(pause).await;
            }
            jh.abort();
            assert!(jh.await.unwrap_err().is_cancelled());
            assert_eq!(
                drops.load(Ordering::SeqCst),
                1,
                "dropped by the time it is cancelled"
            );
        });
    });
}

/// `abort` and `is_finished` promise that a cancelled handle's future has
/// been dropped. The handle used to be a wrapper task's, which only asked
/// the local task to abort: the handle said cancelled while the future
/// (and what it owned) lived on, until the worker got round to it behind
/// the tasks queued ahead.
#[test]
fn a_cancelled_handle_means_the_future_is_dropped() {
    deadline(8, || {
        let rt = rt(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let (started_tx, started) = mpsc::channel();
        let d = drops.clone();
        let handle = rt.handle().spawn_local_on(0, move || {
            let count = DropCount(d);
            async move {
                let _count = count;
                let _ = started_tx.send(());
                std::future::pending::<()>().await
            }
        });
        started.recv().unwrap();
        // The abort, then a second holder, queue behind the first holder.
        let (first, first_runs) = holder(&rt, 0);
        first_runs.recv().unwrap();
        handle.abort();
        let (second, second_runs) = holder(&rt, 0);
        drop(first);
        second_runs.recv().unwrap();
        // The second holder runs: the worker is held again.
        let result = plain_block_on(handle);
        let dropped_when_cancelled = drops.load(Ordering::SeqCst);
        drop(second);
        assert!(result.unwrap_err().is_cancelled());
        assert_eq!(
            dropped_when_cancelled, 1,
            "cancelled while the future was alive"
        );
    });
}

/// `abort` keeps the output of a task that had finished before it. The
/// wrapper task the handle used to belong to could still be queued when
/// the local task finished; an abort then dropped it, and the output with
/// it.
#[test]
fn an_output_made_before_the_abort_is_kept() {
    deadline(8, || {
        let rt = rt(1);
        let (go, mut gone) = strata_rt::sync::mpsc::unbounded::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let (started_tx, started) = mpsc::channel();
        let handle = rt.handle().spawn_local_on(0, move || async move {
            let _ = started_tx.send(());
            let _ = gone.recv().await;
            flag.store(true, Ordering::SeqCst);
            7
        });
        started.recv().unwrap();
        // While the worker is held: wake the local task, then queue a
        // second holder behind it. Released, the worker finishes the task
        // and is held again while the test aborts.
        let (first, first_runs) = holder(&rt, 0);
        first_runs.recv().unwrap();
        go.unbounded_send(()).unwrap();
        let (second, second_runs) = holder(&rt, 0);
        drop(first);
        second_runs.recv().unwrap();
        assert!(
            finished.load(Ordering::SeqCst),
            "set-up: the task has finished"
        );
        handle.abort();
        drop(second);
        assert_eq!(plain_block_on(handle).map_err(|e| e.to_string()), Ok(7));
    });
}

/// A worker that has stopped cannot make the future: the task is
/// cancelled at once, and `make` is dropped unrun on the calling thread.
#[test]
fn a_stopped_worker_cancels_the_task_unmade() {
    deadline(8, || {
        let rt = rt(1);
        let handle = rt.handle().clone();
        drop(rt);
        let drops = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicBool::new(false));
        let (d, m) = (DropCount(drops.clone()), made.clone());
        let jh = handle.spawn_local_on(0, move || {
            m.store(true, Ordering::SeqCst);
            let _d = d;
            async {}
        });
        assert_eq!(drops.load(Ordering::SeqCst), 1, "make dropped at once");
        assert!(plain_block_on(jh).unwrap_err().is_cancelled());
        assert!(!made.load(Ordering::SeqCst), "make never ran");
    });
}

/// A panic in `make` reaches the handle, and the worker carries on.
#[test]
fn a_panic_in_make_reaches_the_handle() {
    deadline(8, || {
        let rt = rt(1);
        let jh = rt
            .handle()
            .spawn_local_on(0, || -> std::future::Ready<()> { panic!("make failed") });
        let err = plain_block_on(jh).unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.to_string(), "task panicked: make failed");
        let after = rt.handle().spawn_local_on(0, || async { *Rc::new(5) });
        assert_eq!(plain_block_on(after).unwrap(), 5);
    });
}
