//! `TcpServer` and its handle; the design notes are on [`TcpServer`].

mod accept;
mod ended;
mod state;

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use strata_rt::Runtime;
use strata_rt::net::TcpListener;
use strata_rt::signal::{Signal, SignalKind};
use strata_service::{BoxError, ConnectionInfo, NewService, Service};

use crate::ConnectionConfig;
use crate::pipeline::ServerProto;
use accept::{Shared, accept_loop};
pub(crate) use accept::{drop_payload, panic_message};
pub use ended::ConnectionEnd;
use ended::EndHook;
use state::ServerState;

/// How often the blocking `serve` logs the connection count (if changed).
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// A TCP server for a pipelined protocol: a protocol, an address, N
/// threads, and a service factory.
///
/// # Threads and listeners
///
/// The server starts its own runtime with `threads(n)` workers. Each worker
/// binds its own listener on the same address with `SO_REUSEPORT`, so the
/// kernel spreads incoming connections over the workers and a connection
/// lives its whole life on the worker that accepted it: no locks, no
/// cross-thread hand-off, and services need not be `Send`. The first
/// listener binds as if it were alone, so an address already in use (even
/// by another strata server) is an error at start, not a silent share.
///
/// # Limits
///
/// * `max_connections` (default 10 000): over it, a new connection is
///   accepted and closed at once, so the client learns immediately instead
///   of hanging in the kernel's backlog.
/// * Out of descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`,
///   `ENOMEM` from accept), a listener pauses (5 ms, doubling up to 1 s)
///   and tries again, rather than spinning or closing; the connections
///   already open carry on, and the clients that queued meanwhile are
///   served once resources are back.
/// * Per connection ([`ConnectionConfig`]): requests in flight, write
///   buffer, idle timeout, read (slowloris) timeout, write timeout (a
///   peer that stopped reading); the frame size bound lives in the codec.
///
/// # Graceful shutdown
///
/// [`ServerHandle::shutdown`] (or SIGINT/SIGTERM in [`serve`](Self::serve)):
/// the listeners take the connections the kernel completed before the
/// stop (up to the backlog's size; out of descriptors, for as long as
/// the server's own connections, finishing, may give some back) and
/// close, so new connections are refused; every connection answers the requests it has already
/// received, writes the responses, and closes; idle connections close at
/// once. The server waits for that
/// up to `shutdown_timeout` (default 30 s), then drops whatever is left.
///
/// # Examples
///
/// ```
/// # use strata_codec::LinesCodec;
/// # use strata_proto::pipeline::ServerProto;
/// # struct LineProto;
/// # impl ServerProto for LineProto {
/// #     type Request = String;
/// #     type Response = String;
/// #     type Codec = LinesCodec;
/// #     fn codec(&self) -> LinesCodec { LinesCodec::new() }
/// # }
/// use strata_proto::TcpServer;
/// use strata_service::service_fn;
///
/// let server = TcpServer::new(LineProto, "127.0.0.1:0".parse().unwrap())
///     .threads(1)
///     .start(|| {
///         Ok::<_, std::io::Error>(service_fn(|line: String| async move {
///             Ok::<_, std::io::Error>(if line == "hello" { "world".into() } else { "idk".into() })
///         }))
///     })
///     .unwrap();
/// println!("listening on {}", server.local_addr());
/// server.shutdown();
/// ```
pub struct TcpServer<P> {
    proto: P,
    addr: SocketAddr,
    threads: usize,
    max_connections: usize,
    backlog: u32,
    conn: ConnectionConfig,
    shutdown_timeout: Duration,
    thread_name: String,
    only_v6: Option<bool>,
    on_listening: Option<Box<dyn FnOnce(SocketAddr) + Send>>,
    on_end: Option<Arc<EndHook>>,
}

impl<P: ServerProto> TcpServer<P> {
    /// A server for `proto` on `addr`, with one worker per core and the
    /// default limits.
    pub fn new(proto: P, addr: SocketAddr) -> Self {
        TcpServer {
            proto,
            addr,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_connections: 10_000,
            backlog: 1024,
            conn: ConnectionConfig::default(),
            shutdown_timeout: Duration::from_secs(30),
            thread_name: "strata-server".to_string(),
            only_v6: None,
            on_listening: None,
            on_end: None,
        }
    }

