//! A token bucket in front of the inner service.

mod bucket;
mod error;
mod layer;

use std::fmt;

pub use bucket::{Rate, TokenBucket};
pub use error::RateLimited;
pub use layer::RateLimitLayer;

use crate::Service;
use crate::clock::{Clock, SystemClock};
use bucket::{Booking, Decision};

/// Lets calls through at a [`Rate`], with bursts of up to `burst` calls;
/// the rest **wait** for a token (the default) or are **rejected** with
/// [`RateLimited`] ([`reject`](RateLimit::reject)).
///
/// A waiting call reserves the next free token at once and sleeps until
/// it is due, so waiters go in arrival order (after a stall, see below,
/// in the order they wake). If its future is dropped
/// before it goes (a [`Timeout`](crate::timeout::Timeout) above gave
/// up, say), its token is given back: the next call to wait takes that
/// slot if it is not yet due, ahead of the waiters booked after it, so
/// callers that give up do not push everyone else further out. A slot
/// that comes due with no one in it is lost (the error is towards fewer
/// calls, never more), as are given-up slots beyond the 4,096 the bucket
/// remembers.
///
/// A waiter goes when it is polled after its slot. When that is late (a
/// worker busy for a while, a clock that jumped), the waiters whose slots
/// passed meanwhile do not all go at once: the bucket also counts the
/// calls that go, and lets them go at the rate, `burst` at a time; the
/// rest are given later times, in the order they come to go, and new
/// calls that come after them go after them. Calls may go together
/// beyond `burst` only within a millisecond, the timer's resolution: at
/// rates above a thousand per second the waiters of one tick go together,
/// so that the rate is still met.
///
/// Only a call that waits allocates (its sleep, boxed), so the future of
/// a call that goes at once stays small. Waiting has no bound of its own:
/// put a `Timeout` above the limit to bound it.
///
/// The bucket is a [`TokenBucket`], shared by clones of the service and by
/// every service a [`RateLimitLayer`] makes, across workers.
///
/// ```
/// use futures_util::FutureExt;
/// use strata_service::limit::{Rate, RateLimit, RateLimited};
/// use strata_service::{Service, service_fn};
///
/// let echo = service_fn(|n: u32| async move { Ok::<_, RateLimited>(n) });
/// let svc = RateLimit::new(echo, Rate::per_second(10), 2).reject();
/// assert_eq!(svc.call(1).now_or_never().unwrap(), Ok(1));
/// assert_eq!(svc.call(2).now_or_never().unwrap(), Ok(2));
/// assert!(svc.call(3).now_or_never().unwrap().is_err()); // burst spent
/// ```
#[derive(Clone)]
pub struct RateLimit<S, C = SystemClock> {
    inner: S,
    bucket: TokenBucket<C>,
    reject: bool,
}

impl<S> RateLimit<S> {
    /// Wraps `inner` with a bucket of its own.
    pub fn new(inner: S, rate: Rate, burst: u32) -> Self {
        RateLimit::with_bucket(inner, TokenBucket::new(rate, burst))
    }
}

impl<S, C: Clock> RateLimit<S, C> {
    /// Wraps `inner` with a limit drawn from `bucket`, shared with
    /// whatever else holds a clone of it.
    pub const fn with_bucket(inner: S, bucket: TokenBucket<C>) -> Self {
        RateLimit {
            inner,
            bucket,
            reject: false,
        }
    }

    /// Refuse calls with [`RateLimited`] when the bucket is empty, instead
    /// of making them wait.
    pub fn reject(mut self) -> Self {
        self.reject = true;
        self
    }
}

impl<S, C> RateLimit<S, C> {
    /// The bucket this service draws on.
    pub fn bucket(&self) -> &TokenBucket<C> {
        &self.bucket
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

/// Gives a reserved token back unless disarmed.
struct Refund<'a, C: Clock>(Option<(&'a TokenBucket<C>, Booking)>);

impl<C: Clock> Drop for Refund<'_, C> {
    fn drop(&mut self) {
        if let Some((bucket, booking)) = self.0 {
            bucket.refund(booking);
        }
    }
}

impl<S, C, Req> Service<Req> for RateLimit<S, C>
where
    S: Service<Req>,
    S::Error: From<RateLimited>,
    C: Clock,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
        match self.bucket.decide(!self.reject) {
            Decision::Go => {}
            Decision::GoAt(at, booking) => {
                // Until it goes, a call that gives up gives its token back.
                let mut refund = Refund(Some((&self.bucket, booking)));
                // Boxed: only waiting calls pay for the sleep's space, so
                // the future of a call that goes at once stays small.
                Box::pin(self.bucket.clock().sleep_until(at)).await;
                // Polled late (a busy worker), with others whose slots
                // passed meanwhile: they go one interval apart, in the
                // order they get here.
                if let Err(at) = self.bucket.depart() {
                    Box::pin(self.bucket.clock().sleep_until(at)).await;
                }
                refund.0 = None;
            }
            Decision::Refused(after) => return Err(RateLimited::new(after).into()),
        }
        self.inner.call(req).await
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for RateLimit<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("bucket", &self.bucket)
            .field("reject", &self.reject)
            .finish()
    }
}
