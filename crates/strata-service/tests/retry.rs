//! `Retry`: the policy, the retry limit, backoff on a manual clock, and
//! the budget under a total outage.

mod scripted;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_executor::block_on;
use scripted::{Scripted, Step, poll_once};
use strata_service::backoff::Backoff;
use strata_service::clock::ManualClock;
use strata_service::retry::{BudgetExhausted, Policy, Retry, RetryBudget, RetryLayer, on_error};
use strata_service::{BoxError, Layer, Service, service_fn};

/// A budget that never binds.
fn plenty(clock: &ManualClock) -> RetryBudget<ManualClock> {
    RetryBudget::with_clock(Duration::from_secs(10), 1_000_000, 10.0, clock.clone())
}

/// Fails `failures` times, then answers with the attempt count.
fn flaky(
    failures: usize,
) -> (
    Arc<AtomicUsize>,
    impl Service<u32, Response = usize, Error = BoxError>,
) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let svc = service_fn(move |_: u32| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= failures {
                Err(BoxError::from("flaky"))
            } else {
                Ok(n)
            }
        }
    });
    (attempts, svc)
}

fn all_errors() -> impl Policy<u32, usize, BoxError> + Clone {
    on_error(|_: &BoxError| true)
}

#[test]
fn a_failure_the_policy_accepts_is_retried_until_success() {
    let clock = ManualClock::new();
    let (attempts, inner) = flaky(2);
    let svc = Retry::with_budget(inner, all_errors(), plenty(&clock)).backoff(Backoff::none());
    assert_eq!(block_on(svc.call(0)).unwrap(), 3);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[test]
fn a_failure_the_policy_refuses_is_returned_at_once() {
    let clock = ManualClock::new();
    let (attempts, inner) = flaky(5);
    let policy = on_error(|e: &BoxError| e.to_string() != "flaky");
    let svc = Retry::with_budget(inner, policy, plenty(&clock)).backoff(Backoff::none());
    assert!(block_on(svc.call(0)).is_err());
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[test]
fn retries_stop_at_the_limit_with_the_last_error() {
    let clock = ManualClock::new();
    let (attempts, inner) = flaky(100);
    let svc = Retry::with_budget(inner, all_errors(), plenty(&clock))
        .backoff(Backoff::none())
        .max_retries(4);
    assert_eq!(block_on(svc.call(0)).unwrap_err().to_string(), "flaky");
    assert_eq!(attempts.load(Ordering::SeqCst), 5);
}

#[test]
fn a_request_that_cannot_be_cloned_is_tried_once() {
    struct NoClone;
    impl Policy<u32, usize, BoxError> for NoClone {
        fn should_retry(&self, _: &u32, _: &Result<usize, BoxError>) -> bool {
            true
        }
        fn clone_request(&self, _: &u32) -> Option<u32> {
            None
        }
    }
    let clock = ManualClock::new();
    let (attempts, inner) = flaky(1);
    let svc = Retry::with_budget(inner, NoClone, plenty(&clock)).backoff(Backoff::none());
    assert!(block_on(svc.call(0)).is_err());
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[test]
fn attempts_wait_out_the_backoff_on_the_clock() {
    let clock = ManualClock::new();
    let inner = Scripted::new(clock.clone());
    let backoff =
        Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
    let svc = Retry::with_budget(inner.clone(), on_error(|_: &BoxError| true), plenty(&clock))
        .backoff(backoff)
        .max_retries(2);
    let mut call = pin!(svc.call(Step::Fail("down")));
    assert!(poll_once(call.as_mut()).is_pending());
    assert_eq!(inner.counts.calls(), 1);
    clock.advance(Duration::from_millis(99));
    assert!(poll_once(call.as_mut()).is_pending());
    assert_eq!(inner.counts.calls(), 1, "still backing off");
    clock.advance(Duration::from_millis(1));
    assert!(poll_once(call.as_mut()).is_pending());
    assert_eq!(inner.counts.calls(), 2);
    clock.advance(Duration::from_millis(200)); // doubled
    assert!(poll_once(call.as_mut()).is_ready());
    assert_eq!(inner.counts.calls(), 3);
}

#[test]
fn jittered_delays_stay_under_the_ceiling() {
    let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10));
    for attempt in 0..8 {
        let ceiling = b.ceiling(attempt);
        for _ in 0..50 {
            let d = b.delay(attempt);
            assert!(d <= ceiling && d >= ceiling / 2, "{d:?} vs {ceiling:?}");
        }
    }
    assert_eq!(b.ceiling(40), Duration::from_secs(10));
}

/// Jitter spreads the delays uniformly over its range (`(ceiling / 2,
/// ceiling]` with the default 0.5), so that callers who failed together
/// do not retry together. The random source cannot be seeded from
/// outside, so the bounds are loose: of 10 000 uniform draws, a tenth of
/// the range gets fewer than 800 or more than 1 200 with probability
/// about 1e-10, two draws coincide with probability about 0.1 (100 is
/// allowed), and one lands exactly on the ceiling with probability 2^-53.
#[test]
fn jitter_spreads_delays_uniformly_over_the_range() {
    let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(1));
    let ceiling = b.ceiling(0);
    let half = ceiling / 2;
    let mut tenths = [0u32; 10];
    let mut distinct = std::collections::HashSet::new();
    let mut at_ceiling = 0;
    for _ in 0..10_000 {
        let d = b.delay(0);
        assert!(d >= half && d <= ceiling, "{d:?} vs {ceiling:?}");
        if d == ceiling {
            at_ceiling += 1;
        }
        distinct.insert(d);
        let tenth = ((d - half).as_nanos() * 10 / half.as_nanos()).min(9);
        tenths[tenth as usize] += 1;
    }
    assert!(
        at_ceiling <= 1,
        "{at_ceiling} of 10 000 delays were the ceiling: not jittered"
    );
    assert!(
        distinct.len() >= 9_900,
        "only {} distinct delays in 10 000: the jitter repeats",
        distinct.len()
    );
    assert!(
        tenths.iter().all(|n| (800..=1_200).contains(n)),
        "delays not spread evenly over the range: {tenths:?}"
    );
}

