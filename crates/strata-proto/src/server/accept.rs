//! One worker's accept loop: limits, back-off on accept errors, and the
//! spawning of isolated connection tasks.

use std::any::Any;
use std::error::Error;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use strata_rt::net::{TcpListener, TcpStream};
use strata_service::{BoxError, ConnectionInfo, NewService, Service};

use super::ended::{ConnectionEnd, EndHook};
use super::state::{ConnGuard, ServerState};
use crate::ConnectionConfig;
use crate::pipeline::{ConnectionError, ServerProto, serve_tcp_connection};

/// Everything an accept loop needs, shared by all workers.
pub(crate) struct Shared<P, N> {
    pub(crate) proto: P,
    pub(crate) new_service: N,
    pub(crate) conn: ConnectionConfig,
    pub(crate) max_connections: usize,
    pub(crate) state: Arc<ServerState>,
    pub(crate) on_end: Option<Arc<EndHook>>,
}

/// Accepts until the server stops; each connection runs in its own local
/// task on this worker. On the stop it first takes the connections the
/// kernel had already completed (see [`drain_backlog`]).
pub(crate) async fn accept_loop<P, N>(
    listener: TcpListener,
    shared: Arc<Shared<P, N>>,
    backlog: u32,
) where
    P: ServerProto,
    N: NewService<ConnectionInfo, Error = io::Error> + Send + Sync + 'static,
    N::Service: Service<P::Request, Response = P::Response> + 'static,
    <N::Service as Service<P::Request>>::Error: Into<BoxError>,
{
    let mut backoff = Backoff::new();
    loop {
        let Some(accepted) = unless_stopped(&shared.state, listener.accept()).await else {
            let took = drain_backlog(&listener, &shared, backlog).await;
            tracing::debug!(addr = %shared.state.addr(), backlog_served = took, "accept loop stopping");
            return;
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.reset();
                open(stream, peer, &shared);
            }
            Err(e) => {
                if let Some(pause) = backoff.on_error(&e, shared.state.addr()) {
                    // The pause ends early on the stop, which then drains
                    // the backlog as usual (shutdown waits for this loop).
                    unless_stopped(&shared.state, strata_rt::time::sleep(pause)).await;
                }
            }
        }
    }
}

/// `fut`'s output, or `None` once the server is stopping (the stop is
/// checked first).
async fn unless_stopped<T>(state: &ServerState, fut: impl Future<Output = T>) -> Option<T> {
    let mut stopped = pin!(state.stopped());
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}

/// On stop: the connections the kernel completed before it (their clients
/// saw `connect` succeed and may have sent requests) are accepted and
/// served like the others: they see the stop at once, answer what they
/// received, and close, instead of being reset when the listener closes.
/// Rounds of accepting, each after a fresh look at I/O, until one finds
/// nothing; at most `cap` connections (the backlog's size), so that a flood
/// arriving meanwhile cannot hold the shutdown open. Out of descriptors or
/// memory, it pauses and tries again as the accept loop does, for as long
/// as the server's own connections are open (they give resources back as
/// they finish, and the shutdown waits for them anyway); with none left,
/// the clients still queued are reset. Returns how many it took.
async fn drain_backlog<P, N>(listener: &TcpListener, shared: &Arc<Shared<P, N>>, cap: u32) -> usize
where
    P: ServerProto,
    N: NewService<ConnectionInfo, Error = io::Error> + Send + Sync + 'static,
    N::Service: Service<P::Request, Response = P::Response> + 'static,
    <N::Service as Service<P::Request>>::Error: Into<BoxError>,
{
    let cap = usize::try_from(cap).unwrap_or(usize::MAX).max(1);
    // Connections taken, and accepts tried (failed ones count against the
    // cap too, so that a stream of failures cannot hold the drain open).
    let (mut took, mut tried) = (0, 0);
    let mut backoff = Backoff::new();
    loop {
        // The listener's readiness is only as fresh as the worker's last
        // look at I/O; yielding puts this task after the next one.
        strata_rt::yield_now().await;
        let before = tried;
        let mut starved = None;
        poll_fn(|cx| {
            while tried < cap {
                match listener.poll_accept(cx) {
                    Poll::Ready(Ok((stream, peer))) => {
                        tried += 1;
                        took += 1;
                        open(stream, peer, shared);
                        backoff.reset();
                    }
                    // One connection's failure (aborted before we took
                    // it): the rest of the queue is still there.
                    Poll::Ready(Err(e))
                        if e.raw_os_error().is_some_and(is_transient_per_connection) =>
                    {
                        tried += 1;
                    }
                    Poll::Ready(Err(e)) if is_exhaustion(&e) => {
                        starved = Some(e);
                        break;
                    }
                    // Nothing (more) queued, or the listener failed: done.
                    Poll::Ready(Err(_)) | Poll::Pending => break,
                }
            }
            Poll::Ready(())
        })
        .await;
        if let Some(e) = starved {
            if !shared.state.holds_sockets() {
                tracing::warn!(
                    addr = %shared.state.addr(),
                    error = %e,
                    backlog_served = took,
                    "out of resources with no connection left to free any; \
                     the clients still queued are reset"
                );
                return took;
            }
            if let Some(pause) = backoff.on_error(&e, shared.state.addr()) {
                // Short pauses: the shutdown waits for this loop, and the
                // last connection may close at any moment.
                strata_rt::time::sleep(pause.min(DRAIN_PAUSE)).await;
            }
            continue;
        }
        if tried == before || tried >= cap {
            return took;
        }
    }
}

