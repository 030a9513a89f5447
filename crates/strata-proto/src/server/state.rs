//! Server-wide state shared by every worker: the stop signal and the count
//! of live connections, each with a way to wait for it.

use std::sync::atomic::{AtomicUsize, Ordering};

use event_listener::{Event, Listener};
use strata_rt::sync::{Shutdown, Triggered};

/// Shared by the accept loops, the connections and the server handle.
#[derive(Debug, Default)]
pub(crate) struct ServerState {
    shutdown: Shutdown,
    live: AtomicUsize,
    drained: Event,
    /// Connections turned away because of `max_connections` (for logs and
    /// tests).
    pub(crate) rejected: AtomicUsize,
}

impl ServerState {
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

    /// Blocks the calling thread until no connection is live or `deadline`.
    /// Returns whether it drained.
    pub(crate) fn wait_drained_blocking(&self, deadline: std::time::Instant) -> bool {
        loop {
            if self.live() == 0 {
                return true;
            }
            let listener = self.drained.listen();
            if self.live() == 0 {
                return true;
            }
            if listener.wait_deadline(deadline).is_none() {
                return self.live() == 0;
            }
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
