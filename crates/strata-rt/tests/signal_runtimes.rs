//! Signals in a process with several runtimes: a `Signal` made in one
//! runtime and awaited in another after the first is gone, `ctrl_c` in two
//! runtimes at once, listeners dropped and made again between deliveries.
//! Each test uses a signal kind of its own (the tests of a binary share the
//! process). Waits are hang guards only.

mod support;

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use strata_rt::Runtime;
use strata_rt::signal::{self, Signal, SignalKind};
use strata_rt::time::timeout;
use support::deadline;

fn raise(kind: SignalKind) {
    // SAFETY: `raise` has no memory-safety preconditions; a handler for the
    // signal is installed (the caller holds a `Signal` for it).
    assert_eq!(unsafe { libc::raise(kind.as_raw()) }, 0);
}

fn rt(name: &str, n: usize) -> Runtime {
    Runtime::builder()
        .worker_threads(n)
        .thread_name(name)
        .build()
        .unwrap()
}

/// Made in runtime A and left registered there (polled once by A's task,
/// so A's task waker sits in the listener); A dropped; awaited in a task
/// of runtime B: the delivery after that is seen.
#[test]
fn a_signal_from_a_dropped_runtime_works_in_another() {
    deadline(30, || {
        let kind = SignalKind::user_defined2();
        let a = rt("rt-a", 1);
        let sig = Arc::new(Mutex::new(None::<Signal>));
        let s = sig.clone();
        a.block_on(async move {
            strata_rt::spawn(async move {
                let mut signal = Signal::new(kind).unwrap();
                // One poll: pending, A's task waker is registered.
                let mut once = false;
                std::future::poll_fn(|cx| {
                    if !once {
                        once = true;
                        assert!(signal.poll_recv(cx).is_pending());
                    }
                    Poll::Ready(())
                })
                .await;
                *s.lock().unwrap() = Some(signal);
            })
            .await
            .unwrap();
        });
        drop(a);
        let mut signal = sig.lock().unwrap().take().unwrap();
        let b = rt("rt-b", 2);
        b.block_on(async move {
            let waiter = strata_rt::spawn(async move {
                timeout(Duration::from_secs(10), signal.recv())
                    .await
                    .is_ok()
            });
            // Let the task register its waker first (not a speed bound: a
            // delivery before that is still seen, through the count).
            strata_rt::time::sleep(Duration::from_millis(20)).await;
            raise(kind);
            assert!(
                waiter.await.unwrap(),
                "the delivery was not seen in runtime B"
            );
        });
    });
}

/// `ctrl_c()` called in two runtimes (a task of each) at once: one SIGINT
/// completes both.
#[test]
fn ctrl_c_in_two_runtimes_completes_both() {
    deadline(30, || {
        let (a, b) = (rt("rt-c", 1), rt("rt-d", 2));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let wait_in = |r: &Runtime| {
            let ready = ready_tx.clone();
            r.handle().spawn(async move {
                let c = signal::ctrl_c();
                ready.send(()).unwrap();
                timeout(Duration::from_secs(10), c).await.map(|r| r.is_ok())
            })
        };
        let (ja, jb) = (wait_in(&a), wait_in(&b));
        ready_rx.recv().unwrap();
        ready_rx.recv().unwrap();
        raise(SignalKind::interrupt());
        assert_eq!(a.block_on(ja).unwrap(), Ok(true));
        assert_eq!(b.block_on(jb).unwrap(), Ok(true));
    });
}

/// A listener dropped and made again between deliveries, in alternating
/// runtimes: each new one sees the delivery after its creation and none
/// before it.
#[test]
fn listeners_made_again_between_deliveries_see_only_later_ones() {
    deadline(60, || {
        let kind = SignalKind::from_raw(libc::SIGRTMIN() + 3);
        let rts = [rt("rt-e", 1), rt("rt-f", 2)];
        // The handler is installed before the first raise.
        let _keep = Signal::new(kind).unwrap();
        for round in 0..20 {
            let r = &rts[round % 2];
            r.block_on(async {
                // A delivery with nobody listening (but the first listener).
                raise(kind);
                let mut sig = Signal::new(kind).unwrap();
                let missed = timeout(Duration::from_millis(30), sig.recv()).await;
                assert!(
                    missed.is_err(),
                    "round {round}: saw a delivery from before it was made"
                );
                raise(kind);
                timeout(Duration::from_secs(10), sig.recv())
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: the delivery was not seen"));
            });
        }
    });
}
