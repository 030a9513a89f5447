//! `CircuitBreaker`: closed → open → half-open → closed, a failed probe
//! re-opening it for longer, failure-rate accrual, probe exclusivity, and
//! classifying which outcomes are failures.

mod scripted;

use std::pin::pin;
use std::time::Duration;

use futures_executor::block_on;
use scripted::{Scripted, Step, poll_once};
use strata_service::backoff::Backoff;
use strata_service::circuit::{
    Accrual, Breaker, CircuitBreaker, CircuitBreakerLayer, CircuitOpen, CircuitState, errors_where,
};
use strata_service::clock::ManualClock;
use strata_service::{BoxError, Layer, Service};

const OPEN: Duration = Duration::from_secs(5);

fn breaker(
    accrual: Accrual,
) -> (
    ManualClock,
    Breaker<ManualClock>,
    CircuitBreaker<Scripted, ManualClock>,
) {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(accrual, clock.clone())
        .backoff(Backoff::exponential(OPEN, Duration::from_secs(60)).jitter(0.0))
        .name("test");
    let svc = CircuitBreaker::new(Scripted::new(clock.clone()), breaker.clone());
    (clock, breaker, svc)
}

fn refused(svc: &CircuitBreaker<Scripted, ManualClock>) -> Option<Duration> {
    let calls = svc.get_ref().counts.calls();
    let result = block_on(svc.call(Step::Ok(0)));
    let err = result.err()?;
    assert_eq!(
        svc.get_ref().counts.calls(),
        calls,
        "a refused call is not made"
    );
    Some(
        err.downcast_ref::<CircuitOpen>()
            .expect("CircuitOpen")
            .retry_after(),
    )
}

