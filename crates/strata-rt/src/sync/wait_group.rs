//! `WaitGroup`: wait until a number of live things drops to zero.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

use crate::executor::contained::ContainedWaker;

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
    /// The count of live guards (low 32 bits) and the number of times it
    /// dropped to zero (high 32 bits, wrapping), in one word so that a
    /// drop to zero and its record are one step: a `wait` first polled
    /// between them would otherwise take a zero from before it began for
    /// one since.
    state: AtomicU64,
    event: Event,
}

const ONE: u64 = 1;
const COUNT_MASK: u64 = (1 << 32) - 1;
const ZERO_STEP: u64 = 1 << 32;

fn count_of(state: u64) -> usize {
    (state & COUNT_MASK) as usize
}

fn zeros_of(state: u64) -> u64 {
    state >> 32
}

impl WaitGroup {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to the count; the returned guard subtracts it when dropped.
    pub fn add(&self) -> WaitGuard {
        // A compare-and-swap, not an add undone on overflow: between the
        // two, a guard's drop would have seen the carried count.
        let added = self
            .inner
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |state| {
                (state & COUNT_MASK != COUNT_MASK).then_some(state + ONE)
            });
        if added.is_err() {
            panic!("WaitGroup::add: more than {COUNT_MASK} live guards");
        }
        WaitGuard {
            inner: self.inner.clone(),
        }
    }

    /// The number of live guards.
    pub fn count(&self) -> usize {
        count_of(self.inner.state.load(Ordering::SeqCst))
    }

    /// Completes once the count is zero, or has been since the returned
    /// future was first polled (see [`AllDone`] for its cancel safety).
    pub fn wait(&self) -> AllDone {
        AllDone {
            inner: self.inner.clone(),
            listener: None,
            zeros: None,
            contained: ContainedWaker::default(),
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
        let dropped = |state: u64| {
            Some(if count_of(state) == 1 {
                // To zero: one more drop to zero, in the same step.
                (state - ONE).wrapping_add(ZERO_STEP)
            } else {
                state - ONE
            })
        };
        let Ok(before) = self
            .inner
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, dropped)
        else {
            unreachable!("the update always applies");
        };
        if count_of(before) == 1 {
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
/// Dropping it takes nothing from other waits, but what it saw is its own:
/// a new [`wait`](WaitGroup::wait) looks for zeros from its own first
/// poll, so one made after the drop, once the count has risen again,
/// waits for the next zero even if the dropped one had been woken for a
/// zero in between. In a `select!` loop, create the wait once, before the
/// loop, and poll it by reference (pinned) so that it keeps what it saw.
#[must_use = "futures do nothing unless polled"]
pub struct AllDone {
    inner: Arc<Inner>,
    listener: Option<EventListener>,
    /// The zero count (`Inner::state`) when first polled: a later value means the count
    /// reached zero since.
    zeros: Option<u64>,
    /// The waker the listener gets when another executor polls (the
    /// last guard's drop wakes it under event-listener's lock, where a panic must
    /// not escape).
    contained: ContainedWaker,
}

impl Future for AllDone {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let start = *this
            .zeros
            .get_or_insert_with(|| zeros_of(this.inner.state.load(Ordering::SeqCst)));
        loop {
            let state = this.inner.state.load(Ordering::SeqCst);
            if count_of(state) == 0 || zeros_of(state) != start {
                this.listener = None;
                return Poll::Ready(());
            }
            match &mut this.listener {
                // Listen, then re-check: see `Triggered::poll`.
                None => this.listener = Some(this.inner.event.listen()),
                Some(l) => {
                    if this
                        .contained
                        .poll_with(cx, |cx| Pin::new(l).poll(cx))
                        .is_pending()
                    {
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
            .field("count", &count_of(self.inner.state.load(Ordering::SeqCst)))
            .finish()
    }
}
