//! The blocking pool's count of its threads, which shutdown waits on:
//! `shutdown_timeout` waits for a running closure and then reports none
//! left, and a thread that failed to start is not waited for. (From
//! mutation testing of `executor/blocking.rs`: each test names the
//! mutants it catches.) `deadline` and the timeouts are hang guards; the
//! short sleep only orders events.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use strata_rt::Runtime;
use support::deadline;

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(1).build().unwrap()
}

/// `shutdown_timeout` called from outside the runtime while a blocking
/// closure runs waits for that closure (within its limit) and then says
/// nothing was left running.
///
/// Mutants: blocking.rs:147:31 `replace || with && in
/// BlockingPool::wait_stopped` and blocking.rs:147:25 `replace > with <
/// in BlockingPool::wait_stopped` (the wait loop never runs, so
/// `shutdown_timeout` returns `false` at once, with the closure still
/// running).
#[test]
fn shutdown_timeout_waits_for_a_running_closure_and_reports_none_left() {
    deadline(30, || {
        let rt = runtime();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let _h = rt.handle().spawn_blocking(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
            d.store(true, Ordering::SeqCst);
        });
        started_rx.recv().unwrap();
        // Let the closure go once `shutdown_timeout` below is waiting.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let _ = release_tx.send(());
        });
        let none_left = rt.shutdown_timeout(Duration::from_secs(10));
        let finished = done.load(Ordering::SeqCst);
        releaser.join().unwrap();
        assert!(
            finished,
            "shutdown_timeout returned while a blocking closure was still running"
        );
        assert!(
            none_left,
            "shutdown_timeout said a closure was left running after waiting for it"
        );
    });
}

/// The child's half of the test below: the pool's first thread cannot
/// start (the address space is capped just above what the process uses,
/// as in `edges_unix_udp_blocking.rs`), then, with the limit restored, the
/// runtime is dropped. Exit status: 0 if the drop returned, 3 if the
/// closure was not cancelled, 77 if the OS started the thread anyway.
#[cfg(target_os = "linux")]
fn drop_after_a_failed_thread_start() -> ! {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let out = rt.block_on(support::spawn_blocking_with_no_room_for_a_thread());
    let code = match out {
        Ok(_) => 77,
        Err(e) if e.is_cancelled() => 0,
        Err(_) => 3,
    };
    if code == 0 {
        // The pool has no thread and none starting: nothing to wait for.
        drop(rt);
    }
    println!("child: dropped, code {code}");
    std::process::exit(code)
}

/// After a blocking thread failed to start, the pool no longer counts it
/// as starting: dropping the runtime returns (nothing runs).
///
/// Mutants: blocking.rs:256:24 `replace -= with += in Inner::spawn_failed`
/// and `replace -= with /= in Inner::spawn_failed` (the failed thread
/// stays counted as starting, and the runtime's drop waits for it
/// forever).
#[cfg(target_os = "linux")]
#[test]
fn a_runtime_whose_blocking_thread_failed_to_start_still_drops() {
    const CHILD: &str = "STRATA_REVIEW_MU_DROP_AFTER_FAILED_START";
    if std::env::var_os(CHILD).is_some() {
        drop_after_a_failed_thread_start();
    }
    let status = support::run_as_child(
        "a_runtime_whose_blocking_thread_failed_to_start_still_drops",
        CHILD,
        10,
    )
    .status;
    if status.code() == Some(77) {
        eprintln!("not checked: the OS started the thread anyway");
        return;
    }
    assert_eq!(status.code(), Some(0), "child ended with {status:?}");
}
