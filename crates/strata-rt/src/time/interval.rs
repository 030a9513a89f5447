//! `Interval`: periodic ticks.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::sleep::{Sleep, sleep_until};

/// Ticks every `period`, the first tick completing at once.
///
/// The default [`MissedTickBehavior`] is [`Skip`](MissedTickBehavior::Skip).
///
/// # Panics
///
/// Panics if `period` is zero. Waiting for a tick outside a strata
/// runtime panics (a tick already due, such as the first, completes
/// anywhere); an interval that has ticked in one keeps ticking wherever it
/// is moved, while that runtime runs.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// strata_rt::run(async {
///     let start = Instant::now();
///     let mut every = strata_rt::time::interval(Duration::from_millis(10));
///     for _ in 0..3 {
///         every.tick().await;
///     }
///     // Ticks at 0, 10 and 20 ms.
///     assert!(start.elapsed() >= Duration::from_millis(20));
/// });
/// ```
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first tick completing at `start`.
///
/// # Panics
///
/// Panics if `period` is zero.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "strata: `interval` period must be non-zero"
    );
    Interval {
        next: start,
        period,
        missed: MissedTickBehavior::default(),
        sleep: sleep_until(start),
    }
}

/// What an [`Interval`] does when ticks were missed, that is when a tick is
/// taken a whole period or more after it was due (because the task was busy
/// or its worker overloaded).
///
/// In every mode the overdue tick itself completes at once; the modes differ
/// in when the ticks after it are due. With a period of 10 ms, ticks due at
/// 10, 20, 30, ... and the task first asking again at 45 ms:
///
/// ```text
///   Burst:  10 (at 45), 20 (at 45), 30 (at 45), 40 (at 45), 50, 60, ...
///   Delay:  10 (at 45), then 55, 65, 75, ...   (the schedule shifts)
///   Skip:   10 (at 45), then 50, 60, 70, ...   (back on the original grid)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissedTickBehavior {
    /// Catch up: every missed tick completes, back to back, until the
    /// schedule is met again.
    Burst,
    /// Start over: the next tick is due one period after the overdue tick
    /// was taken.
    Delay,
    /// Drop the missed ticks: the next tick is the first one of the original
    /// schedule that is still in the future. The default, because bursts of
    /// catch-up work after a stall (keep-alives, housekeeping) rarely help a
    /// server that is already behind.
    #[default]
    Skip,
}

/// A stream of periodic ticks, from [`interval`] or [`interval_at`].
#[derive(Debug)]
pub struct Interval {
    /// When the next tick is due.
    next: Instant,
    period: Duration,
    missed: MissedTickBehavior,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was *due*.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it completes loses no tick.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick; on `Ready`, the instant it was due.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        // Due already (e.g. the first tick of `interval`): complete at once
        // instead of waiting for the wheel's next millisecond.
        if Instant::now() < self.next {
            if Pin::new(&mut self.sleep).poll(cx).is_pending() {
                return Poll::Pending;
            }
        } else {
            // Not through the wheel: spend budget, so that a loop that is
            // always behind (Burst) still yields to its worker.
            std::task::ready!(crate::executor::coop::poll_spend(cx));
        }
        let due = self.next;
        let now = Instant::now();
        let on_time = add(due, self.period);
        self.next = if now < on_time {
            on_time
        } else {
            match self.missed {
                MissedTickBehavior::Burst => on_time,
                MissedTickBehavior::Delay => add(now, self.period),
                MissedTickBehavior::Skip => {
                    // The first point of the grid `due + k·period` after now
                    // (in nanoseconds: `k` can pass `u32::MAX` with a tiny
                    // period, which `Duration::mul` cannot take).
                    let period = self.period.as_nanos();
                    let behind = now.duration_since(due).as_nanos();
                    let ahead = (behind / period + 1) * period;
                    u64::try_from(ahead / 1_000_000_000)
                        .ok()
                        .map(|secs| Duration::new(secs, (ahead % 1_000_000_000) as u32))
                        .and_then(|d| due.checked_add(d))
                        .unwrap_or_else(|| add(now, self.period))
                }
            }
        };
        self.sleep.reset(self.next);
        // A tick that was due at once (the first) did not go through the
        // wheel: register the next one now, in this runtime if it still
        // runs, so that the interval keeps ticking wherever it is moved.
        // (The task is woken at that tick, when it would poll anyway.)
        self.sleep.register_quietly(cx);
        Poll::Ready(due)
    }

    /// Restarts the schedule: the next tick is due one period from now.
    pub fn reset(&mut self) {
        self.next = super::deadline_after(self.period);
        self.sleep.reset(self.next);
    }

    /// The missed-tick behaviour in use.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets the missed-tick behaviour.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// `t + d`, saturating at a far-away instant ("never").
fn add(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or_else(super::far_future)
}