fn open<P, N>(stream: TcpStream, peer: std::net::SocketAddr, shared: &Arc<Shared<P, N>>)
where
    P: ServerProto,
    N: NewService<ConnectionInfo, Error = io::Error> + Send + Sync + 'static,
    N::Service: Service<P::Request, Response = P::Response> + 'static,
    <N::Service as Service<P::Request>>::Error: Into<BoxError>,
{
    let state = &shared.state;
    if !state.try_open(shared.max_connections) {
        // Accepted and closed at once: the client learns immediately
        // instead of waiting in the kernel's backlog.
        let n = state
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The 1st, 2nd, 4th, 8th ... rejection (`n` counts those before).
        if (n + 1).is_power_of_two() {
            tracing::warn!(
                addr = %state.addr(),
                %peer,
                max = shared.max_connections,
                rejected_so_far = n + 1,
                "connection limit reached; closing new connection"
            );
        }
        return;
    }
    let guard = ConnGuard(state.clone());
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let info = ConnectionInfo::new(peer, local);
    // A panicking factory fails this connection only, like a panicking
    // handler: it must not end the accept loop. Its error is put into
    // words under the same guard: its `Display` is the application's
    // code too.
    let created = || {
        shared
            .new_service
            .new_service(&info)
            .map_err(|e| e.to_string())
    };
    let service = match catch_unwind(AssertUnwindSafe(created)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(addr = %shared.state.addr(), %peer, error = %e, "could not create a service for a connection");
            return;
        }
        Err(panic) => {
            let msg = panic_message(&*panic);
            tracing::error!(addr = %shared.state.addr(), %peer, panic = %msg, "the service factory panicked; connection closed");
            drop_payload(panic);
            return;
        }
    };
    let shared = shared.clone();
    let opened = Instant::now();
    strata_rt::spawn_local(async move {
        tracing::debug!(addr = %shared.state.addr(), %peer, connections = shared.state.live(), "connection opened");
        // Once the server has closed the connection, its slot is free for
        // the next client while the socket drains (a bounded number of
        // sockets linger; beyond that they close at once).
        let (state, max) = (&shared.state, shared.max_connections);
        let closed = move || state.linger(guard, max);
        let conn = serve_tcp_connection(
            stream,
            &shared.proto,
            service,
            &shared.conn,
            shared.state.stopped(),
            closed,
        );
        let mut conn = pin!(conn);
        // A panic in a handler or in the protocol's code (its codec, its
        // hooks) is caught by the dispatcher, which still sends the
        // responses before it. One anywhere else (a second one while
        // closing, say) ends this connection only: it is caught here,
        // logged, and the socket closed by the drop.
        let result =
            poll_fn(
                |cx| match catch_unwind(AssertUnwindSafe(|| conn.as_mut().poll(cx))) {
                    Ok(p) => p.map(Ok),
                    Err(panic) => Poll::Ready(Err(panic)),
                },
            )
            .await;
        if let Some(hook) = &shared.on_end {
            report_end(&**hook, &info, opened.elapsed(), &result);
        }
        match result {
            Ok(Ok(())) => tracing::debug!(addr = %shared.state.addr(), %peer, "connection closed"),
            Ok(Err(e)) if e.is_disconnect() => {
                tracing::debug!(addr = %shared.state.addr(), %peer, "peer disconnected")
            }
            // As `&dyn Error`, so that a subscriber logs its sources too.
            Ok(Err(e)) => {
                tracing::debug!(addr = %shared.state.addr(), %peer, error = &e as &dyn Error, "connection closed on error")
            }
            Err(panic) => {
                let msg = panic_message(&*panic);
                tracing::error!(addr = %shared.state.addr(), %peer, panic = %msg, "connection panicked; closed");
                drop_payload(panic);
            }
        }
    });
}

