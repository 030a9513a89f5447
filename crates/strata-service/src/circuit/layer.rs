use std::fmt;

use super::{AnyError, Breaker, CircuitBreaker};
use crate::Layer;
use crate::clock::{Clock, SystemClock};

/// A layer that wraps services in [`CircuitBreaker`], all sharing one
/// [`Breaker`] (one circuit per backend, however many connections) and
/// one [`Classify`](super::Classify) (`K`, default [`AnyError`]).
#[derive(Clone)]
pub struct CircuitBreakerLayer<C = SystemClock, K = AnyError> {
    breaker: Breaker<C>,
    classify: K,
}

impl<C: Clock> CircuitBreakerLayer<C> {
    /// Every wrapped service shares `breaker`; every `Err` counts as a
    /// failure until [`classify`](Self::classify) says otherwise.
    pub const fn new(breaker: Breaker<C>) -> Self {
        CircuitBreakerLayer {
            breaker,
            classify: AnyError,
        }
    }
}

impl<C, K> CircuitBreakerLayer<C, K> {
    /// The wrapped services count as failures what `classify` says; see
    /// [`CircuitBreaker::classify`].
    pub fn classify<K2>(self, classify: K2) -> CircuitBreakerLayer<C, K2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }
}

impl<S, C: Clock, K: Clone> Layer<S> for CircuitBreakerLayer<C, K> {
    type Service = CircuitBreaker<S, C, K>;

    fn layer(&self, inner: S) -> CircuitBreaker<S, C, K> {
        CircuitBreaker::new(inner, self.breaker.clone()).classify(self.classify.clone())
    }
}

impl<C: fmt::Debug, K> fmt::Debug for CircuitBreakerLayer<C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .field("classify", &std::any::type_name::<K>())
            .finish()
    }
}
