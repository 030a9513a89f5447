//! The blocking pool: threads for closures that would stall a worker.
//!
//! Bounded and elastic: a submitted closure wakes an idle thread if there is
//! one, else starts a new thread while fewer than `max_threads` exist, else
//! waits in the queue. A thread that stays idle for `keep_alive` exits.
//! Work goes to the thread that became idle last, so that under a load
//! lighter than a burst that grew the pool the threads it does not need
//! stay idle, and exit (handed out in turn, first idle first, every
//! thread would be woken once in a while, and none would ever exit).
//!
//! Closures are wrapped in `async-task` cells, so a blocking call is awaited
//! through the same [`JoinHandle`] as any task, with the same panic capture
//! and abort (which skips a closure that has not started).
//!
//! At runtime shutdown the queue is closed and cleared (queued closures are
//! cancelled), and the runtime waits for the closures already running, as
//! tokio's does: a thread blocked in a system call cannot be interrupted,
//! and leaving it behind could lose the work it was doing (a file being
//! written). `Runtime::shutdown_timeout` bounds that wait.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::join::JoinHandle;
use super::task::{self, Runnable, TaskFuture, TaskMeta};
use crate::context;
use crate::runtime::WeakHandle;

#[derive(Debug)]
pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Signalled when a thread exits, for [`BlockingPool::wait_stopped`].
    exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: String,
    /// Entered while a closure runs, so that it can use the runtime
    /// (`Handle::current`, `spawn`, sockets) like code on a worker.
    runtime: WeakHandle,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Runnable>,
    threads: usize,
    /// The idle threads, the one that became idle last at the back: the
    /// next closure goes to it.
    idle: Vec<Arc<Idler>>,
    shutdown: bool,
    /// The pool's threads, to join when the runtime is dropped. When the
    /// list passes twice the pool's bound, the handles of threads that
    /// exited after their keep-alive move to `exited`.
    handles: Vec<std::thread::JoinHandle<()>>,
    /// Handles of threads that exited, the latest at the back, to be
    /// joined with the others (a thread reports itself finished before its
    /// thread-locals' destructors have run). Beyond the pool's bound, the
    /// oldest are joined by the next pool thread to exit, which has nothing
    /// better to do; never in `submit`, which may run on a worker.
    exited: VecDeque<std::thread::JoinHandle<()>>,
    /// Threads counted in `threads` whose handle is not in `handles` yet.
    starting: usize,
}

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        thread_name: String,
        runtime: WeakHandle,
    ) -> Self {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                exited: Condvar::new(),
                max_threads: max_threads.max(1),
                keep_alive,
                thread_name,
                runtime,
            }),
        }
    }

    pub(crate) fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        let (runnable, task) = async_task::Builder::new()
            .metadata(TaskMeta::new(false))
            .spawn(
                move |meta: &TaskMeta| TaskFuture::new(async move { f() }, None, meta),
                move |r| inner.submit(r),
            );
        let waker = runnable.waker();
        runnable.schedule();
        JoinHandle::new(task, waker)
    }

    /// Closes the queue and drops what is still queued; closures already
    /// running go on, and idle threads exit.
    pub(crate) fn close(&self) {
        let (queued, idle) = {
            let mut s = self.inner.lock();
            s.shutdown = true;
            let idle = std::mem::take(&mut s.idle);
            for i in &idle {
                i.woken.store(true, Ordering::Relaxed);
            }
            (std::mem::take(&mut s.queue), idle)
        };
        for i in idle {
            i.wake.notify_one();
        }
        drop(queued);
    }

    /// Whether the calling thread is one of this pool's.
    pub(crate) fn is_own_thread(&self) -> bool {
        CURRENT_POOL.get() == Arc::as_ptr(&self.inner) as usize
    }

    /// After [`close`](Self::close): waits until every pool thread has
    /// exited (the running closures have returned), or until `deadline`.
    /// Returns how many closures were still running then.
    ///
    /// On one of the pool's own threads it waits for the others: that
    /// thread's closure is the one calling, and is not counted (nor is the
    /// thread once it counted itself out, in its thread-locals'
    /// destructors, say). A thread that counted itself out joins no
    /// thread: another pool thread may be exiting and joining it.
    pub(crate) fn wait_stopped(&self, deadline: Option<Instant>) -> usize {
        let on_pool = self.is_own_thread();
        let own = usize::from(on_pool && COUNTED.get());
        let mut s = self.inner.lock();
        // A thread being started is counted in `threads` at once, but its
        // handle lands in `handles` only after; wait for that too.
        while s.threads > own || s.starting > 0 {
            s = match deadline {
                None => self.inner.exited.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.inner
                        .exited
                        .wait_timeout(s, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        let running = s.threads - own;
        let mut handles = std::mem::take(&mut s.handles);
        handles.extend(s.exited.drain(..));
        drop(s);
        // The threads counted themselves out just before they return. With
        // no deadline (the runtime's drop), join them: their thread-locals'
        // destructors run meanwhile, as the runtime's docs promise. With
        // one, a join could outlast it (a destructor takes what it takes):
        // they finish on their own.
        if deadline.is_none() && !(on_pool && own == 0) {
            let me = std::thread::current().id();
            for handle in handles {
                if handle.thread().id() != me {
                    drop(handle.join());
                }
            }
        }
        running
    }
}

/// An idle pool thread's wake-up.
#[derive(Debug, Default)]
struct Idler {
    /// Set, under the pool's lock, by whoever takes the thread off the
    /// idle list to hand it work (or to stop it).
    woken: AtomicBool,
    /// Waited on with the pool's lock.
    wake: Condvar,
}

thread_local! {
    /// The pool this thread belongs to (the address of its `Inner`), or 0.
    static CURRENT_POOL: Cell<usize> = const { Cell::new(0) };
    /// This pool thread is counted in its pool's `threads`.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn submit(self: &Arc<Self>, runnable: Runnable) {
        let mut s = self.lock();
        if s.shutdown {
            drop(s);
            task::discard(runnable);
            return;
        }
        s.queue.push_back(runnable);
        if let Some(idler) = s.idle.pop() {
            idler.woken.store(true, Ordering::Relaxed);
            drop(s);
            idler.wake.notify_one();
        } else if s.threads < self.max_threads {
            s.threads += 1;
            s.starting += 1;
            drop(s);
            let inner = self.clone();
            let spawned = std::thread::Builder::new()
                .name(self.thread_name.clone())
                .spawn(move || inner.thread_main());
            match spawned {
                Ok(handle) => {
                    let mut s = self.lock();
                    s.starting -= 1;
                    s.handles.push(handle);
                    if s.handles.len() > 2 * self.max_threads {
                        let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut s.handles)
                            .into_iter()
                            .partition(|h| h.is_finished());
                        s.handles = live;
                        s.exited.extend(done);
                    }
                    drop(s);
                    self.exited.notify_all();
                }
                Err(e) => self.spawn_failed(&e),
            }
        }
    }

    /// No thread could be started for a closure just queued.
    #[cold]
    fn spawn_failed(&self, e: &io::Error) {
        tracing::error!(error = %e, "strata: could not start a blocking thread");
        // The queued closures wait for an existing thread; with none,
        // nothing would ever run them: cancel them, so that their handles
        // report it (with `e`) instead of waiting forever.
        let orphans = {
            let mut s = self.lock();
            s.threads -= 1;
            s.starting -= 1;
            if s.threads == 0 {
                std::mem::take(&mut s.queue)
            } else {
                VecDeque::new()
            }
        };
        // Their handles say why.
        for r in &orphans {
            r.metadata().refuse(e);
        }
        drop(orphans);
        self.exited.notify_all();
    }

    /// Waits, idle, until `me` is woken or `keep_alive` has passed.
    fn idle_wait<'a>(
        &self,
        mut s: std::sync::MutexGuard<'a, State>,
        me: &Idler,
    ) -> std::sync::MutexGuard<'a, State> {
        // A keep-alive too long to add is no limit.
        let until = Instant::now().checked_add(self.keep_alive);
        while !me.woken.load(Ordering::Relaxed) {
            s = match until {
                None => me.wake.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    me.wake
                        .wait_timeout(s, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        s
    }

    fn thread_main(self: Arc<Self>) {
        CURRENT_POOL.set(Arc::as_ptr(&self) as usize);
        COUNTED.set(true);
        let me = Arc::new(Idler::default());
        let mut s = self.lock();
        loop {
            if let Some(r) = s.queue.pop_front() {
                drop(s);
                {
                    let _inside = self
                        .runtime
                        .upgrade()
                        .map(|handle| context::enter(handle, None));
                    task::run(r);
                }
                s = self.lock();
                continue;
            }
            if s.shutdown {
                break;
            }
            me.woken.store(false, Ordering::Relaxed);
            s.idle.push(me.clone());
            s = self.idle_wait(s, &me);
            if !me.woken.load(Ordering::Relaxed) {
                // Nobody handed it work for a whole keep-alive.
                s.idle.retain(|i| !Arc::ptr_eq(i, &me));
                if s.queue.is_empty() {
                    break;
                }
            }
        }
        s.threads -= 1;
        COUNTED.set(false);
        let over = s.exited.len().saturating_sub(self.max_threads);
        let to_join: Vec<_> = s.exited.drain(..over).collect();
        drop(s);
        self.exited.notify_all();
        // This thread's own handle is still running, so not among these;
        // whoever joins it waits for these joins too.
        for h in to_join {
            drop(h.join());
        }
    }
}
