//! A worker: one OS thread, one `mio::Poll`, one local and one remote queue.
//!
//! # The loop
//!
//! ```text
//!   ┌──────────────────────────────────────────────────────────────┐
//!   │ if the remote flag is up: stop if shutdown was requested     │
//!   │   (a stop raises the flag), else move the remote queue into  │
//!   │   the local queue                                            │
//!   │ apply the timer ops other threads queued                     │
//!   │ run up to BUDGET runnables from the local queue, stopping    │
//!   │   after any of them if shutdown was requested                │
//!   │ stop if shutdown was requested                               │
//!   │ poll the reactor:                                            │
//!   │   work left  → timeout 0 (just collect I/O events)           │
//!   │   no work    → announce `sleeping`, re-check the remote flag,│
//!   │                then block until an event or a remote wake    │
//!   │ fire due timers; queue the tasks that yielded this turn      │
//!   └──────────────────────────────────────────────────────────────┘
//! ```
//!
//! # Waking a sleeping worker
//!
//! A remote push stores `has_remote` and then swaps `sleeping` to `false`;
//! if it was `true` the pusher writes to the worker's `mio::Waker`. The
//! worker stores `sleeping = true` and then re-reads `has_remote` before it
//! blocks. Both sides use sequentially consistent operations, so at least one
//! of them sees the other: either the worker does not block, or the pusher
//! wakes it. Wakes while the worker is busy cost no syscall.
//!
//! # Timers
//!
//! Each worker owns a timing wheel (`time::driver`). The loop applies the
//! timer ops other threads queued (registrations and cancellations), blocks
//! in `Poll::poll` no longer than the wheel's next wake-up (so an idle worker
//! with timers sleeps until the earliest one instead of spinning), and fires
//! the due timers after each poll. A queued registration wakes a sleeping
//! worker like a remote task does.
//!
//! # Shutdown
//!
//! The runtime sets `shutdown` and wakes the worker. The worker leaves its
//! loop after the task it is running, drops every queued task, then wakes
//! and drops every other live task (the worker keeps a waker of each in its
//! task list). Timers still in the wheel after the tasks are gone belong to
//! futures on other threads: they are marked shut down and their wakers
//! woken and dropped, so the wheel keeps no task alive. It then fails every
//! registered I/O source so that futures on other threads see an error
//! rather than hang, closes its remote queue (later remote pushes discard
//! their runnable) and exits.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use slab::Slab;

use super::join::JoinHandle;
use super::task::{self, Runnable, TaskFuture, TaskMeta};
use crate::context;
use crate::reactor::{IoHandle, Reactor};
use crate::runtime::Handle;
use crate::time::driver::{
    self as timers, Driver as TimerDriver, Op as TimerOp, Remote as TimerRemote,
};

/// How many tasks a worker polls before it looks at I/O again.
pub(crate) const BUDGET: usize = 64;

/// The part of a worker that other threads use: its remote queue, its
/// wake-up, and its reactor's registration handle.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    uid: usize,
    remote: Mutex<Remote>,
    /// Set (under the lock) when `remote` has runnables; lets the worker
    /// skip the lock when there is nothing to take.
    has_remote: AtomicBool,
    /// The worker is about to block, or is blocked, in `Poll::poll`.
    sleeping: AtomicBool,
    /// The runtime asked this worker to stop.
    shutdown: AtomicBool,
    waker: mio::Waker,
    io: Arc<IoHandle>,
    /// Timer registrations and cancellations from other threads.
    timers: TimerRemote,
}

#[derive(Debug, Default)]
struct Remote {
    queue: VecDeque<Runnable>,
    /// Set by the worker at the end of its shutdown, once every task it
    /// ran has been dropped; a runnable pushed after that is dropped by
    /// its pusher.
    closed: bool,
}

impl WorkerShared {
    pub(crate) fn new(uid: usize, waker: mio::Waker, io: Arc<IoHandle>) -> Self {
        WorkerShared {
            uid,
            remote: Mutex::new(Remote::default()),
            has_remote: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            waker,
            io,
            timers: TimerRemote::default(),
        }
    }

    pub(crate) fn uid(&self) -> usize {
        self.uid
    }

    /// Queues a timer op for this worker; a registration wakes the worker if
    /// it sleeps (as `try_push_remote` does), a cancellation waits for its next
    /// turn. Gives the op back if the worker has stopped.
    pub(crate) fn push_timer_op(&self, op: TimerOp) -> Result<(), TimerOp> {
        let wake = matches!(op, TimerOp::Register(_));
        self.timers.push(op)?;
        if wake && self.sleeping.swap(false, Ordering::SeqCst) {
            self.wake();
        }
        Ok(())
    }

