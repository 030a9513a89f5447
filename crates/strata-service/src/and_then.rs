//! Chaining an asynchronous, fallible step after the inner service.

use std::fmt;
use std::future::Future;

use crate::{Layer, Service};

/// A service that, after the inner service succeeds, runs an asynchronous
/// step on its response; made by
/// [`ServiceExt::and_then`](crate::ServiceExt::and_then).
///
/// The step returns a future of `Result<_, S::Error>`: it fails with the
/// inner service's error type, so both failures reach the caller as one
/// type (use [`map_err`](crate::ServiceExt::map_err) first if the step
/// fails in other ways). An error of the inner service skips the step.
#[derive(Clone, Copy)]
pub struct AndThen<S, F> {
    inner: S,
    f: F,
}

impl<S, F> AndThen<S, F> {
    /// Wraps `inner` so that each successful response goes through the
    /// asynchronous step `f`.
    pub const fn new(inner: S, f: F) -> Self {
        AndThen { inner, f }
    }

    /// Returns the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns the inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service, dropping the step.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, F, Fut, Req, Next> Service<Req> for AndThen<S, F>
where
    S: Service<Req>,
    F: Fn(S::Response) -> Fut,
    Fut: Future<Output = Result<Next, S::Error>>,
{
    type Response = Next;
    type Error = S::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<Next, S::Error>> {
        let response = self.inner.call(req);
        async move { (self.f)(response.await?).await }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for AndThen<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AndThen")
            .field("inner", &self.inner)
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

/// A layer that wraps services in [`AndThen`].
#[derive(Clone, Copy)]
pub struct AndThenLayer<F> {
    f: F,
}

impl<F> AndThenLayer<F> {
    /// Returns a layer that chains (a clone of) `f` after each service.
    pub const fn new(f: F) -> Self {
        AndThenLayer { f }
    }
}

impl<S, F: Clone> Layer<S> for AndThenLayer<F> {
    type Service = AndThen<S, F>;

    fn layer(&self, inner: S) -> AndThen<S, F> {
        AndThen::new(inner, self.f.clone())
    }
}

impl<F> fmt::Debug for AndThenLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AndThenLayer")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}
