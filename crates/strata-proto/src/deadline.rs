//! A connection's idle, read and write timeouts, on one lazily re-armed
//! timer.
//!
//! Resetting a timer for every request would cost a wheel operation per
//! request. Instead the connection records when it last saw activity
//! (one clock read per request) and keeps one `Sleep` armed at *some*
//! deadline not later than the real one. When the sleep fires early, the
//! real deadline is recomputed and the sleep re-armed: one wheel operation
//! per timeout period instead of per request.
//!
//! The same timer frees the connection's buffers once it has been idle for
//! [`RELEASE_AFTER`]: a busy connection keeps and reuses them (no
//! allocation per batch), an idle one holds none.
//!
//! The write timeout runs whatever the connection is doing, but only while
//! responses wait for the socket (a peer that does not read): its clock is
//! read only then, and restarts whenever a byte was written. Responses the
//! socket took may still sit in the kernel's send queue, the peer's window
//! being full; an idle connection looks at that queue once, when it frees
//! its buffers, and if it is not empty the write timeout watches it drain.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use strata_rt::time::Sleep;

use crate::ConnectionConfig;
use crate::pipeline::ConnectionError;

/// How long a connection must sit idle before its buffers are freed.
pub(crate) const RELEASE_AFTER: Duration = Duration::from_millis(100);

/// What the timer asks the connection to do.
#[derive(Debug)]
pub(crate) enum TimerEvent {
    /// Idle long enough: free the buffers (then poll the timer again).
    ReleaseBuffers,
    /// A timeout passed: end the connection with this error.
    Expired(ConnectionError),
}

/// What the connection is doing, for the purpose of timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerState {
    /// Nothing in flight, nothing buffered: the idle timeout runs.
    Idle,
    /// Nothing in flight, part of a request buffered: the read timeout runs.
    Partial,
    /// Requests in flight or responses being written: only the write
    /// timeout (bound request time with a timeout middleware).
    Busy,
}

/// The connection's output, for the write timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// Responses are buffered, waiting for the socket to take them.
    pub(crate) waiting: bool,
    /// Bytes written to the socket so far.
    pub(crate) written: u64,
}

pub(crate) struct ConnTimer {
    idle: Option<Duration>,
    read: Option<Duration>,
    last_activity: Instant,
    /// A request was decoded since the clock was last read.
    active: bool,
    partial_since: Option<Instant>,
    write: Option<Duration>,
    /// While responses wait for the socket: the write timeout's clock.
    stall: Option<WriteWatch>,
    /// Idle with responses left in the kernel's send queue: the write
    /// timeout's clock, watching that queue drain.
    kernel_queue: Option<WriteWatch>,
    /// Buffers may be held (activity since the last release).
    holding: bool,
    sleep: Option<Sleep>,
    /// The waker the armed sleep was last polled with: while the sleep is
    /// armed early enough and has not fired, polling it again would only
    /// re-register the same waker, so it is skipped.
    armed_for: Option<Waker>,
}

impl ConnTimer {
    pub(crate) fn new(cfg: &ConnectionConfig) -> Self {
        ConnTimer {
            idle: cfg.idle_timeout,
            read: cfg.read_timeout,
            last_activity: Instant::now(),
            active: false,
            partial_since: None,
            write: cfg.write_timeout,
            stall: None,
            kernel_queue: None,
            holding: false,
            sleep: None,
            armed_for: None,
        }
    }

    /// A request was decoded. Cheap: the clock is read once per
    /// `poll_expired`, not once per request.
    pub(crate) fn activity(&mut self) {
        self.active = true;
    }

