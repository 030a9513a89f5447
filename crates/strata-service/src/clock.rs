//! Where time-aware middleware reads the time and sleeps.
//!
//! [`Timeout`](crate::timeout::Timeout), [`RateLimit`](crate::limit::RateLimit),
//! [`Retry`](crate::retry::Retry) (its backoff and its budget) and
//! [`CircuitBreaker`](crate::circuit::CircuitBreaker) never call
//! `Instant::now()` or a timer directly: they ask a [`Clock`]. The clock
//! is a type parameter that defaults to [`SystemClock`], so ordinary code
//! never names it, and a test swaps in a [`ManualClock`] to move time by
//! hand.
//!
//! This is the one approach to time in this crate: **a clock answers both
//! "what time is it" and "wake me at that time"**. Accounting (tokens in a
//! bucket, failures in a window, the retry budget) and waiting (a deadline,
//! a backoff, a rate-limit delay) read the same clock, so under a
//! [`ManualClock`] a test is exact (no margins, no flakiness) and fast (no
//! real sleeping), and needs no runtime: a sleeper wakes when the test
//! calls [`ManualClock::advance`].
//!
//! ```
//! use std::time::Duration;
//! use futures_util::FutureExt;
//! use strata_service::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let mut nap = Box::pin(clock.sleep_until(clock.now() + Duration::from_secs(5)));
//! assert!(nap.as_mut().now_or_never().is_none());
//! clock.advance(Duration::from_secs(5));
//! assert!(nap.now_or_never().is_some());
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A source of the current time and of sleeps until a given time.
///
/// Clocks are cheap handles: cloning one gives another view of the same
/// time. They must be `Send + Sync` because the state they feed (a shared
/// rate limit, a circuit breaker for one backend) may be shared by every
/// worker of a server.
pub trait Clock: Clone + Send + Sync + 'static {
    /// The future returned by [`sleep_until`](Clock::sleep_until).
    type Sleep: Future<Output = ()> + Unpin;

    /// The current time.
    fn now(&self) -> Instant;

    /// A future that completes at `deadline` or later (at once if it has
    /// passed).
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;
}

/// The real clock: `Instant::now()`, and strata-rt's timer wheel.
///
/// Its sleeps are [`strata_rt::time::Sleep`]s: creating one is free, but
/// the first poll of one that has not elapsed must happen inside a strata
/// runtime, or it panics saying so.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    type Sleep = strata_rt::time::Sleep;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> strata_rt::time::Sleep {
        strata_rt::time::sleep_until(deadline)
    }
}

/// A clock that only moves when told to, for tests.
///
/// It starts at the real time of its creation and then stands still until
/// [`advance`](ManualClock::advance) moves it; sleepers whose deadline is
/// reached are woken by that call. Clones share one time. It works with any
/// executor (`futures_executor::block_on`, a strata runtime, polling by
/// hand), across threads.
#[derive(Clone)]
pub struct ManualClock {
    shared: Arc<Mutex<Manual>>,
}

struct Manual {
    now: Instant,
    /// Wakers of sleepers that were polled before their deadline. A woken
    /// sleeper re-checks the time, so waking all of them is always correct.
    sleepers: Vec<Waker>,
}

impl ManualClock {
    /// A clock stopped at the current real time.
    pub fn new() -> Self {
        ManualClock {
            shared: Arc::new(Mutex::new(Manual {
                now: Instant::now(),
                sleepers: Vec::new(),
            })),
        }
    }

