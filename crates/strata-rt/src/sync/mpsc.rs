//! Multi-producer, single-consumer queues: `futures-channel`'s, with
//! receivers that take part in the worker's cooperative budget.
//!
//! The senders, the errors and the queueing are `futures-channel`'s own
//! (re-exported). The receivers are thin wrappers: each message taken by
//! `next()` or `recv()` spends one unit of the task's budget, as a socket
//! read does (a poll that finds nothing spends nothing; with no unit left
//! the receiver yields before looking), so a task draining a queue that
//! never runs dry yields to the
//! rest of its worker (other tasks, timers, sockets, shutdown) every 128
//! messages instead of holding it until the queue is empty. Outside a
//! worker's task (in `block_on`, on other threads) there is no budget (see
//! `strata_rt::coop`). `try_recv` never yields, as it cannot.
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use strata_rt::sync::mpsc;
//!
//! strata_rt::run(async {
//!     let (mut tx, mut rx) = mpsc::channel::<u32>(8);
//!     strata_rt::spawn(async move {
//!         for i in 0..3 {
//!             tx.send(i).await.unwrap();
//!         }
//!     });
//!     assert_eq!(rx.recv().await, Ok(0));
//!     assert_eq!(rx.next().await, Some(1));
//!     assert_eq!(rx.collect::<Vec<_>>().await, [2]);
//! });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::{FusedStream, Stream};

pub use futures_channel::mpsc::{
    RecvError, SendError, Sender, TryRecvError, TrySendError, UnboundedSender,
};

use crate::executor::coop;

/// A bounded channel: `buffer` messages plus one per [`Sender`] that has
/// sent since the receiver last caught up, dropped clones included (see
/// the [`sync`](crate::sync) module docs). So a sender cloned for each
/// message makes it unbounded: give each producer one clone for its life.
/// `send` is not cancel-safe as tokio's is: it queues the message first,
/// then waits for room.
pub fn channel<T>(buffer: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = futures_channel::mpsc::channel(buffer);
    (tx, Receiver { inner: rx })
}

/// A channel with no bound: sending never waits.
pub fn unbounded<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let (tx, rx) = futures_channel::mpsc::unbounded();
    (tx, UnboundedReceiver { inner: rx })
}

/// Defines a receiver wrapper `$name` around `futures-channel`'s `$inner`.
macro_rules! receiver {
    ($(#[$doc:meta])* $name:ident, $inner:ident) => {
        $(#[$doc])*
        pub struct $name<T> {
            inner: futures_channel::mpsc::$inner<T>,
        }

        impl<T> $name<T> {
            /// Waits for the next message; `Err(RecvError)` once the channel
            /// is closed and empty.
            ///
            /// # Cancel safety
            ///
            /// Cancel-safe: a message is taken from the queue only by the
            /// poll that returns it, so a `recv` dropped before completing
            /// leaves every message for the next one.
            pub fn recv(&mut self) -> impl Future<Output = Result<T, RecvError>> + '_ {
                std::future::poll_fn(|cx| {
                    Poll::Ready(ready!(Pin::new(&mut *self).poll_next(cx)).ok_or(RecvError))
                })
            }

            /// Takes a message if one is queued, without waiting.
            ///
            /// # Errors
            ///
            /// [`TryRecvError::Empty`] if none is queued,
            /// [`TryRecvError::Closed`] if none ever will be.
            pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
                self.inner.try_recv()
            }

            /// Closes the channel for senders; the messages already queued
            /// can still be received.
            pub fn close(&mut self) {
                self.inner.close();
            }

            /// The `futures-channel` receiver inside (for
            /// `is_connected_to`, say).
            pub fn get_ref(&self) -> &futures_channel::mpsc::$inner<T> {
                &self.inner
            }

            /// Unwraps the `futures-channel` receiver (which does not spend
            /// the task budget).
            pub fn into_inner(self) -> futures_channel::mpsc::$inner<T> {
                self.inner
            }
        }

        impl<T> Stream for $name<T> {
            type Item = T;

            fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
                // A poll that finds nothing spends nothing: a task waiting
                // on many idle receivers must not run out and spin.
                coop::poll_spend_if_ready(cx, |cx| Pin::new(&mut self.inner).poll_next(cx))
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.inner.size_hint()
            }
        }

        impl<T> FusedStream for $name<T> {
            fn is_terminated(&self) -> bool {
                self.inner.is_terminated()
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

receiver!(
    /// The receiving half of [`channel`]: a `Stream` of the messages, in
    /// the order they were sent by each sender.
    Receiver,
    Receiver
);

receiver!(
    /// The receiving half of [`unbounded`]: a `Stream` of the messages.
    UnboundedReceiver,
    UnboundedReceiver
);
