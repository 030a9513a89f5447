//! Trying failed calls again, with backoff and within a budget.
//!
//! [`Retry`] is the mechanism; what to retry is the caller's [`Policy`]
//! (or the ready-made [`on_error`]). An attempt that fails in a way the
//! policy accepts is tried again after a [`Backoff`] delay, up to
//! `max_retries` times, **if the [`RetryBudget`] allows**. The budget is
//! what keeps retries from turning a backend's bad minute into an outage:
//! however many retries each request may make, all requests together may
//! retry only a share of their own number. A retry is charged to the
//! budget when it is decided, before its backoff, so that a spent budget
//! answers at once instead of after a delay; a request dropped during that
//! backoff (an outer timeout, say) has still spent it, which errs towards
//! fewer retries (Finagle and tower charge at the same point). A request
//! counts towards the budget (as a request that may earn retries) at its
//! first poll; one dropped during an attempt keeps that count, and its
//! attempt's future is dropped with it.
//!
//! By default Retry never sheds and never fails on its own: a request
//! denied a retry (limit reached, budget spent, request not cloneable)
//! ends with its last attempt's outcome, which is what the caller can act
//! on. A budget refusal is logged at `debug` level (target
//! `strata_service::retry`).
//!
//! # Telling a spent budget apart
//!
//! To let callers see that the *budget* stopped the retries (and back off
//! as a whole, say), opt in with
//! [`report_budget_exhausted`](Retry::report_budget_exhausted) (on
//! [`Retry`] or [`RetryLayer`]): a request denied a retry by the budget
//! then ends with a [`BudgetExhausted`] error, which carries the number of
//! attempts made and the last error's message. Following
//! [the error scheme](crate#errors-one-type-per-stack), that form needs
//! `S::Error: From<BudgetExhausted> + Display`; the default form needs
//! nothing of the error type. A request stopped by the retry limit or by
//! an uncloneable request still ends with its last outcome.
//!
//! Put [`Timeout`](crate::timeout::Timeout) *below* `Retry` to bound each
//! attempt, and above it to bound the whole request, backoffs included.
//!
//! ```
//! use std::cell::Cell;
//! use std::time::Duration;
//! use strata_service::backoff::Backoff;
//! use strata_service::retry::{Retry, on_error};
//! use strata_service::{Service, service_fn};
//!
//! let attempts = Cell::new(0);
//! let flaky = service_fn(|n: u32| {
//!     attempts.set(attempts.get() + 1);
//!     let fail = attempts.get() < 3;
//!     async move { if fail { Err("busy") } else { Ok(n) } }
//! });
//! let svc = Retry::new(flaky, on_error(|e: &&str| *e == "busy"))
//!     .backoff(Backoff::none());
//! assert_eq!(futures_executor::block_on(svc.call(7)), Ok(7));
//! assert_eq!(attempts.get(), 3);
//! ```

mod budget;
mod error;
mod layer;
mod policy;

use std::fmt;
use std::time::Duration;

pub use budget::RetryBudget;
pub use error::BudgetExhausted;
pub use layer::RetryLayer;
pub use policy::{OnError, Policy, on_error};

use crate::Service;
use crate::backoff::Backoff;
use crate::clock::{Clock, SystemClock, deadline_after};

const DEFAULT_MAX_RETRIES: u32 = 3;
const DEFAULT_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1));

/// Retries the calls its [`Policy`] allows; see the [module docs](self).
///
/// `B` says what a request denied a retry by the budget ends with:
/// [`LastOutcome`] (the default) or, after
/// [`report_budget_exhausted`](Retry::report_budget_exhausted),
/// [`ReportExhausted`].
#[derive(Clone)]
pub struct Retry<S, P, C = SystemClock, B = LastOutcome> {
    inner: S,
    policy: P,
    budget: RetryBudget<C>,
    backoff: Backoff,
    max_retries: u32,
    on_spent: B,
}

/// A request the budget denies a retry ends with its last attempt's
/// outcome: the default form of [`Retry`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastOutcome;

/// A request the budget denies a retry ends with [`BudgetExhausted`]; see
/// [`Retry::report_budget_exhausted`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportExhausted;

impl<S, P> Retry<S, P> {
    /// Wraps `inner` with a budget of its own ([`RetryBudget::default`]),
    /// at most 3 retries per request, and a backoff from 10 ms doubling up
    /// to 1 s with jitter.
    pub fn new(inner: S, policy: P) -> Self {
        Retry::with_budget(inner, policy, RetryBudget::default())
    }
}

impl<S, P, C: Clock> Retry<S, P, C> {
    /// Wraps `inner`, drawing retries from `budget` (shared with whatever
    /// else holds a clone of it) and sleeping on the budget's clock.
    pub fn with_budget(inner: S, policy: P, budget: RetryBudget<C>) -> Self {
        Retry {
            inner,
            policy,
            budget,
            backoff: DEFAULT_BACKOFF,
            max_retries: DEFAULT_MAX_RETRIES,
            on_spent: LastOutcome,
        }
    }
}