    /// Moves the time forward by `by` and wakes the sleepers. A `by` past
    /// what an `Instant` can hold (say `Duration::MAX`, "forever") moves it
    /// 30 years, which is as far as the middleware's "never" deadlines go
    /// (or, within 30 years of the end of `Instant`'s range, to that end).
    pub fn advance(&self, by: Duration) {
        let wakers = {
            let mut manual = self.lock();
            manual.now = later(manual.now, by);
            std::mem::take(&mut manual.sleepers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Manual> {
        // A panic while holding this lock cannot leave it inconsistent.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let manual = self.lock();
        f.debug_struct("ManualClock")
            .field("sleepers", &manual.sleepers.len())
            .finish_non_exhaustive()
    }
}

impl Clock for ManualClock {
    type Sleep = ManualSleep;

    fn now(&self) -> Instant {
        self.lock().now
    }

    fn sleep_until(&self, deadline: Instant) -> ManualSleep {
        ManualSleep {
            clock: self.clone(),
            deadline,
        }
    }
}

/// A sleep on a [`ManualClock`]; completes once the clock reaches its
/// deadline.
#[derive(Debug)]
pub struct ManualSleep {
    clock: ManualClock,
    deadline: Instant,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let manual = self.clock.lock();
        if manual.now >= self.deadline {
            return Poll::Ready(());
        }
        // One entry per waiting task, however often its sleeps are polled
        // (or dropped and made again) between advances.
        if manual.sleepers.iter().any(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        // Cloned with the lock released: a waker's clone runs its
        // executor's code, which may use this clock. An advance in between
        // is seen by the check below (the time moved) or wakes the clone.
        drop(manual);
        let waker = cx.waker().clone();
        let mut manual = self.clock.lock();
        if manual.now >= self.deadline {
            return Poll::Ready(());
        }
        if !manual.sleepers.iter().any(|w| w.will_wake(&waker)) {
            manual.sleepers.push(waker);
        }
        Poll::Pending
    }
}

/// `clock.now() + after`, or about thirty years from now if that
/// overflows: "never", for deadlines and backoffs.
pub(crate) fn deadline_after<C: Clock>(clock: &C, after: Duration) -> Instant {
    let now = clock.now();
    later(now, after)
}

/// `now + by`, or 30 years on if that is past what an `Instant` holds, or
/// as far as it holds.
pub(crate) fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by)
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or_else(|| {
            // Within 30 years of the end: the last representable second.
            let mut step = FOREVER;
            let mut at = now;
            while step >= Duration::from_secs(1) {
                if let Some(next) = at.checked_add(step) {
                    at = next;
                } else {
                    step /= 2;
                }
            }
            at
        })
}

/// How far "never" is: a deadline past what an `Instant` can hold.
const FOREVER: Duration = Duration::from_secs(86_400 * 365 * 30);

#[cfg(test)]
mod tests {
    use super::*;

    /// Moving a manual clock "forever" ahead (to see a limit refill after
    /// a long idle) used to panic on the `Instant` overflow, inside the
    /// clock's lock.
    #[test]
    fn a_manual_clock_moved_forever_ahead_does_not_panic() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), before + FOREVER);
        // Near the end of `Instant`'s range, too (it used to overflow on
        // the 30 years): it stops at the end, and stays there.
        let mut end = before;
        let mut step = Duration::from_secs(u64::MAX / 4);
        while step >= Duration::from_secs(1) {
            match end.checked_add(step) {
                Some(next) => end = next,
                None => step /= 2,
            }
        }
        let near_end = end.checked_sub(Duration::from_secs(86_400 * 365)).unwrap();
        clock.advance(near_end - clock.now());
        clock.advance(Duration::MAX);
        assert!(clock.now() > near_end);
        let at_end = clock.now();
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), at_end);
    }

    #[test]
    fn a_manual_clock_keeps_one_waker_per_waiting_task() {
        struct Nothing;
        impl std::task::Wake for Nothing {
            fn wake(self: Arc<Self>) {}
        }
        let clock = ManualClock::new();
        let waker = Waker::from(Arc::new(Nothing));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut nap = clock.sleep_until(clock.now() + Duration::from_secs(1));
            assert!(Pin::new(&mut nap).poll(&mut cx).is_pending());
            assert!(Pin::new(&mut nap).poll(&mut cx).is_pending());
        }
        assert_eq!(clock.lock().sleepers.len(), 1);
        clock.advance(Duration::from_secs(1));
        assert!(clock.lock().sleepers.is_empty());
    }
}