    /// With nothing in flight: the idle or read timeout's deadline, and
    /// (idle only) when the buffers are due to be freed; or the event due
    /// now. Always inlined: a connection that answers one request at a
    /// time comes here at every poll, and the compiler's own choice moved
    /// with unrelated changes to the dispatcher (35 instructions a
    /// request at depth 1 when it stopped inlining it; callgrind).
    #[inline(always)]
    fn poll_quiet(
        &mut self,
        now: Instant,
        state: TimerState,
        unsent: impl FnMut() -> Option<u64>,
    ) -> Result<(Option<Instant>, Option<Instant>), TimerEvent> {
        if self.active {
            // Activity counts from the end of the batch it was part of.
            self.active = false;
            self.holding = true;
            self.last_activity = now;
            self.partial_since = None;
            self.kernel_queue = None;
        }
        let idle = state == TimerState::Idle;
        let timeout = if idle {
            self.partial_since = None;
            // A timeout too long to add to an instant is no timeout.
            self.idle.and_then(|t| self.last_activity.checked_add(t))
        } else {
            let since = *self.partial_since.get_or_insert(now);
            self.read.and_then(|t| since.checked_add(t))
        };
        let release = (idle && self.holding).then(|| self.last_activity + RELEASE_AFTER);
        if let Some(r) = release
            && now >= r
        {
            self.holding = false;
            self.watch_kernel_queue(now, unsent);
            return Err(TimerEvent::ReleaseBuffers);
        }
        let timeout = match self.kernel_queue {
            None => timeout,
            Some(_) => earliest(timeout, self.poll_kernel_queue(now, unsent)?),
        };
        if let Some(t) = timeout
            && now >= t
        {
            // (Only a timeout that is set gives a deadline that passes.)
            return Err(TimerEvent::Expired(if idle {
                ConnectionError::IdleTimeout {
                    timeout: self.idle.unwrap_or_default(),
                }
            } else {
                ConnectionError::ReadTimeout {
                    timeout: self.read.unwrap_or_default(),
                }
            }));
        }
        Ok((timeout, release))
    }

    /// On freeing an idle connection's buffers: starts watching the
    /// kernel's send queue if responses are left in it (one `unsent` call
    /// per idle period, so none on a busy connection).
    #[inline(never)]
    fn watch_kernel_queue(&mut self, now: Instant, mut unsent: impl FnMut() -> Option<u64>) {
        if self.write.is_some()
            && let Some(queued) = unsent().filter(|&q| q > 0)
        {
            self.kernel_queue = Some(WriteWatch::new(now, 0, Some(queued)));
        }
    }

    /// While an idle connection's responses sit in the kernel's send
    /// queue: the next time to look, or `WriteTimeout` once a whole timeout
    /// passed in which the peer was not seen to take any. Nothing is
    /// written meanwhile; the watch ends when the queue is empty (or can no
    /// longer be read).
    #[inline(never)]
    fn poll_kernel_queue(
        &mut self,
        now: Instant,
        mut unsent: impl FnMut() -> Option<u64>,
    ) -> Result<Option<Instant>, TimerEvent> {
        let (Some(watch), Some(timeout)) = (&mut self.kernel_queue, self.write) else {
            return Ok(None);
        };
        let next = watch.poll(now, 0, timeout, &mut unsent)?;
        if watch.mark.is_none_or(|m| m.queued == 0) {
            self.kernel_queue = None;
            return Ok(None);
        }
        Ok(next)
    }

