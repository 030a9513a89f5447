use super::{Retry, RetryBudget};
use crate::Layer;
use crate::backoff::Backoff;
use crate::clock::{Clock, SystemClock};

/// A layer that wraps services in [`Retry`], all sharing one budget.
#[derive(Clone, Debug)]
pub struct RetryLayer<P, C = SystemClock> {
    policy: P,
    budget: RetryBudget<C>,
    backoff: Backoff,
    max_retries: u32,
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
        }
    }

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
}

impl<S, P: Clone, C: Clock> Layer<S> for RetryLayer<P, C> {
    type Service = Retry<S, P, C>;

    fn layer(&self, inner: S) -> Retry<S, P, C> {
        Retry::with_budget(inner, self.policy.clone(), self.budget.clone())
            .backoff(self.backoff)
            .max_retries(self.max_retries)
    }
}
