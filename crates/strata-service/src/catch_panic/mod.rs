//! Turning a panic in the inner service into an error response.
//!
//! [`CatchPanic`] catches a panic raised by the inner service's `call`
//! or by any poll of its future, and resolves the call with [`Panicked`]
//! instead. The panicked future is dropped and never polled again. Only
//! this request fails: the connection and its other requests carry on,
//! and middleware above sees an ordinary error (a circuit breaker counts
//! it, metrics record it).
//!
//! The panic hook still runs (so the panic is still printed or logged),
//! and a build with `panic = "abort"` aborts as usual. State the inner
//! service left half-updated when it panicked stays that way, which is
//! why this is opt-in: use it where one bad request must not take more
//! down with it.
//!
//! It keeps no state of its own: a call dropped before it ends drops the
//! inner call's future, as without it.
//!
//! ```
//! use strata_service::catch_panic::{CatchPanic, Panicked};
//! use strata_service::{BoxError, Service, service_fn};
//!
//! let svc = CatchPanic::new(service_fn(|n: u32| async move {
//!     assert!(n != 13, "unlucky");
//!     Ok::<_, BoxError>(n)
//! }));
//! # std::panic::set_hook(Box::new(|_| {})); // keep the doctest output quiet
//! let err = futures_executor::block_on(svc.call(13)).unwrap_err();
//! assert_eq!(err.downcast_ref::<Panicked>().unwrap().message(), Some("unlucky"));
//! assert_eq!(futures_executor::block_on(svc.call(1)).unwrap(), 1);
//! ```

mod error;
mod layer;

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;

pub use error::Panicked;
pub use layer::CatchPanicLayer;

use crate::Service;

/// Resolves a call whose inner service panics with [`Panicked`]; see the
/// [module docs](self).
///
/// The inner error type must accept a [`Panicked`]:
/// `S::Error: From<Panicked>`.
#[derive(Clone, Copy, Debug)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S> CatchPanic<S> {
    /// Wraps `inner`.
    pub const fn new(inner: S) -> Self {
        CatchPanic { inner }
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

impl<S, Req> Service<Req> for CatchPanic<S>
where
    S: Service<Req>,
    S::Error: From<Panicked>,
{
    type Response = S::Response;
    type Error = S::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<S::Response, S::Error>> {
        // The service is not touched again after a panic in it, except by
        // later calls, which is the documented trade.
        let started = catch_unwind(AssertUnwindSafe(|| self.inner.call(req)));
        async move {
            let response = match started {
                Ok(response) => response,
                Err(payload) => return Err(Panicked::from_payload(payload).into()),
            };
            let mut response = pin!(response);
            poll_fn(
                |cx| match catch_unwind(AssertUnwindSafe(|| response.as_mut().poll(cx))) {
                    Ok(poll) => poll,
                    Err(payload) => Poll::Ready(Err(Panicked::from_payload(payload).into())),
                },
            )
            .await
        }
    }
}