impl<S, P, C, B> Retry<S, P, C, B> {
    /// Sets the delays between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the most retries one request may make (0: none).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Ends a request the budget denies a retry with a [`BudgetExhausted`]
    /// error instead of its last outcome, so callers can tell a spent
    /// budget from a failing backend.
    ///
    /// The error replaces the last outcome whatever it was: an error (its
    /// message is kept in [`BudgetExhausted::last_error`]) or a response
    /// the policy wanted to retry. Only the budget's refusals are
    /// reported; the retry limit and uncloneable requests still end with
    /// the last outcome. The service then needs
    /// `S::Error: From<BudgetExhausted> + Display`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use strata_service::backoff::Backoff;
    /// use strata_service::clock::ManualClock;
    /// use strata_service::retry::{BudgetExhausted, Retry, RetryBudget, on_error};
    /// use strata_service::{BoxError, Service, service_fn};
    ///
    /// // No floor and no share of requests: not a single retry allowed.
    /// let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.0, ManualClock::new());
    /// let down = service_fn(|_: u32| async { Err::<u32, _>(BoxError::from("down")) });
    /// let svc = Retry::with_budget(down, on_error(|_: &BoxError| true), budget)
    ///     .backoff(Backoff::none())
    ///     .report_budget_exhausted();
    ///
    /// let err = futures_executor::block_on(svc.call(1)).unwrap_err();
    /// let spent = err.downcast_ref::<BudgetExhausted>().unwrap();
    /// assert_eq!((spent.attempts(), spent.last_error()), (1, Some("down")));
    /// ```
    pub fn report_budget_exhausted(self) -> Retry<S, P, C, ReportExhausted> {
        self.on_budget_spent(ReportExhausted)
    }

    pub(crate) fn on_budget_spent<B2>(self, on_spent: B2) -> Retry<S, P, C, B2> {
        Retry {
            inner: self.inner,
            policy: self.policy,
            budget: self.budget,
            backoff: self.backoff,
            max_retries: self.max_retries,
            on_spent,
        }
    }

    /// The budget retries are drawn from.
    pub fn budget(&self) -> &RetryBudget<C> {
        &self.budget
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
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

impl<S, P, C, B> Retry<S, P, C, B> {
    /// The retry loop; a request the budget denies a retry ends with
    /// `spent(attempts, last outcome)`.
    async fn run<Req>(
        &self,
        mut req: Req,
        spent: impl FnOnce(u32, Result<S::Response, S::Error>) -> Result<S::Response, S::Error>,
    ) -> Result<S::Response, S::Error>
    where
        S: Service<Req>,
        P: Policy<Req, S::Response, S::Error>,
        C: Clock,
    {
        self.budget.deposit();
        let mut retries = 0;
        loop {
            let copy = if retries < self.max_retries {
                self.policy.clone_request(&req)
            } else {
                None
            };
            let result = self.inner.call(req).await;
            let Some(next) = copy else { return result };
            if !self.policy.should_retry(&next, &result) {
                return result;
            }
            if !self.budget.withdraw() {
                tracing::debug!(
                    target: "strata_service::retry",
                    retries,
                    "retry budget spent; no more retries"
                );
                return spent(retries + 1, result);
            }
            drop(result);
            let delay = self.backoff.delay(retries);
            if !delay.is_zero() {
                let clock = self.budget.clock();
                clock.sleep_until(deadline_after(clock, delay)).await;
            }
            retries += 1;
            req = next;
        }
    }
}

impl<S, P, C, Req> Service<Req> for Retry<S, P, C, LastOutcome>
where
    S: Service<Req>,
    P: Policy<Req, S::Response, S::Error>,
    C: Clock,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
        self.run(req, |_, last| last).await
    }
}

impl<S, P, C, Req> Service<Req> for Retry<S, P, C, ReportExhausted>
where
    S: Service<Req>,
    S::Error: From<BudgetExhausted> + fmt::Display,
    P: Policy<Req, S::Response, S::Error>,
    C: Clock,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
        self.run(req, |attempts, last| {
            let message = last.err().map(|e| e.to_string());
            Err(BudgetExhausted::new(attempts, message).into())
        })
        .await
    }
}

impl<S: fmt::Debug, P, C: fmt::Debug, B: fmt::Debug> fmt::Debug for Retry<S, P, C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &std::any::type_name::<P>())
            .field("budget", &self.budget)
            .field("backoff", &self.backoff)
            .field("max_retries", &self.max_retries)
            .field("on_budget_spent", &self.on_spent)
            .finish()
    }
}
