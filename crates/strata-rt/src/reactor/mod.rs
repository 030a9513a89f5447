//! The reactor: one `mio::Poll` per worker, turning OS readiness into wakeups.
//!
//! # Design
//!
//! Every I/O source (socket) is registered **edge-triggered**, on its first
//! poll, with exactly one worker's `Poll` (that of the worker that polls
//! it; see [`PollEvented`]), under a token that indexes that worker's source table
//! ([`IoHandle`]). The table entry is a shared [`ScheduledIo`]: readiness bits
//! plus the wakers of the tasks waiting to read and to write.
//!
//! When `Poll` reports an event, the owning worker ORs the new readiness into
//! the entry and wakes its waiters. A task that then gets `WouldBlock` clears
//! the bit again, but only if no newer event arrived in between (each event
//! bumps a tick stored next to the bits). Readiness is therefore cleared
//! *only* on `WouldBlock`, never on a short read, which is what edge-triggered
//! polling requires: a peer's last bytes and its close can arrive as one
//! event, and both must be read.
//!
//! The entry and its wakers are thread-safe, so a socket registered with one
//! worker can be moved to and used from any task on any thread: the owning
//! worker only delivers readiness.
//!
//! Tokens carry a generation in their upper bits, so an event still in flight
//! for a deregistered source can never reach a new source that reused its
//! slot.

mod poll_evented;
mod scheduled_io;

pub(crate) use poll_evented::{PollEvented, home};
pub(crate) use scheduled_io::{Direction, Ready, ScheduledIo};

use std::io;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use mio::{Interest, Token};
use slab::Slab;

/// The token of the worker's `mio::Waker`.
pub(crate) const WAKE_TOKEN: Token = Token(usize::MAX);

const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// Leave `usize::MAX` (the wake token) unreachable for sources.
const GEN_MASK: usize = (usize::MAX >> INDEX_BITS) >> 1;

/// The part of a worker's reactor that any thread may use: registration,
/// deregistration, and the table of sources.
#[derive(Debug)]
pub(crate) struct IoHandle {
    registry: mio::Registry,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    sources: Slab<Arc<ScheduledIo>>,
    generation: usize,
    shut_down: bool,
}

impl IoHandle {
    /// Registers `source` with this worker's `Poll`.
    ///
    /// `ready` seeds the readiness bits: a freshly accepted socket may start
    /// out as readable and writable, saving a round trip through the reactor
    /// (a wrong guess costs one `WouldBlock`).
    pub(crate) fn register(
        &self,
        source: &mut impl mio::event::Source,
        interest: Interest,
        ready: scheduled_io::Ready,
    ) -> io::Result<Arc<ScheduledIo>> {
        let (index, token, io) = {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            if t.shut_down {
                return Err(shut_down_error());
            }
            t.generation = (t.generation + 1) & GEN_MASK;
            let generation = t.generation;
            let entry = t.sources.vacant_entry();
            let index = entry.key();
            if index > INDEX_MASK {
                return Err(io::Error::other(
                    "strata: too many I/O sources registered with one worker",
                ));
            }
            let token = (generation << INDEX_BITS) | index;
            let io = Arc::new(ScheduledIo::new(token, ready));
            entry.insert(io.clone());
            (index, token, io)
        };
        if let Err(e) = self.registry.register(source, Token(token), interest) {
            self.remove(index, token);
            return Err(e);
        }
        Ok(io)
    }

    /// Deregisters `source` and frees its table slot.
    pub(crate) fn deregister(&self, source: &mut impl mio::event::Source, io: &ScheduledIo) {
        // Errors are ignored: the fd may already be closed by the OS after a
        // reset, and there is nothing a caller could do about it.
        let _ = self.registry.deregister(source);
        let token = io.token();
        self.remove(token & INDEX_MASK, token);
    }

    fn remove(&self, index: usize, token: usize) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if t.sources.get(index).is_some_and(|io| io.token() == token) {
            t.sources.remove(index);
        }
    }
}

/// The error every I/O operation returns once its runtime has shut down.
pub(crate) fn shut_down_error() -> io::Error {
    io::Error::other("strata: the runtime this I/O source belongs to has shut down")
}

/// The worker-owned half of the reactor: the `Poll` and its event buffer.
#[derive(Debug)]
pub(crate) struct Reactor {
    poll: mio::Poll,
    events: mio::Events,
    handle: Arc<IoHandle>,
    /// Reused buffer of the sources an event reported, and their readiness.
    ready: Vec<(Arc<ScheduledIo>, scheduled_io::Ready)>,
    /// Reused buffer of wakers to call once the table lock is released.
    to_wake: Vec<Waker>,
}

impl Reactor {
    /// Creates a reactor and the `mio::Waker` that interrupts its `poll`.
    pub(crate) fn new(events_capacity: usize) -> io::Result<(Reactor, mio::Waker)> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN)?;
        let handle = Arc::new(IoHandle {
            registry: poll.registry().try_clone()?,
            table: Mutex::new(Table {
                sources: Slab::new(),
                generation: 0,
                shut_down: false,
            }),
        });
        let reactor = Reactor {
            poll,
            events: mio::Events::with_capacity(events_capacity),
            handle,
            ready: Vec::new(),
            to_wake: Vec::new(),
        };
        Ok((reactor, waker))
    }

    pub(crate) fn handle(&self) -> &Arc<IoHandle> {
        &self.handle
    }

    /// Waits for events (at most `timeout`), records readiness, wakes tasks.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let mut timeout = timeout;
        loop {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => break,
                // A signal, or a stop and continue (SIGSTOP, a debugger,
                // a frozen container: Linux then fails the wait with
                // EINTR, however long the stop). Events that came
                // meanwhile must be seen before the caller fires the
                // timers that came due: look again, without waiting.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    timeout = Some(Duration::ZERO);
                }
                Err(e) => return Err(e),
            }
        }
        if self.events.is_empty() {
            return Ok(());
        }
        // Look the sources up under the table lock, but record readiness
        // and wake waiters only after releasing it: a waker is not ours to
        // vet, and one that dropped a socket registered here would need
        // this lock.
        {
            let t = self.handle.table.lock().unwrap_or_else(|e| e.into_inner());
            for event in self.events.iter() {
                let token = event.token();
                if token == WAKE_TOKEN {
                    continue;
                }
                let index = token.0 & INDEX_MASK;
                if let Some(io) = t.sources.get(index)
                    && io.token() == token.0
                {
                    self.ready
                        .push((io.clone(), scheduled_io::Ready::from_event(event)));
                }
            }
        }
        for (io, ready) in self.ready.drain(..) {
            io.set_readiness(ready, &mut self.to_wake);
        }
        for waker in self.to_wake.drain(..) {
            crate::executor::wake_contained(waker);
        }
        Ok(())
    }

    /// Refuses new registrations and fails every registered source, waking
    /// all waiters so their tasks observe the shutdown instead of hanging.
    pub(crate) fn shutdown(&mut self) {
        let sources: Vec<Arc<ScheduledIo>> = {
            let mut t = self.handle.table.lock().unwrap_or_else(|e| e.into_inner());
            t.shut_down = true;
            t.sources.drain().collect()
        };
        for io in sources {
            io.shutdown(&mut self.to_wake);
        }
        for waker in self.to_wake.drain(..) {
            crate::executor::wake_contained(waker);
        }
    }
}
