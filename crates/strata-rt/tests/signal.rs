//! Signals raised at our own process. Every test installs its handler (by
//! creating a `Signal`) before raising: SIGTERM's and SIGINT's default
//! action would end the test process.

mod support;

use std::time::Duration;

use strata_rt::signal::{self, Signal, SignalKind};
use strata_rt::time::timeout;
use strata_rt::{spawn, spawn_local};
use support::{deadline, rt};

fn raise(kind: SignalKind) {
    // SAFETY: `raise` has no memory-safety preconditions; a handler for the
    // signal is installed (the caller holds a `Signal` for it).
    assert_eq!(unsafe { libc::raise(kind.as_raw()) }, 0);
}

#[test]
fn sigusr1_completes_recv() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let mut sig = Signal::new(SignalKind::user_defined1()).unwrap();
            raise(SignalKind::user_defined1());
            timeout(Duration::from_secs(10), sig.recv())
                .await
                .expect("SIGUSR1 was not observed");
        });
    });
}

#[test]
fn sigterm_reaches_every_listener_on_every_worker() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            // Created before raising, on both workers and on this thread.
            let mut here = Signal::new(SignalKind::terminate()).unwrap();
            let mut waiters = Vec::new();
            for w in 0..handle.worker_count() {
                for _ in 0..3 {
                    let mut sig = Signal::new(SignalKind::terminate()).unwrap();
                    waiters.push(handle.spawn_on(w, async move { sig.recv().await }));
                }
            }
            raise(SignalKind::terminate());
            for h in waiters {
                timeout(Duration::from_secs(10), h)
                    .await
                    .expect("a listener missed SIGTERM")
                    .unwrap();
            }
            timeout(Duration::from_secs(10), here.recv())
                .await
                .expect("SIGTERM missed on the block_on thread");
        });
    });
}

#[test]
fn repeated_deliveries_keep_waking_the_listener() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            spawn(async {
                let mut sig = Signal::new(SignalKind::user_defined2()).unwrap();
                raise(SignalKind::user_defined2());
                raise(SignalKind::user_defined2());
                timeout(Duration::from_secs(10), sig.recv()).await.unwrap();
                // A local (non-Send) waiter works too.
                let waiter = spawn_local(async move {
                    sig.recv().await;
                });
                raise(SignalKind::user_defined2());
                timeout(Duration::from_secs(10), waiter)
                    .await
                    .expect("second delivery missed")
                    .unwrap();
            })
            .await
            .unwrap();
        });
    });
}

#[test]
fn ctrl_c_observes_sigint() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            // The handler is installed by the call, before the await.
            let ctrl_c = signal::ctrl_c();
            raise(SignalKind::interrupt());
            timeout(Duration::from_secs(10), ctrl_c)
                .await
                .expect("SIGINT was not observed")
                .unwrap();
        });
    });
}

#[test]
fn unhandleable_signals_are_refused() {
    for kind in [
        SignalKind::from_raw(libc::SIGKILL),
        SignalKind::from_raw(libc::SIGSTOP),
        SignalKind::from_raw(libc::SIGSEGV),
        SignalKind::from_raw(0),
        SignalKind::from_raw(1000),
    ] {
        let err = Signal::new(kind).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[test]
fn a_delivery_before_creation_is_not_seen() {
    deadline(60, || {
        // A real-time signal nothing else sends (SIGWINCH, say, comes from
        // a terminal being resized) and no other test here uses.
        let kind = SignalKind::from_raw(libc::SIGRTMIN() + 1);
        let rt = rt(1);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for round in 0..50 {
            let mut probe = Signal::new(kind).unwrap();
            // `raise` runs the handler before it returns; the listener
            // created right after must not count that delivery, although
            // the signal thread publishes it only later.
            raise(kind);
            let mut late = Signal::new(kind).unwrap();
            rt.block_on(async {
                timeout(Duration::from_secs(10), probe.recv())
                    .await
                    .expect("the probe missed the signal");
            });
            assert!(
                late.poll_recv(&mut cx).is_pending(),
                "round {round}: a listener saw a delivery from before its creation"
            );
            raise(kind);
            rt.block_on(async {
                timeout(Duration::from_secs(10), late.recv())
                    .await
                    .expect("the listener missed a later delivery");
            });
        }
    });
}
