//! Audit: `Backoff::delay` at the top of the `Duration` range.
//!
//! `delay` is `ceiling.mul_f64(1.0 - jitter * r)`. `mul_f64` goes through
//! `f64` seconds; `Duration::MAX.as_secs_f64()` rounds up to 2^64 s,
//! which does not fit a `Duration`, so whenever the factor is exactly
//! `1.0` the multiplication panics. With a small jitter (any jitter
//! below about 5e-17) the factor is always `1.0`; with any jitter it is
//! `1.0` whenever the random draw is 0.

use std::time::Duration;

use strata_service::backoff::Backoff;

/// An uncapped exponential backoff with a jitter small enough that the
/// jittered factor rounds to 1.0: the delay must be the ceiling, not a
/// panic.
#[test]
fn an_uncapped_backoff_with_a_tiny_jitter_does_not_panic() {
    let b = Backoff::exponential(Duration::from_millis(10), Duration::MAX).jitter(1e-17);
    assert_eq!(b.ceiling(100), Duration::MAX);
    let delay = std::panic::catch_unwind(|| b.delay(100));
    assert!(
        delay.is_ok(),
        "Backoff::delay panicked for a ceiling of Duration::MAX"
    );
    assert!(delay.unwrap() <= Duration::MAX);
}

/// The same with a constant delay of `Duration::MAX` ("never"), which the
/// crate otherwise handles (deadlines saturate at thirty years).
#[test]
fn a_constant_never_backoff_with_jitter_does_not_panic() {
    let b = Backoff::constant(Duration::MAX).jitter(1e-17);
    let delay = std::panic::catch_unwind(|| b.delay(0));
    assert!(delay.is_ok(), "Backoff::delay panicked for Duration::MAX");
}

/// Through `Retry`: a failed attempt with such a backoff should back off
/// (for "ever", under the crate's thirty-year cap), not panic inside the
/// caller's future.
#[test]
fn retry_with_a_never_backoff_backs_off_instead_of_panicking() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::Context;

    use strata_service::clock::ManualClock;
    use strata_service::retry::{Retry, RetryBudget, on_error};
    use strata_service::{BoxError, Service, service_fn};

    let clock = ManualClock::new();
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 100, 1.0, clock);
    let down = service_fn(|_: u32| async { Err::<u32, _>(BoxError::from("down")) });
    let svc = Retry::with_budget(down, on_error(|_: &BoxError| true), budget)
        .backoff(Backoff::constant(Duration::MAX).jitter(1e-17));
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut call = pin!(svc.call(1));
        let waker = futures_util::task::noop_waker();
        call.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    }));
    assert!(
        matches!(polled, Ok(true)),
        "the call should be backing off; it panicked"
    );
}
