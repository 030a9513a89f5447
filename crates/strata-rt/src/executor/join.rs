//! `JoinHandle`, the awaitable handle to a spawned task, and `JoinError`.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::contained::ContainedWaker;
use super::task::{Panic, TaskMeta, TaskOutput};

/// An owned permission to await a spawned task's output, or to abort it.
///
/// Awaiting the handle gives `Ok(output)` when the task completes,
/// `Err(JoinError)` when it panicked (the error carries the panic payload) or
/// was cancelled. Dropping the handle *detaches* the task: it keeps running and
/// its output is dropped.
///
/// # Examples
///
/// ```
/// strata_rt::run(async {
///     let handle = strata_rt::spawn(async { panic!("boom") });
///     let err = handle.await.unwrap_err();
///     assert!(err.is_panic());
/// });
/// ```
pub struct JoinHandle<T> {
    task: Option<async_task::FallibleTask<TaskOutput<T>, TaskMeta>>,
    /// The task's metadata, inside the task allocation.
    ///
    /// INVARIANT: valid for as long as `waker` lives, i.e. as long as `self`
    /// (see `meta()`). `FallibleTask` has no metadata accessor, and storing
    /// the abort flag in its own `Arc` would cost an allocation per spawn.
    meta: NonNull<TaskMeta>,
    /// A waker for the task itself, so `abort` can get it scheduled (and
    /// then dropped by its worker) even while it waits on I/O. It also keeps
    /// the task allocation, and so `meta`, alive.
    waker: Waker,
    /// The waker handed to the task when polled with another executor's
    /// (async-task wakes it under its abort-on-panic guard).
    foreign: ContainedWaker,
}

// SAFETY: `JoinHandle` is a `FallibleTask` (Send when its output is), a
// `Waker` and a `ContainedWaker` (both Send + Sync), and a pointer to `TaskMeta`, which is only read through `&` and is
// `Sync` (atomics and a plain bool).
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: through `&JoinHandle` only `abort` and `is_finished` are reachable:
// an atomic store on `TaskMeta`, `Waker::wake_by_ref`, and
// `FallibleTask::is_finished`, all safe to call from several threads.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: async_task::Task<TaskOutput<T>, TaskMeta>, waker: Waker) -> Self {
        let meta = NonNull::from(task.metadata());
        JoinHandle {
            task: Some(task.fallible()),
            meta,
            waker,
            foreign: ContainedWaker::default(),
        }
    }

    fn meta(&self) -> &TaskMeta {
        // SAFETY: async-task keeps a task's header, which holds its metadata,
        // in place until the last reference to the task is gone; `self.waker`
        // is such a reference and lives as long as `self`. The metadata is
        // never mutated through a `&mut` (only through atomics).
        unsafe { self.meta.as_ref() }
    }

    /// Cancels the task.
    ///
    /// The task's future is dropped the next time its worker would have run
    /// it, on that worker's thread, and awaiting this handle then gives a
    /// cancelled [`JoinError`]. A poll already under way is not
    /// interrupted: a task aborted while it runs (by itself, or from
    /// another thread) that finishes in that poll completes as usual, and
    /// the handle gives its output, as does one that had finished before
    /// the abort. Aborting twice, or aborting a finished task, does
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// strata_rt::run(async {
    ///     let handle = strata_rt::spawn(std::future::pending::<()>());
    ///     handle.abort();
    ///     assert!(handle.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort(&self) {
        if self.task.is_some() {
            self.meta().abort();
            self.waker.wake_by_ref();
        }
    }

    /// Whether the task has finished: completed, panicked or cancelled.
    /// A cancelled task has finished once its future has been dropped (and
    /// its destructor has returned); awaiting the handle then gives the
    /// result at once.
    pub fn is_finished(&self) -> bool {
        self.task
            .as_ref()
            .is_none_or(|t| t.is_finished() && self.meta().is_future_dropped())
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.task.is_none() {
            panic!("strata: JoinHandle polled after it returned its result");
        }
        let out = loop {
            let this = &mut *self;
            let Some(task) = this.task.as_mut() else {
                unreachable!("checked above");
            };
            let polled = this.foreign.poll_with(cx, |cx| Pin::new(task).poll(cx));
            match polled {
                Poll::Ready(out) => break out,
                // Finished as `is_finished` says (closed, its future
                // dropped), with async-task a few instructions short of
                // saying so here (it clears its scheduled bit right after
                // the drop, with no other code in between): wait them
                // out, so that a handle reported finished gives its result
                // at once.
                Poll::Pending if self.is_finished() => std::thread::yield_now(),
                Poll::Pending => return Poll::Pending,
            }
        };
        self.task = None;
        Poll::Ready(match out.map(TaskOutput::into_result) {
            Some(Ok(v)) => Ok(v),
            Some(Err(panic)) => Err(JoinError::panicked(panic)),
            None => Err(match self.meta().refusal() {
                Some(code) => JoinError::not_started(code),
                None => JoinError::cancelled(),
            }),
        })
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task produced no output: it was cancelled, or it panicked.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    /// Cancelled because no thread could be started to run it (a
    /// `spawn_blocking` closure), with the OS error's code if it had one.
    NotStarted(Option<i32>),
    // A `Mutex` makes the error `Sync`, so it converts into boxed errors.
    Panicked(Mutex<Panic>),
}

impl JoinError {
    fn cancelled() -> Self {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    fn not_started(code: Option<i32>) -> Self {
        JoinError {
            repr: Repr::NotStarted(code),
        }
    }

    fn panicked(p: Panic) -> Self {
        JoinError {
            repr: Repr::Panicked(Mutex::new(p)),
        }
    }

    /// The task was cancelled: aborted, or dropped at runtime shutdown, or
    /// (a [`spawn_blocking`](crate::spawn_blocking) closure) dropped unrun
    /// because the OS refused to start a thread for it and the pool had
    /// none; the error's text says which, with the OS error.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled | Repr::NotStarted(_))
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// The panic payload, for example to resume unwinding with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// Panics if the task was cancelled rather than panicking; see
    /// [`try_into_panic`](Self::try_into_panic).
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .unwrap_or_else(|_| panic!("strata: JoinError::into_panic on a cancelled task"))
    }

    /// The panic payload, or the error back if the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panicked(p) => Ok(p.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled | Repr::NotStarted(_) => Err(self),
        }
    }

    fn panic_message(&self) -> Option<String> {
        let Repr::Panicked(p) = &self.repr else {
            return None;
        };
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        payload_text(&**p)
    }
}

/// The message of a panic payload, if it has one (`panic!` with a message
/// gives a `&str` or a `String`).
pub(crate) fn payload_text(p: &(dyn Any + Send)) -> Option<String> {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
}

/// The OS error that kept a thread from starting, as text.
fn refusal_text(code: Option<i32>) -> String {
    code.map_or_else(
        || "the OS gave no error code".to_owned(),
        |c| std::io::Error::from_raw_os_error(c).to_string(),
    )
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("task was cancelled"),
            (Repr::NotStarted(code), _) => write!(
                f,
                "task was cancelled: no thread could be started to run it ({})",
                refusal_text(*code)
            ),
            (Repr::Panicked(_), Some(msg)) => write!(f, "task panicked: {msg}"),
            (Repr::Panicked(_), None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::NotStarted(code) => f
                .debug_tuple("JoinError::NotStarted")
                .field(&refusal_text(*code))
                .finish(),
            Repr::Panicked(_) => f
                .debug_tuple("JoinError::Panicked")
                .field(&self.panic_message().unwrap_or_else(|| "..".into()))
                .finish(),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e)
    }
}
