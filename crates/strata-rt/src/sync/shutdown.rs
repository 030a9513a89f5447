//! `Shutdown`: a one-way, many-waiter "stop now" flag.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

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
}

impl Future for Triggered {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.inner.triggered.load(Ordering::SeqCst) {
                this.listener = None;
                return Poll::Ready(());
            }
            match &mut this.listener {
                // Listen, then re-check the flag: a trigger in between is
                // seen either by the check or by the listener.
                None => this.listener = Some(this.inner.event.listen()),
                Some(l) => {
                    if Pin::new(l).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.listener = None;
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
