use super::{Breaker, CircuitBreaker};
use crate::Layer;
use crate::clock::{Clock, SystemClock};

/// A layer that wraps services in [`CircuitBreaker`], all sharing one
/// [`Breaker`] (one circuit per backend, however many connections).
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer<C = SystemClock> {
    breaker: Breaker<C>,
}

impl<C: Clock> CircuitBreakerLayer<C> {
    /// Every wrapped service shares `breaker`.
    pub const fn new(breaker: Breaker<C>) -> Self {
        CircuitBreakerLayer { breaker }
    }
}

impl<S, C: Clock> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> CircuitBreaker<S, C> {
        CircuitBreaker::new(inner, self.breaker.clone())
    }
}
