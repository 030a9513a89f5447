//! A runtime dropped on one of its own blocking threads, in a
//! thread-local's destructor (its last owner was a thread-local there):
//! no deadlock with a pool thread joining this one, no miscount. Hang-
//! guarded (the caps are hang guards); the pauses set up a scenario, they
//! are not performance bounds.
#![allow(clippy::unwrap_used)]

mod support;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use strata_rt::Runtime;
use support::deadline;

/// Holds the runtime in a blocking thread's thread-local; its destructor
/// waits until released (at most 20 s), then drops the runtime there.
struct Gate {
    rt: Option<Runtime>,
    in_dtor: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.in_dtor.store(true, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(20);
        while !self.release.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(self.rt.take());
        self.dropped.store(true, Ordering::SeqCst);
    }
}

struct ExitMark(Arc<AtomicBool>);

impl Drop for ExitMark {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

thread_local! {
    static GATE: RefCell<Option<Gate>> = const { RefCell::new(None) };
    static MARK: RefCell<Option<ExitMark>> = const { RefCell::new(None) };
}

fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A runtime dropped in a blocking thread's thread-local destructor joins
/// no thread there: another pool thread, exiting after its keep-alive, may
/// have taken this very thread's handle from `exited` and be joining it,
/// and each would join the other forever.
#[test]
fn a_runtime_dropped_in_a_blocking_thread_s_tls_destructor_does_not_deadlock() {
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let release = Arc::new(AtomicBool::new(false));
    let rel = release.clone();
    let result = std::panic::catch_unwind(move || {
        deadline(30, move || {
            let rt = Runtime::builder()
                .worker_threads(1)
                .max_blocking_threads(2)
                .blocking_keep_alive(Duration::from_millis(10))
                .build()
                .unwrap();
            let handle = rt.handle().clone();
            // Thread Y: the runtime goes into its thread-local; it exits
            // after its keep-alive and waits in that destructor.
            let in_dtor = Arc::new(AtomicBool::new(false));
            let gate = Gate {
                rt: Some(rt),
                in_dtor: in_dtor.clone(),
                release: rel.clone(),
                dropped: d.clone(),
            };
            drop(handle.spawn_blocking(move || GATE.with(|g| *g.borrow_mut() = Some(gate))));
            wait_for(&in_dtor);
            // Threads B1..B3: each exits (handles: Y, B1, B2, B3).
            for _ in 0..3 {
                let exited = Arc::new(AtomicBool::new(false));
                let e = exited.clone();
                drop(handle.spawn_blocking(move || {
                    MARK.with(|m| *m.borrow_mut() = Some(ExitMark(e)));
                }));
                wait_for(&exited);
            }
            // Thread W: stays running (handles past twice the bound of 2:
            // the finished Y, B1, B2, B3 move to `exited`).
            let (w_tx, w_rx) = mpsc::channel::<()>();
            let (w_started_tx, w_started_rx) = mpsc::channel::<()>();
            drop(handle.spawn_blocking(move || {
                w_started_tx.send(()).unwrap();
                let _ = w_rx.recv_timeout(Duration::from_secs(20));
            }));
            w_started_rx.recv().unwrap();
            // Thread X: runs a closure, exits after its keep-alive and joins
            // the oldest two of `exited`: Y (in its destructor) and B1.
            let (x_tx, x_rx) = mpsc::channel::<()>();
            drop(handle.spawn_blocking(move || x_tx.send(()).unwrap()));
            x_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(500));
            // Y drops the runtime, which joins W (let go now) and X.
            // W goes on until Y's drop is joining it (else Y would count
            // no thread but itself and overflow `threads - own`, another
            // way to fail).
            rel.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(1));
            drop(w_tx);
            let until = Instant::now() + Duration::from_secs(20);
            while !d.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    });
    release.store(true, Ordering::SeqCst);
    assert!(result.is_ok(), "the test body panicked");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the runtime's drop, in a blocking thread's thread-local destructor, never \
         returned: it joins a pool thread that is itself joining this one"
    );
}

/// Run in a child process by the test below (it aborts the process when
/// it fails): a runtime whose last owner is a thread-local of its only
/// blocking thread, dropped when that thread exits after its keep-alive.
#[test]
#[ignore = "run by runtime_dropped_in_the_only_blocking_thread_s_tls_destructor"]
fn child_runtime_dropped_in_tls_destructor() {
    if std::env::var_os("REVIEW_FINAL_CHILD").is_none() {
        return;
    }
    let rt = Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(1)
        .blocking_keep_alive(Duration::from_millis(10))
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let dropped = Arc::new(AtomicBool::new(false));
    let gate = Gate {
        rt: Some(rt),
        in_dtor: Arc::new(AtomicBool::new(false)),
        release: Arc::new(AtomicBool::new(true)),
        dropped: dropped.clone(),
    };
    drop(handle.spawn_blocking(move || GATE.with(|g| *g.borrow_mut() = Some(gate))));
    let until = Instant::now() + Duration::from_secs(20);
    while !dropped.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the runtime's drop did not return"
    );
}

/// On a pool thread that already counted itself out (in its thread-local
/// destructors), the wait does not count it as its own running closure
/// (that overflowed the count: a panic in a thread-local destructor, which
/// aborts the process).
#[test]
fn runtime_dropped_in_the_only_blocking_thread_s_tls_destructor() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_runtime_dropped_in_tls_destructor",
            "--ignored",
            "--nocapture",
        ])
        .env("REVIEW_FINAL_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > until {
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let panic: Vec<_> = err
        .lines()
        .filter(|l| l.contains("panicked") || l.contains("overflow") || l.contains("fatal"))
        .collect();
    assert!(status.success(), "child: {status:?}; {panic:?}");
}
