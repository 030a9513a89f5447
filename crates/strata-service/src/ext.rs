//! `ServiceExt`: combinator methods on every service.

use std::future::Future;

use crate::{
    AndThen, BoxCloneService, BoxCloneSyncService, BoxService, MapErr, MapRequest, MapResponse,
    Service,
};

/// Combinators for every [`Service`], as methods.
///
/// Each method wraps `self` in the matching middleware; the same wrappers
/// are available as layers for a [`ServiceBuilder`](crate::ServiceBuilder).
///
/// # Example
///
/// ```
/// use strata_service::{BoxError, Service, ServiceExt, service_fn};
///
/// let parse = service_fn(|text: String| async move { text.trim().parse::<i64>() })
///     .map_err(BoxError::from)
///     .map_response(|n| n * 2)
///     .map_request(|bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned());
///
/// let answer = futures_executor::block_on(parse.call(b" 21 ".to_vec()));
/// assert_eq!(answer.unwrap(), 42);
/// ```
pub trait ServiceExt<Req>: Service<Req> {
    /// Rewrites each request with `f` before this service sees it.
    fn map_request<F, NewReq>(self, f: F) -> MapRequest<Self, F>
    where
        Self: Sized,
        F: Fn(NewReq) -> Req,
    {
        MapRequest::new(self, f)
    }

    /// Rewrites each successful response with `f`.
    fn map_response<F, Mapped>(self, f: F) -> MapResponse<Self, F>
    where
        Self: Sized,
        F: Fn(Self::Response) -> Mapped,
    {
        MapResponse::new(self, f)
    }

    /// Converts each error with `f`, for example into the caller's own
    /// error type or a [`BoxError`](crate::BoxError).
    fn map_err<F, Mapped>(self, f: F) -> MapErr<Self, F>
    where
        Self: Sized,
        F: Fn(Self::Error) -> Mapped,
    {
        MapErr::new(self, f)
    }

    /// Runs the asynchronous, fallible step `f` on each successful
    /// response.
    fn and_then<F, Fut, Next>(self, f: F) -> AndThen<Self, F>
    where
        Self: Sized,
        F: Fn(Self::Response) -> Fut,
        Fut: Future<Output = Result<Next, Self::Error>>,
    {
        AndThen::new(self, f)
    }

    /// Erases this service's type into a [`BoxService`].
    fn boxed(self) -> BoxService<Req, Self::Response, Self::Error>
    where
        Self: Sized + 'static,
        Req: 'static,
    {
        BoxService::new(self)
    }

    /// Erases this service's type into a [`BoxCloneService`], whose clones
    /// share it.
    fn boxed_clone(self) -> BoxCloneService<Req, Self::Response, Self::Error>
    where
        Self: Sized + 'static,
        Req: 'static,
    {
        BoxCloneService::new(self)
    }

    /// Erases this service's type into a [`BoxCloneSyncService`], whose
    /// clones share it across threads.
    fn boxed_clone_sync(self) -> BoxCloneSyncService<Req, Self::Response, Self::Error>
    where
        Self: Sized + Send + Sync + 'static,
        Req: 'static,
    {
        BoxCloneSyncService::new(self)
    }
}

impl<S, Req> ServiceExt<Req> for S where S: Service<Req> + ?Sized {}
