//! Checks of claims made in strata-service's public documentation.

use std::time::Duration;

use futures_util::FutureExt;
use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitOpen, CircuitState};
use strata_service::clock::ManualClock;
use strata_service::limit::PermitPool;
use strata_service::load_shed::{LoadShed, Overloaded};
use strata_service::retry::RetryBudget;
use strata_service::{BoxError, Service, service_fn};

/// `RetryBudget`: "A `ttl` under one second is taken as one second";
/// defaults "a 10 s window, 10 retries per second, 20 %".
#[test]
fn retry_budget_defaults_and_bounds() {
    let clock = ManualClock::new();
    let short = RetryBudget::with_clock(Duration::from_millis(10), 10, 0.2, clock.clone());
    assert_eq!(short.ttl(), Duration::from_secs(1));
    assert_eq!(short.balance(), 10);
    let d = RetryBudget::default();
    assert_eq!(d.ttl(), Duration::from_secs(10));
    assert_eq!(d.balance(), 100);
    for _ in 0..10 {
        d.deposit();
    }
    assert_eq!(d.balance(), 102);
}

/// `PermitPool::new(0)`: "every `try_acquire` fails"; a `LoadShed` on it
/// sheds every call.
#[test]
fn empty_pool_sheds_everything() {
    let pool = PermitPool::new(0);
    assert!(pool.try_acquire().is_none());
    let svc = LoadShed::new(service_fn(|()| async { Ok::<_, BoxError>(()) }), pool);
    let err = svc.call(()).now_or_never().unwrap().unwrap_err();
    assert!(err.is::<Overloaded>());
}

/// `Accrual::ConsecutiveFailures`: "0 is taken as 1"; a breaker "nobody
/// calls stays Open".
#[test]
fn breaker_zero_failures_is_one() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(0), clock.clone());
    let svc = CircuitBreaker::new(
        service_fn(|fail: bool| async move {
            if fail {
                Err::<(), BoxError>("down".into())
            } else {
                Ok(())
            }
        }),
        breaker,
    );
    assert!(svc.call(false).now_or_never().unwrap().is_ok());
    assert_eq!(svc.breaker().state(), CircuitState::Closed);
    assert!(svc.call(true).now_or_never().unwrap().is_err());
    assert_eq!(svc.breaker().state(), CircuitState::Open);
    let refused = svc.call(false).now_or_never().unwrap().unwrap_err();
    assert!(refused.is::<CircuitOpen>());
    clock.advance(Duration::from_secs(120));
    assert_eq!(svc.breaker().state(), CircuitState::Open);
    assert!(svc.call(false).now_or_never().unwrap().is_ok());
    assert_eq!(svc.breaker().state(), CircuitState::Closed);
}
