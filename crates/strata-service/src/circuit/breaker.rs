//! The breaker's state machine, shareable across services and workers.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::clock::{Clock, SystemClock, later};
use crate::window::Window;

/// When failures open the circuit.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Accrual {
    /// After this many failures in a row (0 is taken as 1).
    ConsecutiveFailures(u32),
    /// When a call fails and, over the last `window`, at least `min_calls`
    /// calls finished and at least `rate` (0.0 to 1.0) of them failed. (As
    /// in Finagle's failure accrual, only a failure is checked: a success
    /// never opens the circuit.)
    ///
    /// A `rate` outside 0.0 to 1.0 is clamped to it, and NaN is taken as
    /// 1.0 (open only when every call fails): a misconfigured breaker
    /// still opens when its service is down.
    ///
    /// The window is kept in ten slots of `window / 10`, and the oldest
    /// slot is dropped whole: calls between 0.9 and 1.0 × `window` old
    /// may already be forgotten (the count never includes older ones).
    FailureRate {
        /// The share of failures that trips the breaker.
        rate: f64,
        /// The fewest calls in the window for the rate to count.
        min_calls: u64,
        /// How far back to look (a zero window is taken as one second).
        window: Duration,
    },
}

/// The breaker's state, as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// One probe call is allowed, or out.
    HalfOpen,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Closed,
    Open { until: Instant, trips: u32 },
    HalfOpen { probing: bool, trips: u32 },
}

struct State {
    phase: Phase,
    /// Bumped each time the circuit closes again, so that outcomes of
    /// calls admitted in an earlier closed period are ignored.
    epoch: u64,
    consecutive: u32,
    /// `a`: finished calls, `b`: failures (for [`Accrual::FailureRate`]).
    window: Window,
}

/// A circuit breaker's state, shared by every service that holds a clone.
///
/// # States
///
/// ```text
///            failure accrual trips
///   Closed ───────────────────────────▶ Open { until, trips }
///     ▲                                   │ a call arrives at or after `until`
///     │ the probe succeeds                ▼
///     └────────────────────────────── HalfOpen { probing, trips }
///                                         │ the probe fails
///                                         ▼
///                                       Open { until: now + backoff(trips), trips + 1 }
/// ```
///
/// - **Closed**: every call goes through; outcomes feed the accrual
///   ([`Accrual`]). When it trips, the breaker opens.
/// - **Open**: every call fails at once with
///   [`CircuitOpen`](super::CircuitOpen) until `until`. The time open
///   grows with each failed probe (`trips`), by the breaker's
///   [`Backoff`].
/// - **HalfOpen**: entered by the first call at or after `until`, which
///   becomes the *probe*; while it is out (`probing`) other calls fail
///   fast. Its success closes the circuit and forgets all failures; its
///   failure opens it again. A probe whose future is dropped before it
///   finishes frees the slot for the next caller.
///
/// The transition from Open to HalfOpen happens when a call arrives, not
/// on a timer: a breaker nobody calls stays Open.
#[derive(Clone)]
pub struct Breaker<C = SystemClock> {
    state: Arc<Mutex<State>>,
    accrual: Accrual,
    backoff: Backoff,
    name: Arc<str>,
    clock: C,
}

/// What the breaker says to a caller.
pub(crate) enum Admit {
    Call(u64),
    /// The call is the probe. `half_opened`: its arrival ended the open
    /// period, a change the caller logs ([`Change::HalfOpened`]) once its
    /// guard holds the probe slot.
    Probe {
        half_opened: bool,
    },
    Refuse(Duration),
}

/// A change of state, logged after it is complete.
///
/// The log line runs the `tracing` subscriber, user code that may panic:
/// the state is changed first (under the lock, with nothing but the
/// clock's reading before it), the line is written after, so a panic there
/// finds nothing half done.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub(crate) enum Change {
    /// Failures accrued while closed.
    Opened,
    /// A call became the probe.
    HalfOpened,
    /// The probe failed; the breaker has tripped this many times in a row.
    Reopened(u32),
    /// The probe succeeded.
    Closed,
}

impl Breaker {
    /// A closed breaker on the system clock. Open periods start at 1 s and
    /// double with each failed probe up to 60 s, with jitter.
    pub fn new(accrual: Accrual) -> Self {
        Breaker::with_clock(accrual, SystemClock)
    }
}

