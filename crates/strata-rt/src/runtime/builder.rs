//! `Builder`: how many workers, what they are called, how big the pools are.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{Handle, Inner, NextWorker, Runtime, WeakHandle};
use crate::executor::blocking::BlockingPool;
use crate::executor::worker::{Worker, WorkerShared};
use crate::reactor::Reactor;

/// Worker ids unique across all runtimes in the process, so a waker can tell
/// "this thread is my worker" even when several runtimes exist.
static NEXT_WORKER_UID: AtomicUsize = AtomicUsize::new(0);

/// The most workers a runtime may have.
const MAX_WORKERS: usize = 4096;

/// The largest event buffer per reactor.
const MAX_EVENT_CAPACITY: usize = 1 << 16;

/// Configures and builds a [`Runtime`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use strata_rt::Runtime;
///
/// let rt = Runtime::builder()
///     .worker_threads(2)
///     .thread_name("my-server")
///     .max_blocking_threads(16)
///     .blocking_keep_alive(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(rt.handle().worker_count(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    worker_threads: Option<usize>,
    thread_name: String,
    max_blocking_threads: usize,
    blocking_keep_alive: Duration,
    event_capacity: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Defaults: one worker per available core, threads named `strata-worker`,
    /// at most 64 blocking threads kept alive for 10 s when idle, and room
    /// for 1024 events per reactor poll.
    pub fn new() -> Builder {
        Builder {
            worker_threads: None,
            thread_name: "strata-worker".to_owned(),
            max_blocking_threads: 64,
            blocking_keep_alive: Duration::from_secs(10),
            event_capacity: 1024,
        }
    }

    /// Number of worker threads (at least 1; more than 4,096 is an error
    /// of [`build`](Self::build)). Default: available cores.
    ///
    /// Each worker owns the tasks spawned on it, and with them their
    /// sockets: no other worker takes over its work while it waits for a
    /// core. So the default suits a machine whose cores the server has to
    /// itself. Where other busy processes share the cores (a load
    /// generator on the same host, say), fewer workers than cores can
    /// serve more: in the project's TCP echo benchmark on two cores shared
    /// with its load generator, one worker answered about a third more
    /// than tokio's two-thread pool, and two workers less than it (the
    /// project's BENCHMARKS.md has the runs).
    pub fn worker_threads(mut self, n: usize) -> Builder {
        self.worker_threads = Some(n.max(1));
        self
    }

    /// Name prefix of worker threads; workers are named `NAME-0`, `NAME-1`…,
    /// blocking threads `NAME-blocking`. A name with a NUL byte is an error
    /// of [`build`](Self::build).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = name.into();
        self
    }

    /// Upper bound on blocking-pool threads (at least 1). Default 64.
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        self.max_blocking_threads = n.max(1);
        self
    }

    /// How long an idle blocking thread waits for work before it exits.
    /// Default 10 s.
    pub fn blocking_keep_alive(mut self, d: Duration) -> Builder {
        self.blocking_keep_alive = d;
        self
    }

    /// Events taken from the OS per reactor poll (at least 1, at most
    /// 65,536: each worker keeps a buffer of that many). Default 1024.
    ///
    /// A worker fires its due timers after each poll. When more sockets
    /// became ready than one poll takes (after the worker was blocked for
    /// a while, say), the timers of those whose events wait for the next
    /// poll fire first: a timeout around such a read may expire with the
    /// data in the socket. tokio's driver does the same past its 1,024
    /// events per turn.
    pub fn event_capacity(mut self, n: usize) -> Builder {
        self.event_capacity = n.clamp(1, MAX_EVENT_CAPACITY);
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// Fails if the OS refuses a `Poll`, a waker or a thread (workers
    /// already started are stopped again), and with `InvalidInput` for
    /// more than 4,096 workers or a thread name with a NUL byte.
    pub fn build(self) -> io::Result<Runtime> {
        let n = self
            .worker_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if n > MAX_WORKERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("strata: {n} worker threads asked for; at most {MAX_WORKERS}"),
            ));
        }
        if self.thread_name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "strata: a thread name with a NUL byte",
            ));
        }
        let mut workers = Vec::with_capacity(n);
        let mut reactors = Vec::with_capacity(n);
        for _ in 0..n {
            let (reactor, waker) = Reactor::new(self.event_capacity)?;
            let uid = NEXT_WORKER_UID.fetch_add(1, Ordering::Relaxed);
            workers.push(Arc::new(WorkerShared::new(
                uid,
                waker,
                reactor.handle().clone(),
            )));
            reactors.push(reactor);
        }
        let handle = Handle {
            inner: Arc::new_cyclic(|runtime| Inner {
                workers: workers.clone().into_boxed_slice(),
                next: NextWorker::default(),
                blocking: BlockingPool::new(
                    self.max_blocking_threads,
                    self.blocking_keep_alive,
                    format!("{}-blocking", self.thread_name),
                    WeakHandle(runtime.clone()),
                ),
            }),
        };
        let mut runtime = Runtime {
            handle: handle.clone(),
            threads: Vec::with_capacity(n),
            stopped: false,
        };
        for (i, (shared, reactor)) in workers.into_iter().zip(reactors).enumerate() {
            let worker = Worker::new(shared, reactor, handle.clone());
            let thread = std::thread::Builder::new()
                .name(format!("{}-{i}", self.thread_name))
                .spawn(move || worker.run())?;
            // On error above, dropping `runtime` stops the started workers.
            runtime.threads.push(thread);
        }
        Ok(runtime)
    }
}
