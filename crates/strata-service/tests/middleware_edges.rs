//! Edges of the circuit breaker, metrics and trace layers: a failure rate
//! exactly at the threshold, the breaker's name in its refusals, and a
//! panicking inner service. Time is a `ManualClock` or counted by hand;
//! nothing depends on the wall clock.

mod recorder;
mod scripted;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_executor::block_on;
use recorder::TestRecorder;
use scripted::{Scripted, Step, poll_once, quiet_panics};
use strata_service::Service;
use strata_service::backoff::Backoff;
use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitOpen, CircuitState};
use strata_service::clock::ManualClock;
use strata_service::metrics::{DURATION, ERRORS, IN_FLIGHT, Metrics, REQUESTS};
use strata_service::trace::Trace;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

// --- CircuitBreaker: failure-rate accrual at its threshold ---------------

/// `Accrual::FailureRate` opens when "at least `rate` of [the calls]
/// failed". 55 failures out of 100 calls is exactly a rate of 0.55; a
/// check against the product `rate * calls` compared with the rounded
/// `0.55 * 100.0 == 55.00000000000001` and stayed closed (so did 0.07,
/// 0.14, 0.28 and 0.56 over 100 calls, and their multiples).
#[test]
fn a_failure_rate_exactly_at_the_threshold_opens_the_circuit() {
    for (rate, failures) in [(0.55, 55), (0.07, 7)] {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(
            Accrual::FailureRate {
                rate,
                min_calls: 100,
                window: Duration::from_secs(60),
            },
            clock.clone(),
        )
        .backoff(Backoff::constant(Duration::from_secs(5)));
        let svc = CircuitBreaker::new(Scripted::new(clock.clone()), breaker.clone());
        for _ in 0..(100 - failures) {
            assert!(block_on(svc.call(Step::Ok(1))).is_ok());
        }
        for _ in 0..failures {
            assert!(block_on(svc.call(Step::Fail("down"))).is_err());
        }
        assert_eq!(
            breaker.state(),
            CircuitState::Open,
            "{failures} failures in 100 calls is a failure rate of {rate}, \
             which the docs say opens a breaker configured with rate {rate}"
        );
    }
}

// --- CircuitBreaker: which circuit is open? -----------------------------

/// A named breaker's refusal carries its name: a client talking to
/// several backends through one error type must be able to tell which
/// one refused it, not read only "circuit open; retry after 5s".
#[test]
fn a_circuit_open_error_names_the_breaker() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(1), clock.clone())
        .backoff(Backoff::constant(Duration::from_secs(5)))
        .name("payments-db");
    let svc = CircuitBreaker::new(Scripted::new(clock.clone()), breaker.clone());
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    let err = block_on(svc.call(Step::Ok(1))).unwrap_err();
    assert!(err.is::<CircuitOpen>());
    let text = err.to_string();
    assert!(
        text.contains("payments-db"),
        "the refusal does not say which circuit is open: {text:?}"
    );
}

// --- Trace and Metrics: a panicking call --------------------------------

#[derive(Default, Clone)]
struct Outcomes {
    next: Arc<AtomicU64>,
    outcomes: Arc<Mutex<Vec<String>>>,
}

struct OutcomeField<'a>(&'a Outcomes);

impl Visit for OutcomeField<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "outcome" {
            self.0.outcomes.lock().unwrap().push(format!("{value:?}"));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "outcome" {
            self.0.outcomes.lock().unwrap().push(value.to_owned());
        }
    }
}

impl Subscriber for Outcomes {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut OutcomeField(self));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// `Trace` records `outcome = panicked`, not `cancelled`, for a call whose
/// inner service panicked (it used to take every unfinished drop for a
/// cancellation). strata's pipelined server catches a request's panic and
/// closes the connection; a handler crash must not show in the trace as
/// if the client had gone away.
#[test]
fn a_panicking_call_is_not_traced_as_cancelled() {
    quiet_panics();
    let spans = Outcomes::default();
    let clock = ManualClock::new();
    tracing::subscriber::with_default(spans.clone(), || {
        let svc = Trace::new(Scripted::new(clock.clone()), "api");
        for step in [Step::PanicInFuture, Step::PanicInCall] {
            let mut call = Box::pin(svc.call(step));
            assert!(catch_unwind(AssertUnwindSafe(|| poll_once(call.as_mut()))).is_err());
            drop(call);
        }
    });
    let outcomes = spans.outcomes.lock().unwrap().clone();
    assert_eq!(outcomes.len(), 2, "one outcome per span: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o != "cancelled"),
        "a panic is recorded as a cancellation: {outcomes:?}"
    );
}

/// `Metrics` counts a call whose inner service panicked as an error (it
/// used to count it only in `requests_total`, like a cancelled call, so an
/// error rate computed as errors / requests took the crash for a success).
/// The circuit breaker in the same crate counts a panic as a failure too.
#[test]
fn a_panicking_call_counts_as_an_error_in_metrics() {
    quiet_panics();
    let recorder = TestRecorder::default();
    let clock = ManualClock::new();
    let svc = metrics::with_local_recorder(&recorder, || {
        Metrics::new(Scripted::new(clock.clone()), "crashy")
    });
    let mut call = Box::pin(svc.call(Step::PanicInFuture));
    assert!(catch_unwind(AssertUnwindSafe(|| poll_once(call.as_mut()))).is_err());
    drop(call);
    assert_eq!(recorder.get(REQUESTS, "crashy").count(), 1);
    assert_eq!(recorder.get(IN_FLIGHT, "crashy").gauge(), 0.0);
    assert_eq!(
        recorder.get(ERRORS, "crashy").count(),
        1,
        "the panicked call is not an error (durations recorded: {:?})",
        recorder.get(DURATION, "crashy").samples()
    );
}
