//! A `JoinHandle` polled by another executor on a blocking-pool thread,
//! with a waker that panics when woken: the panic is contained (it used
//! to abort the process, as blocking threads counted as "inside the
//! runtime" and got no forwarding waker).
//!
//! The scenario runs in a child process (this test binary re-executed with
//! the test's name in the environment); the parent checks that the child
//! exited cleanly, which an abort would not.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use support::{deadline, rt};

const CHILD: &str = "STRATA_TEST_FOREIGN_WAKER_CHILD";

/// `true` in the child; in the parent, runs `name` in a child process and
/// asserts that it passed.
fn child(name: &str) -> bool {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<_> = stderr.lines().filter(|l| !l.is_empty()).take(8).collect();
    assert!(
        out.status.success(),
        "child process died ({}):\n{}",
        out.status,
        tail.join("\n")
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    false
}

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("another executor's waker panicked");
    }
}

#[test]
fn panicking_foreign_waker_on_a_blocking_thread_does_not_abort() {
    const NAME: &str = "panicking_foreign_waker_on_a_blocking_thread_does_not_abort";
    if !child(NAME) {
        return;
    }
    deadline(20, || {
        let rt = rt(1);
        let go = Arc::new(AtomicBool::new(false));
        let g = go.clone();
        let mut handle = rt.handle().spawn(async move {
            while !g.load(Ordering::Acquire) {
                strata_rt::yield_now().await;
            }
            5
        });
        // Another executor, run from a blocking closure, polls the handle
        // once with its own waker, which panics when woken.
        let polled = rt.block_on(rt.handle().spawn_blocking(move || {
            let waker = Waker::from(Arc::new(Panics));
            let pending = Pin::new(&mut handle)
                .poll(&mut Context::from_waker(&waker))
                .is_pending();
            (pending, handle)
        }));
        let (pending, handle) = polled.unwrap();
        assert!(pending);
        // The task completes on the worker, which wakes that waker.
        go.store(true, Ordering::Release);
        while !handle.is_finished() {
            std::thread::yield_now();
        }
        let v = rt.block_on(async { strata_rt::spawn(async { 7 }).await.unwrap() });
        assert_eq!(v, 7);
    });
}
