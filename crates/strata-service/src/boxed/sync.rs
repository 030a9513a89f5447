//! `BoxCloneSyncService`: a cloneable, type-erased service that can cross
//! threads.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::ErasedService;
use crate::Service;

/// A type-erased service that is `Clone + Send + Sync`; clones share one
/// service through an `Arc`. Its futures are *not* `Send`.
///
/// For a stack built once and shared by every worker: the factory a
/// multi-threaded server runs on each worker must be `Send + Sync`, and so
/// must what it captures. Each worker then calls the shared service and
/// polls the futures itself, which is why the futures need not be `Send`
/// (the [crate docs](crate#boxed-services) say why no variant with
/// `Send` futures is offered). The wrapped service must be `Send + Sync`,
/// so its shared state uses `Mutex` or atomics rather than `RefCell`.
///
/// Made by [`BoxCloneSyncService::new`] or
/// [`ServiceExt::boxed_clone_sync`](crate::ServiceExt::boxed_clone_sync).
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use strata_service::{BoxCloneSyncService, NewService, Service, ServiceExt, service_fn};
///
/// static SERVED: AtomicU64 = AtomicU64::new(0);
/// let shared: BoxCloneSyncService<u32, u32, ()> = service_fn(|n: u32| async move {
///     SERVED.fetch_add(1, Ordering::Relaxed);
///     Ok(n + 1)
/// })
/// .boxed_clone_sync();
///
/// // A per-connection factory that hands out the shared stack.
/// let factory = move || Ok::<_, std::io::Error>(shared.clone());
/// std::thread::scope(|s| {
///     for n in 0..2 {
///         let factory = &factory;
///         s.spawn(move || {
///             let svc = factory().unwrap();
///             assert_eq!(futures_executor::block_on(svc.call(n)), Ok(n + 1));
///         });
///     }
/// });
/// assert_eq!(SERVED.load(Ordering::Relaxed), 2);
/// ```
pub struct BoxCloneSyncService<Req, Resp, Err> {
    inner: Arc<dyn ErasedService<Req, Resp, Err> + Send + Sync>,
}

impl<Req, Resp, Err> BoxCloneSyncService<Req, Resp, Err> {
    /// Erases the type of `service`.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Req, Response = Resp, Error = Err> + Send + Sync + 'static,
        Req: 'static,
    {
        BoxCloneSyncService {
            inner: Arc::new(service),
        }
    }
}

impl<Req, Resp, Err> Clone for BoxCloneSyncService<Req, Resp, Err> {
    fn clone(&self) -> Self {
        BoxCloneSyncService {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<Req, Resp, Err> Service<Req> for BoxCloneSyncService<Req, Resp, Err>
where
    Req: 'static,
{
    type Response = Resp;
    type Error = Err;

    fn call(&self, req: Req) -> impl Future<Output = Result<Resp, Err>> {
        self.inner.call_boxed(req)
    }
}

impl<Req, Resp, Err> fmt::Debug for BoxCloneSyncService<Req, Resp, Err> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxCloneSyncService")
            .finish_non_exhaustive()
    }
}