    pub(crate) fn io_handle(&self) -> &Arc<IoHandle> {
        &self.io
    }

    /// The schedule function of every task owned by this worker.
    ///
    /// A task woken while it runs (it yielded, or used up its budget) is
    /// set aside until the worker has looked at I/O: tasks with fresh
    /// events go first, and a few tasks that keep yielding cannot hold
    /// the worker for a whole budget while other sockets wait.
    fn schedule(&self, runnable: Runnable, info: async_task::ScheduleInfo) {
        if let Err(runnable) = self.enqueue(runnable, info.woken_while_running) {
            task::discard(runnable);
        }
    }

    /// Queues `runnable` on this worker: on its thread in the local queue
    /// (or, `yielded`, with the tasks that yielded this turn), elsewhere in
    /// the remote queue. Gives it back if the worker has stopped.
    #[inline]
    fn enqueue(&self, runnable: Runnable, yielded: bool) -> Result<(), Runnable> {
        let mut slot = Some(runnable);
        context::with_worker_if(self.uid, |w| {
            if let Some(r) = slot.take() {
                if yielded {
                    w.yielded.borrow_mut().push(r);
                } else {
                    w.queue.borrow_mut().push_back(r);
                }
            }
        });
        match slot {
            Some(r) => self.try_push_remote(r),
            None => Ok(()),
        }
    }

    /// Pushes `runnable` onto the remote queue, waking the worker if it
    /// sleeps; gives it back if the worker has stopped.
    fn try_push_remote(&self, runnable: Runnable) -> Result<(), Runnable> {
        {
            let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
            if remote.closed {
                return Err(runnable);
            }
            remote.queue.push_back(runnable);
            self.has_remote.store(true, Ordering::SeqCst);
        }
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.wake();
        }
        Ok(())
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            tracing::error!(error = %e, "strata: failed to wake a worker");
        }
    }

    /// Asks the worker to stop; it exits after its current task.
    pub(crate) fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // Seen at the top of the worker's next turn (see `run_loop`).
        self.has_remote.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Spawns a `Send` future owned by this worker.
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = self.clone();
        let uid = self.uid;
        let (runnable, task) = async_task::Builder::new()
            .metadata(TaskMeta::new(false))
            .spawn(
                move |meta: &TaskMeta| TaskFuture::new(future, Some(uid), meta),
                async_task::WithInfo(move |r, info| shared.schedule(r, info)),
            );
        let waker = runnable.waker();
        runnable.schedule();
        JoinHandle::new(task, waker)
    }

    /// Spawns, from any thread, a local task whose future `make` builds on
    /// this worker, in the task's first poll (`Handle::spawn_local_on`).
    /// The handle is the local task's own, so aborting it drops the
    /// future `make` built, and the task's output is not lost to a
    /// wrapper.
    pub(crate) fn spawn_local_made<M, F>(self: &Arc<Self>, make: M) -> JoinHandle<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let shared = self.clone();
        let uid = self.uid;
        let future = task::MakeThenRun::new(make);
        // SAFETY: async-task requires a task whose future is not `Send` to
        // be run and dropped on the thread that spawned it. This future
        // holds something that may not be `Send` only once `make` has run,
        // in its first poll, and it is only ever polled on this worker's
        // thread: the schedule function queues it on this worker alone,
        // and only the worker runs its queues. After that first poll its
        // runnable is dropped only there too, as a `spawn_local` task's
        // (the worker drops its tasks when it stops, and `task::discard`
        // leaks a local runnable scheduled after that). Before the first
        // poll the future holds only `make`, which is `Send`, so the
        // runnable may be dropped on this thread (below). The schedule
        // function is `Send + Sync + 'static` and so is everything the
        // future borrows (nothing), so its wakers may go anywhere.
        let (runnable, task) = unsafe {
            async_task::Builder::new()
                .metadata(TaskMeta::new(true))
                .spawn_unchecked(
                    move |meta: &TaskMeta| TaskFuture::new(future, Some(uid), meta),
                    async_task::WithInfo(move |r, info| shared.schedule(r, info)),
                )
        };
        let waker = runnable.waker();
        if let Err(unrun) = self.enqueue(runnable, false) {
            // The worker has stopped: never polled, so `make` is all there
            // is to drop, and it may be dropped here. The task is
            // cancelled.
            drop(unrun);
        }
        JoinHandle::new(task, waker)
    }
}

/// The thread-local side of a worker, reachable through the context.
#[derive(Debug)]
pub(crate) struct WorkerLocal {
    shared: Arc<WorkerShared>,
    queue: RefCell<VecDeque<Runnable>>,
    /// Tasks woken while they ran; they join the queue after the next look
    /// at I/O.
    yielded: RefCell<Vec<Runnable>>,
    /// A waker of every live task of this worker that has been polled at
    /// least once; see `TaskFuture`.
    tasks: RefCell<Slab<Waker>>,
    /// This worker's timing wheel.
    timers: RefCell<TimerDriver>,
}