    /// For an IPv6 address: whether the server takes IPv6 connections
    /// only (`IPV6_V6ONLY`), so that an IPv4 server can listen on the same
    /// port; or, with `false`, IPv4 ones too (as `[::ffff:a.b.c.d]`
    /// peers) whatever the system's default (Linux's
    /// `net.ipv6.bindv6only`, usually off). Default: the system's.
    pub fn only_v6(mut self, on: bool) -> Self {
        self.only_v6 = Some(on);
        self
    }

    /// The name of the server's threads: its workers are `NAME-0`,
    /// `NAME-1`, ..., its blocking pool's threads `NAME-blocking`
    /// (default `strata-server`; see
    /// [`Builder::thread_name`](strata_rt::runtime::Builder::thread_name)).
    /// Servers in one process told apart in `top`, a debugger or a log
    /// that shows thread names: `admin`, `api`. (Linux shows 15 bytes of a
    /// thread's name.)
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Worker threads, each with its own listener (at least 1; default:
    /// one per core). A connection stays on the worker that accepted it;
    /// on cores shared with other busy processes fewer workers can serve
    /// more (see [`Builder::worker_threads`](strata_rt::runtime::Builder::worker_threads)).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Connections open at once over all workers (at least 1; default
    /// 10 000).
    ///
    /// A connection the server closed (after an error line, say) frees its
    /// place at once, though its socket may drain what the peer still
    /// sends until the peer has taken the last answers, so that it reads
    /// them rather than a reset: as long as the peer keeps taking bytes,
    /// and at most the write timeout without progress (see
    /// [`ConnectionConfig::write_timeout`](crate::ConnectionConfig::write_timeout)).
    /// At most `n` sockets drain so at a time; past that they close at
    /// once. Graceful shutdown waits for them too.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The listen backlog of each worker's listener (default 1024; the
    /// kernel caps it at `net.core.somaxconn`).
    pub fn backlog(mut self, n: u32) -> Self {
        self.backlog = n;
        self
    }

    /// Per-connection limits and timeouts.
    pub fn connection_config(mut self, cfg: ConnectionConfig) -> Self {
        self.conn = cfg;
        self
    }

    /// How long graceful shutdown waits for connections to finish (default
    /// 30 s). Blocking closures the handlers started
    /// ([`spawn_blocking`](strata_rt::spawn_blocking)) are waited for too,
    /// within the same deadline, once the connections are done; those still
    /// running then are left to finish on their own threads.
    pub fn shutdown_timeout(mut self, t: Duration) -> Self {
        self.shutdown_timeout = t;
        self
    }

    /// Called once with the bound address when the server listens (and,
    /// in [`serve`](Self::serve), can be stopped by a signal): to print
    /// it, say, whatever the log level.
    pub fn on_listening(mut self, f: impl FnOnce(SocketAddr) + Send + 'static) -> Self {
        self.on_listening = Some(Box::new(f));
        self
    }

    /// Called when each connection has ended, on its worker, with who it
    /// was, how long it lasted and why it ended ([`ConnectionEnd`]): to
    /// count outcomes or time connections, say, where the `tracing` log
    /// is not enough. Keep it short: the worker runs nothing else
    /// meanwhile. A panic in it is caught and logged.
    ///
    /// ```
    /// # use strata_codec::LinesCodec;
    /// # use strata_proto::pipeline::ServerProto;
    /// # struct LineProto;
    /// # impl ServerProto for LineProto {
    /// #     type Request = String;
    /// #     type Response = String;
    /// #     type Codec = LinesCodec;
    /// #     fn codec(&self) -> LinesCodec { LinesCodec::new() }
    /// # }
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use strata_proto::TcpServer;
    /// use strata_service::service_fn;
    ///
    /// let failed = Arc::new(AtomicUsize::new(0));
    /// let count = failed.clone();
    /// let server = TcpServer::new(LineProto, "127.0.0.1:0".parse().unwrap())
    ///     .on_connection_end(move |end| {
    ///         if end.outcome.is_err() {
    ///             count.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .start(|| Ok(service_fn(|line: String| async move { Ok::<_, std::io::Error>(line) })))
    ///     .unwrap();
    /// server.shutdown();
    /// ```
    pub fn on_connection_end(
        mut self,
        f: impl Fn(&ConnectionEnd<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_end = Some(Arc::new(f));
        self
    }

    /// Starts serving in the background and returns a handle.
    ///
    /// `new_service` is called once per connection with its
    /// [`ConnectionInfo`] (a plain `|| Ok(service)` closure ignores it).
    ///
    /// # Errors
    ///
    /// Fails if the runtime cannot start or the address cannot be bound.
    pub fn start<N>(mut self, new_service: N) -> io::Result<ServerHandle>
    where
        N: NewService<ConnectionInfo, Error = io::Error> + Send + Sync + 'static,
        N::Service: Service<P::Request, Response = P::Response> + 'static,
        <N::Service as Service<P::Request>>::Error: Into<BoxError>,
    {
        let threads = self.threads;
        let on_listening = self.on_listening.take();
        let handle = self.launch(new_service)?;
        tracing::info!(addr = %handle.local_addr, threads, "listening");
        if let Some(f) = on_listening {
            f(handle.local_addr);
        }
        Ok(handle)
    }

    /// Serves until SIGINT (Ctrl-C) or SIGTERM, then shuts down gracefully
    /// (see [`TcpServer`]'s docs) and returns.
    ///
    /// The signal handlers are installed before the "listening" log line,
    /// so a signal sent after it is always handled gracefully.
    ///
    /// # Errors
    ///
    /// Fails if the runtime cannot start, the address cannot be bound, or
    /// the signal handlers cannot be installed (a bind error names the
    /// address, and keeps the OS's error kind); with `Unsupported`, before
    /// anything is bound, if called in a task on a strata worker thread
    /// (it would block the worker until a signal: use [`start`](Self::start)
    /// there); with `TimedOut` if the
    /// shutdown timeout passed before every connection finished (the rest
    /// were dropped); and with `Interrupted` if a second SIGINT or SIGTERM
    /// came during the graceful shutdown, which then drops the remaining
    /// connections at once (an operator pressing Ctrl-C again; with none
    /// left, only sockets the server had closed and was draining, it
    /// stops at once and returns `Ok`, as at the timeout). A signal
    /// within 250 ms of the first is taken for the same one delivered
    /// twice (some supervisors signal the process and its group) and only
    /// logged; signals that arrive together may also be merged into one.
    pub fn serve<N>(mut self, new_service: N) -> io::Result<()>
    where
        N: NewService<ConnectionInfo, Error = io::Error> + Send + Sync + 'static,
        N::Service: Service<P::Request, Response = P::Response> + 'static,
        <N::Service as Service<P::Request>>::Error: Into<BoxError>,
    {
        if strata_rt::Handle::try_current().is_some_and(|h| h.is_worker_thread()) {
            // It would block the worker until a signal: every other task
            // on it would stall (and its `block_on` calls would panic).
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TcpServer::serve blocks until a signal and cannot run in a task on a \
                 strata worker thread; use `start` there (and `ServerHandle::shutdown_async` \
                 to stop it), or call `serve` from a plain thread",
            ));
        }
        let threads = self.threads;
        let on_listening = self.on_listening.take();
        let handle = self.launch(new_service)?;
        let addr = handle.local_addr;
        let runtime = handle.runtime.as_ref().expect("running");
        let mut signals = runtime.block_on(async {
            io::Result::Ok((
                Signal::new(SignalKind::interrupt())?,
                Signal::new(SignalKind::terminate())?,
            ))
        })?;
        tracing::info!(addr = %handle.local_addr, threads, "listening");
        if let Some(f) = on_listening {
            f(handle.local_addr);
        }
        // While waiting, report the connection count when it changed.
        let state = handle.state.clone();
        let mut status = runtime.block_on(async { strata_rt::time::interval(STATUS_EVERY) });
        let mut last = (0, 0);
        let which = runtime.block_on(poll_fn(|cx| {
            if signals.0.poll_recv(cx).is_ready() {
                return Poll::Ready("SIGINT");
            }
            if signals.1.poll_recv(cx).is_ready() {
                return Poll::Ready("SIGTERM");
            }
            while status.poll_tick(cx).is_ready() {
                let now = (
                    state.live(),
                    state.rejected.load(std::sync::atomic::Ordering::Relaxed),
                );
                if now != last {
                    tracing::info!(%addr, connections = now.0, rejected_total = now.1, "status");
                    last = now;
                }
            }
            Poll::Pending
        }));
        tracing::info!(%addr, signal = which, "signal received; shutting down gracefully");
        // As `ServerHandle::shutdown`, but a second signal cuts the wait
        // short (an operator pressing Ctrl-C again): the remaining
        // connections are dropped at once.
        let mut handle = handle;
        let deadline = handle.begin_shutdown().expect("running");
        let runtime = handle.runtime.as_ref().expect("running");
        let first_signal = Instant::now();
        let end = runtime.block_on(async {
            let mut drained = std::pin::pin!(state.wait_drained());
            let mut timeout = std::pin::pin!(strata_rt::time::sleep_until(deadline));
            let end = poll_fn(|cx| {
                if drained.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Drain::Done);
                }
                while signals.0.poll_recv(cx).is_ready() || signals.1.poll_recv(cx).is_ready() {
                    if first_signal.elapsed() >= REPEAT_GAP {
                        return Poll::Ready(Drain::Interrupted);
                    }
                    // The first one again: some supervisors (coreutils
                    // `timeout`, say) signal the process and its group.
                    tracing::info!(%addr, "signal repeated at once; ignored (send another to stop now)");
                }
                if timeout.as_mut().poll(cx).is_ready() {
                    // Sockets that only drain (the server closed them) are
                    // not connections dropped.
                    return Poll::Ready(if state.live() == 0 {
                        Drain::Done
                    } else {
                        Drain::TimedOut
                    });
                }
                Poll::Pending
            })
            .await;
            match end {
                Drain::TimedOut if live_after_settling(runtime.handle(), &state) == 0 => {
                    Drain::Done
                }
                end => end,
            }
        });
        let (left, timeout) = (state.live(), handle.shutdown_timeout);
        let connections = if left == 1 {
            "connection"
        } else {
            "connections"
        };
        match handle.finish_shutdown(end, deadline) {
            // A second signal with only sockets left that the server had
            // closed (draining the peer's last bytes, as at the timeout):
            // stopped at once, and no connection was dropped.
            Drain::Done => Ok(()),
            Drain::Interrupted if left == 0 => Ok(()),
            Drain::TimedOut if timeout.is_zero() => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the shutdown timeout is zero; {left} {connections} dropped"),
            )),
            Drain::TimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the shutdown timeout ({timeout:?}) passed before every connection \
                     finished; {left} {connections} dropped"
                ),
            )),
            Drain::Interrupted => Err(io::Error::new(
                io::ErrorKind::Interrupted,
                format!(
                    "a second signal cut the graceful shutdown short; \
                     {left} {connections} dropped"
                ),
            )),
        }
    }

    fn launch<N>(self, new_service: N) -> io::Result<ServerHandle>
    where
        N: NewService<ConnectionInfo, Error = io::Error> + Send + Sync + 'static,
        N::Service: Service<P::Request, Response = P::Response> + 'static,
        <N::Service as Service<P::Request>>::Error: Into<BoxError>,
    {
        let runtime = Runtime::builder()
            .worker_threads(self.threads)
            .thread_name(self.thread_name.clone())
            .build()?;
        let state = Arc::new(ServerState::default());
        let shared = Arc::new(Shared {
            proto: self.proto,
            new_service,
            conn: self.conn,
            max_connections: self.max_connections,
            state: state.clone(),
            on_end: self.on_end,
        });
        let (addr, backlog, threads, only_v6) =
            (self.addr, self.backlog, self.threads, self.only_v6);
        // The listener options every listener of the server shares.
        let listener = move |addr: SocketAddr| {
            let builder = TcpListener::builder(addr).reuse_port(true).backlog(backlog);
            match only_v6 {
                Some(on) => builder.only_v6(on),
                None => builder,
            }
        };
        let handle = runtime.handle().clone();
        // Bound on the server's first worker, not in `block_on`, which
        // would panic when `start` is called from a task (of another
        // runtime): this thread only waits for the binding.
        let (bound_tx, bound_rx) = std::sync::mpsc::sync_channel(1);
        let workers = handle.clone();
        let bind = async move {
            // The first listener binds as if alone, so that an address in
            // use (by another server, or another instance of this one)
            // fails here instead of quietly sharing its connections; the
            // others join it.
            let first = listener(addr)
                .reuse_port_after_listen(true)
                .bind()
                .map_err(|e| cannot_listen(addr, e))?;
            // With port 0 the OS picked one; the other workers join it.
            let bound = first.local_addr()?;
            shared.state.set_addr(bound);
            let mut listeners = vec![first];
            for _ in 1..threads {
                listeners.push(
                    listener(bound)
                        .bind()
                        .map_err(|e| cannot_listen(bound, e))?,
                );
            }
            for (w, listener) in listeners.into_iter().enumerate() {
                let shared = shared.clone();
                // Shutdown waits for the accept loops too (they serve the
                // backlog on the stop).
                let counted = shared.state.accept_loop_guard();
                drop(workers.spawn_local_on(w, move || async move {
                    let _counted = counted;
                    accept_loop(listener, shared, backlog).await
                }));
            }
            io::Result::Ok(bound)
        };
        drop(handle.spawn_on(0, async move {
            let _ = bound_tx.send(bind.await);
        }));
        let local_addr = bound_rx
            .recv()
            .map_err(|_| io::Error::other("the server's worker failed while binding"))??;
        Ok(ServerHandle {
            runtime: Some(runtime),
            state,
            local_addr,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

impl<P> fmt::Debug for TcpServer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServer")
            .field("addr", &self.addr)
            .field("threads", &self.threads)
            .field("max_connections", &self.max_connections)
            .field("connection", &self.conn)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("thread_name", &self.thread_name)
            .field("only_v6", &self.only_v6)
            .finish()
    }
}

/// A running server. Dropping it shuts the server down gracefully, like
/// [`shutdown`](Self::shutdown).
pub struct ServerHandle {
    runtime: Option<Runtime>,
    state: Arc<ServerState>,
    local_addr: SocketAddr,
    shutdown_timeout: Duration,
}

impl ServerHandle {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections open right now (not counting those the server has
    /// closed and that only drain; see
    /// [`TcpServer::max_connections`]).
    pub fn connections(&self) -> usize {
        self.state.live()
    }

    /// Connections closed at once because `max_connections` was reached.
    pub fn rejected_connections(&self) -> usize {
        self.state
            .rejected
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Graceful shutdown: stop accepting, let connections answer what they
    /// received and close, wait up to the shutdown timeout, then stop the
    /// runtime. Returns `true` if every connection finished in time.
    ///
    /// It blocks the calling thread, except where waiting would stall the
    /// very work it waits for, or other tasks: on a strata worker thread
    /// (a task of this server's, or of another runtime's) or on one of the
    /// server's blocking-pool threads (a blocking closure a handler
    /// awaits). There it only starts the shutdown, which a helper thread
    /// finishes (and logs), and returns `true`; a task that wants the
    /// outcome, or a program about to exit (the helper thread does not
    /// keep the process alive), awaits
    /// [`shutdown_async`](Self::shutdown_async) instead. Dropping the
    /// handle does the same as this.
    pub fn shutdown(mut self) -> bool {
        self.shutdown_inner()
    }

    /// Graceful shutdown, as [`shutdown`](Self::shutdown), awaited instead
    /// of blocking: a helper thread waits for the connections and stops
    /// the server's runtime, and the future resolves to `true` if every
    /// connection finished in time. This is the form for async code, on
    /// any runtime's task. The shutdown begins when this is called, not
    /// when the future is first polled, and dropping the future does not
    /// stop it.
    ///
    /// Not for a handler of this very server: its own connection waits
    /// for its answer, which waits for the drain, which then runs into the
    /// shutdown timeout (and the handler is dropped with the connection,
    /// unanswered). A handler stops its server with
    /// [`shutdown`](Self::shutdown) or by dropping the handle, which
    /// return at once there.
    ///
    /// # Examples
    ///
    /// ```
    /// # use strata_codec::LinesCodec;
    /// # use strata_proto::pipeline::ServerProto;
    /// # use strata_service::service_fn;
    /// # struct Lines;
    /// # impl ServerProto for Lines {
    /// #     type Request = String;
    /// #     type Response = String;
    /// #     type Codec = LinesCodec;
    /// #     fn codec(&self) -> LinesCodec { LinesCodec::new() }
    /// # }
    /// use strata_proto::TcpServer;
    ///
    /// strata_rt::run(async {
    ///     let echo = service_fn(|line: String| async move { Ok::<_, std::io::Error>(line) });
    ///     let server = TcpServer::new(Lines, "127.0.0.1:0".parse().unwrap())
    ///         .threads(1)
    ///         .start(move || Ok(echo.clone()))
    ///         .unwrap();
    ///     // ... use it, then, without blocking this task's worker:
    ///     assert!(server.shutdown_async().await);
    /// });
    /// ```
    pub fn shutdown_async(mut self) -> impl Future<Output = bool> + Send + 'static {
        let (done, outcome) = strata_rt::sync::oneshot::channel();
        match self.begin_shutdown() {
            Some(deadline) => self.finish_on_helper(deadline, move |finished| {
                let _ = done.send(finished);
            }),
            None => {
                let _ = done.send(true);
            }
        }
        // Without an outcome (no helper thread), nothing says it finished.
        async move { outcome.await.unwrap_or(false) }
    }

    fn shutdown_inner(&mut self) -> bool {
        let Some(deadline) = self.begin_shutdown() else {
            return true;
        };
        if self.must_not_block() {
            self.finish_on_helper(deadline, |_| {});
            return true;
        }
        let end = drain_by(self.runtime.as_ref(), &self.state, deadline);
        self.finish_shutdown(end, deadline) == Drain::Done
    }

    /// Whether the calling thread must not wait for the connections: a
    /// strata worker (the server's own, whose connections it would stall,
    /// or another runtime's, whose tasks it would) or one of the server's
    /// blocking-pool threads (a handler may be awaiting the closure, and
    /// would wait for the shutdown waiting for it).
    fn must_not_block(&self) -> bool {
        strata_rt::Handle::try_current().is_some_and(|h| h.is_worker_thread())
            || self
                .runtime
                .as_ref()
                .is_some_and(|rt| rt.handle().is_blocking_thread())
    }

    /// Has a helper thread wait for the connections (until `deadline`)
    /// and stop the runtime, then `report` whether every connection
    /// finished.
    fn finish_on_helper(&mut self, deadline: Instant, report: impl FnOnce(bool) + Send + 'static) {
        // (The runtime and state only, not a handle: were the thread
        // refused, dropping a handle here would start all this again.)
        let (runtime, state) = (self.runtime.take(), self.state.clone());
        let waiter = std::thread::Builder::new()
            .name("strata-server-stop".into())
            .spawn(move || {
                let end = drain_by(runtime.as_ref(), &state, deadline);
                stop_runtime(runtime, &state, end, deadline);
                report(end == Drain::Done);
            });
        if let Err(e) = waiter {
            // No thread: the closure, and with it the runtime, is dropped
            // here, without waiting for the connections (a runtime dropped
            // on its own worker does not join it either), and `report` is
            // never called.
            tracing::warn!(addr = %self.local_addr, error = %e, "no thread to finish the shutdown; stopping at once");
        }
    }

    /// Stops accepting and asks the connections to finish; the deadline
    /// for them, or `None` if the server was shut down already.
    fn begin_shutdown(&mut self) -> Option<Instant> {
        self.runtime.as_ref()?;
        tracing::info!(connections = self.state.live(), addr = %self.local_addr, "shutting down");
        self.state.stop();
        // A timeout too long to add to an instant waits about thirty years.
        Some(
            Instant::now()
                .checked_add(self.shutdown_timeout)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 30)),
        )
    }

    /// Stops the runtime, dropping the connections still open (`end` says
    /// why they are, if they are).
    fn finish_shutdown(&mut self, end: Drain, deadline: Instant) -> Drain {
        stop_runtime(self.runtime.take(), &self.state, end, deadline);
        end
    }
}

