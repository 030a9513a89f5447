//! strata-rt: the runtime at the bottom of the strata stack.
//!
//! A thread-per-core executor integrated with a `mio` reactor:
//!
//! * [`Runtime`] starts N workers (default: one per core). Each worker is an
//!   OS thread owning a `mio::Poll`, a local run queue and a remote queue.
//!   Tasks stay on the worker that spawned them.
//! * [`spawn`] runs `Send` futures, [`spawn_local`] runs `!Send` futures on
//!   the current worker, [`spawn_blocking`] runs closures on a pool of
//!   bounded size (its queue is not bounded).
//!   Each returns a [`JoinHandle`] that yields the output, the panic, or the
//!   cancellation.
//! * [`net`] has the sockets: TCP, UDP and Unix domain, implementing the
//!   runtime-agnostic `futures_io::AsyncRead` / `AsyncWrite`.
//! * [`time`] has the clock: [`time::sleep`], [`time::timeout`] and
//!   [`time::interval`], driven by a hierarchical timing wheel per worker
//!   (millisecond resolution, O(1) insert and cancel).
//! * [`signal`] turns SIGINT, SIGTERM, SIGHUP and friends into futures, and
//!   [`sync`] has channels, locks, and the [`sync::Shutdown`] /
//!   [`sync::WaitGroup`] pair for graceful shutdown.
//!
//! # Example: an echo server
//!
//! ```no_run
//! use strata_rt::net::TcpListener;
//!
//! strata_rt::run(async {
//!     let listener = TcpListener::bind("127.0.0.1:7000")?;
//!     loop {
//!         let (stream, _peer) = listener.accept().await?;
//!         strata_rt::spawn(async move {
//!             let (mut reader, mut writer) = stream.into_split();
//!             let _ = futures_util::io::copy(&mut reader, &mut writer).await;
//!         });
//!     }
//! # #[allow(unreachable_code)]
//! # Ok::<(), std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # Outside a runtime
//!
//! Runtime-only APIs (spawning, creating sockets, polling a timer) called
//! outside a runtime panic with a message naming the API, instead of
//! hanging. (Accepting is not one: a stream accepted outside any runtime
//! may be used there, with its listener's reactor, so that no connection
//! is lost.)

#![deny(unsafe_op_in_unsafe_fn)]

mod context;
mod executor;
pub mod net;
mod reactor;

/// The cooperative budget, for I/O sources built outside this crate.
///
/// Each task poll may complete a bounded number of I/O operations (128)
/// before the runtime's sockets, timers and channels return `Pending`
/// (waking the task, so it runs again after the others): a source that is
/// always ready cannot hold its worker. Only operations that make progress
/// count; one that finds nothing to do (`WouldBlock`) gives its unit back.
/// Outside worker tasks (in `block_on`, on other threads) there is no
/// budget. A transport of your own (an in-memory pipe, a wrapper that does work
/// per read) joins in through [`poll_proceed`](coop::poll_proceed); code
/// that must tell "the source is empty" from "the budget is spent" asks
/// [`has_budget_remaining`](coop::has_budget_remaining).
///
/// # Examples
///
/// ```
/// use std::future::poll_fn;
/// use std::task::Poll;
///
/// let polls = strata_rt::run(async {
///     strata_rt::spawn(async {
///         // A source that is always ready, drained in one loop.
///         let (mut done, mut polls) = (0, 0);
///         poll_fn(|cx| {
///             polls += 1;
///             while done < 1_000 {
///                 let unit = std::task::ready!(strata_rt::coop::poll_proceed(cx));
///                 done += 1; // the operation itself
///                 unit.made_progress();
///             }
///             Poll::Ready(())
///         })
///         .await;
///         polls
///     })
///     .await
///     .unwrap()
/// });
/// // The task yielded each time its budget ran out.
/// assert!(polls >= 1_000 / 128);
/// ```
pub mod coop {
    pub use crate::executor::coop::{RestoreOnPending, has_budget_remaining, poll_proceed};
}
pub mod runtime;
pub mod signal;
pub mod sync;
pub mod time;

pub use executor::{JoinError, JoinHandle, spawn, spawn_blocking, spawn_local, yield_now};
pub use runtime::{Handle, Runtime};

use std::future::Future;

/// Runs `future` to completion on a new default runtime, then shuts the
/// runtime down: the simplest entry point for a program's `main`.
///
/// # Panics
///
/// Panics if the runtime cannot be started (the OS refused a thread or an
/// epoll instance), or if called from inside a strata task.
///
/// # Examples
///
/// ```
/// let out = strata_rt::run(async { strata_rt::spawn(async { "hi" }).await.unwrap() });
/// assert_eq!(out, "hi");
/// ```
#[track_caller]
pub fn run<F: Future>(future: F) -> F::Output {
    let rt = Runtime::new().unwrap_or_else(|e| panic!("strata: cannot start a runtime: {e}"));
    rt.block_on(future)
}
