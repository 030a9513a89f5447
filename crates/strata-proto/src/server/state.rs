//! Server-wide state shared by every worker: the stop signal and the
//! counts of live and lingering connections, with a way to wait for them.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use event_listener::{Event, Listener};
use strata_rt::sync::{Shutdown, Triggered};

/// Shared by the accept loops, the connections and the server handle.
#[derive(Debug, Default)]
pub(crate) struct ServerState {
    shutdown: Shutdown,
    live: AtomicUsize,
    /// Accept loops not yet ended (after the stop they may still open
    /// connections from the backlog).
    accepting: AtomicUsize,
    /// Connections the server closed that still drain what their peer
    /// sends (for up to a second); they no longer count as `live`, but
    /// shutdown waits for them.
    lingering: AtomicUsize,
    /// Notified when `live`, `accepting` or `lingering` drops to zero.
    drained: Event,
    /// Connections turned away because of `max_connections` (for logs and
    /// tests).
    pub(crate) rejected: AtomicUsize,
    /// The address the server listens on, once bound: in the log events
    /// of the server and of its connections (several servers may share a
    /// process).
    addr: OnceLock<SocketAddr>,
}

impl ServerState {
    /// Records the address the server listens on.
    pub(crate) fn set_addr(&self, addr: SocketAddr) {
        let _ = self.addr.set(addr);
    }

    /// The address the server listens on (`0.0.0.0:0` before it is bound).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
            .get()
            .copied()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Starts graceful shutdown: accept loops stop, connections finish.
    pub(crate) fn stop(&self) {
        self.shutdown.trigger();
    }

    /// Completes once `stop` has been called.
    pub(crate) fn stopped(&self) -> Triggered {
        self.shutdown.wait()
    }

    /// Counts a new connection unless `max` are already live. (A plain
    /// compare-and-swap rather than a `WaitGroup`: the bound must hold
    /// exactly when several workers accept at once.)
    pub(crate) fn try_open(&self, max: usize) -> bool {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |cur| {
                (cur < max).then_some(cur + 1)
            })
            .is_ok()
    }

    /// Forgets a closed connection.
    pub(crate) fn close(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify(usize::MAX);
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Whether connections of this server are still open, live or
    /// lingering (closing, they give their descriptors back).
    pub(crate) fn holds_sockets(&self) -> bool {
        self.live() > 0 || self.lingering.load(Ordering::Acquire) > 0
    }

    /// Counts an accept loop until the guard is dropped (when the loop
    /// ends, or its task is dropped).
    pub(crate) fn accept_loop_guard(self: &std::sync::Arc<Self>) -> AcceptGuard {
        self.accepting.fetch_add(1, Ordering::AcqRel);
        AcceptGuard(self.clone())
    }

    /// Moves a connection the server has closed from `live` to
    /// `lingering`, unless `max` already linger (then it closes at once);
    /// the guard ends the lingering. The live slot is freed either way.
    pub(crate) fn linger(
        self: &std::sync::Arc<Self>,
        live: ConnGuard,
        max: usize,
    ) -> Option<LingerGuard> {
        let admitted = self
            .lingering
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |cur| {
                (cur < max).then_some(cur + 1)
            })
            .is_ok();
        drop(live);
        admitted.then(|| LingerGuard(self.clone()))
    }

    /// No accept loop left, no connection live or lingering.
    fn drained(&self) -> bool {
        self.accepting.load(Ordering::Acquire) == 0
            && self.live() == 0
            && self.lingering.load(Ordering::Acquire) == 0
    }

    /// Waits until every accept loop has ended and no connection is live.
    pub(crate) async fn wait_drained(&self) {
        loop {
            if self.drained() {
                return;
            }
            let listener = self.drained.listen();
            if self.drained() {
                return;
            }
            listener.await;
        }
    }

    /// Blocks the calling thread until every accept loop has ended and no
    /// connection is live, or `deadline`. Returns whether it drained.
    pub(crate) fn wait_drained_blocking(&self, deadline: std::time::Instant) -> bool {
        loop {
            if self.drained() {
                return true;
            }
            let listener = self.drained.listen();
            if self.drained() {
                return true;
            }
            if listener.wait_deadline(deadline).is_none() {
                // Out of time: what was dropped is live connections; an
                // accept loop still running has opened nothing more.
                return self.live() == 0;
            }
        }
    }
}

/// Counts one running accept loop; see [`ServerState::accept_loop_guard`].
#[derive(Debug)]
pub(crate) struct AcceptGuard(std::sync::Arc<ServerState>);

impl Drop for AcceptGuard {
    fn drop(&mut self) {
        if self.0.accepting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify(usize::MAX);
        }
    }
}

/// Counts one lingering connection; see [`ServerState::linger`].
#[derive(Debug)]
pub(crate) struct LingerGuard(std::sync::Arc<ServerState>);

impl Drop for LingerGuard {
    fn drop(&mut self) {
        if self.0.lingering.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify(usize::MAX);
        }
    }
}

/// Counts one live connection; uncounts it when dropped, even if the
/// connection's task panicked or was dropped at runtime shutdown.
#[derive(Debug)]
pub(crate) struct ConnGuard(pub(crate) std::sync::Arc<ServerState>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}