/// Blocks until the connections have finished, or `deadline` (then see
/// [`live_after_settling`]).
fn drain_by(runtime: Option<&Runtime>, state: &ServerState, deadline: Instant) -> Drain {
    if state.wait_drained_blocking(deadline) {
        return Drain::Done;
    }
    match runtime {
        Some(rt) if live_after_settling(rt.handle(), state) == 0 => Drain::Done,
        _ => Drain::TimedOut,
    }
}

/// How long the count at a shutdown deadline waits for the workers to run
/// what they have queued.
const SETTLE: Duration = Duration::from_millis(100);

/// The connections still live at the shutdown deadline once every worker
/// has run what it had queued (the connections the stop woke are queued
/// first), waiting at most [`SETTLE`]: a connection that closes at its
/// first poll after the stop (an idle one) was not dropped by a deadline
/// that came before that poll (a zero timeout always does). It was counted
/// as dropped in some runs and not in others. Blocks the calling thread
/// (not a worker's timer: a worker may be blocked by a handler).
fn live_after_settling(handle: &strata_rt::Handle, state: &ServerState) -> usize {
    let (ran, turns) = std::sync::mpsc::channel();
    let workers = handle.worker_count();
    for w in 0..workers {
        let ran = ran.clone();
        drop(handle.spawn_on(w, async move {
            let _ = ran.send(());
        }));
    }
    drop(ran);
    let end = Instant::now() + SETTLE;
    for _ in 0..workers {
        if turns
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .is_err()
        {
            break;
        }
    }
    state.live()
}

