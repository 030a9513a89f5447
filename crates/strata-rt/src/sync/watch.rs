//! `watch`: one value that changes, many receivers that each see its
//! latest version.
//!
//! For state that tasks follow rather than consume: a configuration that
//! is reloaded, a health status, a "draining" mode. A receiver waits with
//! [`Receiver::changed`] and then looks at the value; values sent while it
//! was busy are not queued, it sees the newest. The value lives behind a
//! [`std::sync::RwLock`], so borrows are meant to be short. A [`Ref`] held
//! across an `.await` blocks the sender's next `send` (its thread, a
//! worker with all its tasks), and deadlocks when the sending task runs on
//! the worker of the task that holds it; a second borrow on a thread that
//! already holds one can deadlock too (a waiting sender goes first). Copy
//! or clone what you need out of the borrow and drop it.
//!
//! ```
//! use strata_rt::sync::watch;
//!
//! strata_rt::run(async {
//!     let (config, mut rx) = watch::channel(String::from("v1"));
//!     let follower = strata_rt::spawn(async move {
//!         while rx.changed().await.is_ok() {
//!             if *rx.borrow_and_update() == "v3" {
//!                 return "reached v3";
//!             }
//!         }
//!         "sender gone"
//!     });
//!     config.send_replace("v2".into());
//!     config.send_replace("v3".into());
//!     assert_eq!(follower.await.unwrap(), "reached v3");
//! });
//! ```

use std::fmt;
use std::future::{Future, poll_fn};
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use std::task::Poll;

use event_listener::{Event, EventListener};

use crate::executor::contained::ContainedWaker;
use crate::executor::coop;

/// A channel holding `init`, and its first receiver (which has seen
/// `init`: its first [`changed`](Receiver::changed) waits for a send).
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: RwLock::new(init),
        state: AtomicU64::new(0),
        receivers: AtomicUsize::new(1),
        changed: Event::new(),
        no_receivers: Event::new(),
    });
    let rx = Receiver {
        shared: shared.clone(),
        seen: 0,
    };
    (Sender { shared }, rx)
}

/// The low bit of `Shared::state`: the sender is gone.
const CLOSED: u64 = 1;
/// What a send adds to `Shared::state` (the version lives above the bit).
const STEP: u64 = 2;

struct Shared<T> {
    value: RwLock<T>,
    /// The version times [`STEP`], plus [`CLOSED`]. Bumped with the write
    /// lock held, so a reader holding the read lock sees the version of
    /// the value it reads.
    state: AtomicU64,
    receivers: AtomicUsize,
    /// Notified on every send and when the sender goes.
    changed: Event,
    /// Notified when the last receiver goes.
    no_receivers: Event,
}

impl<T> Shared<T> {
    fn read(&self) -> RwLockReadGuard<'_, T> {
        // A panic in `send_modify`'s closure poisons the lock; the value
        // is still a value (see `send_modify`).
        self.value.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.value.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits, through `event`, until `ready` says something other than
    /// `None`. `ready` is checked after each registration, so a
    /// notification between a check and the wait is not lost. A wait that
    /// completes spends a unit of the task's cooperative budget (with none
    /// left, the task yields first), as a channel's receive does: a loop
    /// over a value that keeps changing still lets its worker run the
    /// other tasks.
    async fn wait_until<R>(&self, event: &Event, mut ready: impl FnMut() -> Option<R>) -> R {
        let mut contained = ContainedWaker::default();
        let mut listener: Option<EventListener> = None;
        poll_fn(|cx| {
            coop::poll_spend_if_ready(cx, |cx| {
                loop {
                    if let Some(r) = ready() {
                        return Poll::Ready(r);
                    }
                    match &mut listener {
                        // Listen, then check again (the loop) before waiting.
                        None => listener = Some(event.listen()),
                        Some(l) => {
                            // The notifier wakes under event-listener's
                            // lock: another executor's waker is wrapped so
                            // its panic cannot escape there.
                            if contained
                                .poll_with(cx, |cx| Pin::new(l).poll(cx))
                                .is_pending()
                            {
                                return Poll::Pending;
                            }
                            listener = None;
                        }
                    }
                }
            })
        })
        .await
    }
}

