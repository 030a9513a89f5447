//! A runtime dropped inside one of its own blocking closures still joins
//! the pool's other threads. Hang-guarded; the caps are hang guards, not
//! timing bounds.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use strata_rt::Runtime;
use support::{SlowFlags, deadline};

/// The runtime's drop joins its blocking threads, thread-local destructors
/// included, also when dropped inside one of its own blocking closures
/// (only a pool thread that counted itself out, in its thread-locals'
/// destructors, joins none).
#[test]
fn runtime_dropped_inside_a_blocking_closure_joins_the_other_pool_threads() {
    let flags = Arc::new(SlowFlags::default());
    let f = flags.clone();
    let (ret_tx, ret_rx) = mpsc::channel::<bool>();
    deadline(60, move || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_blocking_threads(2)
            .blocking_keep_alive(Duration::from_secs(60))
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        // Thread A: leaves a slow thread-local, stays busy until B runs,
        // then idles (it exits at the runtime's shutdown).
        let (a_tx, a_rx) = mpsc::channel::<()>();
        let (a_done_tx, a_done_rx) = mpsc::channel::<()>();
        let fa = f.clone();
        drop(handle.spawn_blocking(move || {
            support::leave_slow_tls(fa, Duration::from_secs(10));
            let _ = a_rx.recv_timeout(Duration::from_secs(20));
            a_done_tx.send(()).unwrap();
        }));
        // Thread B (A is busy): receives the runtime and drops it.
        let (rt_tx, rt_rx) = mpsc::channel::<Runtime>();
        let (b_started_tx, b_started_rx) = mpsc::channel::<()>();
        let fb = f.clone();
        drop(handle.spawn_blocking(move || {
            b_started_tx.send(()).unwrap();
            let rt = rt_rx.recv().unwrap();
            drop(rt);
            // Whether A's thread-local destructor had finished.
            let _ = ret_tx.send(fb.done.load(Ordering::SeqCst));
        }));
        b_started_rx.recv().unwrap();
        a_tx.send(()).unwrap();
        a_done_rx.recv().unwrap();
        rt_tx.send(rt).unwrap();
        // A's thread exits at shutdown and waits in its destructor.
        while !f.in_dtor.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Give the drop a chance to return early (a correct drop does not
        // return before the release; this is not a timing bound).
        let early = ret_rx.recv_timeout(Duration::from_secs(2)).ok();
        f.release.store(true, Ordering::SeqCst);
        let done_at_return = match early {
            Some(d) => d,
            None => ret_rx.recv_timeout(Duration::from_secs(20)).unwrap(),
        };
        assert!(
            done_at_return,
            "a runtime dropped inside one of its blocking closures returned while \
             another blocking thread's thread-local destructors still ran (it joined \
             no pool thread)"
        );
    });
    flags.release.store(true, Ordering::SeqCst);
}