#[test]
fn under_total_failure_retries_stay_within_the_budget() {
    let clock = ManualClock::new();
    // Finagle's defaults: 10 s window, 10 retries/s floor, 20 % of requests.
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 10, 0.2, clock.clone());
    let inner = Scripted::new(clock.clone());
    let svc = RetryLayer::with_budget(on_error(|_: &BoxError| true), budget.clone())
        .backoff(Backoff::none())
        .max_retries(3)
        .layer(inner.clone());
    let requests = 1_000;
    for _ in 0..requests {
        assert!(block_on(svc.call(Step::Fail("outage"))).is_err());
    }
    let retries = inner.counts.calls() - requests;
    // Without a budget: 3 retries each, 3 000. With it: 100 + 20 % of 1 000.
    assert_eq!(retries, 100 + 200);
    assert_eq!(budget.balance(), 0);

    // The window slides: after it has passed, the budget is back.
    clock.advance(Duration::from_secs(11));
    assert_eq!(budget.balance(), 100);
}

/// A budget of exactly two retries per second-long window, whatever the
/// traffic.
fn two_retries(clock: &ManualClock) -> RetryBudget<ManualClock> {
    RetryBudget::with_clock(Duration::from_secs(1), 2, 0.0, clock.clone())
}

fn spent(result: Result<u32, BoxError>) -> Option<BudgetExhausted> {
    result
        .unwrap_err()
        .downcast_ref::<BudgetExhausted>()
        .cloned()
}

#[test]
fn by_default_a_spent_budget_returns_the_last_error() {
    let clock = ManualClock::new();
    let inner = Scripted::new(clock.clone());
    let svc = Retry::with_budget(
        inner.clone(),
        on_error(|_: &BoxError| true),
        two_retries(&clock),
    )
    .backoff(Backoff::none())
    .max_retries(1);
    for _ in 0..4 {
        let err = block_on(svc.call(Step::Fail("outage"))).unwrap_err();
        assert_eq!(err.to_string(), "outage");
    }
    assert_eq!(inner.counts.calls(), 4 + 2, "two retries, then none");
}

