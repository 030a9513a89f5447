//! Helpers of the cancel-safety tests: poll a future once, see whether it
//! was woken, drop it at each point of its life. strata-codec's tests
//! include this file too (it needs only strata-rt's timer).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// A waker that records that it was woken and forwards to the task's own.
pub struct Flag {
    pub woke: AtomicBool,
    pub inner: Waker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.woke.store(true, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woke.store(true, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

/// Polls `f` once with a flagging waker (forwarding to the current task).
pub async fn poll_once_flagged<F: Future>(mut f: Pin<&mut F>) -> (Poll<F::Output>, Arc<Flag>) {
    poll_fn(|cx| {
        let flag = Arc::new(Flag {
            woke: AtomicBool::new(false),
            inner: cx.waker().clone(),
        });
        let waker = Waker::from(flag.clone());
        let r = f.as_mut().poll(&mut Context::from_waker(&waker));
        Poll::Ready((r, flag))
    })
    .await
}

/// Polls `f` once with the task's own waker.
pub async fn poll_once<F: Future>(mut f: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
}

/// Waits (bounded by the test's hang guard) until `flag` was woken.
pub async fn woken(flag: &Flag) {
    while !flag.woke.load(Ordering::SeqCst) {
        strata_rt::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The drop points exercised for each waiting operation.
#[derive(Debug, Clone, Copy)]
pub enum DropAt {
    BeforePoll,
    AfterPending,
    AfterWake,
}
pub const DROP_POINTS: [DropAt; 3] = [DropAt::BeforePoll, DropAt::AfterPending, DropAt::AfterWake];
