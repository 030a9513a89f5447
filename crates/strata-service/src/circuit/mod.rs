//! Failing fast while a backend is down, and probing for its return.
//!
//! A [`CircuitBreaker`] watches the outcomes of the calls it lets through.
//! When failures accrue ([`Accrual`]: so many in a row, or a failure rate
//! over a window), the circuit **opens**: calls fail at once with
//! [`CircuitOpen`] (they are shed, never queued) for a backoff period.
//! The first call after it becomes a **probe** (half-open); its success
//! closes the circuit, its failure opens it for a longer period. Every
//! change of state is logged through `tracing` (target
//! `strata_service::circuit`: `warn` on opening, `info` on half-opening
//! and closing). The state machine is drawn in [`Breaker`]'s docs.
//!
//! Which outcomes are failures is the breaker's [`Classify`]: by default
//! every `Err` of the inner service ([`AnyError`]), including
//! [`Elapsed`](crate::timeout::Elapsed) from a timeout below the breaker.
//! Set another with [`classify`](CircuitBreaker::classify) (on the
//! service or the [`CircuitBreakerLayer`]): [`errors_where`] counts only
//! the errors it accepts, so that, say, a bad request (the backend is up
//! and said no) leaves the circuit alone while timeouts open it; a
//! closure over the whole `Result` can count responses too. The same
//! classifier judges the half-open probe. A panic of the inner service
//! counts as a failure; a call dropped before it finishes counts as
//! nothing (a dropped probe lets the next caller probe). An outcome that
//! arrives after the circuit has opened and closed again is ignored: it
//! says nothing about the backend since its recovery. The state lives in a
//! [`Breaker`], shared by every service built from one
//! [`CircuitBreakerLayer`], across workers.
//!
//! ```
//! use std::time::Duration;
//! use futures_executor::block_on;
//! use strata_service::backoff::Backoff;
//! use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitOpen, CircuitState};
//! use strata_service::clock::{Clock, ManualClock};
//! use strata_service::{BoxError, Service, service_fn};
//!
//! let clock = ManualClock::new();
//! let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(2), clock.clone())
//!     .backoff(Backoff::constant(Duration::from_secs(5)));
//! let svc = CircuitBreaker::new(
//!     service_fn(|ok: bool| async move { if ok { Ok(()) } else { Err(BoxError::from("down")) } }),
//!     breaker.clone(),
//! );
//!
//! assert!(block_on(svc.call(false)).is_err());
//! assert!(block_on(svc.call(false)).is_err());
//! assert_eq!(breaker.state(), CircuitState::Open);
//! assert!(block_on(svc.call(true)).unwrap_err().is::<CircuitOpen>()); // not even tried
//!
//! clock.advance(Duration::from_secs(5));
//! assert!(block_on(svc.call(true)).is_ok()); // the probe
//! assert_eq!(breaker.state(), CircuitState::Closed);
//! ```

mod breaker;
mod classify;
mod error;
mod layer;

use std::fmt;

pub use breaker::{Accrual, Breaker, CircuitState};
pub use classify::{AnyError, Classify, ErrorsWhere, errors_where};
pub use error::CircuitOpen;
pub use layer::CircuitBreakerLayer;

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::Service;
use crate::clock::{Clock, SystemClock};
use breaker::{Admit, Change};

/// Fails fast with [`CircuitOpen`] while its [`Breaker`] is open; see the
/// [module docs](self).
///
/// The inner error type must accept a [`CircuitOpen`]:
/// `S::Error: From<CircuitOpen>`. `K` is the [`Classify`] that says which
/// outcomes are failures (default: [`AnyError`], every `Err`).
#[derive(Clone)]
pub struct CircuitBreaker<S, C = SystemClock, K = AnyError> {
    inner: S,
    breaker: Breaker<C>,
    classify: K,
}

impl<S, C: Clock> CircuitBreaker<S, C> {
    /// Wraps `inner`, sharing `breaker` with whatever else holds a clone.
    /// Every `Err` counts as a failure until [`classify`](Self::classify)
    /// says otherwise.
    pub const fn new(inner: S, breaker: Breaker<C>) -> Self {
        CircuitBreaker {
            inner,
            breaker,
            classify: AnyError,
        }
    }
}

