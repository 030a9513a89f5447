//! The token bucket, kept as one instant (GCRA).
//!
//! A bucket of `burst` tokens refilled at one token per `interval` is the
//! same thing as the generic cell rate algorithm's "theoretical arrival
//! time" `tat`: the instant at which the bucket would be full again if
//! nothing else arrived. A call at `now` may go at
//! `max(tat, now) - (burst - 1) * interval`; taking its token pushes `tat`
//! one interval further. One `Instant` per bucket, integer arithmetic
//! only, so tests under a manual clock are exact.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};

/// How fast tokens come back: `n` per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    interval: Duration,
}

impl Rate {
    /// `n` tokens per `period`.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    pub fn new(n: u32, period: Duration) -> Rate {
        assert!(n > 0, "a rate needs at least one token per period");
        Rate {
            interval: period / n,
        }
    }

    /// `n` tokens per second.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    pub fn per_second(n: u32) -> Rate {
        Rate::new(n, Duration::from_secs(1))
    }

    /// The time one token takes to come back.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// A token bucket: `burst` tokens, refilled at a [`Rate`]; shareable.
///
/// Clones share the tokens (an `Arc` around a `Mutex` held for a few
/// instructions), so one bucket can limit a whole server across workers.
#[derive(Clone)]
pub struct TokenBucket<C = SystemClock> {
    shared: Arc<Shared>,
    clock: C,
}

struct Shared {
    interval: Duration,
    /// `(burst - 1) * interval`: how far `tat` may run ahead of now.
    tolerance: Duration,
    tat: Mutex<Instant>,
}

/// What the bucket says to a caller.
pub(crate) enum Decision {
    /// Go now.
    Go,
    /// A token is reserved for you; go at this instant.
    GoAt(Instant),
    /// No token; one would be free after this long.
    Refused(Duration),
}

impl TokenBucket {
    /// A full bucket of `burst` tokens (at least one), on the system clock.
    pub fn new(rate: Rate, burst: u32) -> Self {
        TokenBucket::with_clock(rate, burst, SystemClock)
    }
}

impl<C: Clock> TokenBucket<C> {
    /// A full bucket of `burst` tokens (at least one), on `clock`.
    pub fn with_clock(rate: Rate, burst: u32, clock: C) -> Self {
        let tolerance = rate.interval * (burst.max(1) - 1);
        TokenBucket {
            shared: Arc::new(Shared {
                interval: rate.interval,
                tolerance,
                tat: Mutex::new(clock.now()),
            }),
            clock,
        }
    }

    /// Takes a token if one is there now; `false` if the bucket is empty.
    pub fn try_take(&self) -> bool {
        matches!(self.decide(false), Decision::Go)
    }

    pub(crate) fn clock(&self) -> &C {
        &self.clock
    }

    /// Takes a token now, or (with `wait`) reserves the next free one.
    pub(crate) fn decide(&self, wait: bool) -> Decision {
        let now = self.clock.now();
        let mut tat = self.lock();
        let start = (*tat).max(now);
        let go_at = start.checked_sub(self.shared.tolerance).unwrap_or(now);
        if go_at <= now {
            *tat = start + self.shared.interval;
            Decision::Go
        } else if wait {
            *tat = start + self.shared.interval;
            Decision::GoAt(go_at)
        } else {
            Decision::Refused(go_at - now)
        }
    }

    /// Gives back a token reserved by a caller that gave up waiting.
    pub(crate) fn refund(&self) {
        let mut tat = self.lock();
        *tat = tat.checked_sub(self.shared.interval).unwrap_or(*tat);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.shared.tat.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: fmt::Debug> fmt::Debug for TokenBucket<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("interval", &self.shared.interval)
            .field("tolerance", &self.shared.tolerance)
            .field("clock", &self.clock)
            .finish()
    }
}
