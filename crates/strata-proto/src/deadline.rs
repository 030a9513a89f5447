//! A connection's idle and read timeouts, on one lazily re-armed timer.
//!
//! Resetting a timer for every request would cost a wheel operation per
//! request. Instead the connection records when it last saw activity
//! (one clock read per request) and keeps one `Sleep` armed at *some*
//! deadline not later than the real one. When the sleep fires early, the
//! real deadline is recomputed and the sleep re-armed: one wheel operation
//! per timeout period instead of per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use strata_rt::time::Sleep;

use crate::ConnectionConfig;
use crate::pipeline::ConnectionError;

/// What the connection is doing, for the purpose of timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerState {
    /// Nothing in flight, nothing buffered: the idle timeout runs.
    Idle,
    /// Nothing in flight, part of a request buffered: the read timeout runs.
    Partial,
    /// Requests in flight or responses being written: no timeout here
    /// (bound request time with a timeout middleware).
    Busy,
}

pub(crate) struct ConnTimer {
    idle: Option<Duration>,
    read: Option<Duration>,
    last_activity: Instant,
    /// A request was decoded since the clock was last read.
    active: bool,
    partial_since: Option<Instant>,
    sleep: Option<Sleep>,
}

impl ConnTimer {
    pub(crate) fn new(cfg: &ConnectionConfig) -> Self {
        ConnTimer {
            idle: cfg.idle_timeout,
            read: cfg.read_timeout,
            last_activity: Instant::now(),
            active: false,
            partial_since: None,
            sleep: None,
        }
    }

    /// A request was decoded. Cheap: the clock is read once per
    /// `poll_expired`, not once per request.
    pub(crate) fn activity(&mut self) {
        self.active = true;
    }

    /// `Ready(err)` once the timeout for `state` has passed; otherwise
    /// arms the timer so the task is woken to check again.
    pub(crate) fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
        state: TimerState,
    ) -> Poll<ConnectionError> {
        if state == TimerState::Busy {
            self.partial_since = None;
            return Poll::Pending;
        }
        let now = Instant::now();
        if self.active {
            // Activity counts from the end of the batch it was part of.
            self.active = false;
            self.last_activity = now;
            self.partial_since = None;
        }
        let (deadline, err) = match state {
            TimerState::Busy => unreachable!("handled above"),
            TimerState::Idle => {
                self.partial_since = None;
                match self.idle {
                    Some(t) => (self.last_activity + t, ConnectionError::IdleTimeout),
                    None => return Poll::Pending,
                }
            }
            TimerState::Partial => {
                let since = *self.partial_since.get_or_insert(now);
                match self.read {
                    Some(t) => (since + t, ConnectionError::ReadTimeout),
                    None => return Poll::Pending,
                }
            }
        };
        if now >= deadline {
            return Poll::Ready(err);
        }
        loop {
            let sleep = self
                .sleep
                .get_or_insert_with(|| strata_rt::time::sleep_until(deadline));
            // Re-arm only when the armed deadline is later than needed or
            // already passed (an early wake-up then re-checks, see above).
            if sleep.deadline() > deadline {
                sleep.reset(deadline);
            }
            match Pin::new(&mut *sleep).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    if Instant::now() >= deadline {
                        return Poll::Ready(err);
                    }
                    sleep.reset(deadline);
                }
            }
        }
    }
}
