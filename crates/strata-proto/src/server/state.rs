//! Server-wide state shared by every worker: the stop flag and the count of
//! live connections, each with a way to wait for it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use event_listener::{Event, EventListener, Listener};

/// Shared by the accept loops, the connections and the server handle.
#[derive(Debug, Default)]
pub(crate) struct ServerState {
    stopping: AtomicBool,
    stop_event: Event,
    live: AtomicUsize,
    drained: Event,
    /// Connections turned away because of `max_connections` (for logs and
    /// tests).
    pub(crate) rejected: AtomicUsize,
}

impl ServerState {
    /// Starts graceful shutdown: accept loops stop, connections finish.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop_event.notify(usize::MAX);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Completes once `stop` has been called.
    pub(crate) fn stopped(&self) -> Stopped<'_> {
        Stopped {
            state: self,
            listener: None,
            registered: None,
        }
    }

    /// Counts a new connection unless `max` are already live.
    pub(crate) fn try_open(&self, max: usize) -> bool {
        let mut cur = self.live.load(Ordering::Relaxed);
        loop {
            if cur >= max {
                return false;
            }
            match self
                .live
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
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

/// The future of [`ServerState::stopped`].
///
/// Connections poll it on every pass of their loop, so after the first
/// poll it costs one atomic load: the listener stays registered, and is
/// polled again only if the task's waker changed.
pub(crate) struct Stopped<'a> {
    state: &'a ServerState,
    listener: Option<EventListener>,
    registered: Option<Waker>,
}

impl Future for Stopped<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.is_stopping() {
            return Poll::Ready(());
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let this = &mut *self;
        let listener = this
            .listener
            .get_or_insert_with(|| this.state.stop_event.listen());
        // Checked again after listening: a stop in between is not missed.
        if this.state.is_stopping() || Pin::new(listener).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        this.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}
