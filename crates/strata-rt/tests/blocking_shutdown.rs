//! A runtime stopping while blocking closures run, in the corners a
//! review of "Runtime drop waits for running spawn_blocking closures"
//! found wrong. `deadline` and every timeout here are hang guards only.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use strata_rt::Runtime;
use support::deadline;

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(1).build().unwrap()
}

/// Dropped from one of its own blocking closures, the runtime waits for
/// its *other* running closures (it used to skip the wait altogether on a
/// pool thread).
#[test]
fn runtime_dropped_in_a_blocking_closure_waits_for_the_other_closures() {
    deadline(30, || {
        let rt = runtime();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let other_done = Arc::new(AtomicBool::new(false));
        let d = other_done.clone();
        let _other = rt.handle().spawn_blocking(move || {
            started_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            d.store(true, Ordering::SeqCst);
        });
        started_rx.recv().unwrap();
        let slot = Arc::new(Mutex::new(Some(rt)));
        let s = slot.clone();
        let handle = slot.lock().unwrap().as_ref().unwrap().handle().clone();
        let (seen_tx, seen_rx) = mpsc::channel::<bool>();
        let _dropper = handle.spawn_blocking(move || {
            let rt = s.lock().unwrap().take().unwrap();
            drop(rt);
            seen_tx.send(d_load(&other_done)).unwrap();
        });
        drop(handle);
        let other_finished = seen_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            other_finished,
            "Runtime::drop on a blocking thread returned while another \
             spawn_blocking closure was still running"
        );
    });
}

fn d_load(b: &AtomicBool) -> bool {
    b.load(Ordering::SeqCst)
}

/// `shutdown_timeout` says whether any blocking closure was left running;
/// called from a blocking closure with nothing else running, it must not
/// count its caller (it did, and always said `false`).
#[test]
fn shutdown_timeout_in_a_blocking_closure_with_nothing_else_running_is_true() {
    deadline(30, || {
        let rt = runtime();
        let handle = rt.handle().clone();
        let (tx, rx) = mpsc::channel::<bool>();
        let slot = Arc::new(Mutex::new(Some(rt)));
        let s = slot.clone();
        let _h = handle.spawn_blocking(move || {
            let rt = s.lock().unwrap().take().unwrap();
            tx.send(rt.shutdown_timeout(Duration::from_secs(5)))
                .unwrap();
        });
        drop(handle);
        let none_left = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            none_left,
            "shutdown_timeout returned false with no other blocking closure running"
        );
    });
}

/// A runtime dropped while its thread unwinds (a panic in `main` or in a
/// test, with a closure blocked on input that never comes) must not wait
/// for the closure, or the panic is never reported and the process hangs;
/// as in tokio, it does not wait while panicking.
#[test]
fn runtime_dropped_while_panicking_does_not_wait_for_blocking_closures() {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let rt = runtime();
            let _h = rt.handle().spawn_blocking(move || {
                started_tx.send(()).unwrap();
                // Blocked until the test lets it go (stdin, say).
                let _ = go_rx.recv();
            });
            started_rx.recv().unwrap();
            panic!("the application fails while a closure is blocked");
        }));
        assert!(r.is_err());
        done_tx.send(()).unwrap();
    });
    // Hang guard: unwinding past the runtime takes microseconds.
    let unwound = done_rx.recv_timeout(Duration::from_secs(3)).is_ok();
    // Release the closure either way, so that nothing is left blocked.
    let _ = go_tx.send(());
    t.join().unwrap();
    assert!(
        unwound,
        "a panic could not unwind past the runtime: its drop waited for a blocked closure"
    );
}