/// Stops the server's runtime, dropping the connections still open (`end`
/// says why there are any, for the log). Blocking closures the handlers
/// started are waited for until the shutdown `deadline` (the rest finish
/// unobserved on their threads); the workers, while they drop what is
/// left, until then or for [`STOP_GRACE`], whichever is later (only that,
/// after a timeout or a second signal, should a handler block one).
fn stop_runtime(runtime: Option<Runtime>, state: &ServerState, end: Drain, deadline: Instant) {
    let addr = state.addr();
    match end {
        Drain::Done => {}
        Drain::TimedOut => tracing::warn!(
            %addr,
            connections = state.live(),
            "shutdown timeout reached; dropping the remaining connections"
        ),
        Drain::Interrupted if state.live() == 0 => {
            tracing::info!(%addr, "second signal; stopping at once (no connection left)");
        }
        Drain::Interrupted => tracing::warn!(
            %addr,
            connections = state.live(),
            "second signal; dropping the remaining connections"
        ),
    }
    let Some(runtime) = runtime else { return };
    match end {
        // (The runtime logs any blocking closure it leaves running.)
        // The workers get at least `STOP_GRACE` to drop their tasks, even
        // from a drain that ended at the deadline, so that they are gone
        // when `shutdown` returns `true`.
        // Blocking closures get only what is left of the deadline.
        Drain::Done => {
            let left = deadline.saturating_duration_since(Instant::now());
            runtime.shutdown_timeouts(left.max(STOP_GRACE), left);
        }
        Drain::TimedOut | Drain::Interrupted => {
            runtime.shutdown_timeouts(STOP_GRACE, Duration::ZERO);
        }
    }
}

/// After a shutdown that gave up on its connections: how long the workers
/// get to drop them (normally a few milliseconds), so that the calls and
/// sockets are gone when `shutdown` returns.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// How soon after the first stop signal another one counts as "stop now":
/// sooner, it is taken for the same signal delivered twice (to the process
/// and to its group).
const REPEAT_GAP: Duration = Duration::from_millis(250);

/// A bind error that names the address (the OS's message does not).
fn cannot_listen(addr: SocketAddr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
}

/// How the wait for connections to finish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    Done,
    TimedOut,
    Interrupted,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.state.live())
            .finish()
    }
}
