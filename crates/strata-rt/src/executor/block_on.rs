//! Driving one future to completion on the calling thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread, parking the thread between wake-ups.
///
/// Its I/O is driven by the runtime's workers, whose reactors wake this
/// thread through an ordinary `Waker`, so nothing here polls for events.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        // No budget: this thread serves only this future (and it may run
        // inside a blocking-pool closure, or any caller's budget).
        if let Poll::Ready(v) = super::coop::unconstrained(|| future.as_mut().poll(&mut cx)) {
            return v;
        }
        // A wake that raced ahead of us left the park token set, so this
        // returns at once; spurious returns just poll again.
        thread::park();
    }
}