#[test]
fn once_the_budget_is_spent_callers_see_budget_exhausted() {
    let clock = ManualClock::new();
    let inner = Scripted::new(clock.clone());
    let svc = Retry::with_budget(
        inner.clone(),
        on_error(|_: &BoxError| true),
        two_retries(&clock),
    )
    .backoff(Backoff::none())
    .max_retries(1)
    .report_budget_exhausted();

    // While the budget lasts: one retry each, then the retry limit, which
    // ends with the last error as before.
    for _ in 0..2 {
        let result = block_on(svc.call(Step::Fail("outage")));
        assert!(
            spent(result).is_none(),
            "the limit stopped it, not the budget"
        );
    }
    assert_eq!(inner.counts.calls(), 4);

    // Spent: the first attempt fails, its retry is refused.
    for _ in 0..3 {
        let exhausted = spent(block_on(svc.call(Step::Fail("outage")))).expect("BudgetExhausted");
        assert_eq!(exhausted.attempts(), 1);
        assert_eq!(exhausted.last_error(), Some("outage"));
        assert_eq!(
            exhausted.to_string(),
            "retries refused by the retry budget after 1 attempt; last error: outage"
        );
    }
    assert_eq!(inner.counts.calls(), 4 + 3, "no retries while spent");

    // A success needs no retry, spent budget or not.
    assert_eq!(block_on(svc.call(Step::Ok(9))).unwrap(), 9);

    // The window slides on: the budget is back, and so is the last error.
    clock.advance(Duration::from_secs(2));
    let result = block_on(svc.call(Step::Fail("outage")));
    assert_eq!(result.as_ref().unwrap_err().to_string(), "outage");
    assert!(spent(result).is_none());
}

#[test]
fn budget_exhausted_counts_the_attempts_made() {
    let clock = ManualClock::new();
    let inner = Scripted::new(clock.clone());
    let svc = RetryLayer::with_budget(on_error(|_: &BoxError| true), two_retries(&clock))
        .backoff(Backoff::none())
        .max_retries(5)
        .report_budget_exhausted()
        .layer(inner.clone());
    let exhausted = spent(block_on(svc.call(Step::Fail("outage")))).expect("BudgetExhausted");
    assert_eq!(exhausted.attempts(), 3, "the first attempt and two retries");
    assert_eq!(inner.counts.calls(), 3);
}

#[test]
fn a_retryable_response_refused_by_the_budget_is_reported_without_an_error() {
    struct RetryZero;
    impl Policy<Step, u32, BoxError> for RetryZero {
        fn should_retry(&self, _: &Step, result: &Result<u32, BoxError>) -> bool {
            matches!(result, Ok(0))
        }
        fn clone_request(&self, req: &Step) -> Option<Step> {
            Some(req.clone())
        }
    }
    let clock = ManualClock::new();
    let budget = RetryBudget::with_clock(Duration::from_secs(1), 0, 0.0, clock.clone());
    let svc = Retry::with_budget(Scripted::new(clock.clone()), RetryZero, budget)
        .backoff(Backoff::none())
        .report_budget_exhausted();
    let exhausted = spent(block_on(svc.call(Step::Ok(0)))).expect("BudgetExhausted");
    assert_eq!((exhausted.attempts(), exhausted.last_error()), (1, None));
    assert_eq!(
        exhausted.to_string(),
        "retries refused by the retry budget after 1 attempt"
    );
}

#[test]
fn the_budget_refills_as_old_slots_leave_the_window() {
    let clock = ManualClock::new();
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.5, clock.clone());
    for _ in 0..10 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 5);
    assert!(budget.withdraw());
    assert_eq!(budget.balance(), 4);
    clock.advance(Duration::from_secs(5));
    for _ in 0..4 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 6); // 14 * 0.5 - 1
    clock.advance(Duration::from_secs(6)); // the first 10 deposits and the withdrawal age out
    assert_eq!(budget.balance(), 2);
}

#[test]
fn a_budget_reports_its_window_and_takes_a_short_one_as_a_second() {
    assert_eq!(RetryBudget::default().ttl(), Duration::from_secs(10));
    let budget = RetryBudget::with_clock(Duration::from_secs(30), 1, 0.1, ManualClock::new());
    assert_eq!(budget.ttl(), Duration::from_secs(30));
    let short = RetryBudget::with_clock(Duration::from_millis(100), 5, 0.0, ManualClock::new());
    assert_eq!(short.ttl(), Duration::from_secs(1));
}

