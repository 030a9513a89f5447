//! The runtime: a set of workers, a blocking pool, and handles to them.

mod builder;

pub use builder::Builder;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};

use crate::context;
use crate::executor::JoinHandle;
use crate::executor::blocking::BlockingPool;
use crate::executor::worker::WorkerShared;
use crate::reactor::IoHandle;

/// A thread-per-core runtime: N workers, each an OS thread with its own
/// reactor and run queues, plus a pool for blocking calls.
///
/// Tasks stay on the worker that spawned them. Dropping the runtime stops
/// the workers, drops the tasks that are left, and joins the threads. It
/// also cancels the [`spawn_blocking`](crate::spawn_blocking) closures
/// that have not started and waits for those that are running, however
/// long they take, as tokio's runtime does (except while the thread is
/// panicking, where strata does not wait); [`shutdown_timeout`](Runtime::shutdown_timeout) bounds that
/// wait. Dropped inside one of its own blocking closures, it waits for the
/// others; dropped on one of its own workers, it cannot join them and
/// waits for nothing.
///
/// One task can outlive the drop: one whose wake-up from another thread
/// is stalled half-way (async-task has marked it scheduled, the push to
/// its worker's queue has not happened yet) for over a second while its
/// worker stops, as when the OS stops that thread there. The worker stops
/// waiting for it after that second. A [`spawn`](crate::spawn)ed task is
/// then dropped on the waking thread when it resumes; a local task
/// ([`spawn_local`](crate::spawn_local),
/// [`Handle::spawn_local_on`]) cannot be dropped off its worker's thread,
/// so it is leaked, and its [`JoinHandle`] never resolves.
///
/// # Examples
///
/// ```
/// use strata_rt::Runtime;
///
/// let rt = Runtime::builder().worker_threads(2).build().unwrap();
/// let answer = rt.block_on(async {
///     strata_rt::spawn(async { 6 * 7 }).await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub struct Runtime {
    handle: Handle,
    threads: Vec<ThreadHandle<()>>,
    /// Set once the workers and the blocking pool have been told to stop.
    stopped: bool,
}

impl Runtime {
    /// A runtime with one worker per available core.
    ///
    /// # Errors
    ///
    /// Fails if the OS refuses a `Poll`, a waker or a thread.
    pub fn new() -> std::io::Result<Runtime> {
        Builder::new().build()
    }

