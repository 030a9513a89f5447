//! Time: sleeping, deadlines for futures, and periodic ticks.
//!
//! * [`sleep`] / [`sleep_until`] return a [`Sleep`] future, which can be
//!   moved to a new deadline with [`Sleep::reset`];
//! * [`timeout`] / [`timeout_at`] bound another future, yielding
//!   `Err(`[`Elapsed`]`)` if it does not finish in time;
//! * [`interval`] / [`interval_at`] tick periodically, with a chosen
//!   [`MissedTickBehavior`] for ticks missed while the task was busy.
//!
//! # Resolution and guarantees
//!
//! Timers have millisecond resolution. A timer never fires before its
//! deadline; it fires on the first turn of its worker's loop at or after the
//! deadline rounded up to the next millisecond, so "how late" depends on how
//! busy that worker is. Creating a timer costs nothing until it is first
//! polled: a [`timeout`] around a future that completes on its first poll
//! never touches a timer wheel.
//!
//! # How it works
//!
//! Every worker owns a hierarchical timing wheel (six levels of 64 slots,
//! O(1) insert and cancel) and blocks in its reactor no longer than the next
//! deadline. A timer registers with the wheel of the worker it is first
//! polled on (or a worker chosen round-robin when polled on another thread
//! inside the runtime, such as the one running
//! [`Runtime::block_on`](crate::Runtime::block_on)), and keeps firing from
//! there wherever its future moves. Dropping a timer on its worker removes
//! it from the wheel at once; dropped elsewhere, it lets go of its waker at
//! once and leaves the wheel at that worker's next turn. Timers with the
//! same deadline fire in no particular order (tokio's neither promises
//! one). Completing a timer spends a unit of the task's
//! [cooperative budget](crate::coop), so a loop of timers that are ready
//! at once still yields. A registered timer's shared state is one small
//! allocation, which the wheel links in place (no side table), recycled by
//! the worker when the timer is cancelled there.
//!
//! # Panics
//!
//! Creating a [`Sleep`] works anywhere, but its first poll must happen
//! inside a strata runtime, otherwise it panics with a message saying so
//! (a timer with nobody to fire it would hang forever). A timer whose
//! runtime has shut down registers again with the runtime it is next polled
//! in, or panics if there is none.

pub(crate) mod driver;
mod error;
mod interval;
mod sleep;
mod timeout;
pub(crate) mod wheel;

pub use std::time::{Duration, Instant};

pub use error::Elapsed;
pub use interval::{Interval, MissedTickBehavior, interval, interval_at};
pub use sleep::{Sleep, sleep, sleep_until};
pub use timeout::{Timeout, timeout, timeout_at};

/// Diagnostics for tests: the number of timers in the current worker's wheel
/// and the number of spare timer entries it keeps for reuse. Not a stable
/// API.
///
/// # Panics
///
/// Panics if not called on a worker thread (from inside a spawned task).
#[doc(hidden)]
pub fn __wheel_stats() -> (usize, usize) {
    driver::current_wheel_stats()
}

/// A far-away instant standing in for "never" when a deadline overflows.
fn far_future() -> Instant {
    // About thirty years: beyond any real deadline, and safe to add to.
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// `now + duration`, saturating at [`far_future`].
fn deadline_after(duration: Duration) -> Instant {
    Instant::now()
        .checked_add(duration)
        .unwrap_or_else(far_future)
}
