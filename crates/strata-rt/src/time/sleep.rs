//! `Sleep`: a future that completes at a deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::driver::Timer;

/// Waits until `duration` has elapsed.
///
/// Equivalent to `sleep_until(Instant::now() + duration)`. The returned
/// future does nothing until polled; see the [module docs](super) for
/// resolution and where it may be polled.
///
/// # Panics
///
/// Polling the future outside a strata runtime panics.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// strata_rt::run(async {
///     let start = Instant::now();
///     strata_rt::time::sleep(Duration::from_millis(20)).await;
///     assert!(start.elapsed() >= Duration::from_millis(20));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(super::deadline_after(duration))
}

/// Waits until `deadline`.
///
/// A deadline in the past completes without waiting, but not always on the
/// first poll: the timer wheel reads the clock only once per worker turn
/// while it holds timers (never while it holds none), so a deadline that is
/// past now but not as of the wheel's last reading fires at the worker's
/// next turn, and a sleep first polled off a worker (in `block_on`, say)
/// always completes through its worker. tokio's wheel behaves the same.
///
/// # Panics
///
/// Polling the future outside a strata runtime panics.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        timer: Timer::new(deadline),
    }
}

/// The future of [`sleep`] and [`sleep_until`].
///
/// `Sleep` is `Unpin`, `Send` and `Sync`; once polled in a runtime it may
/// be moved to and awaited (and [`reset`](Sleep::reset)) on any thread or
/// worker, even one outside any runtime, and still fires while that
/// runtime runs. Dropping it cancels the timer; dropped on its worker's
/// thread, the timer's slot (and the waker it holds) is kept for reuse
/// until the end of the worker's current turn; dropped elsewhere, the
/// waker goes at once and the slot is freed at that worker's next turn.
///
/// # Cancel safety
///
/// Dropping a `Sleep` before it completes has no effect beyond cancelling
/// the timer.
pub struct Sleep {
    timer: Timer,
}

impl Sleep {
    /// The instant at which this future completes.
    pub fn deadline(&self) -> Instant {
        self.timer.deadline()
    }

    /// `true` once the timer has fired (and a poll would return `Ready`,
    /// unless the task's budget is spent).
    pub fn is_elapsed(&self) -> bool {
        self.timer.is_fired()
    }

    /// Moves the deadline to `deadline`, whether or not the sleep has
    /// already completed; it then completes again at the new deadline.
    ///
    /// The task that last polled the sleep while it was pending keeps being
    /// woken: at the new deadline when the reset is made on a worker (on
    /// another worker than the timer's, the timer moves to that one), or
    /// off the workers when the new deadline is not earlier than the old
    /// (the timer's worker keeps it; nothing is queued or allocated), or on
    /// a thread outside any runtime (the new deadline is then registered
    /// with the timer's worker at once, or, if that worker has stopped,
    /// the task is woken at once); otherwise, on a runtime's other threads
    /// (inside `block_on`), at once, so that its next poll registers the
    /// new deadline (with the timer's worker, if that poll is made outside
    /// any runtime). A sleep that has
    /// completed keeps no waker: poll it again after the reset (as `.await`
    /// does) to be woken at the new deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// strata_rt::run(async {
    ///     let start = Instant::now();
    ///     let mut sleep = strata_rt::time::sleep(Duration::from_secs(3600));
    ///     sleep.reset(start + Duration::from_millis(10));
    ///     sleep.await;
    ///     assert!(start.elapsed() < Duration::from_secs(3600));
    /// });
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        self.timer.reset(deadline);
    }

    /// Registers the timer, if it has no registration yet, without
    /// polling it (see `Timer::register_quietly`).
    pub(crate) fn register_quietly(&mut self, cx: &mut Context<'_>) {
        self.timer.register_quietly(cx);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A completion spends a unit of the task's budget, as any source's
        // does: a loop over sleeps that are ready at once (past deadlines,
        // a completed sleep polled again) still yields to its worker.
        let unit = std::task::ready!(crate::executor::coop::poll_proceed(cx));
        let fired = self.get_mut().timer.poll_fired(cx);
        if fired.is_ready() {
            unit.made_progress();
        }
        fired
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline())
            .field("elapsed", &self.is_elapsed())
            .finish()
    }
}