    /// A builder to configure worker count, thread names and pools.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A cloneable handle that spawns onto this runtime from anywhere.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` to completion on the calling thread, inside this
    /// runtime: within it, [`spawn`](crate::spawn), sockets and the other
    /// runtime APIs work, and I/O is driven by the workers.
    ///
    /// The future itself runs on the calling thread, so it need not be
    /// `Send`; it is not a worker, so [`spawn_local`](crate::spawn_local) is
    /// not available directly in it. Nor has it a task's
    /// [cooperative budget](crate::coop): a loop over I/O that is always
    /// ready runs until the I/O runs dry before a timeout or `select`
    /// branch beside it is polled (spawn such work as a task); in exchange,
    /// an executor nested in the future is never stopped by a spent budget.
    ///
    /// # Panics
    ///
    /// Panics when called on a worker thread (from inside a task), because
    /// blocking a worker would stall every task on it; `.await` instead.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        enter_and_block_on(&self.handle, "Runtime::block_on", future)
    }

    /// Stops the runtime; the same as dropping it (which waits for
    /// running blocking closures without a limit).
    pub fn shutdown(self) {}

    /// Stops the runtime like dropping it, but waits at most `timeout` in
    /// all: for the workers to stop (a task that blocks its worker keeps
    /// it busy past the stop) and for
    /// [`spawn_blocking`](crate::spawn_blocking) closures that are still
    /// running. What is left then finishes on its own threads, unobserved
    /// (and ends with the process if it exits first). Worker threads that
    /// have stopped are not joined: their thread-locals' destructors (which
    /// can run code of any length) finish on their own.
    ///
    /// Returns `true` if every worker had stopped, with its tasks dropped,
    /// and no blocking closure was left running (a worker's thread-local
    /// destructors may still be running). Called on one of the
    /// runtime's own workers it can neither join them nor wait, and
    /// returns `false` at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = strata_rt::Runtime::new().unwrap();
    /// rt.handle().spawn_blocking(|| std::thread::sleep(Duration::from_millis(10)));
    /// // Waits for the sleep (well within the limit).
    /// assert!(rt.shutdown_timeout(Duration::from_secs(10)));
    /// ```
    pub fn shutdown_timeout(self, timeout: Duration) -> bool {
        self.shutdown_timeouts(timeout, timeout)
    }

    /// Stops the runtime like [`shutdown_timeout`](Runtime::shutdown_timeout),
    /// with a limit of its own for each wait, both counted from now: at
    /// most `workers` for the workers to stop (and drop their tasks), at
    /// most `blocking` for running [`spawn_blocking`](crate::spawn_blocking)
    /// closures. A server that must be rid of its connections when it
    /// returns, but has no reason to wait for blocking work, gives the
    /// workers a moment and the closures none. Returns as
    /// `shutdown_timeout` does, each count taken at its own limit (a
    /// closure still running at its limit counts as left running).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = strata_rt::Runtime::new().unwrap();
    /// let (running, is_running) = std::sync::mpsc::channel();
    /// let (release, released) = std::sync::mpsc::channel::<()>();
    /// rt.handle().spawn_blocking(move || {
    ///     running.send(()).unwrap();
    ///     let _ = released.recv(); // until `release` is dropped
    /// });
    /// is_running.recv().unwrap();
    /// // The workers are waited for; the closure is not.
    /// assert!(!rt.shutdown_timeouts(Duration::from_secs(10), Duration::ZERO));
    /// drop(release);
    /// ```
    pub fn shutdown_timeouts(mut self, workers: Duration, blocking: Duration) -> bool {
        let now = Instant::now();
        // An unrepresentable deadline is as good as none.
        let until = |limit| {
            now.checked_add(limit)
                .map_or(BlockingWait::Forever, BlockingWait::Until)
        };
        self.stop(until(workers), until(blocking))
    }

    /// Stops the runtime without waiting: `shutdown_timeout` with no
    /// time. The workers are told to stop and do so on their own threads
    /// (dropping their tasks) while the caller goes on; running blocking
    /// closures finish on theirs. Useful where blocking is not allowed,
    /// such as inside another runtime's task.
    ///
    /// A task spawned meanwhile (from a blocking closure that still runs,
    /// or through a [`Handle`]) races the stop: it runs if its worker has
    /// not stopped yet and is cancelled otherwise. Its `JoinHandle`
    /// resolves either way, with the output or a cancelled `JoinError`.
    pub fn shutdown_background(mut self) {
        let now = BlockingWait::Until(Instant::now());
        self.stop(now, now);
    }

    /// Stops the workers and the blocking pool (once; later calls do
    /// nothing), waiting for the workers as `workers` says and for running
    /// blocking closures as `wait` says. Returns `true` if nothing was left
    /// running.
    fn stop(&mut self, workers: BlockingWait, wait: BlockingWait) -> bool {
        if std::mem::replace(&mut self.stopped, true) {
            return true;
        }
        for w in self.handle.inner.workers.iter() {
            w.request_shutdown();
        }
        let blocking = &self.handle.inner.blocking;
        blocking.close();
        // Joining from one of our own workers would wait for ourselves.
        if self.handle.is_worker_thread() {
            // `shutdown_background` waits for nothing anyway.
            let wanted_to_wait = !matches!(workers, BlockingWait::Until(d) if d <= Instant::now());
            if wanted_to_wait {
                tracing::warn!(
                    "strata: runtime stopped on one of its own workers; its threads are not waited for"
                );
            }
            return false;
        }
        // The earlier limit is waited for first, so that each wait's
        // count is taken at its own deadline (a closure still running at
        // its limit counts as left running, even if it ends while the
        // workers are waited for).
        let blocking_first = match (workers, wait) {
            (BlockingWait::Forever, BlockingWait::Until(_)) => true,
            (BlockingWait::Until(w), BlockingWait::Until(b)) => b < w,
            _ => false,
        };
        let (detached, running) = if blocking_first {
            let running = self.wait_blocking(wait);
            (self.wait_workers(workers), running)
        } else {
            let detached = self.wait_workers(workers);
            (detached, self.wait_blocking(wait))
        };
        running == 0 && detached == 0
    }

    /// Waits for the workers as `workers` says; the number left running.
    fn wait_workers(&mut self, workers: BlockingWait) -> usize {
        let mut detached = 0;
        match workers {
            BlockingWait::Forever => {
                for t in self.threads.drain(..) {
                    if t.join().is_err() {
                        tracing::error!("strata: a worker thread panicked");
                    }
                }
            }
            BlockingWait::Until(deadline) => {
                // `shutdown_background` asks for no wait: workers still
                // running then are no news.
                let waits = Instant::now() < deadline;
                // A task that blocks its worker keeps that worker from
                // stopping; wait for it only until the deadline, then
                // leave it to stop on its own (it has been told to).
                while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Not even a finished thread is joined: it reports itself
                // finished before its thread-locals' destructors run, and
                // those take what they take. Dropping the handle detaches
                // it (a worker's own panic was reported by the panic hook).
                for t in self.threads.drain(..) {
                    if !t.is_finished() {
                        detached += 1;
                    }
                }
                if detached > 0 && waits {
                    tracing::warn!(
                        workers = detached,
                        "strata: runtime stopped with workers still busy (a task blocking \
                         them); they stop on their own"
                    );
                }
            }
        }
        detached
    }

    /// Waits for running blocking closures as `wait` says; the number left
    /// running.
    fn wait_blocking(&self, wait: BlockingWait) -> usize {
        let running = self.handle.inner.blocking.wait_stopped(match wait {
            BlockingWait::Forever => None,
            BlockingWait::Until(deadline) => Some(deadline),
        });
        if running > 0 {
            tracing::warn!(
                running,
                "strata: runtime stopped with blocking closures still running; \
                 they finish on their own threads"
            );
        }
        running
    }
}