/// The sending side of a [`channel`]. Dropping it closes the channel:
/// receivers' [`changed`](Receiver::changed) then fails once they have
/// seen the last value.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The error of [`Sender::send`] with no receiver left: the value, not
/// stored.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("watch channel has no receivers")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// The error of [`Receiver::changed`] and [`Receiver::has_changed`]: the
/// sender is gone (and, for `changed`, the last value was seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("watch channel's sender was dropped")
    }
}

impl std::error::Error for RecvError {}

impl<T> Sender<T> {
    /// Stores `value` and wakes the receivers; with none left, hands
    /// `value` back instead (see [`send_replace`](Self::send_replace) to
    /// store it anyway).
    ///
    /// # Errors
    ///
    /// [`SendError`] holding `value` when every receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.receivers.load(Ordering::SeqCst) == 0 {
            return Err(SendError(value));
        }
        self.send_replace(value);
        Ok(())
    }

    /// Stores `value`, wakes the receivers, and returns the value it
    /// replaced; stores it even with no receiver (a later
    /// [`subscribe`](Self::subscribe) sees it).
    pub fn send_replace(&self, value: T) -> T {
        let mut value = value;
        self.send_modify(|v| std::mem::swap(v, &mut value));
        value
    }

    /// Changes the value in place and wakes the receivers.
    ///
    /// If `modify` panics, the panic goes on to the caller, the value keeps
    /// whatever `modify` did to it, and the receivers are woken as for a
    /// change.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.send_if_modified(|v| {
            modify(v);
            true
        });
    }

    /// Changes the value in place; wakes the receivers only if `modify`
    /// returns `true` (it changed something). Returns what `modify`
    /// returned. If `modify` panics, as for [`send_modify`](Self::send_modify).
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        /// Publishes the change, unless `modify` said there was none;
        /// also when it panicked (a partial change is still a change).
        struct Publish<'a, T> {
            shared: &'a Shared<T>,
            guard: Option<RwLockWriteGuard<'a, T>>,
            changed: bool,
        }
        impl<T> Drop for Publish<'_, T> {
            fn drop(&mut self) {
                if self.changed {
                    // With the lock still held (see `Shared::state`).
                    self.shared.state.fetch_add(STEP, Ordering::SeqCst);
                }
                drop(self.guard.take());
                if self.changed {
                    self.shared.changed.notify(usize::MAX);
                }
            }
        }
        let mut publish = Publish {
            shared: &self.shared,
            guard: Some(self.shared.write()),
            changed: true,
        };
        let value = publish.guard.as_mut().expect("held");
        publish.changed = modify(value);
        publish.changed
    }

    /// The current value. Keep the borrow short (see the module docs).
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.read(),
            has_changed: false,
        }
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        self.shared.receivers.fetch_add(1, Ordering::SeqCst);
        let seen = self.shared.state.load(Ordering::SeqCst) & !CLOSED;
        Receiver {
            shared: self.shared.clone(),
            seen,
        }
    }

    /// How many receivers there are.
    pub fn receiver_count(&self) -> usize {
        self.shared.receivers.load(Ordering::SeqCst)
    }

    /// `true` when no receiver is left.
    pub fn is_closed(&self) -> bool {
        self.receiver_count() == 0
    }

    /// Completes once no receiver is left (at once if none is). A
    /// [`subscribe`](Self::subscribe) after that reopens the channel, but
    /// does not undo the completion.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn closed(&self) {
        let shared = &*self.shared;
        shared
            .wait_until(&shared.no_receivers, || self.is_closed().then_some(()))
            .await;
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.state.fetch_or(CLOSED, Ordering::SeqCst);
        self.shared.changed.notify(usize::MAX);
    }
}

impl<T: fmt::Debug> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("value", &*self.borrow())
            .field("receivers", &self.receiver_count())
            .finish()
    }
}

