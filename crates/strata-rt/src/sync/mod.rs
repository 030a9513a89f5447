//! Synchronization for tasks: channels, locks, and shutdown coordination.
//!
//! Most of what async code needs here is runtime-agnostic and already done
//! well by small, well-kept crates, so strata re-exports them instead of
//! writing its own. Everything is available under this one path:
//!
//! | need | type | from |
//! | --- | --- | --- |
//! | one value, once | [`oneshot`] | `futures-channel` |
//! | a queue of values (bounded or not; see below) | [`mpsc`] | `futures-channel`, receivers wrapped |
//! | every value to every receiver | [`broadcast`] | `async-broadcast` |
//! | the latest version of one value, for many receivers | [`watch`] | strata |
//! | async mutex / read-write lock | [`Mutex`], [`RwLock`] | `async-lock` |
//! | limit concurrency | [`Semaphore`] | `async-lock` |
//! | rendezvous of N tasks | [`Barrier`] | `async-lock` |
//! | lazily initialised value | [`OnceCell`] | `async-lock` |
//! | "wake whoever waits" (notify) | [`Event`], [`EventListener`] | `event-listener` |
//! | graceful shutdown: one trigger, every waiter | [`Shutdown`] | strata |
//! | wait for N things to finish | [`WaitGroup`] | strata |
//!
//! Why these: `futures-channel` is the reference channel implementation of
//! the futures project and needs no runtime; `async-lock`,
//! `async-broadcast` and `event-listener` (smol-rs) are small and
//! allocation-light, and the first two are built on `event-listener`, so
//! all three share one wake-up mechanism. None of them needs a strata
//! runtime to work.
//!
//! Properties of the re-exports to know:
//!
//! * The [`mpsc`] receivers are wrapped so that every message taken spends
//!   the task's cooperative budget (as tokio's channels do): a task
//!   draining a queue that never runs dry still lets its worker run other
//!   tasks, timers and I/O every 128 messages. So does each completed
//!   wait of a [`watch`] receiver (`changed`, `wait_for`). The other
//!   types here do not spend it; a loop that takes an always-free lock or permit over and
//!   over should call [`yield_now`](crate::yield_now) now and then.
//! * A bounded [`mpsc::channel`]`(n)` holds up to `n` messages **plus one
//!   per sender that has sent since the receiver last caught up, dropped
//!   clones included**: every `Sender` clone has a guaranteed slot, and a
//!   message sent by a clone that was then dropped stays queued, so a
//!   clone per message makes the channel unbounded. For a strict bound
//!   with many senders, give each producer its own clone for its whole
//!   life (not one per message), or bound with a [`Semaphore`].
//! * A [`mpsc::Sender`]'s `send` future (from `SinkExt`) is not
//!   cancel-safe the way tokio's is: it queues the message and then may
//!   wait (`Pending`) for the channel to drain below its bound, and
//!   dropping it then does not take the message back, so a `send` that
//!   lost a race against a timeout may still be delivered. Its `Ok` means
//!   queued, not delivered: a `send` waiting when the receiver is dropped
//!   still returns `Ok`, its message dropped with the queue (tokio's
//!   `send`, which waits before it queues, hands the message back in its
//!   error instead; messages already queued are dropped with the queue in
//!   both). `SinkExt::feed` completes as soon as the message is queued
//!   (a dropped `feed` did not send), and `try_send` queues the message or
//!   hands it back.
//! * A [`broadcast`] channel differs from tokio's where a tokio user
//!   would not look. Full, it makes `broadcast(..)` wait for the slowest
//!   receiver (back-pressure) unless `set_overflow(true)`, which drops
//!   the oldest value instead (a receiver then gets
//!   `RecvError::Overflowed(n)`, tokio's `Lagged`). With no receiver left,
//!   it closes; a server whose subscribers come and go keeps it open with
//!   an `InactiveReceiver` (`receiver.deactivate()`), and `broadcast(..)`
//!   then waits for a subscriber (`try_broadcast` says `Inactive`). A new
//!   subscriber is `sender.new_receiver()` (from now on) or a receiver's
//!   `clone()` (from its position). The capacity must be at least 1.
//! * [`Event`] keeps no permit: a `notify` that finds no listener
//!   registered is lost (tokio's `Notify::notify_one` stores one for the
//!   next waiter). Register first, then check the condition, then wait:
//!   `let listener = event.listen(); if !ready() { listener.await }`; a
//!   notify between the check and the wait then still reaches the
//!   listener.
//! * Waiters are woken in the order they queued, but a lock or permit
//!   released to the first waiter can still be taken by a `try_lock` /
//!   `try_acquire` in between (barging); `Mutex` switches to strict
//!   hand-off for a waiter starved for about half a millisecond, and
//!   `Semaphore` makes no fairness promise beyond the wake-up order.
//!
//! [`watch`] is strata's own too (a lock, a version counter and two
//! [`Event`]s), in the shape of tokio's `watch`: a configuration or status
//! that tasks follow, each seeing its newest value.
//!
//! The two strata types fill what is missing for a server's graceful
//! shutdown, and are small compositions of an atomic and an [`Event`]:
//!
//! * [`Shutdown`]: one `trigger()`, any number of waiters
//!   (`wait().await`, `is_triggered()`); "stop accepting, finish up".
//! * [`WaitGroup`]: a count of live things (connections) whose guards
//!   decrement it on drop, and a `wait()` that completes when it reaches
//!   zero; "wait until every connection is gone".
//!
//! ```
//! use strata_rt::sync::{Shutdown, WaitGroup};
//!
//! strata_rt::run(async {
//!     let shutdown = Shutdown::new();
//!     let connections = WaitGroup::new();
//!     for _ in 0..3 {
//!         let (shutdown, guard) = (shutdown.clone(), connections.add());
//!         strata_rt::spawn(async move {
//!             shutdown.wait().await; // serve until told to stop
//!             drop(guard); // this connection is done
//!         });
//!     }
//!     shutdown.trigger();
//!     connections.wait().await;
//!     assert_eq!(connections.count(), 0);
//! });
//! ```

pub mod mpsc;
mod shutdown;
mod wait_group;
pub mod watch;

/// A channel that delivers every value to every receiver (a clone each):
/// `async-broadcast`, re-exported. See the module docs for how it differs
/// from tokio's.
pub use async_broadcast as broadcast;
pub use async_lock::{
    Barrier, BarrierWaitResult, Mutex, MutexGuard, MutexGuardArc, OnceCell, RwLock,
    RwLockReadGuard, RwLockWriteGuard, Semaphore, SemaphoreGuard, SemaphoreGuardArc,
};
pub use event_listener::{Event, EventListener};
pub use futures_channel::oneshot;
pub use shutdown::{Shutdown, Triggered};
pub use wait_group::{AllDone, WaitGroup, WaitGuard};
