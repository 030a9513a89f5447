//! Driving one future to completion on the calling thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

struct ThreadWaker {
    thread: Thread,
    /// Set by every wake; the park token alone can be eaten by code that
    /// parks inside `poll` (std channels, crossbeam, ...).
    notified: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Polls `future` on this thread, parking the thread between wake-ups.
///
/// Its I/O is driven by the runtime's workers, whose reactors wake this
/// thread through an ordinary `Waker`, so nothing here polls for events.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let inner = Arc::new(ThreadWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(inner.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        // No budget: this thread serves only this future, and an executor
        // nested in it could never have a spent budget refilled (see
        // `coop`).
        if let Poll::Ready(v) = super::coop::unconstrained(|| future.as_mut().poll(&mut cx)) {
            return v;
        }
        // A wake that raced ahead of us left the park token set, so this
        // returns at once; spurious returns just poll again.
        while !inner.notified.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}