impl<C: Clock> Breaker<C> {
    /// A closed breaker on `clock`.
    pub fn with_clock(accrual: Accrual, clock: C) -> Self {
        let window = match accrual {
            Accrual::FailureRate { window, .. } if !window.is_zero() => window,
            _ => Duration::from_secs(1),
        };
        Breaker {
            state: Arc::new(Mutex::new(State {
                phase: Phase::Closed,
                epoch: 0,
                consecutive: 0,
                window: Window::new(window, clock.now()),
            })),
            accrual,
            backoff: Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60))
                .jitter(0.2),
            name: Arc::from(super::error::UNNAMED),
            clock,
        }
    }

    /// Sets how long the circuit stays open: `backoff.delay(n)` after the
    /// `n`-th trip in a row (from 0).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Names the breaker in its log lines and in its [`CircuitOpen`](super::CircuitOpen)
    /// refusals (say, the backend's name).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }

    /// The state now. An open breaker past its open period still reports
    /// `Open` until a call arrives and becomes the probe.
    pub fn state(&self) -> CircuitState {
        match self.lock().phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// The refusal for a call while open (`retry_after` to the probe).
    pub(crate) fn refusal(&self, retry_after: Duration) -> super::CircuitOpen {
        super::CircuitOpen::new(retry_after, self.name.clone())
    }

    /// Lets a call through, as the probe or not, or refuses it. A probe
    /// slot taken here must be given back by the caller's guard (or
    /// settled): the half-open line is left to the caller for that reason.
    pub(crate) fn admit(&self) -> Admit {
        let mut state = self.lock();
        match state.phase {
            Phase::Closed => Admit::Call(state.epoch),
            Phase::Open { until, trips } => {
                let now = self.clock.now();
                if now < until {
                    return Admit::Refuse(until - now);
                }
                state.phase = Phase::HalfOpen {
                    probing: true,
                    trips,
                };
                Admit::Probe { half_opened: true }
            }
            Phase::HalfOpen {
                probing: true,
                trips: _,
            } => Admit::Refuse(Duration::ZERO),
            Phase::HalfOpen {
                probing: false,
                trips,
            } => {
                state.phase = Phase::HalfOpen {
                    probing: true,
                    trips,
                };
                Admit::Probe { half_opened: false }
            }
        }
    }

    /// Records the outcome of a call let through as `probe` or not, and
    /// returns the change of state it makes, unlogged (see [`Change`]).
    ///
    /// The clock is read once, before the state is touched: a clock that
    /// panics leaves the state as it was (a probe still out, for the
    /// caller's guard to give back; or the call not counted), never half
    /// changed.
    pub(crate) fn settle(&self, probe: bool, epoch: u64, failed: bool) -> Option<Change> {
        let mut state = self.lock();
        match (state.phase, probe) {
            (Phase::HalfOpen { trips, .. }, true) => {
                if failed {
                    let until = later(self.clock.now(), self.backoff.delay(trips));
                    let trips = trips.saturating_add(1);
                    state.phase = Phase::Open { until, trips };
                    Some(Change::Reopened(trips))
                } else {
                    state.phase = Phase::Closed;
                    state.epoch = state.epoch.wrapping_add(1);
                    state.consecutive = 0;
                    state.window.clear();
                    Some(Change::Closed)
                }
            }
            (Phase::Closed, false) if state.epoch == epoch => {
                let now = self.clock.now();
                state.window.advance(now);
                state.window.add_a();
                if failed {
                    state.consecutive = state.consecutive.saturating_add(1);
                    state.window.add_b();
                } else {
                    state.consecutive = 0;
                }
                if failed && self.trips(&state) {
                    // From the same reading: a second one, after the
                    // counts changed, could panic with them counted and
                    // the circuit left closed.
                    let until = later(now, self.backoff.delay(0));
                    state.phase = Phase::Open { until, trips: 1 };
                    return Some(Change::Opened);
                }
                None
            }
            // A call let through before the state changed: its outcome no
            // longer says anything about the current state.
            _ => None,
        }
    }

    /// Logs a change of state, once it is complete.
    pub(crate) fn log(&self, change: Change) {
        let name = &*self.name;
        match change {
            Change::Opened => {
                tracing::warn!(target: "strata_service::circuit", breaker = %name, "failures accrued; circuit open");
            }
            Change::HalfOpened => {
                tracing::info!(target: "strata_service::circuit", breaker = %name, "circuit half-open; probing");
            }
            Change::Reopened(trips) => {
                tracing::warn!(target: "strata_service::circuit", breaker = %name, trips, "probe failed; circuit open again");
            }
            Change::Closed => {
                tracing::info!(target: "strata_service::circuit", breaker = %name, "probe succeeded; circuit closed");
            }
        }
    }

    /// A probe's future was dropped before it finished: let the next
    /// caller probe instead.
    pub(crate) fn probe_cancelled(&self) {
        let mut state = self.lock();
        if let Phase::HalfOpen { trips, .. } = state.phase {
            state.phase = Phase::HalfOpen {
                probing: false,
                trips,
            };
        }
    }

    fn trips(&self, state: &State) -> bool {
        match self.accrual {
            Accrual::ConsecutiveFailures(n) => state.consecutive >= n.max(1),
            Accrual::FailureRate {
                rate, min_calls, ..
            } => {
                let rate = if rate.is_nan() {
                    1.0
                } else {
                    rate.clamp(0.0, 1.0)
                };
                let (calls, failures) = state.window.sums();
                // The share, not `rate * calls`: 0.55 * 100.0 rounds up to
                // 55.000000000000007, so 55 failures of 100 would not trip a
                // rate of 0.55, while 55.0 / 100.0 rounds to 0.55 itself.
                calls >= min_calls.max(1) && failures as f64 / calls as f64 >= rate
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: fmt::Debug> fmt::Debug for Breaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field(
                "phase",
                &self.state.lock().unwrap_or_else(|e| e.into_inner()).phase,
            )
            .field("accrual", &self.accrual)
            .field("backoff", &self.backoff)
            .field("clock", &self.clock)
            .finish()
    }
}
