//! Converting the inner service's errors.

use std::fmt;
use std::future::Future;

use crate::{Layer, Service};

/// A service that passes each error of the inner service through a
/// function; made by [`ServiceExt::map_err`](crate::ServiceExt::map_err).
///
/// This is the tool for unifying error types: wrap each service's error in
/// the variant of your own error enum, or box it with
/// `map_err(BoxError::from)`. Successful responses pass through untouched.
#[derive(Clone, Copy)]
pub struct MapErr<S, F> {
    inner: S,
    f: F,
}

impl<S, F> MapErr<S, F> {
    /// Wraps `inner` so that each error goes through `f`.
    pub const fn new(inner: S, f: F) -> Self {
        MapErr { inner, f }
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

impl<S, F, Req, Mapped> Service<Req> for MapErr<S, F>
where
    S: Service<Req>,
    F: Fn(S::Error) -> Mapped,
{
    type Response = S::Response;
    type Error = Mapped;

    fn call(&self, req: Req) -> impl Future<Output = Result<S::Response, Mapped>> {
        let response = self.inner.call(req);
        async move { response.await.map_err(&self.f) }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for MapErr<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapErr")
            .field("inner", &self.inner)
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

/// A layer that wraps services in [`MapErr`].
#[derive(Clone, Copy)]
pub struct MapErrLayer<F> {
    f: F,
}

impl<F> MapErrLayer<F> {
    /// Returns a layer that maps errors with (a clone of) `f`.
    pub const fn new(f: F) -> Self {
        MapErrLayer { f }
    }
}

impl<S, F: Clone> Layer<S> for MapErrLayer<F> {
    type Service = MapErr<S, F>;

    fn layer(&self, inner: S) -> MapErr<S, F> {
        MapErr::new(inner, self.f.clone())
    }
}

impl<F> fmt::Debug for MapErrLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapErrLayer")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}