impl<S, C, K> CircuitBreaker<S, C, K> {
    /// Counts as failures the outcomes `classify` says are: an
    /// [`errors_where`], or a closure `Fn(&Result<Res, E>) -> bool`.
    /// Other outcomes count as successes, for the accrual and for the
    /// half-open probe alike.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_executor::block_on;
    /// use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitState, errors_where};
    /// use strata_service::clock::ManualClock;
    /// use strata_service::{BoxError, Service, service_fn};
    ///
    /// let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(1), ManualClock::new());
    /// let svc = CircuitBreaker::new(
    ///     service_fn(|req: &'static str| async move { Err::<(), _>(BoxError::from(req)) }),
    ///     breaker.clone(),
    /// )
    /// .classify(errors_where(|e: &BoxError| e.to_string() != "bad request"));
    ///
    /// assert!(block_on(svc.call("bad request")).is_err());
    /// assert_eq!(breaker.state(), CircuitState::Closed); // not a failure
    /// assert!(block_on(svc.call("timed out")).is_err());
    /// assert_eq!(breaker.state(), CircuitState::Open);
    /// ```
    pub fn classify<K2>(self, classify: K2) -> CircuitBreaker<S, C, K2> {
        CircuitBreaker {
            inner: self.inner,
            breaker: self.breaker,
            classify,
        }
    }

    /// The classifier.
    pub fn classifier(&self) -> &K {
        &self.classify
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker<C> {
        &self.breaker
    }

    /// Returns the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns the inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Settles a call that ends without reporting: dropped (cancelled) or
/// unwinding from a panic (of the inner service, the classifier, the
/// clock or the `tracing` subscriber). Armed from the moment the call is
/// admitted until its outcome is recorded, so that a probe slot taken is
/// always given back or settled.
struct CallGuard<'a, C: Clock> {
    breaker: &'a Breaker<C>,
    probe: bool,
    epoch: u64,
    /// While the inner service runs a panic is the backend's failure; while
    /// our classifier runs it is not (the slot is only freed).
    inner_running: bool,
    armed: bool,
}

impl<C: Clock> Drop for CallGuard<'_, C> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if crate::inner_panic::inner_panicked(self.inner_running) {
            // A backend that panics on every call must trip the breaker
            // (and a panicking probe re-open it), not be probed forever.
            // This runs while the thread unwinds, where a second panic (the
            // clock's, or the `tracing` subscriber's on the log line) would
            // abort the process: it is caught, and a probe whose settling
            // it cut short is given back.
            let (breaker, probe, epoch) = (self.breaker, self.probe, self.epoch);
            match catch_unwind(AssertUnwindSafe(|| breaker.settle(probe, epoch, true))) {
                Ok(change) => {
                    if let Some(change) = change {
                        let logged = catch_unwind(AssertUnwindSafe(|| breaker.log(change)));
                        logged.unwrap_or_else(crate::inner_panic::drop_payload);
                    }
                }
                // The clock: nothing was changed, so the probe slot is
                // still this call's to give back. (Not after the settle:
                // the slot may be another call's by then.)
                Err(payload) => {
                    if probe {
                        breaker.probe_cancelled();
                    }
                    crate::inner_panic::drop_payload(payload);
                }
            }
        } else if self.probe {
            self.breaker.probe_cancelled();
        }
    }
}

impl<S, C, K, Req> Service<Req> for CircuitBreaker<S, C, K>
where
    S: Service<Req>,
    S::Error: From<CircuitOpen>,
    C: Clock,
    K: Classify<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
        let (probe, epoch, half_opened) = match self.breaker.admit() {
            Admit::Call(epoch) => (false, epoch, false),
            Admit::Probe { half_opened } => (true, 0, half_opened),
            Admit::Refuse(after) => return Err(self.breaker.refusal(after).into()),
        };
        let mut guard = CallGuard {
            breaker: &self.breaker,
            probe,
            epoch,
            inner_running: false,
            armed: true,
        };
        // Logged only now that the guard holds the probe slot: a subscriber
        // that panics on this line frees the slot (a cancellation, not a
        // failure of the backend) instead of keeping it for a call that
        // never runs.
        if half_opened {
            self.breaker.log(Change::HalfOpened);
        }
        // `inner_running` is true only while the inner service's code runs
        // (its `call`, each poll of its future): a panic elsewhere that
        // drops this future mid-call is a cancellation, not a failure.
        let result =
            crate::inner_panic::run_inner(&mut guard.inner_running, || self.inner.call(req)).await;
        // Classify and settle while the guard is armed: a classifier, or a
        // clock read while settling, that panics then frees the probe slot
        // instead of leaving the breaker half-open with a probe that never
        // reports.
        guard.inner_running = false;
        let failed = self.classify.is_failure(&result);
        let change = self.breaker.settle(probe, epoch, failed);
        // Disarmed once the state has changed and before it is logged: the
        // guard must not undo a probe already settled (the slot may be
        // another call's by the time a panicking subscriber unwinds).
        guard.armed = false;
        if let Some(change) = change {
            self.breaker.log(change);
        }
        result
    }
}

impl<S: fmt::Debug, C: fmt::Debug, K> fmt::Debug for CircuitBreaker<S, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .field("classify", &std::any::type_name::<K>())
            .finish()
    }
}
