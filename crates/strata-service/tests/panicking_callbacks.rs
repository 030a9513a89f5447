//! User code the middleware calls, panicking: the tracing subscriber
//! (the breaker logs its changes of state), the clock, the map/and_then
//! closures. Whatever panics, the middleware's own state stays sane
//! afterwards: a breaker keeps no probe slot for a call that never ran, and
//! a change of state it has made stays made.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures_executor::block_on;
use strata_service::backoff::Backoff;
use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitState};
use strata_service::clock::{Clock, ManualClock};
use strata_service::{BoxError, Service, ServiceExt, service_fn};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[path = "../../strata-rt/tests/support/quiet.rs"]
#[allow(unreachable_pub)]
mod quiet;
use quiet::quiet;

/// A subscriber that panics (once, when armed) on an event whose message
/// contains `needle`: a log pipeline with a bug, a full channel that
/// panics, a test subscriber's assertion.
struct PanicsOn {
    needle: &'static str,
    armed: AtomicBool,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for PanicsOn {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        if m.0.contains(self.needle) && self.armed.swap(false, Ordering::SeqCst) {
            panic!("test: the subscriber panicked on {:?}", m.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn down_or_up() -> impl Service<bool, Response = (), Error = BoxError> {
    service_fn(|ok: bool| async move {
        if ok {
            Ok(())
        } else {
            Err(BoxError::from("down"))
        }
    })
}

/// A subscriber that panics on "circuit half-open; probing" (the panic
/// reaches the caller) leaves no probe slot held by a call that never
/// runs: the breaker lets the next call probe the backend, which is up,
/// and the circuit closes.
#[test]
fn a_subscriber_panicking_on_the_half_open_line_does_not_wedge_the_breaker() {
    quiet();
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(1), clock.clone())
        .backoff(Backoff::constant(Duration::from_secs(5)));
    let svc = CircuitBreaker::new(down_or_up(), breaker.clone());
    assert!(block_on(svc.call(false)).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(5));
    let subscriber = PanicsOn {
        needle: "half-open",
        armed: AtomicBool::new(true),
    };
    tracing::subscriber::with_default(subscriber, || {
        let r = catch_unwind(AssertUnwindSafe(|| block_on(svc.call(true))));
        assert!(r.is_err(), "the subscriber's panic reaches the caller");
        // The backend is up: the next call probes it and closes the
        // circuit (or, at worst, the circuit waits another open period;
        // never a probe slot held by no call).
        let mut refused = 0;
        for _ in 0..3 {
            clock.advance(Duration::from_secs(60));
            if block_on(svc.call(true)).is_ok() {
                break;
            }
            refused += 1;
        }
        assert_eq!(
            breaker.state(),
            CircuitState::Closed,
            "the breaker stayed {:?}; {refused} calls refused after the panic",
            breaker.state()
        );
    });
}

/// A clock that panics on its `n`-th reading (once), counting from when
/// it is armed.
#[derive(Clone)]
struct PanickyClock {
    inner: ManualClock,
    countdown: Arc<AtomicU32>,
}

impl fmt::Debug for PanickyClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PanickyClock")
    }
}

impl Clock for PanickyClock {
    type Sleep = <ManualClock as Clock>::Sleep;

    fn now(&self) -> Instant {
        if self.countdown.fetch_sub(1, Ordering::SeqCst) == 1 {
            panic!("test: the clock panicked");
        }
        self.inner.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        self.inner.sleep_until(deadline)
    }
}

/// A clock that panics on the reading that schedules the next open period
/// after a failed probe (the panic reaches the caller) leaves no probe
/// slot held by a call that has ended: the breaker lets a later call probe
/// the backend, which is up, and the circuit closes.
#[test]
fn a_clock_panicking_while_a_failed_probe_is_recorded_does_not_wedge_the_breaker() {
    quiet();
    let inner = ManualClock::new();
    let countdown = Arc::new(AtomicU32::new(u32::MAX));
    let clock = PanickyClock {
        inner: inner.clone(),
        countdown: countdown.clone(),
    };
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(1), clock)
        .backoff(Backoff::constant(Duration::from_secs(5)));
    let svc = CircuitBreaker::new(down_or_up(), breaker.clone());
    assert!(block_on(svc.call(false)).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);
    inner.advance(Duration::from_secs(5));
    // admit() reads the clock once (is the open period over?); the next
    // reading is record()'s, for the failed probe's next open period.
    countdown.store(2, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| block_on(svc.call(false))));
    assert!(r.is_err(), "the clock's panic reaches the caller");
    countdown.store(u32::MAX, Ordering::SeqCst);
    let mut refused = 0;
    for _ in 0..3 {
        inner.advance(Duration::from_secs(60));
        if block_on(svc.call(true)).is_ok() {
            break;
        }
        refused += 1;
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "the breaker stayed {:?}; {refused} calls refused after the panic",
        breaker.state()
    );
}