#[test]
fn closed_open_half_open_closed() {
    let (clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(3));
    assert_eq!(breaker.state(), CircuitState::Closed);
    for _ in 0..2 {
        assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    }
    assert!(
        block_on(svc.call(Step::Ok(1))).is_ok(),
        "a success resets the run"
    );
    for _ in 0..3 {
        assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(refused(&svc), Some(OPEN));

    clock.advance(OPEN - Duration::from_millis(1));
    assert_eq!(refused(&svc), Some(Duration::from_millis(1)));
    clock.advance(Duration::from_millis(1));

    // The next call is the probe.
    let mut probe = pin!(svc.call(Step::Delay(Duration::from_secs(1), 7)));
    assert!(poll_once(probe.as_mut()).is_pending());
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    assert_eq!(refused(&svc), Some(Duration::ZERO), "one probe at a time");
    clock.advance(Duration::from_secs(1));
    assert!(poll_once(probe.as_mut()).is_ready());
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(block_on(svc.call(Step::Ok(2))).unwrap(), 2);

    // Closing forgot the old failures: it takes three new ones to open.
    for _ in 0..2 {
        assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn a_failed_probe_opens_the_circuit_again_for_longer() {
    let (clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(1));
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);

    clock.advance(OPEN);
    assert!(block_on(svc.call(Step::Fail("still down"))).is_err()); // the probe
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(refused(&svc), Some(OPEN * 2), "the backoff doubled");

    clock.advance(OPEN * 2);
    assert!(block_on(svc.call(Step::Ok(3))).is_ok());
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn a_cancelled_probe_lets_the_next_caller_probe() {
    let (clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(1));
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    clock.advance(OPEN);
    let mut probe = Box::pin(svc.call(Step::Pending));
    assert!(poll_once(probe.as_mut()).is_pending());
    drop(probe);
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    assert!(block_on(svc.call(Step::Ok(1))).is_ok());
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn a_failure_rate_over_the_window_opens_the_circuit() {
    let (clock, breaker, svc) = breaker(Accrual::FailureRate {
        rate: 0.5,
        min_calls: 10,
        window: Duration::from_secs(10),
    });
    // 4 failures in 8 calls: rate met, but too few calls.
    for i in 0..8 {
        let step = if i % 2 == 0 {
            Step::Fail("x")
        } else {
            Step::Ok(0)
        };
        let _ = block_on(svc.call(step));
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    // Old calls age out: after the window, the count starts over.
    clock.advance(Duration::from_secs(11));
    for _ in 0..6 {
        assert!(block_on(svc.call(Step::Ok(0))).is_ok());
    }
    for _ in 0..3 {
        assert!(block_on(svc.call(Step::Fail("x"))).is_err());
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "3 of 9: below the rate"
    );
    for _ in 0..3 {
        let _ = block_on(svc.call(Step::Fail("x")));
    }
    // 6 failures in 12 calls reaches 50 %.
    assert_eq!(breaker.state(), CircuitState::Open);
}

/// "A zero window is taken as one second" (`Accrual::FailureRate`): calls
/// half a second apart still count together, and are forgotten once the
/// second has passed.
#[test]
fn a_zero_failure_rate_window_is_taken_as_one_second() {
    let zero_window = Accrual::FailureRate {
        rate: 0.5,
        min_calls: 2,
        window: Duration::ZERO,
    };
    let (clock, tripped, svc) = breaker(zero_window);
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    clock.advance(Duration::from_millis(500));
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    assert_eq!(tripped.state(), CircuitState::Open, "2 failures in 2 calls");

    let (clock, kept, svc) = breaker(zero_window);
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    clock.advance(Duration::from_millis(1_100));
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    assert_eq!(
        kept.state(),
        CircuitState::Closed,
        "the first failure has left the window: 1 call is under min_calls"
    );
}

#[test]
fn debug_output_shows_the_breaker_name_and_phase() {
    let (_clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(1));
    let shown = format!("{svc:?}");
    assert!(
        shown.starts_with("CircuitBreaker { inner: Scripted"),
        "{shown}"
    );
    assert!(
        shown.contains(
            r#"breaker: Breaker { name: "test", phase: Closed, accrual: ConsecutiveFailures(1)"#
        ),
        "{shown}"
    );
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    let shown = format!("{breaker:?}");
    assert!(shown.contains("phase: Open { until: "), "{shown}");
    assert!(shown.contains("trips: 1 }"), "{shown}");
}

#[test]
fn a_refusal_names_its_breaker() {
    let (_clock, _breaker, svc) = breaker(Accrual::ConsecutiveFailures(1));
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    let err = block_on(svc.call(Step::Ok(0))).unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("CircuitOpen");
    assert_eq!(open.name(), "test");

    let unnamed = Breaker::with_clock(Accrual::ConsecutiveFailures(1), ManualClock::new());
    let svc = CircuitBreaker::new(Scripted::new(ManualClock::new()), unnamed);
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    let err = block_on(svc.call(Step::Ok(0))).unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("CircuitOpen");
    assert_eq!(open.name(), "circuit", "the default name");
}

#[test]
fn a_layer_shows_its_breaker_and_classifier_in_debug_output() {
    let layer = CircuitBreakerLayer::new(Breaker::with_clock(
        Accrual::ConsecutiveFailures(1),
        ManualClock::new(),
    ))
    .classify(errors_where(not_bad_request));
    let shown = format!("{layer:?}");
    assert!(
        shown.starts_with(r#"CircuitBreakerLayer { breaker: Breaker { name: "circuit""#),
        "{shown}"
    );
    assert!(
        shown.contains("classify: \"strata_service::circuit::"),
        "{shown}"
    );
    let classifier = errors_where(not_bad_request);
    let shown = format!("{classifier:?}");
    assert!(shown.starts_with("ErrorsWhere { f: \""), "{shown}");
    assert!(shown.ends_with("not_bad_request\" }"), "{shown}");
}

#[test]
fn services_from_one_layer_share_the_breaker() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(2), clock.clone());
    let layer = CircuitBreakerLayer::new(breaker.clone());
    let a = layer.layer(Scripted::new(clock.clone()));
    let b = layer.layer(Scripted::new(clock.clone()));
    assert!(block_on(a.call(Step::Fail("x"))).is_err());
    assert!(block_on(b.call(Step::Fail("x"))).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(
        block_on(a.call(Step::Ok(0)))
            .unwrap_err()
            .is::<CircuitOpen>()
    );
}

/// A bad request says the backend is up and answering; anything else
/// (a timeout, say) counts against it.
fn not_bad_request(e: &BoxError) -> bool {
    e.to_string() != "bad request"
}

#[test]
fn an_error_classified_as_success_does_not_trip() {
    let (_clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(2));
    let svc = svc.classify(errors_where(not_bad_request));
    for _ in 0..10 {
        let err = block_on(svc.call(Step::Fail("bad request"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad request",
            "the error still reaches the caller"
        );
    }
    assert_eq!(breaker.state(), CircuitState::Closed);

    // It counts as a success: it breaks a run of counted failures.
    assert!(block_on(svc.call(Step::Fail("timed out"))).is_err());
    assert!(block_on(svc.call(Step::Fail("bad request"))).is_err());
    assert!(block_on(svc.call(Step::Fail("timed out"))).is_err());
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn an_error_classified_as_failure_trips() {
    let (_clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(2));
    let svc = svc.classify(errors_where(not_bad_request));
    for _ in 0..2 {
        assert!(block_on(svc.call(Step::Fail("timed out"))).is_err());
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(
        block_on(svc.call(Step::Fail("bad request")))
            .unwrap_err()
            .is::<CircuitOpen>(),
        "refused before the classifier has a say"
    );
}

#[test]
fn the_half_open_probe_is_judged_by_the_classifier() {
    let (clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(1));
    let svc = svc.classify(errors_where(not_bad_request));
    assert!(block_on(svc.call(Step::Fail("timed out"))).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);

    // A counted failure as the probe: open again, for longer.
    clock.advance(OPEN);
    assert!(block_on(svc.call(Step::Fail("timed out"))).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);

    // An error classified as success as the probe: the backend answered.
    clock.advance(OPEN * 2);
    assert!(block_on(svc.call(Step::Fail("bad request"))).is_err());
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[test]
fn a_classifier_that_panics_on_the_probe_frees_the_probe_slot() {
    let (clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(1));
    let svc = svc.classify(errors_where(|e: &BoxError| {
        assert!(e.to_string() != "poison", "classifier asked to panic");
        true
    }));
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    clock.advance(OPEN);
    let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(svc.call(Step::Fail("poison")))
    }));
    assert!(probe.is_err(), "the classifier panicked");
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    // The next caller may probe (it was refused for good before).
    assert!(block_on(svc.call(Step::Fail("down again"))).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[test]
fn a_closure_can_count_responses_and_a_layer_shares_it() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(2), clock.clone());
    // 503 answers count as failures; errors do not.
    let layer = CircuitBreakerLayer::new(breaker.clone())
        .classify(|r: &Result<u32, BoxError>| matches!(r, Ok(503)));
    let a = layer.layer(Scripted::new(clock.clone()));
    let b = layer.layer(Scripted::new(clock.clone()));
    for _ in 0..3 {
        assert!(block_on(a.call(Step::Fail("x"))).is_err());
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(block_on(a.call(Step::Ok(503))).unwrap(), 503);
    assert_eq!(block_on(b.call(Step::Ok(503))).unwrap(), 503);
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[test]
fn the_failure_rate_counts_only_classified_failures() {
    let (_clock, breaker, svc) = breaker(Accrual::FailureRate {
        rate: 0.5,
        min_calls: 4,
        window: Duration::from_secs(10),
    });
    let svc = svc.classify(errors_where(not_bad_request));
    for _ in 0..4 {
        let _ = block_on(svc.call(Step::Fail("bad request")));
    }
    assert!(block_on(svc.call(Step::Fail("timed out"))).is_err());
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "1 failure in 5 calls"
    );
    for _ in 0..4 {
        let _ = block_on(svc.call(Step::Fail("timed out")));
    }
    assert_eq!(breaker.state(), CircuitState::Open, "5 failures in 9 calls");
}

#[test]
fn a_late_failure_from_before_the_outage_does_not_reopen_a_recovered_circuit() {
    let (clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(1));
    // Admitted while closed, still in flight through the outage.
    let mut slow = pin!(svc.call(Step::FailAfter(Duration::from_secs(30), "late")));
    assert!(poll_once(slow.as_mut()).is_pending());
    assert!(block_on(svc.call(Step::Fail("down"))).is_err());
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(OPEN);
    assert!(block_on(svc.call(Step::Ok(1))).is_ok());
    assert_eq!(breaker.state(), CircuitState::Closed);
    clock.advance(Duration::from_secs(30));
    assert!(matches!(
        poll_once(slow.as_mut()),
        std::task::Poll::Ready(Err(_))
    ));
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "an outcome from before the recovery must not count"
    );
}

#[test]
fn a_panicking_backend_trips_the_breaker_and_a_panicking_probe_reopens_it() {
    let (clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(2));
    scripted::quiet_panics();
    let panicking = || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            block_on(svc.call(Step::PanicInFuture))
        }))
        .is_err()
    };
    assert!(panicking());
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert!(panicking());
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(OPEN);
    assert!(panicking(), "the probe panics");
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "a panicking probe is a failure"
    );
    assert!(
        block_on(svc.call(Step::Ok(1)))
            .unwrap_err()
            .is::<CircuitOpen>()
    );
}

/// A call that is merely cancelled (dropped while pending) counts as
/// nothing, even if the drop happens while some *other* code unwinds
/// (a sibling future in the same task panicked).
#[test]
fn a_call_dropped_by_an_unrelated_panic_is_not_a_failure() {
    let (_clock, breaker, svc) = breaker(Accrual::ConsecutiveFailures(1));
    scripted::quiet_panics();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut pending = Box::pin(svc.call(Step::Pending));
        assert!(poll_once(pending.as_mut()).is_pending());
        // The caller (not the backend) panics; `pending` is dropped while
        // unwinding.
        panic!("unrelated caller panic");
    }));
    assert!(r.is_err());
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "a cancelled call was counted as a backend failure"
    );
}
