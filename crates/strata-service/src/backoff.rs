//! Exponential backoff with jitter, for [`Retry`](crate::retry::Retry)
//! and [`CircuitBreaker`](crate::circuit::CircuitBreaker).

use std::cell::Cell;
use std::hash::BuildHasher;
use std::time::Duration;

/// Delays that double from `base` up to `max`, each shortened by a random
/// part (the jitter) so that callers who failed together do not retry
/// together.
///
/// The delay before retry number `n` (counting from 0) is
/// `ceiling(n) = min(max, base * 2^n)` minus a uniformly random share of
/// up to `jitter` of it. With the default jitter of `0.5` the delay lies
/// in `[ceiling / 2, ceiling]`; `1.0` is "full jitter" (`[0, ceiling]`),
/// `0.0` no jitter at all.
///
/// ```
/// use std::time::Duration;
/// use strata_service::backoff::Backoff;
///
/// let b = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(50));
/// assert_eq!(b.ceiling(0), Duration::from_millis(10));
/// assert_eq!(b.ceiling(1), Duration::from_millis(20));
/// assert_eq!(b.ceiling(3), Duration::from_millis(50)); // capped
/// let d = b.delay(1);
/// assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// Doubling delays from `base`, capped at `max`, with jitter `0.5`.
    pub const fn exponential(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            jitter: 0.5,
        }
    }

    /// The same delay every time.
    pub const fn constant(delay: Duration) -> Self {
        Backoff {
            base: delay,
            max: delay,
            jitter: 0.0,
        }
    }

    /// No delay at all.
    pub const fn none() -> Self {
        Backoff::constant(Duration::ZERO)
    }

    /// Sets the share of each delay that is random, clamped to `0.0..=1.0`.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// The delay before retry `attempt` (from 0) without jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let base = self.base.as_nanos();
        let nanos = if base == 0 {
            0
        } else if attempt >= 127 {
            u128::MAX
        } else {
            base.saturating_mul(1u128 << attempt)
        };
        if nanos >= self.max.as_nanos() {
            return self.max;
        }
        Duration::new(
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        )
    }

    /// The delay before retry `attempt` (from 0), jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if self.jitter == 0.0 || ceiling.is_zero() {
            return ceiling;
        }
        // `mul_f64` panics when the product rounds past `Duration::MAX`,
        // which a ceiling of `Duration::MAX` and a factor of 1.0 do.
        Duration::try_from_secs_f64(ceiling.as_secs_f64() * (1.0 - self.jitter * random_unit()))
            .map_or(ceiling, |d| d.min(ceiling))
    }
}

/// A uniform number in `[0, 1)`, from a per-thread xorshift generator
/// seeded by std's hasher keys. Good enough to spread retries; not for
/// anything that needs real randomness.
fn random_unit() -> f64 {
    thread_local! {
        static STATE: Cell<u64> =
            Cell::new(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}
