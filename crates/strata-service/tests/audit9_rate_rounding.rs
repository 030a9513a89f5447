//! Audit: `Rate::new(n, period)` keeps `period / n` truncated to whole
//! nanoseconds, so a rate whose interval is not a whole number of
//! nanoseconds lets more than `n` tokens per `period` through. The docs
//! only allow that for rates faster than one token per nanosecond.

use std::time::Duration;

use strata_service::clock::ManualClock;
use strata_service::limit::{Rate, TokenBucket};

/// Takes every token the bucket gives while the clock moves one
/// nanosecond at a time for `span`.
fn tokens_over(rate: Rate, span_ns: u64) -> u64 {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(rate, 1, clock.clone());
    let mut taken = 0;
    for _ in 0..span_ns {
        while bucket.try_take() {
            taken += 1;
        }
        clock.advance(Duration::from_nanos(1));
    }
    taken
}

/// 600 million a second is slower than one per nanosecond, so it is not
/// clamped by the docs; over 3 µs it allows 1 800 tokens (plus the burst
/// of one).
#[test]
fn six_hundred_million_per_second_is_not_one_per_nanosecond() {
    let rate = Rate::per_second(600_000_000);
    let taken = tokens_over(rate, 3_000);
    assert!(
        taken <= 1_800 + 1,
        "{taken} tokens in 3 µs at 600 M/s (interval {:?})",
        rate.interval()
    );
}

/// Two tokens per three nanoseconds: over 3 µs, 2 000 (plus the burst).
#[test]
fn two_per_three_nanoseconds_is_not_three() {
    let taken = tokens_over(Rate::new(2, Duration::from_nanos(3)), 3_000);
    assert!(taken <= 2_000 + 1, "{taken} tokens in 3 µs at 2 per 3 ns");
}