/// Back-off for accept errors: resource exhaustion (out of descriptors or
/// memory) pauses the loop, doubling from 5 ms up to 1 s, so it neither
/// crashes nor spins; per-connection errors (the peer aborted before we
/// accepted) are skipped at once.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Backoff { next: Self::MIN }
    }

    fn reset(&mut self) {
        self.next = Self::MIN;
    }

    /// How long to pause after `e`, if at all.
    fn on_error(&mut self, e: &io::Error, addr: SocketAddr) -> Option<Duration> {
        match e.raw_os_error() {
            Some(errno) if is_transient_per_connection(errno) => {
                tracing::debug!(%addr, error = %e, "accept failed for one connection; continuing");
                None
            }
            _ => {
                let pause = self.next;
                self.next = (self.next * 2).min(Self::MAX);
                tracing::error!(%addr, error = %e, pause_ms = pause.as_millis() as u64, "accept failed; pausing");
                Some(pause)
            }
        }
    }
}

/// The longest pause of the drain out of descriptors (the accept loop's
/// go up to [`Backoff::MAX`]).
const DRAIN_PAUSE: Duration = Duration::from_millis(100);

/// Whether a failed accept means the process or the system is out of
/// descriptors or memory (the listener itself is fine).
fn is_exhaustion(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(|errno| {
        [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(&errno)
    })
}

/// `ECONNABORTED`, `EINTR`, `EPROTO`, `EPERM` (firewall), and the network
/// errors Linux's accept(2) passes on for the new socket: they concern one
/// connection, not the listener.
fn is_transient_per_connection(errno: i32) -> bool {
    [
        libc::ECONNABORTED,
        libc::EINTR,
        libc::EPROTO,
        libc::EPERM,
        libc::ENETDOWN,
        libc::ENOPROTOOPT,
        libc::EHOSTDOWN,
        libc::EHOSTUNREACH,
        libc::EOPNOTSUPP,
        libc::ENETUNREACH,
    ]
    .contains(&errno)
}

/// The text of a panic payload (`panic!` with a message gives a `&str` or
/// a `String`).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Drops the payload of a caught panic. One whose own destructor panics is
/// leaked instead: that second panic would escape where the first was
/// caught (ending the accept loop, or unwinding through the dispatcher).
pub(crate) fn drop_payload(panic: Box<dyn std::any::Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(panic))) {
        std::mem::forget(again);
    }
}

/// Tells the hook how a connection ended; a panic in it is caught and
/// logged (the connection is over either way). A connection whose own
/// code panicked outside the dispatcher's guard ends as
/// [`ConnectionError::Panicked`]. (Out of line: the hook is rare.)
#[cold]
#[inline(never)]
fn report_end(
    hook: &EndHook,
    info: &ConnectionInfo,
    duration: Duration,
    result: &Result<Result<(), ConnectionError>, Box<dyn Any + Send>>,
) {
    let panicked;
    let outcome = match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(panic) => {
            panicked = ConnectionError::Panicked(panic_message(&**panic));
            Err(&panicked)
        }
    };
    let end = ConnectionEnd {
        info,
        duration,
        outcome,
    };
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(&end))) {
        let msg = panic_message(&*panic);
        tracing::error!(peer = %info.peer, panic = %msg, "the connection-end hook panicked");
        drop_payload(panic);
    }
}

#[cfg(test)]
mod tests {
    /// An address for the log lines.
    const ANY: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::UNSPECIFIED,
        0,
    ));
    use super::*;

    #[test]
    fn backoff_grows_for_exhaustion_and_skips_aborted_connections() {
        let mut b = Backoff::new();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(b.on_error(&emfile, ANY), Some(Duration::from_millis(5)));
        assert_eq!(b.on_error(&emfile, ANY), Some(Duration::from_millis(10)));
        for _ in 0..20 {
            b.on_error(&emfile, ANY);
        }
        assert_eq!(b.on_error(&emfile, ANY), Some(Duration::from_secs(1)));
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(b.on_error(&aborted, ANY), None);
        b.reset();
        assert_eq!(b.on_error(&emfile, ANY), Some(Duration::from_millis(5)));
    }
}
