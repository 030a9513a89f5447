//! The executor: tasks, their scheduling policy, and the ways to spawn them.
//!
//! Task cells (the allocation holding a future, its state bits and its
//! waker vtable) come from `async-task`. Everything else is ours:
//!
//! * a task belongs to one worker for its whole life; its schedule function
//!   captures that worker's [`WorkerShared`](worker::WorkerShared);
//! * when a task is woken *on its own worker's thread* the runnable goes to
//!   the worker's local queue (no atomics beyond async-task's state word);
//!   a task woken while it runs (it yielded) joins that queue only after
//!   the worker's next look at I/O, behind the tasks I/O woke;
//! * when it is woken from anywhere else it goes to the worker's remote queue,
//!   and the worker is woken through its `mio::Waker` if it is asleep;
//! * a worker runs at most [`BUDGET`](worker::BUDGET) tasks before it polls
//!   for I/O again, so one self-waking task cannot starve the sockets.

pub(crate) mod block_on;
pub(crate) mod blocking;
pub(crate) mod contained;
pub(crate) mod coop;
pub(crate) mod join;
pub(crate) mod task;
pub(crate) mod worker;

use std::future::Future;

pub use join::{JoinError, JoinHandle};

use crate::context;

/// Spawns a `Send` future onto the current runtime.
///
/// Called on a worker thread, the task runs on that worker (tasks never move
/// between workers). Called from a thread that is only *inside* the runtime,
/// such as the thread running [`Runtime::block_on`](crate::Runtime::block_on),
/// tasks are spread over the workers round-robin.
///
/// Dropping the returned [`JoinHandle`] detaches the task: it keeps running.
///
/// # Panics
///
/// Panics if called outside a strata runtime.
///
/// # Examples
///
/// ```
/// let sum = strata_rt::run(async {
///     let a = strata_rt::spawn(async { 1 + 1 });
///     let b = strata_rt::spawn(async { 2 + 2 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(sum, 6);
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    context::handle("strata_rt::spawn").spawn(future)
}

/// Spawns a future that need not be `Send` onto the current worker.
///
/// The task is polled and dropped only on this worker's thread, so it may
/// hold `Rc`, `RefCell` and other thread-bound state.
///
/// # Panics
///
/// Panics if the calling thread is not a strata worker thread. In particular
/// the thread running [`Runtime::block_on`](crate::Runtime::block_on) is not a
/// worker: spawn a task first and call `spawn_local` from inside it.
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let n = strata_rt::run(async {
///     strata_rt::spawn(async {
///         // `Rc` and `RefCell` are fine: this task never leaves the worker.
///         let counter = Rc::new(RefCell::new(40));
///         strata_rt::spawn_local(async move {
///             *counter.borrow_mut() += 1;
///             let n = *counter.borrow();
///             n
///         })
///         .await
///         .unwrap()
///     })
///     .await
///     .unwrap()
/// });
/// assert_eq!(n, 41);
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match context::try_worker() {
        Some(worker) => worker.spawn_local(future),
        None => panic!(
            "strata: `strata_rt::spawn_local` must be called on a strata worker thread, \
             that is from inside a spawned task. It was called {}.",
            if context::try_handle().is_some() {
                "from a thread that is inside a runtime but is not one of its workers \
                 (for example the thread running `Runtime::block_on`)"
            } else {
                "outside a strata runtime"
            }
        ),
    }
}

/// Runs a blocking closure on the runtime's blocking thread pool.
///
/// Use it for work that would stall a worker: file system calls, CPU-heavy
/// computation, blocking libraries. The pool grows up to
/// [`Builder::max_blocking_threads`](crate::runtime::Builder::max_blocking_threads)
/// threads and shrinks again when threads stay idle for
/// [`Builder::blocking_keep_alive`](crate::runtime::Builder::blocking_keep_alive).
/// When all threads are busy, further closures wait in a queue. The
/// threads are bounded, the queue is not (as in tokio): a caller that
/// can submit faster than the pool works must bound itself (a bounded
/// [`mpsc`](crate::sync::mpsc) channel in front, say).
///
/// [`JoinHandle::abort`] cancels a closure that has not started yet; one that
/// is running runs to completion.
///
/// If the OS refuses to start a thread (a thread or memory limit) while the
/// pool has none, the closures queued are cancelled, and their handles'
/// [`JoinError`] says so, with the OS error; with threads left, they wait
/// for those.
///
/// When the runtime stops, closures still queued are cancelled, and the
/// runtime waits for the running ones (without a limit when it is dropped,
/// except while its thread is panicking; see
/// [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout)).
///
/// The closure runs inside its runtime: it may [`spawn`] tasks, create
/// sockets, or wait for a future with
/// [`Handle::block_on`](crate::Handle::block_on)
/// (`Handle::current().block_on(..)`).
///
/// # Panics
///
/// Panics if called outside a strata runtime.
///
/// # Examples
///
/// ```
/// let len = strata_rt::run(async {
///     strata_rt::spawn_blocking(|| "computed on a blocking thread".len())
///         .await
///         .unwrap()
/// });
/// assert_eq!(len, 29);
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    context::handle("strata_rt::spawn_blocking").spawn_blocking(f)
}

/// Yields once to the scheduler, letting other tasks on this worker run.
///
/// The task runs again after the worker's next look at I/O, behind the
/// tasks that I/O woke.
///
/// # Examples
///
/// ```
/// strata_rt::run(async {
///     for _ in 0..3 {
///         strata_rt::yield_now().await;
///     }
/// });
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Wakes `waker`, containing a panic from it (or from its drop).
///
/// The reactor and the timer driver wake wakers that are not the
/// runtime's own: a future polled by another executor leaves that
/// executor's waker with the socket or timer. One that panics must not
/// unwind through the worker's loop, which would end the worker thread
/// and leave every task, socket and timer on it waiting forever. The
/// panic is logged and the worker carries on.
pub(crate) fn wake_contained(waker: std::task::Waker) {
    contain("a waker panicked", || waker.wake());
}

/// Runs `f`, catching and logging (with `what`) a panic out of it: for
/// other code (wakers, destructors) run where unwinding must not escape.
pub(crate) fn contain(what: &str, f: impl FnOnce()) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let message = join::payload_text(&*payload);
        tracing::error!(
            panic = message.as_deref().unwrap_or("(not a string)"),
            "strata: {what}; carrying on"
        );
        task::drop_payload(payload);
    }
}