/// A subscriber that panics on the line logging a change of state (the
/// panic reaches the caller) finds the change made: the circuit opens on
/// the failure that trips it, opens again on a failed probe, and closes on
/// a probe that succeeds.
#[test]
fn a_subscriber_panicking_on_a_change_of_state_finds_the_change_made() {
    quiet();
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(1), clock.clone())
        .backoff(Backoff::constant(Duration::from_secs(5)));
    let svc = CircuitBreaker::new(down_or_up(), breaker.clone());
    for (needle, ok, after) in [
        ("failures accrued", false, CircuitState::Open),
        ("probe failed", false, CircuitState::Open),
        ("probe succeeded", true, CircuitState::Closed),
    ] {
        let subscriber = PanicsOn {
            needle,
            armed: AtomicBool::new(true),
        };
        tracing::subscriber::with_default(subscriber, || {
            let r = catch_unwind(AssertUnwindSafe(|| block_on(svc.call(ok))));
            assert!(r.is_err(), "the subscriber panics on {needle:?}");
        });
        assert_eq!(breaker.state(), after, "after the line {needle:?}");
        clock.advance(Duration::from_secs(5));
    }
    assert!(block_on(svc.call(true)).is_ok());
}

/// `map_request`, `map_response`, `map_err` and `and_then` closures that
/// panic: the panic reaches the caller as a panic, and the same service
/// answers the next call.
#[test]
fn panicking_combinator_closures_leave_the_service_usable() {
    quiet();
    let base = || {
        service_fn(|n: u32| async move {
            if n == 7 {
                Err(BoxError::from("seven"))
            } else {
                Ok(n)
            }
        })
    };
    let req = base().map_request(|n: u32| {
        assert_ne!(n, 1, "test: map_request panicked");
        n
    });
    let resp = base().map_response(|n: u32| {
        assert_ne!(n, 1, "test: map_response panicked");
        n
    });
    let err = base().map_err(|e: BoxError| -> BoxError {
        panic!("test: map_err panicked on {e}");
    });
    let then = base().and_then(|n: u32| async move {
        assert_ne!(n, 1, "test: and_then panicked");
        Ok::<u32, BoxError>(n)
    });
    for (name, r) in [
        (
            "map_request",
            catch_unwind(AssertUnwindSafe(|| block_on(req.call(1)))),
        ),
        (
            "map_response",
            catch_unwind(AssertUnwindSafe(|| block_on(resp.call(1)))),
        ),
        (
            "map_err",
            catch_unwind(AssertUnwindSafe(|| block_on(err.call(7)))),
        ),
        (
            "and_then",
            catch_unwind(AssertUnwindSafe(|| block_on(then.call(1)))),
        ),
    ] {
        assert!(r.is_err(), "{name} did not panic");
    }
    assert_eq!(block_on(req.call(2)).unwrap(), 2);
    assert_eq!(block_on(resp.call(2)).unwrap(), 2);
    assert_eq!(block_on(err.call(2)).unwrap(), 2);
    assert_eq!(block_on(then.call(2)).unwrap(), 2);
}

const CHILD: &str = "PANICKING_CALLBACKS_CHILD";

/// The child's scenario: an inner service that panics trips a breaker
/// that opens on one failure; the subscriber panics on "circuit open".
fn scenario() {
    let breaker = Breaker::new(Accrual::ConsecutiveFailures(1));
    let inner = service_fn(|_: ()| async move {
        if true {
            panic!("test: the backend panicked");
        }
        Ok::<(), BoxError>(())
    });
    let svc = CircuitBreaker::new(inner, breaker.clone());
    let subscriber = PanicsOn {
        needle: "circuit open",
        armed: AtomicBool::new(true),
    };
    tracing::subscriber::with_default(subscriber, || {
        let r = catch_unwind(AssertUnwindSafe(|| block_on(svc.call(()))));
        assert!(r.is_err(), "the backend's panic reaches the caller");
    });
    assert_eq!(breaker.state(), CircuitState::Open);
}

/// A panicking inner call whose failure opens the circuit, with a
/// subscriber that panics on the "circuit open" line: the guard records
/// the failure while the thread unwinds, where a second panic would abort
/// the process; it is contained, the backend's panic reaches the caller,
/// and the circuit is open. (Run in a child process, so that an abort
/// fails this test instead of killing the test binary.)
#[test]
fn a_subscriber_panicking_on_the_line_logged_while_unwinding_does_not_abort() {
    if std::env::var_os(CHILD).is_some() {
        std::panic::set_hook(Box::new(|_| {}));
        scenario();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_subscriber_panicking_on_the_line_logged_while_unwinding_does_not_abort",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child ended with {:?} (SIGABRT is 6: a panic in a destructor while \
         unwinding); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
