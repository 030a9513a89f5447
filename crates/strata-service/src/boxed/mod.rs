//! Type-erased services; the crate docs' "Boxed services" section has the
//! overview.
//!
//! All three forms share one private, object-safe trait whose method boxes
//! the call's future as `Pin<Box<dyn Future + 'a>>` for `&'a self`, so an
//! erased future may borrow its service just like an unerased one.

mod clone;
mod sync;
mod unsync;

pub use clone::BoxCloneService;
pub use sync::BoxCloneSyncService;
pub use unsync::BoxService;

use std::future::Future;
use std::pin::Pin;

use crate::Service;

/// A boxed future that may borrow for `'a`; not `Send`.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The object-safe face of a service: `call`, with the future boxed.
trait ErasedService<Req, Resp, Err> {
    /// Calls the service and boxes the future, which may borrow `self`.
    fn call_boxed<'a>(&'a self, req: Req) -> BoxFuture<'a, Result<Resp, Err>>
    where
        Req: 'a;
}

impl<S, Req> ErasedService<Req, S::Response, S::Error> for S
where
    S: Service<Req>,
{
    fn call_boxed<'a>(&'a self, req: Req) -> BoxFuture<'a, Result<S::Response, S::Error>>
    where
        Req: 'a,
    {
        Box::pin(self.call(req))
    }
}
