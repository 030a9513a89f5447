//! A deadline per request.
//!
//! [`Timeout`] fails a call with [`Elapsed`] if the inner service has not
//! answered within the duration (counted from the end of the call's first
//! poll, see below). The
//! inner call's future is then dropped, which cancels it (its own guards
//! run: a permit goes back, a counter goes down). Dropping the `Timeout`'s
//! own future does the same, sooner: it holds the inner future and a
//! timer, nothing else.
//!
//! Nothing waits here and nothing is shed: the timeout bounds everything
//! below it, *including* waiting. Placed above a
//! [`ConcurrencyLimit`](crate::limit::ConcurrencyLimit) or a waiting
//! [`RateLimit`](crate::limit::RateLimit) it bounds the time spent queued
//! too; placed below [`Retry`](crate::retry::Retry) it bounds each attempt
//! rather than the whole request (see the
//! [order of layers](crate::ServiceBuilder#a-sensible-order)).
//!
//! The timer costs nothing when the inner service answers on its first
//! poll: the deadline is set (the clock read, the sleep created) only
//! after the inner future has first returned `Pending`, so the timeout
//! counts from the end of that first poll. The first poll itself runs
//! without yielding and could not be interrupted anyway.
//!
//! This differs from tower's `Timeout`, whose clock starts when `call`
//! is made: a call that blocks for 200 ms in its first poll and then
//! waits 10 ms for its answer fails a 50 ms tower timeout, but succeeds
//! here. Code that blocks should move that work to
//! `strata_rt::spawn_blocking`, which a timeout then does bound.
//!
//! ```
//! use std::time::Duration;
//! use strata_service::timeout::{Elapsed, Timeout};
//! use strata_service::{BoxError, Service, service_fn};
//!
//! let slow = service_fn(|_: ()| async {
//!     strata_rt::time::sleep(Duration::from_secs(60)).await;
//!     Ok::<_, BoxError>("late")
//! });
//! let svc = Timeout::new(slow, Duration::from_millis(10));
//! let err = strata_rt::run(svc.call(())).unwrap_err();
//! assert!(err.is::<Elapsed>());
//! ```

mod error;
mod future;
mod layer;

use std::fmt;
use std::future::Future;
use std::time::Duration;

pub use error::Elapsed;
pub use future::ResponseFuture;
pub use layer::TimeoutLayer;

use crate::Service;
use crate::clock::{Clock, SystemClock};

/// Fails a request with [`Elapsed`] if the inner service takes longer than
/// the timeout; see the [module docs](self).
///
/// The inner error type must accept an [`Elapsed`]: `S::Error: From<Elapsed>`.
#[derive(Clone, Copy)]
pub struct Timeout<S, C = SystemClock> {
    inner: S,
    timeout: Duration,
    clock: C,
}

impl<S> Timeout<S> {
    /// Wraps `inner` so that each call is bounded to `timeout`.
    pub const fn new(inner: S, timeout: Duration) -> Self {
        Timeout {
            inner,
            timeout,
            clock: SystemClock,
        }
    }
}

impl<S, C: Clock> Timeout<S, C> {
    /// Wraps `inner` with a timeout measured on `clock`.
    pub const fn with_clock(inner: S, timeout: Duration, clock: C) -> Self {
        Timeout {
            inner,
            timeout,
            clock,
        }
    }
}

impl<S, C> Timeout<S, C> {
    /// The timeout of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
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

impl<S, C, Req> Service<Req> for Timeout<S, C>
where
    S: Service<Req>,
    S::Error: From<Elapsed>,
    C: Clock,
{
    type Response = S::Response;
    type Error = S::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<S::Response, S::Error>> {
        ResponseFuture::new(self.inner.call(req), &self.clock, self.timeout)
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Timeout<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("inner", &self.inner)
            .field("timeout", &self.timeout)
            .field("clock", &self.clock)
            .finish()
    }
}