/// A receiving side of a [`channel`]; clone it for more (a clone has seen
/// what this one has).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The version (times [`STEP`]) this receiver has seen.
    seen: u64,
}

impl<T> Receiver<T> {
    /// The current value, without marking it seen. Keep the borrow short
    /// (see the module docs).
    pub fn borrow(&self) -> Ref<'_, T> {
        let guard = self.shared.read();
        let version = self.shared.state.load(Ordering::SeqCst) & !CLOSED;
        Ref {
            guard,
            has_changed: version != self.seen,
        }
    }

    /// The current value, marking it seen: [`changed`](Self::changed)
    /// then waits for the next send.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = self.shared.read();
        // Under the read lock: the version of the value read.
        let version = self.shared.state.load(Ordering::SeqCst) & !CLOSED;
        let has_changed = version != self.seen;
        self.seen = version;
        Ref { guard, has_changed }
    }

    /// Whether a value this receiver has not seen was sent.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the sender is gone, seen or not.
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        let state = self.shared.state.load(Ordering::SeqCst);
        if state & CLOSED != 0 {
            return Err(RecvError);
        }
        Ok(state != self.seen)
    }

    /// Takes the current value as unseen: the next
    /// [`changed`](Self::changed) completes at once.
    pub fn mark_changed(&mut self) {
        // No send makes this version (they are even): never equal.
        self.seen = u64::MAX;
    }

    /// Takes the current value as seen.
    pub fn mark_unchanged(&mut self) {
        self.seen = self.shared.state.load(Ordering::SeqCst) & !CLOSED;
    }

    /// Waits until a value this receiver has not seen was sent, and marks
    /// it seen: then [`borrow`](Self::borrow) it. Values sent meanwhile are
    /// not queued; the receiver sees the newest.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the sender is gone and the last value was seen.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropped before it completes, it marks nothing seen.
    pub async fn changed(&mut self) -> Result<(), RecvError> {
        let shared = &*self.shared;
        let seen = &mut self.seen;
        shared
            .wait_until(&shared.changed, || {
                let state = shared.state.load(Ordering::SeqCst);
                let version = state & !CLOSED;
                if version != *seen {
                    *seen = version;
                    Some(Ok(()))
                } else if state & CLOSED != 0 {
                    Some(Err(RecvError))
                } else {
                    None
                }
            })
            .await
    }

    /// Waits until the value satisfies `ready` (checking the current one
    /// first), marks it seen, and returns it borrowed.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when the sender is gone and no value satisfied
    /// `ready`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn wait_for(
        &mut self,
        mut ready: impl FnMut(&T) -> bool,
    ) -> Result<Ref<'_, T>, RecvError> {
        let (shared, seen) = (&*self.shared, &mut self.seen);
        loop {
            let version = {
                let guard = shared.read();
                // Under the read lock: the version of the value checked.
                let version = shared.state.load(Ordering::SeqCst) & !CLOSED;
                if ready(&guard) {
                    let has_changed = version != *seen;
                    *seen = version;
                    return Ok(Ref { guard, has_changed });
                }
                version
            };
            *seen = version;
            shared
                .wait_until(&shared.changed, || {
                    let state = shared.state.load(Ordering::SeqCst);
                    if state & !CLOSED != version {
                        Some(Ok(()))
                    } else if state & CLOSED != 0 {
                        Some(Err(RecvError))
                    } else {
                        None
                    }
                })
                .await?;
        }
    }

    /// Whether `other` receives from the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.receivers.fetch_add(1, Ordering::SeqCst);
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.shared.receivers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.no_receivers.notify(usize::MAX);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("value", &*self.borrow())
            .finish()
    }
}

/// A borrow of a channel's value (a read lock: keep it short).
pub struct Ref<'a, T> {
    guard: RwLockReadGuard<'a, T>,
    has_changed: bool,
}

impl<T> Ref<'_, T> {
    /// For a receiver's borrow: whether this value was unseen when
    /// borrowed. Always `false` for the sender's.
    pub fn has_changed(&self) -> bool {
        self.has_changed
    }
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