    /// `Ready(event)` when the connection must act (free its buffers, or
    /// end on a timeout); otherwise arms the timer so the task is woken to
    /// check again.
    #[inline]
    pub(crate) fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
        state: TimerState,
        output: Output,
        unsent: impl FnMut() -> Option<u64>,
    ) -> Poll<TimerEvent> {
        if output.waiting && self.write.is_some() {
            return self.poll_stalled(cx, state, output, unsent);
        }
        // The common path: no output waiting.
        self.stall = None;
        if state == TimerState::Busy {
            self.partial_since = None;
            return Poll::Pending;
        }
        let now = Instant::now();
        let (timeout, release) = match self.poll_quiet(now, state, unsent) {
            Ok(deadlines) => deadlines,
            Err(event) => return Poll::Ready(event),
        };
        match earliest(timeout, release) {
            Some(deadline) => self.poll_sleep(cx, deadline),
            None => Poll::Pending,
        }
    }

    /// `poll_expired` while responses wait for the socket: the write
    /// timeout runs, restarted by any byte written, or by the peer taking
    /// bytes from the kernel's send queue (`unsent`, if the transport can
    /// tell): a large send buffer is reported writable again only once a
    /// good part of it has drained, which a slow but steady reader can take
    /// longer than the timeout to do. The queue is sampled every quarter
    /// timeout and compared with the previous sample plus what was written
    /// since; a peer that stopped reading is closed between one and one and
    /// a quarter timeouts after the last progress seen (a byte written, or
    /// taken from the queue).
    #[inline(never)]
    fn poll_stalled(
        &mut self,
        cx: &mut Context<'_>,
        state: TimerState,
        output: Output,
        mut unsent: impl FnMut() -> Option<u64>,
    ) -> Poll<TimerEvent> {
        let now = Instant::now();
        let Some(timeout) = self.write else {
            return Poll::Pending;
        };
        let watch = self
            .stall
            .get_or_insert_with(|| WriteWatch::new(now, output.written, unsent()));
        let write_deadline = match watch.poll(now, output.written, timeout, &mut unsent) {
            Ok(next) => next,
            Err(event) => return Poll::Ready(event),
        };
        let (timeout, release) = if state == TimerState::Busy {
            self.partial_since = None;
            (None, None)
        } else {
            match self.poll_quiet(now, state, unsent) {
                Ok(deadlines) => deadlines,
                Err(event) => return Poll::Ready(event),
            }
        };
        match earliest(earliest(timeout, release), write_deadline) {
            Some(deadline) => self.poll_sleep(cx, deadline),
            None => Poll::Pending,
        }
    }

    /// Keeps the sleep armed at or before `deadline`. The common case, a
    /// sleep already armed early enough for this task, is inlined into
    /// every poll of the connection; arming is not.
    #[inline(always)]
    fn poll_sleep(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<TimerEvent> {
        if let Some(sleep) = &self.sleep
            && sleep.deadline() <= deadline
            && !sleep.is_elapsed()
            && self
                .armed_for
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        self.arm_sleep(cx, deadline)
    }

    /// `poll_sleep` when the sleep must be (re)armed or has fired.
    #[inline(never)]
    fn arm_sleep(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<TimerEvent> {
        loop {
            let sleep = self
                .sleep
                .get_or_insert_with(|| strata_rt::time::sleep_until(deadline));
            // Re-arm only when the armed deadline is later than needed; an
            // earlier one just wakes the task to re-check (see above).
            if sleep.deadline() > deadline {
                sleep.reset(deadline);
            }
            match Pin::new(&mut *sleep).poll(cx) {
                Poll::Pending => {
                    if !self
                        .armed_for
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        self.armed_for = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(()) => {
                    if Instant::now() >= deadline {
                        // Due now: let the caller poll again to act on it.
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    sleep.reset(deadline);
                }
            }
        }
    }
}

/// The write timeout's clock: since when no progress has been seen (a
/// byte written, or taken by the peer from the kernel's send queue), the
/// bytes written by then, and the last sample of that queue (`None` if the
/// transport cannot tell).
#[derive(Debug, Clone, Copy)]
struct WriteWatch {
    since: Instant,
    written: u64,
    mark: Option<QueueMark>,
}

impl WriteWatch {
    fn new(now: Instant, written: u64, queued: Option<u64>) -> Self {
        WriteWatch {
            since: now,
            written,
            mark: queued.map(|queued| QueueMark {
                queued,
                written,
                at: now,
            }),
        }
    }

    /// Notes the progress seen by `now` (`written` bytes written so far;
    /// the queue is sampled when a sample is due) and returns the next
    /// time to look, or `WriteTimeout` once a whole timeout passed
    /// without progress.
    fn poll(
        &mut self,
        now: Instant,
        written: u64,
        timeout: Duration,
        unsent: &mut impl FnMut() -> Option<u64>,
    ) -> Result<Option<Instant>, TimerEvent> {
        if written != self.written {
            self.since = now;
            self.written = written;
        }
        if let Some(mark) = &mut self.mark
            && mark.next_sample(timeout).is_some_and(|t| now >= t)
        {
            match mark.resample(now, written, unsent) {
                Some(true) => self.since = now,
                Some(false) => {}
                None => self.mark = None,
            }
        }
        let deadline = self.since.checked_add(timeout);
        if deadline.is_some_and(|d| now >= d) {
            return Err(TimerEvent::Expired(ConnectionError::WriteTimeout {
                timeout,
            }));
        }
        Ok(earliest(
            deadline,
            self.mark.and_then(|m| m.next_sample(timeout)),
        ))
    }
}

/// A sample of the kernel's send queue, to tell whether the peer took
/// bytes from it since.
#[derive(Debug, Clone, Copy)]
struct QueueMark {
    /// Bytes queued.
    queued: u64,
    /// Bytes the connection had written by then.
    written: u64,
    /// When the sample was taken.
    at: Instant,
}

impl QueueMark {
    /// The next sample is due a quarter of the write timeout after this
    /// one: a peer that stops reading is then closed between one and one
    /// and a quarter timeouts after the last progress seen.
    fn next_sample(&self, timeout: Duration) -> Option<Instant> {
        self.at.checked_add(timeout / 4)
    }

    /// Samples the queue again at `now`, `written` bytes written; whether
    /// the peer took any since this sample (the queue holds less than it
    /// did plus what was written since). `None` if it cannot be read now.
    fn resample(
        &mut self,
        now: Instant,
        written: u64,
        unsent: &mut impl FnMut() -> Option<u64>,
    ) -> Option<bool> {
        let queued = unsent()?;
        let took = queued < self.queued + (written - self.written);
        *self = QueueMark {
            queued,
            written,
            at: now,
        };
        Some(took)
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(queued: u64, written: u64, at: Instant) -> QueueMark {
        QueueMark {
            queued,
            written,
            at,
        }
    }

    /// The peer took bytes when the queue holds less than it did plus
    /// what was written since: a queue that stays as full while the
    /// connection writes more is a peer that reads.
    #[test]
    fn a_queue_as_full_as_before_after_more_writes_is_progress() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        // 1,000 bytes written since; the queue grew by only 500: the peer
        // took 500.
        let mut m = mark(1_000, 5_000, t0);
        assert_eq!(m.resample(t1, 6_000, &mut || Some(1_500)), Some(true));
        // The new sample replaces the old.
        assert_eq!((m.queued, m.written, m.at), (1_500, 6_000, t1));
        // Nothing written, queue the same: nothing taken.
        assert_eq!(m.resample(t1, 6_000, &mut || Some(1_500)), Some(false));
        // 1,000 written and the queue grew by all of it: nothing taken.
        assert_eq!(m.resample(t1, 7_000, &mut || Some(2_500)), Some(false));
        // Queue unchanged while 1,000 more were written: all of it taken.
        assert_eq!(m.resample(t1, 8_000, &mut || Some(2_500)), Some(true));
    }

    #[test]
    fn an_unreadable_queue_gives_no_answer_and_keeps_the_sample() {
        let t0 = Instant::now();
        let mut m = mark(100, 200, t0);
        assert_eq!(
            m.resample(t0 + Duration::from_secs(1), 300, &mut || None),
            None
        );
        assert_eq!((m.queued, m.written, m.at), (100, 200, t0));
    }

    #[test]
    fn the_next_sample_is_due_a_quarter_of_the_write_timeout_later() {
        let t0 = Instant::now();
        let m = mark(0, 0, t0);
        assert_eq!(
            m.next_sample(Duration::from_secs(8)),
            Some(t0 + Duration::from_secs(2))
        );
    }
}
