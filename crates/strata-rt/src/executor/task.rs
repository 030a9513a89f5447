//! What we add to an `async-task` cell: metadata, panic capture, discard.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::task::{Context, Poll, RawWakerVTable, Waker};

use crate::context;

thread_local! {
    /// The waker of the task this thread is polling, as its data and
    /// vtable pointers (null outside a task's poll).
    static POLLING: Cell<(*const (), *const RawWakerVTable)> =
        const { Cell::new((std::ptr::null(), std::ptr::null())) };
}

/// Whether `waker` is the waker of the strata task this thread is polling
/// right now, which never panics. (A future polled inside that task by an
/// executor of its own, with that executor's waker, is not.)
pub(crate) fn is_polling_task(waker: &Waker) -> bool {
    POLLING
        .try_with(|p| {
            let (data, vtable) = p.get();
            std::ptr::eq(data, waker.data()) && std::ptr::eq(vtable, waker.vtable())
        })
        .unwrap_or(false)
}

/// A scheduled task as the queues hold it.
pub(crate) type Runnable = async_task::Runnable<TaskMeta>;

/// The payload of a panic caught inside a task.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

/// Per-task metadata stored in the task cell.
#[derive(Debug)]
pub(crate) struct TaskMeta {
    /// Set by `JoinHandle::abort`. A runner that pops a runnable with this
    /// flag set drops it instead of polling it, which cancels the task; a
    /// poll that finds it set (an abort that came just after the runner
    /// looked) has the task rescheduled instead of polling the future.
    aborted: AtomicBool,
    /// `true` for tasks from `spawn_local`: their runnable must never be
    /// dropped on another thread (async-task panics if it is).
    local: bool,
    /// Set once the task's future has been dropped. async-task marks a
    /// cancelled task closed *before* it drops the future, so its own
    /// "finished" would be true while the future's destructor still runs.
    future_dropped: AtomicBool,
    /// A `spawn_blocking` task dropped before it ran because no thread
    /// could be started for it: the OS error's code, or [`NO_CODE`] if it
    /// had none; 0 for every other task.
    refused: AtomicI32,
}

/// [`TaskMeta::refused`] for an error without an OS code.
const NO_CODE: i32 = i32::MIN;

// Four bytes more than the flags would take alone, but inside the padding
// that async-task's header gives the metadata anyway.
const _: () = assert!(std::mem::size_of::<TaskMeta>() <= 8);

impl TaskMeta {
    pub(crate) fn new(local: bool) -> Self {
        TaskMeta {
            aborted: AtomicBool::new(false),
            local,
            future_dropped: AtomicBool::new(false),
            refused: AtomicI32::new(0),
        }
    }

    /// Records that the task will be dropped unrun because no thread could
    /// be started for it, failing with `e`.
    pub(crate) fn refuse(&self, e: &std::io::Error) {
        let code = e.raw_os_error().filter(|&c| c != 0).unwrap_or(NO_CODE);
        self.refused.store(code, Ordering::Release);
    }

    /// For a task [`refuse`](Self::refuse)d: `Some` of the OS error's code,
    /// if it had one.
    pub(crate) fn refusal(&self) -> Option<Option<i32>> {
        match self.refused.load(Ordering::Acquire) {
            0 => None,
            NO_CODE => Some(None),
            code => Some(Some(code)),
        }
    }

    /// Whether the task's future has been dropped (it completed, or was
    /// cancelled and its destructor has returned).
    pub(crate) fn is_future_dropped(&self) -> bool {
        self.future_dropped.load(Ordering::Acquire)
    }

    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }
}

/// Polls `runnable` unless its task was aborted, in which case the runnable
/// is dropped, which drops the future and completes the task as cancelled.
#[inline]
pub(crate) fn run(runnable: Runnable) {
    if runnable.metadata().is_aborted() {
        drop(runnable);
    } else {
        runnable.run();
    }
}

