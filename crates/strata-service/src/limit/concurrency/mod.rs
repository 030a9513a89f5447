//! At most N calls inside the inner service; the rest wait their turn.

mod layer;
mod pool;

use std::fmt;

pub use layer::ConcurrencyLimitLayer;
pub use pool::{Acquire, Permit, PermitPool};

use crate::Service;

/// Lets at most N calls into the inner service at once; later calls wait,
/// in arrival order, for one to finish.
///
/// The limit is a [`PermitPool`]: a call takes a permit before calling the
/// inner service and gives it back when its future is dropped (finished or
/// cancelled). It **waits, never sheds**: a waiting call stays in the
/// queue until it gets a permit or its future is dropped. Bound the wait
/// with a [`Timeout`](crate::timeout::Timeout) above it, or refuse to
/// queue at all with a [`LoadShed`](crate::load_shed::LoadShed) above it
/// on the same pool.
///
/// Clones share the pool. Build with [`with_pool`](ConcurrencyLimit::with_pool)
/// to share one budget between services, connections and workers.
///
/// ```
/// use futures_util::FutureExt;
/// use strata_service::limit::ConcurrencyLimit;
/// use strata_service::{Service, service_fn};
///
/// let svc = ConcurrencyLimit::new(
///     service_fn(|()| std::future::pending::<Result<(), ()>>()),
///     1,
/// );
/// let mut first = Box::pin(svc.call(()));
/// assert!(first.as_mut().now_or_never().is_none()); // holds the permit
/// let mut second = Box::pin(svc.call(()));
/// assert!(second.as_mut().now_or_never().is_none()); // queued
/// assert_eq!(svc.pool().waiting(), 1);
/// drop(first);
/// assert_eq!(svc.pool().waiting(), 0); // the permit went to `second`
/// ```
#[derive(Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    pool: PermitPool,
}

impl<S> ConcurrencyLimit<S> {
    /// Wraps `inner` with a limit of its own of `max` calls at once.
    ///
    /// # Panics
    ///
    /// If `max` is 0: every call would wait forever. (A shared
    /// [`PermitPool`] may have 0 permits; see [`with_pool`](Self::with_pool).)
    pub fn new(inner: S, max: usize) -> Self {
        assert!(
            max > 0,
            "ConcurrencyLimit: a concurrency limit of 0 would make every call wait forever"
        );
        ConcurrencyLimit::with_pool(inner, PermitPool::new(max))
    }

    /// Wraps `inner` with a limit drawn from `pool`, shared with whatever
    /// else holds a clone of it.
    pub const fn with_pool(inner: S, pool: PermitPool) -> Self {
        ConcurrencyLimit { inner, pool }
    }

    /// The pool this service draws on.
    pub fn pool(&self) -> &PermitPool {
        &self.pool
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

impl<S, Req> Service<Req> for ConcurrencyLimit<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
        let _permit = self.pool.acquire().await;
        self.inner.call(req).await
    }
}

impl<S: fmt::Debug> fmt::Debug for ConcurrencyLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("inner", &self.inner)
            .field("pool", &self.pool)
            .finish()
    }
}
