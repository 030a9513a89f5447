use super::{LastOutcome, ReportExhausted, Retry, RetryBudget};
use crate::Layer;
use crate::backoff::Backoff;
use crate::clock::{Clock, SystemClock};

/// A layer that wraps services in [`Retry`], all sharing one budget.
///
/// `B` is the services' [`Retry`] form: [`LastOutcome`] by default,
/// [`ReportExhausted`] after
/// [`report_budget_exhausted`](RetryLayer::report_budget_exhausted).
#[derive(Clone, Debug)]
pub struct RetryLayer<P, C = SystemClock, B = LastOutcome> {
    policy: P,
    budget: RetryBudget<C>,
    backoff: Backoff,
    max_retries: u32,
    on_spent: B,
}

impl<P> RetryLayer<P> {
    /// Retries what `policy` allows, with the defaults of [`Retry::new`];
    /// every service this layer wraps shares one default budget.
    pub fn new(policy: P) -> Self {
        RetryLayer::with_budget(policy, RetryBudget::default())
    }
}

impl<P, C: Clock> RetryLayer<P, C> {
    /// Retries what `policy` allows, within `budget`.
    pub fn with_budget(policy: P, budget: RetryBudget<C>) -> Self {
        RetryLayer {
            policy,
            budget,
            backoff: super::DEFAULT_BACKOFF,
            max_retries: super::DEFAULT_MAX_RETRIES,
            on_spent: LastOutcome,
        }
    }
}

impl<P, C, B> RetryLayer<P, C, B> {
    /// Sets the delays between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the most retries one request may make.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The services end a request the budget denies a retry with a
    /// [`BudgetExhausted`](super::BudgetExhausted) error; see
    /// [`Retry::report_budget_exhausted`].
    pub fn report_budget_exhausted(self) -> RetryLayer<P, C, ReportExhausted> {
        RetryLayer {
            policy: self.policy,
            budget: self.budget,
            backoff: self.backoff,
            max_retries: self.max_retries,
            on_spent: ReportExhausted,
        }
    }
}

impl<S, P: Clone, C: Clock, B: Clone> Layer<S> for RetryLayer<P, C, B> {
    type Service = Retry<S, P, C, B>;

    fn layer(&self, inner: S) -> Retry<S, P, C, B> {
        Retry::with_budget(inner, self.policy.clone(), self.budget.clone())
            .backoff(self.backoff)
            .max_retries(self.max_retries)
            .on_budget_spent(self.on_spent.clone())
    }
}
