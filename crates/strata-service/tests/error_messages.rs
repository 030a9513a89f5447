//! Middleware error messages: what refused the call, and when to retry.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_executor::block_on;
use strata_service::backoff::Backoff;
use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitOpen};
use strata_service::clock::ManualClock;
use strata_service::{BoxError, Service, service_fn};

const OPEN: Duration = Duration::from_secs(5);

/// A breaker named `name` that trips on one failure, over a service whose
/// first call fails and whose later calls never finish.
fn tripped(
    name: &str,
) -> (
    ManualClock,
    CircuitBreaker<impl Service<(), Response = (), Error = BoxError>, ManualClock>,
) {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(1), clock.clone())
        .backoff(Backoff::exponential(OPEN, Duration::from_secs(60)).jitter(0.0))
        .name(name);
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = service_fn(move |()| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                return Err::<(), BoxError>("backend down".into());
            }
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let svc = CircuitBreaker::new(inner, breaker);
    assert!(block_on(svc.call(())).is_err(), "the first call fails");
    (clock, svc)
}

fn refusal(svc: &impl Service<(), Response = (), Error = BoxError>) -> String {
    let err = block_on(svc.call(())).expect_err("refused");
    assert!(err.downcast_ref::<CircuitOpen>().is_some(), "{err}");
    err.to_string()
}

/// While the half-open probe is out, a refused call must not say "retry
/// after 0ns" (it did), which reads as "retry now": it is refused again
/// until the probe ends.
#[test]
fn circuit_open_during_a_probe_does_not_say_retry_after_zero() {
    let (clock, svc) = tripped("payments-db");
    clock.advance(OPEN);
    let mut probe = pin!(svc.call(()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(probe.as_mut().poll(&mut cx), Poll::Pending));
    let msg = refusal(&svc);
    assert!(!msg.contains("retry after 0ns"), "{msg:?}");
    assert!(msg.contains("probe"), "{msg:?}");
}