/// How long stopping a runtime waits for its workers and for running
/// blocking closures.
#[derive(Clone, Copy)]
enum BlockingWait {
    Forever,
    Until(Instant),
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // While unwinding, waiting for a closure that may never return
        // (blocked on stdin, say) would swallow the panic: do not wait
        // then (tokio skips the wait only inside an async context).
        // The workers are joined either way: their tasks are dropped by
        // the time the drop returns.
        let blocking = if std::thread::panicking() {
            BlockingWait::Until(Instant::now())
        } else {
            BlockingWait::Forever
        };
        self.stop(BlockingWait::Forever, blocking);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.handle.inner.workers.len())
            .finish()
    }
}

/// `block_on` (named `api` in its panic) inside `handle`'s runtime.
#[track_caller]
fn enter_and_block_on<F: Future>(handle: &Handle, api: &str, future: F) -> F::Output {
    if context::try_worker().is_some() {
        panic!(
            "strata: `{api}` was called from inside a task on a strata worker thread. \
             Blocking a worker would stall every task on it; `.await` the future instead."
        );
    }
    let _guard = context::enter(handle.clone(), None);
    crate::executor::block_on::block_on(future)
}

/// A cheap, cloneable reference to a runtime, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

/// A handle that does not keep its runtime alive: what the runtime's own
/// blocking threads hold, entering the runtime for each closure they run.
#[derive(Clone)]
pub(crate) struct WeakHandle(Weak<Inner>);

impl WeakHandle {
    /// The runtime, unless it is gone.
    pub(crate) fn upgrade(&self) -> Option<Handle> {
        self.0.upgrade().map(|inner| Handle { inner })
    }
}

impl fmt::Debug for WeakHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WeakHandle")
    }
}

struct Inner {
    workers: Box<[Arc<WorkerShared>]>,
    next: NextWorker,
    blocking: BlockingPool,
}

/// Round-robin counts for placing work that starts off-worker: tasks
/// (which I/O sources first used off-worker follow, see
/// `Handle::next_io_handle`) and timers.
#[derive(Default)]
pub(crate) struct NextWorker {
    spawn: AtomicUsize,
    timer: AtomicUsize,
}

impl Handle {
    /// The handle of the runtime this thread is inside.
    ///
    /// # Panics
    ///
    /// Panics outside a runtime; see [`try_current`](Self::try_current).
    #[track_caller]
    pub fn current() -> Handle {
        context::handle("Handle::current")
    }

    /// The handle of the runtime this thread is inside, if any.
    pub fn try_current() -> Option<Handle> {
        context::try_handle()
    }

