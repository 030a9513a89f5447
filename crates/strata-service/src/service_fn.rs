//! A service made from a closure.

use std::fmt;
use std::future::Future;

/// Returns a [`Service`](crate::Service) that calls `f` with each request.
///
/// `f` takes the request by value and returns a future of a `Result`; the
/// usual shape is `|req| async move { ... }`. The closure is called through
/// `&self`, so it is an `Fn`: state it changes lives in a `Cell`, a
/// `RefCell` or an atomic (see the [`Service`](crate::Service) docs on
/// interior mutability). The closure's future owns what it uses (hence
/// `async move`); a service whose future borrows the service's own fields
/// is written as a struct with an `impl Service` instead.
///
/// # Example
///
/// ```
/// use strata_service::{Service, service_fn};
///
/// let upper = service_fn(|line: String| async move {
///     Ok::<_, std::io::Error>(line.to_uppercase())
/// });
///
/// let answer = futures_executor::block_on(upper.call("hello".to_owned()));
/// assert_eq!(answer.unwrap(), "HELLO");
/// ```
pub fn service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn { f }
}

/// A [`Service`](crate::Service) backed by a closure; made by [`service_fn`].
#[derive(Clone, Copy)]
pub struct ServiceFn<F> {
    f: F,
}

impl<F> ServiceFn<F> {
    /// Returns the closure.
    pub fn into_inner(self) -> F {
        self.f
    }
}

impl<F, Fut, Req, Resp, Err> crate::Service<Req> for ServiceFn<F>
where
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Result<Resp, Err>>,
{
    type Response = Resp;
    type Error = Err;

    fn call(&self, req: Req) -> impl Future<Output = Result<Resp, Err>> {
        (self.f)(req)
    }
}

impl<F> fmt::Debug for ServiceFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceFn")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}
