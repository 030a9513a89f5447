//! Failing at once with [`Overloaded`] instead of queueing.
//!
//! # How `LoadShed` knows the service is full
//!
//! tower's load shedder asks the inner service's `poll_ready`; strata has
//! no readiness step (see [`Service`](crate::Service#the-contract)). So
//! "full" is made explicit: a [`LoadShed`] watches a
//! [`PermitPool`], the same pool a
//! [`ConcurrencyLimit`](crate::limit::ConcurrencyLimit) below it draws
//! on. When a call arrives and the pool has no free permit (and the queue
//! for one already holds `max_waiting` callers, 0 by default), the call
//! fails with [`Overloaded`] before reaching the inner service; otherwise
//! it goes down the stack and takes its permit in the limit.
//!
//! ```text
//! let pool = PermitPool::new(64);
//! ServiceBuilder::new()
//!     .load_shed(pool.clone())            // refuses when all 64 are busy
//!     .concurrency_limit_shared(pool)     // holds the permit for the call
//!     .service(svc)
//! ```
//!
//! The shedder only reads the pool; it holds no permit. On one worker the
//! check and the take happen in the same poll, so nothing slips in
//! between; with the pool shared across workers another worker may take
//! the last permit in between, and the call then queues briefly in the
//! limit (bound it with a timeout). That is the usual trade of a cheap
//! admission check.
//!
//! Cancelling a call changes nothing here: the shedder holds no permit
//! and keeps no count (the limit below gives back the permit it held).
//!
//! ```
//! use futures_util::FutureExt;
//! use strata_service::limit::PermitPool;
//! use strata_service::load_shed::Overloaded;
//! use strata_service::{BoxError, Service, ServiceBuilder, service_fn};
//!
//! let pool = PermitPool::new(1);
//! let svc = ServiceBuilder::new()
//!     .load_shed(pool.clone())
//!     .concurrency_limit_shared(pool)
//!     .service(service_fn(|wait: bool| async move {
//!         if wait {
//!             std::future::pending::<()>().await;
//!         }
//!         Ok::<_, BoxError>(())
//!     }));
//!
//! let mut busy = Box::pin(svc.call(true));
//! assert!(busy.as_mut().now_or_never().is_none()); // holds the only permit
//! let shed = svc.call(false).now_or_never().unwrap().unwrap_err();
//! assert!(shed.is::<Overloaded>());
//! drop(busy);
//! assert!(svc.call(false).now_or_never().unwrap().is_ok());
//! ```

mod error;
mod layer;

use std::fmt;

pub use error::Overloaded;
pub use layer::LoadShedLayer;

use crate::Service;
use crate::limit::PermitPool;

/// Refuses calls with [`Overloaded`] while a [`PermitPool`] is exhausted;
/// see the [module docs](self).
///
/// The inner error type must accept an [`Overloaded`]:
/// `S::Error: From<Overloaded>`.
#[derive(Clone)]
pub struct LoadShed<S> {
    inner: S,
    pool: PermitPool,
    max_waiting: usize,
}

impl<S> LoadShed<S> {
    /// Wraps `inner`, shedding whenever `pool` has no free permit.
    pub const fn new(inner: S, pool: PermitPool) -> Self {
        LoadShed {
            inner,
            pool,
            max_waiting: 0,
        }
    }

    /// Lets up to `n` callers queue for a permit before shedding.
    pub const fn max_waiting(mut self, n: usize) -> Self {
        self.max_waiting = n;
        self
    }

    /// The pool this shedder watches.
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

impl<S, Req> Service<Req> for LoadShed<S>
where
    S: Service<Req>,
    S::Error: From<Overloaded>,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
        // Checked on the first poll, right before the inner service's
        // first poll takes its permit, not when the future is created.
        if !self.pool.admits(self.max_waiting) {
            return Err(Overloaded::new().into());
        }
        self.inner.call(req).await
    }
}

impl<S: fmt::Debug> fmt::Debug for LoadShed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadShed")
            .field("inner", &self.inner)
            .field("pool", &self.pool)
            .field("max_waiting", &self.max_waiting)
            .finish()
    }
}
