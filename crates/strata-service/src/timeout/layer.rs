use std::time::Duration;

use super::Timeout;
use crate::Layer;
use crate::clock::{Clock, SystemClock};

/// A layer that wraps services in [`Timeout`].
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer<C = SystemClock> {
    timeout: Duration,
    clock: C,
}

impl TimeoutLayer {
    /// Bounds each request to `timeout`, on the system clock.
    pub const fn new(timeout: Duration) -> Self {
        TimeoutLayer {
            timeout,
            clock: SystemClock,
        }
    }
}

impl<C: Clock> TimeoutLayer<C> {
    /// Bounds each request to `timeout`, measured on `clock`.
    pub const fn with_clock(timeout: Duration, clock: C) -> Self {
        TimeoutLayer { timeout, clock }
    }
}

impl<S, C: Clock> Layer<S> for TimeoutLayer<C> {
    type Service = Timeout<S, C>;

    fn layer(&self, inner: S) -> Timeout<S, C> {
        Timeout::with_clock(inner, self.timeout, self.clock.clone())
    }
}
