use super::{RateLimit, TokenBucket};
use crate::Layer;
use crate::clock::{Clock, SystemClock};
use crate::limit::Rate;

/// A layer that wraps services in [`RateLimit`], all sharing one bucket.
#[derive(Clone, Debug)]
pub struct RateLimitLayer<C = SystemClock> {
    bucket: TokenBucket<C>,
    reject: bool,
}

impl RateLimitLayer {
    /// One bucket of `burst` tokens refilled at `rate`, shared by every
    /// service this layer wraps; callers wait for tokens.
    pub fn new(rate: Rate, burst: u32) -> Self {
        RateLimitLayer::with_bucket(TokenBucket::new(rate, burst))
    }
}

impl<C: Clock> RateLimitLayer<C> {
    /// Every wrapped service draws on `bucket`; callers wait for tokens.
    pub const fn with_bucket(bucket: TokenBucket<C>) -> Self {
        RateLimitLayer {
            bucket,
            reject: false,
        }
    }

    /// Refuse calls with [`RateLimited`](super::RateLimited) instead of
    /// making them wait.
    pub fn reject(mut self) -> Self {
        self.reject = true;
        self
    }
}

impl<S, C: Clock> Layer<S> for RateLimitLayer<C> {
    type Service = RateLimit<S, C>;

    fn layer(&self, inner: S) -> RateLimit<S, C> {
        let svc = RateLimit::with_bucket(inner, self.bucket.clone());
        if self.reject { svc.reject() } else { svc }
    }
}