#[test]
fn debug_output_shows_the_budget_in_retries_and_the_retry_settings() {
    let clock = ManualClock::new();
    // 10 a second over 10 s: a floor of 100 retries; 20 % of requests.
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 10, 0.2, clock.clone());
    assert_eq!(
        format!("{budget:?}"),
        "RetryBudget { ttl: 10s, reserve: 100.0, ratio: 0.2, \
         clock: ManualClock { sleepers: 0, .. } }"
    );
    let svc = Retry::with_budget(Scripted::new(clock), on_error(|_: &BoxError| true), budget)
        .backoff(Backoff::none())
        .max_retries(2);
    let shown = format!("{svc:?}");
    assert!(shown.starts_with("Retry { inner: Scripted"), "{shown}");
    assert!(shown.contains("budget: RetryBudget { ttl: 10s"), "{shown}");
    assert!(
        shown.contains("max_retries: 2, on_budget_spent: LastOutcome"),
        "{shown}"
    );
    let policy = format!("{:?}", svc.policy());
    assert!(policy.starts_with("OnError { f: \""), "{policy}");
}

#[test]
fn backoff_keeps_doubling_up_to_its_cap_past_thirty_one_attempts() {
    let b = Backoff::exponential(Duration::from_nanos(1), Duration::from_secs(10));
    assert!(b.ceiling(32) > b.ceiling(31), "still below the cap");
    assert_eq!(b.ceiling(33), Duration::from_nanos(1 << 33));
    assert_eq!(b.ceiling(40), Duration::from_secs(10));
    assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
    let zero = Backoff::exponential(Duration::ZERO, Duration::from_secs(10));
    assert_eq!(zero.ceiling(u32::MAX), Duration::ZERO);
}

// `Backoff::delay` at the top of the `Duration` range. A jittered delay
// computed as `ceiling.mul_f64(factor)` panicked whenever the factor was
// exactly 1.0 and the ceiling `Duration::MAX` (whose f64 seconds round up
// past the largest `Duration`): always with a jitter below about 5e-17,
// and with any jitter when the random draw was 0.
mod backoff_at_duration_max {
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
}

// The retry budget's floor with a window shorter than a second. The
// floor is kept as `min_per_second * ttl` whole retries per window, so a
// `ttl` under a second (5 a second over 100 ms) rounded it down to none
// and a quiet client never retried. Such a `ttl` is now taken as one
// second, the shortest Finagle accepts.
mod budget_floor {
    use std::time::Duration;

    use strata_service::clock::ManualClock;
    use strata_service::retry::RetryBudget;

    #[test]
    fn a_floor_of_five_per_second_over_a_100ms_window_allows_retries() {
        let clock = ManualClock::new();
        // No share of requests: only the floor of 5 retries a second.
        let budget = RetryBudget::with_clock(Duration::from_millis(100), 5, 0.0, clock.clone());
        let mut retries = 0;
        // Ten seconds, one retry asked for every 10 ms.
        for _ in 0..1_000 {
            if budget.withdraw() {
                retries += 1;
            }
            clock.advance(Duration::from_millis(10));
        }
        // 5 a second for 10 s: about 50. Ask for half.
        assert!(
            retries >= 25,
            "a floor of 5 retries/s allowed {retries} retries in 10 s"
        );
    }
}

/// Withdraws until the budget refuses; the number of retries it allowed.
fn retries_allowed(budget: &RetryBudget<ManualClock>) -> u32 {
    let mut n = 0;
    while budget.withdraw() {
        n += 1;
        assert!(n < 10_000, "the budget never refuses");
    }
    n
}

/// The budget's rule, `withdrawals + 1 <= min_per_second * ttl + ratio *
/// deposits`, holds for the numbers as written: 0.29 of 100 requests is 29
/// retries, 45 a second over 1.4 s is 63. In floating point the products
/// came to 28.999999999999996 and 62.99999999999999, and the floor
/// refused one retry.
#[test]
fn the_budget_allows_exactly_what_its_rule_says() {
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.29, ManualClock::new());
    for _ in 0..100 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 29);
    assert_eq!(retries_allowed(&budget), 29);
    assert_eq!(budget.balance(), 0);

    let budget = RetryBudget::with_clock(Duration::from_millis(1400), 45, 0.0, ManualClock::new());
    assert_eq!(retries_allowed(&budget), 63);

    // Extremes saturate instead of wrapping.
    let budget =
        RetryBudget::with_clock(Duration::MAX, u32::MAX, f64::INFINITY, ManualClock::new());
    budget.deposit();
    assert_eq!(budget.balance(), u64::MAX);
    assert!(budget.withdraw());
}
