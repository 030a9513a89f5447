//! Audit: the retry budget's floor with a window shorter than a second.
//!
//! `RetryBudget::new(ttl, min_per_second, ratio)` promises
//! "`min_per_second` retries per second" for a quiet client. The floor is
//! kept as `min_per_second * ttl` retries per window and rounded down, so
//! with `min_per_second * ttl < 1` (say 5 a second over a 100 ms window)
//! the floor is zero and a quiet client never retries. Finagle refuses a
//! ttl under one second for this reason; here it is taken silently.

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
