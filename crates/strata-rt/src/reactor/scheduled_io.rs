//! Per-source readiness and waiters, shared between a worker and any task.
//!
//! # The readiness word
//!
//! ```text
//!  usize:  [ tick (upper bits) | SHUTDOWN | ERROR | WRITE_CLOSED | READ_CLOSED | WRITABLE | READABLE ]
//! ```
//!
//! * `READABLE` / `WRITABLE`: the last event said the operation may make
//!   progress. Cleared by a task that got `WouldBlock`, and only if the tick
//!   is still the one it observed.
//! * `READ_CLOSED` / `WRITE_CLOSED` / `ERROR`: sticky; once the peer closed or
//!   the socket failed, every later attempt should go to the OS and see it.
//! * `SHUTDOWN`: the runtime shut down; every poll fails from now on.
//! * tick: bumped by every event, so a clear based on stale information
//!   never erases readiness that arrived after it.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

const READABLE: usize = 1 << 0;
const WRITABLE: usize = 1 << 1;
const READ_CLOSED: usize = 1 << 2;
const WRITE_CLOSED: usize = 1 << 3;
const ERROR: usize = 1 << 4;
const SHUTDOWN: usize = 1 << 5;
const BITS_MASK: usize = (1 << 8) - 1;
const TICK_SHIFT: u32 = 8;

/// A set of readiness bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ready(usize);

impl Ready {
    /// Nothing known yet: wait for the first event.
    pub(crate) const EMPTY: Ready = Ready(0);
    /// Optimistically ready both ways (e.g. a freshly accepted socket).
    pub(crate) const READ_WRITE: Ready = Ready(READABLE | WRITABLE);

    pub(crate) fn from_event(e: &mio::event::Event) -> Ready {
        let mut r = 0;
        if e.is_readable() {
            r |= READABLE;
        }
        if e.is_writable() {
            r |= WRITABLE;
        }
        if e.is_read_closed() {
            r |= READ_CLOSED;
        }
        if e.is_write_closed() {
            r |= WRITE_CLOSED;
        }
        if e.is_error() {
            r |= ERROR;
        }
        Ready(r)
    }
}

/// Which half of a source a task waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The bits that let an operation in this direction go to the OS.
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }

    /// The bits a `WouldBlock` in this direction may clear.
    fn clearable(self) -> usize {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }
}

/// Proof that a direction was ready at a given tick; hand it back to
/// [`ScheduledIo::clear_readiness`] after a `WouldBlock`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    tick: usize,
    direction: Direction,
}

/// Readiness and waiters of one registered source.
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    token: usize,
    readiness: AtomicUsize,
    readers: Mutex<Vec<Waker>>,
    writers: Mutex<Vec<Waker>>,
}

impl ScheduledIo {
    pub(crate) fn new(token: usize, ready: Ready) -> Self {
        ScheduledIo {
            token,
            readiness: AtomicUsize::new(ready.0),
            readers: Mutex::new(Vec::new()),
            writers: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn token(&self) -> usize {
        self.token
    }

    fn waiters(&self, dir: Direction) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        let m = match dir {
            Direction::Read => &self.readers,
            Direction::Write => &self.writers,
        };
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by the owning worker for each event: records the readiness,
    /// bumps the tick, and moves the matching waiters into `to_wake`.
    pub(crate) fn set_readiness(&self, ready: Ready, to_wake: &mut Vec<Waker>) {
        let mut cur = self.readiness.load(Ordering::Acquire);
        loop {
            let tick = (cur >> TICK_SHIFT).wrapping_add(1);
            let new = (tick << TICK_SHIFT) | (cur & BITS_MASK) | ready.0;
            match self.readiness.compare_exchange_weak(
                cur,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if ready.0 & Direction::Read.mask() != 0 {
            to_wake.append(&mut self.waiters(Direction::Read));
        }
        if ready.0 & Direction::Write.mask() != 0 {
            to_wake.append(&mut self.waiters(Direction::Write));
        }
    }

    /// Fails the source for good and moves all waiters into `to_wake`.
    pub(crate) fn shutdown(&self, to_wake: &mut Vec<Waker>) {
        self.readiness.fetch_or(SHUTDOWN, Ordering::AcqRel);
        to_wake.append(&mut self.waiters(Direction::Read));
        to_wake.append(&mut self.waiters(Direction::Write));
    }

    fn check(&self, dir: Direction) -> Option<io::Result<ReadyEvent>> {
        let cur = self.readiness.load(Ordering::Acquire);
        if cur & SHUTDOWN != 0 {
            return Some(Err(super::shut_down_error()));
        }
        if cur & dir.mask() != 0 {
            return Some(Ok(ReadyEvent {
                tick: cur >> TICK_SHIFT,
                direction: dir,
            }));
        }
        None
    }

    /// Ready if the direction may make progress; otherwise registers the
    /// task's waker and returns `Pending`.
    ///
    /// Several tasks may wait on the same direction; all are woken by the next
    /// event.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        if let Some(r) = self.check(dir) {
            return Poll::Ready(r);
        }
        {
            let mut waiters = self.waiters(dir);
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
        }
        // An event may have landed between the check and the registration;
        // the reactor sets bits *before* taking waiters, so looking again
        // after registering closes the gap.
        match self.check(dir) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    /// After a `WouldBlock`: forget the readiness `ev` reported, unless a
    /// newer event has arrived since.
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        let clear = ev.direction.clearable();
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                if cur >> TICK_SHIFT == ev.tick && cur & clear != 0 {
                    Some(cur & !clear)
                } else {
                    None
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn stale_clear_keeps_newer_readiness() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());

        let mut to_wake = Vec::new();
        io.set_readiness(Ready(READABLE), &mut to_wake);
        assert_eq!(to_wake.len(), 1);
        to_wake.drain(..).for_each(Waker::wake);
        assert!(flag.0.load(Ordering::SeqCst));

        let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("expected readiness")
        };
        // A new event arrives before the task reports WouldBlock...
        io.set_readiness(Ready(READABLE), &mut to_wake);
        io.clear_readiness(ev);
        // ...so the clear must not erase it.
        assert!(io.poll_ready(&mut cx, Direction::Read).is_ready());

        let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("expected readiness")
        };
        io.clear_readiness(ev);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
    }

    #[test]
    fn closed_bits_are_sticky_and_shutdown_fails() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut to_wake = Vec::new();
        io.set_readiness(Ready(READABLE | READ_CLOSED), &mut to_wake);
        let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("expected readiness")
        };
        io.clear_readiness(ev);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_ready());
        assert!(io.poll_ready(&mut cx, Direction::Write).is_pending());
        io.shutdown(&mut to_wake);
        assert!(matches!(
            io.poll_ready(&mut cx, Direction::Write),
            Poll::Ready(Err(_))
        ));
    }
}