    /// [`Runtime::block_on`] through a handle: runs `future` to completion
    /// on the calling thread, inside this runtime. For code that holds a
    /// handle and not the runtime: a [`spawn_blocking`](crate::spawn_blocking)
    /// closure that must wait for async work (`Handle::current().block_on(..)`),
    /// a thread given the handle.
    ///
    /// The handle does not keep the runtime running: once it is shut down,
    /// the future's timers panic saying that the runtime is gone, and its
    /// sockets fail, rather than hang.
    ///
    /// # Panics
    ///
    /// Panics when called on a worker thread (from inside a task), as
    /// [`Runtime::block_on`] does; `.await` instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use strata_rt::Handle;
    ///
    /// strata_rt::run(async {
    ///     let waited = strata_rt::spawn_blocking(|| {
    ///         // A blocking-pool thread may block: here, on a timer.
    ///         Handle::current().block_on(async {
    ///             strata_rt::time::sleep(Duration::from_millis(1)).await;
    ///             "waited"
    ///         })
    ///     });
    ///     assert_eq!(waited.await.unwrap(), "waited");
    /// });
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        enter_and_block_on(self, "Handle::block_on", future)
    }

    /// Whether the calling thread is one of this runtime's workers: where
    /// waiting for the runtime's own tasks (or dropping it) would wait for
    /// the thread doing the waiting. (`false` on its blocking-pool threads
    /// and in `block_on`.)
    pub fn is_worker_thread(&self) -> bool {
        context::try_worker().is_some_and(|w| {
            self.inner
                .workers
                .iter()
                .any(|s| Arc::ptr_eq(s, w.shared()))
        })
    }

    /// Whether the calling thread is one of this runtime's blocking-pool
    /// threads (running a [`spawn_blocking`](crate::spawn_blocking)
    /// closure): where waiting for the runtime's tasks can wait for a task
    /// that awaits this very closure.
    pub fn is_blocking_thread(&self) -> bool {
        self.inner.blocking.is_own_thread()
    }

    /// Spawns a `Send` future on this runtime: on the current worker if the
    /// caller is one of this runtime's workers, otherwise round-robin.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let worker = match context::try_worker() {
            Some(w) if self.owns(w.shared()) => w.shared().clone(),
            _ => self.next_worker().clone(),
        };
        worker.spawn(future)
    }

    /// Runs a blocking closure on this runtime's blocking pool; see
    /// [`spawn_blocking`](crate::spawn_blocking).
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.blocking.spawn(f)
    }

    /// Number of worker threads.
    pub fn worker_count(&self) -> usize {
        self.inner.workers.len()
    }

    /// Spawns a `Send` future on the worker with index `worker`
    /// (`0..worker_count()`), for callers that place work deliberately, such
    /// as one accept loop per worker.
    ///
    /// # Panics
    ///
    /// Panics if `worker` is out of range.
    #[track_caller]
    pub fn spawn_on<F>(&self, worker: usize, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.worker_at(worker, "spawn_on").spawn(future)
    }

    /// Worker `worker`; panics naming `api` if it is out of range.
    #[track_caller]
    fn worker_at(&self, worker: usize, api: &str) -> &Arc<WorkerShared> {
        let count = self.worker_count();
        match self.inner.workers.get(worker) {
            Some(w) => w,
            None => panic!("strata: {api}({worker}) but the runtime has {count} workers"),
        }
    }

    /// Builds a future *on* worker `worker` with `make` and runs it there as
    /// a local task, so the future may hold `Rc`, `RefCell` and other
    /// thread-bound state: the thread-per-core pattern of one independent
    /// event loop per core.
    ///
    /// # Panics
    ///
    /// Panics if `worker` is out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use strata_rt::Runtime;
    ///
    /// let rt = Runtime::builder().worker_threads(2).build().unwrap();
    /// let handle = rt.handle().clone();
    /// let sum = rt.block_on(async move {
    ///     let mut total = 0;
    ///     for w in 0..handle.worker_count() {
    ///         total += handle
    ///             .spawn_local_on(w, move || async move {
    ///                 let per_core = Rc::new(w + 1);
    ///                 *per_core
    ///             })
    ///             .await
    ///             .unwrap();
    ///     }
    ///     total
    /// });
    /// assert_eq!(sum, 3);
    /// ```
    #[track_caller]
    pub fn spawn_local_on<M, F>(&self, worker: usize, make: M) -> JoinHandle<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.worker_at(worker, "spawn_local_on")
            .spawn_local_made(make)
    }

    fn owns(&self, w: &Arc<WorkerShared>) -> bool {
        self.inner.workers.iter().any(|s| Arc::ptr_eq(s, w))
    }

    /// The worker for a task spawned off-worker, round-robin.
    pub(crate) fn next_worker(&self) -> &Arc<WorkerShared> {
        self.pick(&self.inner.next.spawn)
    }

    /// The worker for a timer polled off-worker, round-robin.
    pub(crate) fn next_timer_worker(&self) -> &Arc<WorkerShared> {
        self.pick(&self.inner.next.timer)
    }

    /// The reactor for an I/O source created off the workers to register
    /// with if its first use is off the workers too (a stream connected in
    /// `block_on`, say): the one of the worker the next off-worker `spawn`
    /// goes to, without moving that count, so that a loop that connects
    /// and then spawns a task for the stream puts both on one worker.
    /// (A source first used by a task registers with that task's worker.)
    pub(crate) fn next_io_handle(&self) -> Arc<IoHandle> {
        let n = self.inner.next.spawn.load(Ordering::Relaxed);
        self.inner.workers[n % self.inner.workers.len()]
            .io_handle()
            .clone()
    }

    fn pick(&self, count: &AtomicUsize) -> &Arc<WorkerShared> {
        let n = count.fetch_add(1, Ordering::Relaxed);
        &self.inner.workers[n % self.inner.workers.len()]
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.inner.workers.len())
            .finish()
    }
}
