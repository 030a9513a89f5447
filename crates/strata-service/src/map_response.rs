//! Rewriting each successful response of the inner service.

use std::fmt;
use std::future::Future;

use crate::{Layer, Service};

/// A service that passes each successful response of the inner service
/// through a function; made by
/// [`ServiceExt::map_response`](crate::ServiceExt::map_response).
///
/// Errors pass through untouched. The function runs when the inner
/// service's future resolves, and cannot fail; for a step that can fail or
/// wait, use [`AndThen`](crate::AndThen).
#[derive(Clone, Copy)]
pub struct MapResponse<S, F> {
    inner: S,
    f: F,
}

impl<S, F> MapResponse<S, F> {
    /// Wraps `inner` so that each successful response goes through `f`.
    pub const fn new(inner: S, f: F) -> Self {
        MapResponse { inner, f }
    }

    /// Returns the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns the inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service, dropping the function.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, F, Req, Mapped> Service<Req> for MapResponse<S, F>
where
    S: Service<Req>,
    F: Fn(S::Response) -> Mapped,
{
    type Response = Mapped;
    type Error = S::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<Mapped, S::Error>> {
        let response = self.inner.call(req);
        async move { response.await.map(&self.f) }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for MapResponse<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapResponse")
            .field("inner", &self.inner)
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

/// A layer that wraps services in [`MapResponse`].
#[derive(Clone, Copy)]
pub struct MapResponseLayer<F> {
    f: F,
}

impl<F> MapResponseLayer<F> {
    /// Returns a layer that maps responses with (a clone of) `f`.
    pub const fn new(f: F) -> Self {
        MapResponseLayer { f }
    }
}

impl<S, F: Clone> Layer<S> for MapResponseLayer<F> {
    type Service = MapResponse<S, F>;

    fn layer(&self, inner: S) -> MapResponse<S, F> {
        MapResponse::new(inner, self.f.clone())
    }
}

impl<F> fmt::Debug for MapResponseLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapResponseLayer")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}
