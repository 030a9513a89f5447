//! `BoxCloneService`: a cloneable, type-erased service for one worker.

use std::fmt;
use std::future::Future;
use std::rc::Rc;

use super::ErasedService;
use crate::Service;

/// A type-erased service that can be cloned; clones share one service
/// through an `Rc`.
///
/// Since `call` takes `&self`, sharing one instance is what cloning a
/// service should mean: clones see the same state (counters, caches,
/// connections), and a clone costs a reference-count increment. Neither
/// the service nor its futures are `Send`, so it fits a per-worker or
/// per-connection stack; to hand one stack to several workers, see
/// [`BoxCloneSyncService`](crate::BoxCloneSyncService).
///
/// Made by [`BoxCloneService::new`] or
/// [`ServiceExt::boxed_clone`](crate::ServiceExt::boxed_clone).
///
/// # Example
///
/// ```
/// use std::cell::Cell;
/// use strata_service::{BoxCloneService, Service, ServiceExt, service_fn};
///
/// let hits = std::rc::Rc::new(Cell::new(0));
/// let counter = {
///     let hits = hits.clone();
///     service_fn(move |_: ()| {
///         hits.set(hits.get() + 1);
///         async { Ok::<_, ()>(()) }
///     })
/// };
/// let a: BoxCloneService<(), (), ()> = counter.boxed_clone();
/// let b = a.clone();
///
/// futures_executor::block_on(async {
///     a.call(()).await.unwrap();
///     b.call(()).await.unwrap();
/// });
/// assert_eq!(hits.get(), 2); // one service behind both handles
/// ```
pub struct BoxCloneService<Req, Resp, Err> {
    inner: Rc<dyn ErasedService<Req, Resp, Err>>,
}

impl<Req, Resp, Err> BoxCloneService<Req, Resp, Err> {
    /// Erases the type of `service`.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Req, Response = Resp, Error = Err> + 'static,
        Req: 'static,
    {
        BoxCloneService {
            inner: Rc::new(service),
        }
    }
}

impl<Req, Resp, Err> Clone for BoxCloneService<Req, Resp, Err> {
    fn clone(&self) -> Self {
        BoxCloneService {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<Req, Resp, Err> Service<Req> for BoxCloneService<Req, Resp, Err>
where
    Req: 'static,
{
    type Response = Resp;
    type Error = Err;

    fn call(&self, req: Req) -> impl Future<Output = Result<Resp, Err>> {
        self.inner.call_boxed(req)
    }
}

impl<Req, Resp, Err> fmt::Debug for BoxCloneService<Req, Resp, Err> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxCloneService").finish_non_exhaustive()
    }
}
