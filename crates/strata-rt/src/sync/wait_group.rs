//! `WaitGroup`: wait until a number of live things drops to zero.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

/// Counts live [`WaitGuard`]s; [`wait`](Self::wait) completes when none is
/// left.
///
/// A server adds a guard per connection and, at shutdown, waits for the
/// count to reach zero. The count may rise again after reaching zero; a
/// `wait` completes once the count has been zero at any moment since the
/// wait was first polled (or is zero when it is polled), even if a new
/// guard was added before the waiting task ran.
///
/// # Examples
///
/// ```
/// use strata_rt::sync::WaitGroup;
///
/// strata_rt::run(async {
///     let group = WaitGroup::new();
///     for i in 0..4 {
///         let guard = group.add();
///         strata_rt::spawn(async move {
///             let _guard = guard; // dropped when the task ends
///             i * 2
///         });
///     }
///     group.wait().await;
///     assert_eq!(group.count(), 0);
/// });
/// ```
#[derive(Clone, Default)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    count: AtomicUsize,
    /// Bumped each time the count drops to zero.
    zeros: AtomicUsize,
    event: Event,
}

impl WaitGroup {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to the count; the returned guard subtracts it when dropped.
    pub fn add(&self) -> WaitGuard {
        self.inner.count.fetch_add(1, Ordering::SeqCst);
        WaitGuard {
            inner: self.inner.clone(),
        }
    }

    /// The number of live guards.
    pub fn count(&self) -> usize {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// Completes once the count is zero.
    pub fn wait(&self) -> AllDone {
        AllDone {
            inner: self.inner.clone(),
            listener: None,
            zeros: None,
        }
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}

/// One live member of a [`WaitGroup`]; dropping it decrements the count.
#[must_use = "dropping the guard at once decrements the count again"]
pub struct WaitGuard {
    inner: Arc<Inner>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if self.inner.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.zeros.fetch_add(1, Ordering::SeqCst);
            self.inner.event.notify(usize::MAX);
        }
    }
}

impl fmt::Debug for WaitGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGuard").finish_non_exhaustive()
    }
}

/// The future of [`WaitGroup::wait`].
///
/// # Cancel safety
///
/// Cancel-safe.
#[must_use = "futures do nothing unless polled"]
pub struct AllDone {
    inner: Arc<Inner>,
    listener: Option<EventListener>,
    /// `Inner::zeros` when first polled: a later value means the count
    /// reached zero since.
    zeros: Option<usize>,
}

impl Future for AllDone {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let start = *this
            .zeros
            .get_or_insert_with(|| this.inner.zeros.load(Ordering::SeqCst));
        loop {
            if this.inner.count.load(Ordering::SeqCst) == 0
                || this.inner.zeros.load(Ordering::SeqCst) != start
            {
                this.listener = None;
                return Poll::Ready(());
            }
            match &mut this.listener {
                // Listen, then re-check: see `Triggered::poll`.
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

impl fmt::Debug for AllDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllDone")
            .field("count", &self.inner.count.load(Ordering::SeqCst))
            .finish()
    }
}
