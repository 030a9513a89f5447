//! Rewriting each request before the inner service sees it.

use std::fmt;
use std::future::Future;

use crate::{Layer, Service};

/// A service that passes each request through a function before handing
/// it to the inner service; made by
/// [`ServiceExt::map_request`](crate::ServiceExt::map_request).
///
/// The function runs when `call` is made, not when the future is first
/// polled. It cannot fail; a rewrite that can fail belongs in a service of
/// its own that returns the error.
#[derive(Clone, Copy)]
pub struct MapRequest<S, F> {
    inner: S,
    f: F,
}

impl<S, F> MapRequest<S, F> {
    /// Wraps `inner` so that each request goes through `f` first.
    pub const fn new(inner: S, f: F) -> Self {
        MapRequest { inner, f }
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

impl<S, F, Req, Mapped> Service<Req> for MapRequest<S, F>
where
    F: Fn(Req) -> Mapped,
    S: Service<Mapped>,
{
    type Response = S::Response;
    type Error = S::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<S::Response, S::Error>> {
        self.inner.call((self.f)(req))
    }
}

impl<S: fmt::Debug, F> fmt::Debug for MapRequest<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapRequest")
            .field("inner", &self.inner)
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

/// A layer that wraps services in [`MapRequest`].
#[derive(Clone, Copy)]
pub struct MapRequestLayer<F> {
    f: F,
}

impl<F> MapRequestLayer<F> {
    /// Returns a layer that maps requests with (a clone of) `f`.
    pub const fn new(f: F) -> Self {
        MapRequestLayer { f }
    }
}

impl<S, F: Clone> Layer<S> for MapRequestLayer<F> {
    type Service = MapRequest<S, F>;

    fn layer(&self, inner: S) -> MapRequest<S, F> {
        MapRequest::new(inner, self.f.clone())
    }
}

impl<F> fmt::Debug for MapRequestLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapRequestLayer")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}