/// Gets rid of a runnable that can no longer be scheduled because its worker
/// has shut down.
///
/// A `Send` task is dropped here, cancelling it. A local task cannot be
/// dropped off its thread, and its thread is gone or busy elsewhere, so its
/// cell is leaked instead: a small, bounded cost paid only by wakers that
/// outlive their runtime.
pub(crate) fn discard(runnable: Runnable) {
    if runnable.metadata().local {
        std::mem::forget(runnable);
    } else {
        drop(runnable);
    }
}

pin_project_lite::pin_project! {
    /// The future of a task from `Handle::spawn_local_on`: `make`, called
    /// in the first poll (on the task's worker), then the future it made.
    #[project = MakeThenRunProj]
    pub(crate) enum MakeThenRun<M, F> {
        Make { make: Option<M> },
        Run { #[pin] future: F },
    }
}

impl<M, F> MakeThenRun<M, F> {
    pub(crate) fn new(make: M) -> Self {
        MakeThenRun::Make { make: Some(make) }
    }
}

impl<M: FnOnce() -> F, F: Future> Future for MakeThenRun<M, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let MakeThenRunProj::Make { make } = self.as_mut().project() {
            // A `make` that panicked left `None`; its task completed with
            // that panic and is never polled again.
            let make = make.take().expect("a spawn_local_on task is made once");
            self.set(MakeThenRun::Run { future: make() });
        }
        match self.project() {
            MakeThenRunProj::Run { future } => future.poll(cx),
            MakeThenRunProj::Make { .. } => unreachable!("made just above"),
        }
    }
}

/// The future stored in every task cell: the user's future plus panic
/// capture and registration in its worker's task list.
///
/// On its first poll (always on the owning worker's thread) it files a clone
/// of its own waker in the worker's task list, and removes it when dropped.
/// At shutdown the worker wakes every filed task and drops it, so no task
/// outlives its runtime, not even one whose wakers were all lost (short of
/// a wake-up from another thread stalled for a second mid-way; see
/// `drop_all_tracked`). The clone
/// also keeps the cell alive while the task waits, so async-task never frees
/// a pending task without dropping its future.
///
/// A panic while the user's future is dropped (an aborted task, a task
/// dropped at shutdown, a destructor run after completion) is caught here
/// and logged: async-task drops futures under an abort-on-panic guard, so
/// it would otherwise end the whole process, as it would for any task on
/// the runtime.
pub(crate) struct TaskFuture<F> {
    /// Dropped by hand, inside `catch_unwind` (see above).
    inner: ManuallyDrop<F>,
    /// The unique id of the worker whose list this task joins; `None` for
    /// blocking-pool tasks, which are not tracked.
    worker_uid: Option<usize>,
    /// The task's key in that list, once filed.
    key: Option<usize>,
    /// The metadata of the task cell holding this future.
    meta: MetaRef,
}

impl<F> TaskFuture<F> {
    /// `meta` must be the metadata of the task cell that will hold the
    /// future (as async-task hands it to the closure that makes it).
    pub(crate) fn new(inner: F, worker_uid: Option<usize>, meta: &TaskMeta) -> Self {
        TaskFuture {
            inner: ManuallyDrop::new(inner),
            worker_uid,
            key: None,
            meta: MetaRef(NonNull::from(meta)),
        }
    }
}

/// A pointer to the metadata of the task cell a `TaskFuture` lives in.
///
/// INVARIANT: valid for as long as the `TaskFuture` lives. async-task
/// stores the future and the metadata in one allocation, pins the metadata
/// in place before making the future (the pointer comes from the
/// reference it then passes), and frees the allocation only after the
/// future has been dropped.
struct MetaRef(NonNull<TaskMeta>);

// SAFETY: `TaskMeta` is `Sync` (atomics and a plain `bool`) and only read
// through `&`; the pointer stays valid wherever the future goes (see the
// invariant), so sharing or sending it is as safe as sharing `&TaskMeta`.
unsafe impl Send for MetaRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for MetaRef {}

