//! Settings that would silently disable a middleware: a circuit breaker
//! that can never open, a concurrency limit that lets no call through.
//! Each is either made safe or refused with a clear panic.

use std::time::Duration;

use futures_executor::block_on;
use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitState};
use strata_service::clock::ManualClock;
use strata_service::limit::{ConcurrencyLimit, ConcurrencyLimitLayer};
use strata_service::{BoxError, Service, ServiceBuilder, service_fn};

/// Drives `n` calls through a breaker with `accrual`, failing when
/// `fail(i)`, and returns its state afterwards.
fn state_after(accrual: Accrual, n: usize, fail: fn(usize) -> bool) -> CircuitState {
    let breaker = Breaker::with_clock(accrual, ManualClock::new());
    let svc = CircuitBreaker::new(
        service_fn(move |i: usize| async move {
            if fail(i) {
                Err::<(), BoxError>("backend down".into())
            } else {
                Ok(())
            }
        }),
        breaker.clone(),
    );
    for i in 0..n {
        let _ = block_on(svc.call(i));
    }
    breaker.state()
}

fn rate(rate: f64) -> Accrual {
    Accrual::FailureRate {
        rate,
        min_calls: 5,
        window: Duration::from_secs(10),
    }
}

fn is_open(state: CircuitState) -> bool {
    state == CircuitState::Open
}

/// A NaN rate (documented as taken as 1.0) still opens when every call
/// fails; before, `failures >= NaN * calls` was always false.
#[test]
fn failure_rate_nan_opens_when_every_call_fails() {
    assert!(is_open(state_after(rate(f64::NAN), 100, |_| true)));
    assert_eq!(
        state_after(rate(f64::NAN), 100, |i| i % 10 != 0),
        CircuitState::Closed
    );
}

/// A rate over 1.0 is clamped to 1.0: it could never be reached before.
#[test]
fn failure_rate_above_one_is_clamped() {
    assert!(is_open(state_after(rate(1.5), 100, |_| true)));
    assert!(is_open(state_after(rate(f64::INFINITY), 100, |_| true)));
}

/// A rate of 0 (or below) opens at the first failure once enough calls
/// finished; a success never opens the circuit.
#[test]
fn failure_rate_zero_opens_at_a_failure() {
    assert_eq!(state_after(rate(0.0), 100, |_| false), CircuitState::Closed);
    assert_eq!(
        state_after(rate(-1.0), 100, |_| false),
        CircuitState::Closed
    );
    assert!(is_open(state_after(rate(0.0), 100, |i| i == 50)));
    assert!(is_open(state_after(rate(-1.0), 100, |i| i == 50)));
}

#[test]
#[should_panic(expected = "a concurrency limit of 0 would make every call wait forever")]
fn concurrency_limit_of_zero_is_refused() {
    let _ = ConcurrencyLimit::new(service_fn(|x: u32| async move { Ok::<_, ()>(x) }), 0);
}

#[test]
#[should_panic(expected = "a concurrency limit of 0 would make every call wait forever")]
fn concurrency_limit_layer_of_zero_is_refused() {
    let _ = ConcurrencyLimitLayer::new(0);
}

#[test]
#[should_panic(expected = "a concurrency limit of 0 would make every call wait forever")]
fn builder_concurrency_limit_of_zero_is_refused() {
    let _ = ServiceBuilder::new()
        .concurrency_limit(0)
        .service(service_fn(|x: u32| async move { Ok::<_, ()>(x) }));
}
