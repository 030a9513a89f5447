//! `BoxService`: an owned, type-erased service.

use std::fmt;
use std::future::Future;

use super::ErasedService;
use crate::Service;

/// A type-erased service, owned through a `Box`.
///
/// Use it to name a stack whose type is long or unnameable (closures,
/// layers), to store services of different types in one collection, or to
/// pick a stack at run time. Each call costs one allocation for the
/// future, and a dynamic call. The service and the request type must be
/// `'static`; the futures may still borrow the service.
///
/// Made by [`BoxService::new`] or
/// [`ServiceExt::boxed`](crate::ServiceExt::boxed).
///
/// # Example
///
/// ```
/// use strata_service::{BoxService, Service, ServiceExt, service_fn};
///
/// let routes: Vec<(&str, BoxService<u32, u32, ()>)> = vec![
///     ("double", service_fn(|n: u32| async move { Ok(n * 2) }).boxed()),
///     ("square", service_fn(|n: u32| async move { Ok(n * n) }).boxed()),
/// ];
///
/// for (name, svc) in &routes {
///     let answer = futures_executor::block_on(svc.call(3)).unwrap();
///     println!("{name}(3) = {answer}");
/// }
/// ```
pub struct BoxService<Req, Resp, Err> {
    inner: Box<dyn ErasedService<Req, Resp, Err>>,
}

impl<Req, Resp, Err> BoxService<Req, Resp, Err> {
    /// Erases the type of `service`.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Req, Response = Resp, Error = Err> + 'static,
        Req: 'static,
    {
        BoxService {
            inner: Box::new(service),
        }
    }
}

impl<Req, Resp, Err> Service<Req> for BoxService<Req, Resp, Err>
where
    Req: 'static,
{
    type Response = Resp;
    type Error = Err;

    fn call(&self, req: Req) -> impl Future<Output = Result<Resp, Err>> {
        self.inner.call_boxed(req)
    }
}

impl<Req, Resp, Err> fmt::Debug for BoxService<Req, Resp, Err> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxService").finish_non_exhaustive()
    }
}