/// A task's result (its output or its panic) as the task cell holds it.
///
/// Dropping it catches and logs a panic, as `TaskFuture` does for the
/// future: async-task drops the result of a task whose handle was dropped
/// (a detached task) under its abort-on-panic guard, so an output whose
/// destructor panics would otherwise end the whole process.
pub(crate) struct TaskOutput<T>(Option<Result<T, Panic>>);

impl<T> TaskOutput<T> {
    /// The result, for the `JoinHandle` that awaited it.
    pub(crate) fn into_result(mut self) -> Result<T, Panic> {
        match self.0.take() {
            Some(result) => result,
            None => unreachable!("a task's result is taken once"),
        }
    }
}

impl<T> Drop for TaskOutput<T> {
    fn drop(&mut self) {
        let Some(result) = self.0.take() else { return };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(result))) {
            let msg =
                super::join::payload_text(&*panic).unwrap_or_else(|| "non-string panic".into());
            tracing::error!(panic = %msg, "strata: a task's output panicked while being dropped");
            drop_payload(panic);
        }
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = TaskOutput<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of
        // `self` (the `Drop` impl below drops it in place, which pinning
        // allows), and `TaskFuture` implements `Unpin` only through
        // auto-traits (so only when `F: Unpin`). `worker_uid` and `key` are
        // never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // An abort that landed after `run` looked (between its look and
        // async-task marking the task running) found the task scheduled,
        // so its wake-up was a no-op, and nothing would look again: the
        // task would be polled and left pending for good. Looked for
        // again now that it runs: the task is rescheduled, and `run`
        // then drops it.
        // SAFETY: the metadata outlives this future (`MetaRef`'s invariant).
        if unsafe { this.meta.0.as_ref() }.is_aborted() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.key.is_none()
            && let Some(uid) = this.worker_uid
        {
            this.key = context::with_worker_if(uid, |w| w.track(cx.waker().clone()));
        }
        // SAFETY: see above; `inner` is not moved, only re-pinned in place.
        let inner = unsafe { Pin::new_unchecked(&mut *this.inner) };
        let me = (cx.waker().data(), std::ptr::from_ref(cx.waker().vtable()));
        let outer = POLLING.try_with(|p| p.replace(me)).ok();
        let poll = || catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        // A worker's task gets a budget; a blocking-pool closure (no
        // worker) runs unconstrained: its thread serves nothing else, and
        // an executor run inside it would otherwise spin once it ran out.
        let polled = if this.worker_uid.is_some() {
            super::coop::with_budget(poll)
        } else {
            super::coop::unconstrained(poll)
        };
        if let Some(outer) = outer {
            let _ = POLLING.try_with(|p| p.set(outer));
        }
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(TaskOutput(Some(Ok(v)))),
            Err(panic) => Poll::Ready(TaskOutput(Some(Err(panic)))),
        }
    }
}

impl<F> Drop for TaskFuture<F> {
    fn drop(&mut self) {
        if let (Some(uid), Some(key)) = (self.worker_uid, self.key) {
            context::with_worker_if(uid, |w| w.untrack(key));
        }
        // SAFETY: `inner` is dropped exactly once, here, in place (never
        // moved, as pinning requires), and not used afterwards.
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
            ManuallyDrop::drop(&mut self.inner)
        }));
        if let Err(panic) = dropped {
            let msg =
                super::join::payload_text(&*panic).unwrap_or_else(|| "non-string panic".into());
            tracing::error!(panic = %msg, "strata: a task's future panicked while being dropped");
            drop_payload(panic);
        }
        // SAFETY: the metadata outlives this future (`MetaRef`'s invariant).
        let meta = unsafe { self.meta.0.as_ref() };
        meta.future_dropped.store(true, Ordering::Release);
    }
}

/// Drops the payload of a caught panic where unwinding must not escape; a
/// payload whose own destructor panics is leaked (with that second
/// payload), not dropped.
pub(crate) fn drop_payload(payload: Panic) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}
