//! `Shutdown`: a one-way, many-waiter "stop now" flag.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use event_listener::{Event, EventListener};

use crate::executor::contained::ContainedWaker;

/// A shutdown signal: triggered once, observed by any number of tasks.
///
/// Clones share the same state; any clone may trigger it or wait on it.
/// Once triggered it stays triggered, so a waiter that arrives late
/// completes at once.
///
/// # Examples
///
/// ```
/// use strata_rt::sync::Shutdown;
///
/// strata_rt::run(async {
///     let shutdown = Shutdown::new();
///     let waiter = strata_rt::spawn({
///         let shutdown = shutdown.clone();
///         async move { shutdown.wait().await }
///     });
///     shutdown.trigger();
///     waiter.await.unwrap();
///     assert!(shutdown.is_triggered());
/// });
/// ```
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    event: Event,
}

impl Shutdown {
    /// A new, untriggered signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers the signal, waking every waiter. Idempotent; returns `true`
    /// if this call was the one that triggered it.
    pub fn trigger(&self) -> bool {
        let first = !self.inner.triggered.swap(true, Ordering::SeqCst);
        if first {
            self.inner.event.notify(usize::MAX);
        }
        first
    }

    /// `true` once triggered.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Completes once the signal is triggered. The future owns a reference
    /// to the signal, so it may be stored or moved into another task.
    pub fn wait(&self) -> Triggered {
        Triggered {
            inner: self.inner.clone(),
            listener: None,
            contained: ContainedWaker::default(),
            registered: None,
        }
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

/// The future of [`Shutdown::wait`].
///
/// # Cancel safety
///
/// Cancel-safe: it holds no claim that dropping could lose.
#[must_use = "futures do nothing unless polled"]
pub struct Triggered {
    inner: Arc<Inner>,
    listener: Option<EventListener>,
    /// The waker the listener was last polled with. While the task polls
    /// with a waker that wakes the same task, the listener needs no new
    /// poll: the flag alone says whether the trigger came.
    registered: Option<Waker>,
    /// The waker the listener gets when another executor polls (the
    /// trigger wakes it under event-listener's lock, where a panic must
    /// not escape).
    contained: ContainedWaker,
}

impl Future for Triggered {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.inner.triggered.load(Ordering::SeqCst) {
                this.listener = None;
                this.registered = None;
                return Poll::Ready(());
            }
            if this.listener.is_some()
                && this
                    .registered
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
            {
                // Polled before with this task's waker, which the trigger
                // will wake; checked the flag above.
                return Poll::Pending;
            }
            match &mut this.listener {
                // Listen, then re-check the flag: a trigger in between is
                // seen either by the check or by the listener.
                None => this.listener = Some(this.inner.event.listen()),
                Some(l) => {
                    let polled = this.contained.poll_with(cx, |cx| Pin::new(l).poll(cx));
                    if polled.is_pending() {
                        this.registered = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                    this.listener = None;
                    this.registered = None;
                }
            }
        }
    }
}

impl fmt::Debug for Triggered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Triggered")
            .field("triggered", &self.inner.triggered.load(Ordering::SeqCst))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_changed_waker_is_the_one_woken() {
        let shutdown = Shutdown::new();
        let mut wait = std::pin::pin!(shutdown.wait());
        let (a, b) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        for _ in 0..3 {
            assert!(
                wait.as_mut()
                    .poll(&mut Context::from_waker(&wa))
                    .is_pending()
            );
        }
        assert!(
            wait.as_mut()
                .poll(&mut Context::from_waker(&wb))
                .is_pending()
        );
        shutdown.trigger();
        assert_eq!(b.0.load(Ordering::SeqCst), 1, "the latest waker is woken");
        assert_eq!(a.0.load(Ordering::SeqCst), 0, "the replaced waker is not");
        assert!(wait.as_mut().poll(&mut Context::from_waker(&wb)).is_ready());
    }
}
