//! The thread-local "where am I": which runtime and which worker, if any.
//!
//! Two facts live here, both per OS thread:
//!
//! * the runtime [`Handle`] the thread is *inside* (a worker thread, or a
//!   thread currently running [`Runtime::block_on`](crate::Runtime::block_on));
//! * on a worker thread only, that worker's [`WorkerLocal`], which holds the
//!   local run queue.
//!
//! Every runtime-only API funnels through [`handle`] or [`worker`], so a call
//! made outside a runtime fails in one place, with one message that names the
//! API and the fix, instead of hanging.

use std::cell::RefCell;
use std::rc::Rc;

use crate::executor::worker::WorkerLocal;
use crate::runtime::Handle;

struct Context {
    handle: Option<Handle>,
    worker: Option<Rc<WorkerLocal>>,
}

thread_local! {
    static CONTEXT: RefCell<Context> = const {
        RefCell::new(Context { handle: None, worker: None })
    };
}

/// Restores the previous context when dropped.
#[derive(Debug)]
pub(crate) struct EnterGuard {
    prev_handle: Option<Handle>,
    prev_worker: Option<Rc<WorkerLocal>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let handle = self.prev_handle.take();
        let worker = self.prev_worker.take();
        // Swap out under the borrow, drop the old values after it: dropping a
        // handle can run arbitrary destructors that look at the context.
        let _old = CONTEXT.with(|c| {
            let mut c = c.borrow_mut();
            (
                std::mem::replace(&mut c.handle, handle),
                std::mem::replace(&mut c.worker, worker),
            )
        });
    }
}

/// Marks this thread as inside `handle`'s runtime (and, for worker threads,
/// as running `worker`) until the guard drops.
pub(crate) fn enter(handle: Handle, worker: Option<Rc<WorkerLocal>>) -> EnterGuard {
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        EnterGuard {
            prev_handle: c.handle.replace(handle),
            prev_worker: std::mem::replace(&mut c.worker, worker),
        }
    })
}

/// The runtime this thread is inside, if any.
pub(crate) fn try_handle() -> Option<Handle> {
    CONTEXT
        .try_with(|c| c.borrow().handle.clone())
        .ok()
        .flatten()
}

/// The runtime this thread is inside; panics naming `api` otherwise.
#[track_caller]
pub(crate) fn handle(api: &str) -> Handle {
    match try_handle() {
        Some(h) => h,
        None => outside(api),
    }
}

/// Panics naming `api` unless this thread is inside a runtime. For the
/// APIs that must refuse before they touch the system: a socket bound or
/// connected first, then dropped by the panic, would leave a Unix socket
/// file behind or show a peer a connection that comes and goes.
#[track_caller]
pub(crate) fn require(api: &str) {
    let inside = CONTEXT
        .try_with(|c| c.borrow().handle.is_some())
        .unwrap_or(false);
    if !inside {
        outside(api);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn outside(api: &str) -> ! {
    panic!(
        "strata: `{api}` was called outside a strata runtime. \
         Call it from a future passed to `Runtime::block_on` or \
         `strata_rt::run`, or from a task spawned on a runtime."
    )
}

/// This thread's worker, if it is a worker thread.
pub(crate) fn try_worker() -> Option<Rc<WorkerLocal>> {
    CONTEXT
        .try_with(|c| c.borrow().worker.clone())
        .ok()
        .flatten()
}

/// Whether this thread is a worker with other tasks waiting to run.
pub(crate) fn worker_has_work() -> bool {
    CONTEXT
        .try_with(|c| c.borrow().worker.as_ref().is_some_and(|w| w.has_work()))
        .unwrap_or(false)
}

/// Runs `f` with this thread's worker if its unique id is `uid`.
///
/// This is the scheduler's fast path: it decides between the local queue and
/// the remote one without touching a reference count.
#[inline]
pub(crate) fn with_worker_if<R>(uid: usize, f: impl FnOnce(&WorkerLocal) -> R) -> Option<R> {
    // `try_with`: wakers may fire while thread-locals are being torn down.
    CONTEXT
        .try_with(|c| match &c.borrow().worker {
            Some(w) if w.uid() == uid => Some(f(w)),
            _ => None,
        })
        .ok()
        .flatten()
}
