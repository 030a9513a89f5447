//! The retry budget: retries as a share of requests, over a sliding window.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::window::Window;

/// Billionths: the unit of the budget's exact arithmetic.
const UNIT: u128 = 1_000_000_000;

/// How many retries the traffic allows.
///
/// Each request *deposits* one unit; each retry *withdraws* one. Over the
/// last `ttl` (default 10 s) a retry is allowed while
///
/// ```text
/// withdrawals + 1 <= min_per_second * ttl + ratio * deposits
/// ```
///
/// so retries stay under `ratio` (default 20 %) of the traffic plus a small
/// floor (default 10 per second) that lets a quiet client still retry.
/// This is Finagle's budget: under a total outage the extra load retries
/// add is bounded by the ratio, whatever the per-request retry limit, so
/// retries cannot multiply an outage.
///
/// The window is ten slots of `ttl / 10`, each counting deposits and
/// withdrawals; time moving on clears the slots it passes. State sits in
/// one `Mutex` behind an `Arc`, so one budget can cover all the clients
/// of a backend across workers.
///
/// Clones share one budget.
#[derive(Clone)]
pub struct RetryBudget<C = SystemClock> {
    shared: Arc<Shared>,
    clock: C,
}

struct Shared {
    ttl: Duration,
    /// `min_per_second * ttl`, in billionths of a retry (exact).
    reserve: u128,
    /// `ratio`, in billionths, rounded to the nearest: so that a ratio such
    /// as 0.29 allows 29 retries per 100 requests, which the nearest `f64`
    /// (a hair under 0.29) times 100, floored, would not.
    ratio: u128,
    /// `a`: deposits (requests), `b`: withdrawals (retries).
    window: Mutex<Window>,
}

impl RetryBudget {
    /// A budget over a `ttl` window allowing `min_per_second` retries per
    /// second plus `ratio` retries per request, on the system clock. A
    /// `ttl` under one second is taken as one second.
    pub fn new(ttl: Duration, min_per_second: u32, ratio: f64) -> Self {
        RetryBudget::with_clock(ttl, min_per_second, ratio, SystemClock)
    }
}

impl Default for RetryBudget {
    /// Finagle's defaults: a 10 s window, 10 retries per second, 20 %.
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl<C: Clock> RetryBudget<C> {
    /// As [`new`](RetryBudget::new), on `clock`. A `ttl` under one second
    /// is taken as one second (Finagle refuses one): the floor is kept as
    /// `min_per_second * ttl` whole retries per window, which a shorter
    /// window could round down to none.
    pub fn with_clock(ttl: Duration, min_per_second: u32, ratio: f64, clock: C) -> Self {
        let ttl = ttl.max(Duration::from_secs(1));
        let ratio = if ratio.is_nan() { 0.0 } else { ratio.max(0.0) };
        RetryBudget {
            shared: Arc::new(Shared {
                ttl,
                reserve: u128::from(min_per_second) * ttl.as_nanos(),
                // Saturates (`as` does) for a ratio too large to matter.
                ratio: (ratio * UNIT as f64).round() as u128,
                window: Mutex::new(Window::new(ttl, clock.now())),
            }),
            clock,
        }
    }

    /// The clock the window is measured on.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The window the budget looks back over.
    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// Records a request.
    pub fn deposit(&self) {
        self.window().add_a();
    }

    /// Takes one retry from the budget; `false` (and nothing taken) if the
    /// budget is spent.
    pub fn withdraw(&self) -> bool {
        let mut w = self.window();
        if self.balance_of(&w) == 0 {
            return false;
        }
        w.add_b();
        true
    }

    /// How many retries the budget allows right now.
    pub fn balance(&self) -> u64 {
        let w = self.window();
        self.balance_of(&w)
    }

    /// `floor(reserve + ratio * deposits) - withdrawals`, at least 0, in
    /// exact integer arithmetic (saturating).
    fn balance_of(&self, w: &Window) -> u64 {
        let (deposits, withdrawals) = w.sums();
        let earned = self
            .shared
            .ratio
            .saturating_mul(u128::from(deposits))
            .saturating_add(self.shared.reserve)
            / UNIT;
        let left = earned.saturating_sub(u128::from(withdrawals));
        u64::try_from(left).unwrap_or(u64::MAX)
    }

    /// Locks the window after moving it up to now.
    fn window(&self) -> MutexGuard<'_, Window> {
        let now = self.clock.now();
        let mut w = self.shared.window.lock().unwrap_or_else(|e| e.into_inner());
        w.advance(now);
        w
    }
}

impl<C: fmt::Debug> fmt::Debug for RetryBudget<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ttl", &self.shared.ttl)
            .field("reserve", &(self.shared.reserve as f64 / UNIT as f64))
            .field("ratio", &(self.shared.ratio as f64 / UNIT as f64))
            .field("clock", &self.clock)
            .finish()
    }
}