impl WorkerLocal {
    pub(crate) fn uid(&self) -> usize {
        self.shared.uid
    }

    pub(crate) fn shared(&self) -> &Arc<WorkerShared> {
        &self.shared
    }

    pub(crate) fn io_handle(&self) -> &Arc<IoHandle> {
        &self.shared.io
    }

    pub(crate) fn timers(&self) -> &RefCell<TimerDriver> {
        &self.timers
    }

    /// Spawns a future that stays on this thread.
    pub(crate) fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let shared = self.shared.clone();
        let uid = self.shared.uid;
        let (runnable, task) = async_task::Builder::new()
            .metadata(TaskMeta::new(true))
            .spawn_local(
                move |meta: &TaskMeta| TaskFuture::new(future, Some(uid), meta),
                async_task::WithInfo(move |r, info| shared.schedule(r, info)),
            );
        let waker = runnable.waker();
        self.queue.borrow_mut().push_back(runnable);
        JoinHandle::new(task, waker)
    }

    /// Files a live task's waker; returns its key.
    pub(crate) fn track(&self, waker: Waker) -> usize {
        self.tasks.borrow_mut().insert(waker)
    }

    /// Forgets a finished (or dropped) task.
    pub(crate) fn untrack(&self, key: usize) {
        // Take the waker out under the borrow, drop it after: dropping a
        // waker can re-enter the scheduler.
        let waker = self.tasks.borrow_mut().try_remove(key);
        drop(waker);
    }

    fn pop(&self) -> Option<Runnable> {
        self.queue.borrow_mut().pop_front()
    }

    /// Moves the yielded tasks to the back of the queue.
    fn requeue_yielded(&self) {
        let mut yielded = self.yielded.borrow_mut();
        if !yielded.is_empty() {
            self.queue.borrow_mut().extend(yielded.drain(..));
        }
    }

    /// Whether any task of this worker is waiting to run.
    pub(crate) fn has_work(&self) -> bool {
        !self.queue.borrow().is_empty() || !self.yielded.borrow().is_empty()
    }

    fn drain_remote(&self) {
        let mut remote = self.shared.remote.lock().unwrap_or_else(|e| e.into_inner());
        self.queue.borrow_mut().append(&mut remote.queue);
        self.shared.has_remote.store(false, Ordering::SeqCst);
    }

    /// Wakes every live task, so that it lands in a queue and is dropped
    /// there, until none is left (dropping one task may wake or spawn
    /// others). A task stays filed until its future is dropped: one whose
    /// wake-up from another thread had marked it scheduled but not yet
    /// reached the remote queue ignores this wake-up, so it is waited for
    /// (briefly: the other thread is between two instructions, unless the
    /// OS preempted it), and dropped here rather than by that thread once
    /// the queue has closed. Gives up on it after a second.
    fn drop_all_tracked(&self) {
        let mut stalled_since = None;
        loop {
            let wakers: Vec<Waker> = self.tasks.borrow().iter().map(|(_, w)| w.clone()).collect();
            if wakers.is_empty() {
                return;
            }
            let before = wakers.len();
            for waker in wakers {
                waker.wake();
            }
            self.drop_all_queued();
            if self.tasks.borrow().len() < before {
                stalled_since = None;
                continue;
            }
            let since = *stalled_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > Duration::from_secs(1) {
                let left = std::mem::take(&mut *self.tasks.borrow_mut());
                tracing::warn!(
                    tasks = left.len(),
                    "strata: tasks still being woken elsewhere at shutdown; left to their wakers"
                );
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Drops every queued runnable, repeatedly, until both queues stay
    /// empty (dropping a task can wake others).
    fn drop_all_queued(&self) {
        loop {
            self.requeue_yielded();
            let local = std::mem::take(&mut *self.queue.borrow_mut());
            let remote = {
                let mut r = self.shared.remote.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut r.queue)
            };
            if local.is_empty() && remote.is_empty() {
                return;
            }
            drop(local);
            drop(remote);
        }
    }
}

/// A worker, moved onto its thread by the runtime builder.
#[derive(Debug)]
pub(crate) struct Worker {
    shared: Arc<WorkerShared>,
    reactor: Reactor,
    handle: Handle,
}

impl Worker {
    pub(crate) fn new(shared: Arc<WorkerShared>, reactor: Reactor, handle: Handle) -> Self {
        Worker {
            shared,
            reactor,
            handle,
        }
    }

    /// The worker thread's body.
    pub(crate) fn run(mut self) {
        let local = Rc::new(WorkerLocal {
            shared: self.shared.clone(),
            queue: RefCell::new(VecDeque::with_capacity(BUDGET)),
            yielded: RefCell::new(Vec::new()),
            tasks: RefCell::new(Slab::new()),
            timers: RefCell::new(TimerDriver::new()),
        });
        let guard = context::enter(self.handle.clone(), Some(local.clone()));
        self.run_loop(&local);
        self.shut_down(&local);
        drop(guard);
    }

    fn run_loop(&mut self, local: &WorkerLocal) {
        let shared = &*self.shared;
        loop {
            if shared.has_remote.load(Ordering::Acquire) {
                // A stop sets the remote flag too, so that one requested
                // between batches is seen here, at no cost to a turn
                // without remote work; looked for again after the drain,
                // which clears the flag a stop may just have raised.
                if shared.shutdown.load(Ordering::SeqCst) {
                    return;
                }
                local.drain_remote();
                if shared.shutdown.load(Ordering::SeqCst) {
                    return;
                }
            }
            // Timers registered or cancelled from other threads; after the
            // drain, so that ops a thread queued before it queued a task
            // drained above are applied before that task runs (not so for
            // a wake-up merged into a task already queued here: ops are
            // not looked for between tasks). A registration already due
            // fires here, and its waker may stop the runtime.
            if shared.timers.has_ops() {
                timers::process_ops(&local.timers, &shared.timers);
                if shared.shutdown.load(Ordering::SeqCst) {
                    return;
                }
            }
            // The stop is also looked for after each task, so that a
            // worker asked to stop polls no task after the one it is
            // running. (Relaxed: the Acquire load below decides. Checked
            // before each pop instead, the loop compiled to about 12 more
            // instructions per request on the line server at D=1, by
            // callgrind.)
            for _ in 0..BUDGET {
                let Some(r) = local.pop() else { break };
                task::run(r);
                if shared.shutdown.load(Ordering::Relaxed) {
                    break;
                }
            }
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            let timeout = if local.has_work() || shared.has_remote.load(Ordering::Acquire) {
                Some(Duration::ZERO)
            } else if timers::release_spare_wakers(&local.timers) && local.has_work() {
                // Before sleeping, the wakers of timers cancelled this
                // turn go (see the timer driver's "Pool"); tasks dropped
                // with them woke others.
                Some(Duration::ZERO)
            } else {
                shared.sleeping.store(true, Ordering::SeqCst);
                if shared.has_remote.load(Ordering::SeqCst)
                    || shared.shutdown.load(Ordering::SeqCst)
                    || shared.timers.has_ops()
                {
                    Some(Duration::ZERO)
                } else {
                    // Sleep until the next timer, or indefinitely.
                    timers::poll_timeout(&local.timers)
                }
            };
            if let Err(e) = self.reactor.poll(timeout) {
                // A failing epoll_wait is not recoverable; stop this worker
                // rather than spin.
                tracing::error!(error = %e, "strata: worker reactor failed; worker stops");
                shared.sleeping.store(false, Ordering::SeqCst);
                return;
            }
            shared.sleeping.store(false, Ordering::SeqCst);
            // Wake the tasks whose timers are due; they run next turn,
            // and the tasks that yielded during this one after them.
            timers::fire_due(&local.timers);
            local.requeue_yielded();
        }
    }

    // Out of line and cold: it runs once, and inlined into `run` it changes
    // how the worker's loop is compiled (callgrind, line server at D=1:
    // about 8 instructions per request more).
    #[cold]
    #[inline(never)]
    fn shut_down(&mut self, local: &WorkerLocal) {
        // The remote queue stays open until the end: a task woken from
        // another thread meanwhile is queued and dropped here, on this
        // thread, never in the waker's caller. That caller may hold a lock
        // the task's destructor needs (another worker's reactor table,
        // while it wakes a socket's waiters; dropping a socket takes it).
        local.drop_all_queued();
        local.drop_all_tracked();
        // The timers left belong to futures elsewhere: mark them shut down
        // and wake them, so none waits forever and no waker stays here.
        timers::shut_down(&local.timers, &self.shared.timers);
        // Fail all I/O still registered here (sockets used from other
        // threads, e.g. by a `block_on` future), waking their waiters.
        self.reactor.shutdown();
        local.drop_all_queued();
        // Every task this worker ran is dropped now; close the queue. What
        // arrives later (a spawn onto a stopped runtime) never ran, and its
        // pusher drops it.
        let last = {
            let mut remote = self.shared.remote.lock().unwrap_or_else(|e| e.into_inner());
            remote.closed = true;
            std::mem::take(&mut remote.queue)
        };
        drop(last);
    }
}
