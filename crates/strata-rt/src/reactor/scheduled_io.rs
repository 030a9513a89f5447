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
//! * `READ_CLOSED` / `WRITE_CLOSED`: not cleared by a `WouldBlock` that
//!   came before them (the tick): once the peer closed, every later
//!   attempt should go to the OS and see it. A `WouldBlock` after them
//!   does clear them, since a closed direction never answers so (a closed
//!   read side reads 0, a closed write side fails with `EPIPE`): a socket
//!   that reports itself closed and still answers `WouldBlock` (a UDP
//!   socket or a listener shut down with `shutdown(2)`) then waits for its
//!   next event instead of being retried without end.
//! * `ERROR`: the socket has a pending error. The OS hands a pending error
//!   to the next operation and forgets it, so a `WouldBlock` in either
//!   direction clears `ERROR` along with that direction's bit; were it
//!   sticky, a failed connected UDP socket would be "ready" forever and its
//!   reader would spin on `WouldBlock`.
//! * `SHUTDOWN`: the runtime shut down; every poll fails from now on.
//! * tick: bumped by every event, so a clear based on stale information
//!   never erases readiness that arrived after it.

use std::cell::Cell;
use std::io;
use std::mem;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Optimistically readable: a listener. It is registered on its first
    /// accept, which may come long after connections queued, so that
    /// accept asks the kernel instead of waiting for an event (a wrong
    /// guess costs one `WouldBlock`).
    pub(crate) const LISTENING: Ready = Ready(READABLE);
    /// The source's own write direction was shut down: writes fail now.
    pub(crate) const WRITE_SHUT: Ready = Ready(WRITE_CLOSED);

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

    /// The bits a `WouldBlock` in this direction may clear: a `WouldBlock`
    /// also means the socket had no pending error, and that the direction
    /// is not closed (see the module docs).
    fn clearable(self) -> usize {
        match self {
            // `READ_CLOSED` too: a stream whose peer closed reads 0, so a
            // `WouldBlock` means the bit came from a shut-down UDP socket or
            // listener, which would otherwise look ready forever.
            Direction::Read => READABLE | READ_CLOSED | ERROR,
            // `WRITE_CLOSED` too: mio derives it from EPOLLOUT|EPOLLERR as
            // well as from HUP, and a write that got `WouldBlock` proves the
            // direction is not closed (a closed one fails with EPIPE).
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
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
    waiters: Mutex<Waiters>,
}

/// The tasks waiting on one source.
///
/// Almost always one task reads and writes a socket (a connection's own
/// task), so each direction keeps a *resident* waker: it stays stored
/// across events, and when the same task waits again it is only re-armed,
/// which spares a waker clone and drop (two atomic operations) per wait.
/// An event wakes the resident by reference, and only if it is armed, i.e.
/// waiting now: a resident that has not waited since its last wake-up is
/// never woken spuriously, and the next task to wait replaces it. Other
/// tasks waiting at the same time as an armed resident (shared sockets)
/// queue in the `more_*` lists, which each event takes and wakes.
///
/// A queued entry made inside a socket's `async fn` carries that call's
/// wait id ([`WaitId`]), and the call takes it back out if it is dropped
/// while waiting ([`ScheduledIo::withdraw`]), so an idle shared socket
/// does not collect the wakers of every task that gave up on it. The
/// `poll_*` methods have no call to withdraw, so, as in tokio, only the
/// latest `poll_*` waker per direction is kept (as the resident or as the
/// one queued entry without an id): a `poll_*` caller that gave up leaves
/// nothing behind, and of two tasks waiting through `poll_*` at once only
/// the one that polled last is woken.
#[derive(Debug, Default)]
struct Waiters {
    read: Resident,
    write: Resident,
    more_readers: Vec<Queued>,
    more_writers: Vec<Queued>,
}

/// A waiter queued behind an armed resident.
#[derive(Debug)]
struct Queued {
    /// The `async fn` call that waits, or [`WaitId::NONE`] for a `poll_*`
    /// caller.
    wait: WaitId,
    waker: Waker,
}

/// Identifies one waiting `async fn` call on a socket, so that it can
/// withdraw its own queued entry (and only its own: one task may wait
/// through several calls at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WaitId(u64);

impl WaitId {
    /// Not an `async fn` call.
    pub(crate) const NONE: WaitId = WaitId(0);

    /// A fresh id (unique in the process). Ids come from a per-thread
    /// block, so taking one is not an atomic operation.
    pub(crate) fn next() -> WaitId {
        const BLOCK: u64 = 1 << 20;
        static BLOCKS: AtomicU64 = AtomicU64::new(BLOCK);
        thread_local! {
            static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        IDS.with(|ids| {
            let (mut next, mut end) = ids.get();
            if next == end {
                next = BLOCKS.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            ids.set((next + 1, end));
            WaitId(next)
        })
    }

    /// The id of the `async fn` call being polled on this thread, if any
    /// and if `waker` is the waker it was polled with (a waker run inside
    /// that poll may poll another task's `poll_*` inline).
    fn current_for(waker: &Waker) -> WaitId {
        let (id, data, vtable) = CURRENT_WAIT.with(Cell::get);
        if std::ptr::eq(data, waker.data()) && std::ptr::eq(vtable, waker.vtable()) {
            id
        } else {
            WaitId::NONE
        }
    }

    #[cfg(test)]
    fn current() -> WaitId {
        CURRENT_WAIT.with(Cell::get).0
    }

    /// Runs `f` (one poll of the call `self`) with `self` as the current
    /// call, so that a registration inside it carries the id.
    /// `data` and `vtable` identify the waker the call is polled with.
    pub(crate) fn enter<R>(
        self,
        data: *const (),
        vtable: *const std::task::RawWakerVTable,
        f: impl FnOnce() -> R,
    ) -> R {
        // Restored on unwind too: a stale id would be picked up by every
        // later `poll_*` registration on this thread.
        struct Restore(CurrentWait);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT_WAIT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT_WAIT.with(|c| c.replace((self, data, vtable))));
        f()
    }
}

thread_local! {
    static CURRENT_WAIT: Cell<CurrentWait> =
        const { Cell::new((WaitId::NONE, std::ptr::null(), std::ptr::null())) };
}

/// The call being polled, and the waker it was polled with.
type CurrentWait = (WaitId, *const (), *const std::task::RawWakerVTable);

#[derive(Debug, Default)]
struct Resident {
    waker: Option<Waker>,
    /// The resident waits now (registered since its last wake-up).
    armed: bool,
    /// The `async fn` call it took the place for, or [`WaitId::NONE`]
    /// for a `poll_*` caller.
    wait: WaitId,
}

impl Waiters {
    /// Registers `waker` to be woken in `dir`; returns the waker it
    /// displaced, if any, for the caller to drop once the lock is released:
    /// a waker is not ours to vet, and the last one of a foreign task may
    /// own the task's future, whose drop may withdraw a wait on this very
    /// socket (and take this lock).
    #[must_use]
    fn register(&mut self, dir: Direction, waker: &Waker) -> Option<Waker> {
        let (resident, more) = self.of(dir);
        match &resident.waker {
            Some(w) if w.will_wake(waker) => {
                resident.armed = true;
                // The same task may wait through an `async fn` now where it
                // polled before: it must not then count as a `poll_*`
                // waiter, which the next `poll_*` caller would replace.
                if resident.wait == WaitId::NONE {
                    resident.wait = WaitId::current_for(waker);
                }
                None
            }
            Some(_) if resident.armed => {
                let wait = WaitId::current_for(waker);
                if wait == WaitId::NONE && resident.wait == WaitId::NONE {
                    // Two `poll_*` callers: the latest one is woken (as
                    // in tokio); one that gave up leaves nothing behind.
                    return resident.waker.replace(waker.clone());
                }
                // One entry per `async fn` call, and one for all `poll_*`
                // callers (the latest).
                let entry = more.iter_mut().find(|q| q.wait == wait);
                match entry {
                    Some(q) if q.waker.will_wake(waker) => None,
                    Some(q) => Some(mem::replace(&mut q.waker, waker.clone())),
                    None => {
                        more.push(Queued {
                            wait,
                            waker: waker.clone(),
                        });
                        None
                    }
                }
            }
            // Empty, or a resident that is not waiting: take its place.
            _ => {
                resident.armed = true;
                resident.wait = WaitId::current_for(waker);
                resident.waker.replace(waker.clone())
            }
        }
    }

    /// Removes the queued entry of the call `wait`, if any (there is at
    /// most one), and returns it, to be dropped once the lock is released
    /// (see [`register`](Self::register)).
    #[must_use]
    fn withdraw(&mut self, dir: Direction, wait: WaitId) -> Option<Queued> {
        let more = self.of(dir).1;
        let i = more.iter().position(|q| q.wait == wait)?;
        Some(more.remove(i))
    }

    /// The resident and the queue of one direction.
    #[inline(always)]
    fn of(&mut self, dir: Direction) -> (&mut Resident, &mut Vec<Queued>) {
        match dir {
            Direction::Read => (&mut self.read, &mut self.more_readers),
            Direction::Write => (&mut self.write, &mut self.more_writers),
        }
    }

    /// Hands the armed resident and the others to the caller, to wake.
    // Inlined: called twice per event, and mostly finds nobody waiting.
    #[inline(always)]
    fn wake(&mut self, dir: Direction, to_wake: &mut Vec<Waker>) {
        let (resident, more) = self.of(dir);
        if resident.armed {
            resident.armed = false;
            // Woken by the caller after the lock is released: a waker is
            // not ours to vet, and one that polls this socket inline would
            // come back for this lock.
            if let Some(w) = &resident.waker {
                to_wake.push(w.clone());
            }
        }
        // Mostly empty: skip the drain's setup and teardown then.
        if !more.is_empty() {
            to_wake.extend(more.drain(..).map(|q| q.waker));
        }
    }
}

impl ScheduledIo {
    pub(crate) fn new(token: usize, ready: Ready) -> Self {
        ScheduledIo {
            token,
            readiness: AtomicUsize::new(ready.0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    pub(crate) fn token(&self) -> usize {
        self.token
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the readiness, bumps the tick, and moves the matching
    /// waiters into `to_wake`. Called by the owning worker for each event,
    /// and from any thread by a stream's own `shutdown` (see
    /// `PollEvented::shut_down`).
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
        let read = ready.0 & Direction::Read.mask() != 0;
        let write = ready.0 & Direction::Write.mask() != 0;
        if read || write {
            // A strata task's waker only queues the task (workers drop
            // tasks themselves, never inside a waker), so it cannot come
            // back for this lock.
            let mut waiters = self.waiters();
            if read {
                waiters.wake(Direction::Read, to_wake);
            }
            if write {
                waiters.wake(Direction::Write, to_wake);
            }
        }
    }

    /// The `async fn` call `wait` stopped waiting in `dir` (it was
    /// dropped): forget its queued entry. The resident is left alone: it
    /// is one slot, shared by every wait of its task, and the next event
    /// or waiter replaces it.
    pub(crate) fn withdraw(&self, dir: Direction, wait: WaitId) {
        let removed = self.waiters().withdraw(dir, wait);
        // After the lock is released (see `Waiters::register`).
        drop(removed);
    }

    /// Fails the source for good and moves all waiters into `to_wake`.
    pub(crate) fn shutdown(&self, to_wake: &mut Vec<Waker>) {
        self.readiness.fetch_or(SHUTDOWN, Ordering::AcqRel);
        let mut w = self.waiters();
        to_wake.extend(w.read.waker.take());
        to_wake.extend(w.write.waker.take());
        to_wake.extend(w.more_readers.drain(..).map(|q| q.waker));
        to_wake.extend(w.more_writers.drain(..).map(|q| q.waker));
    }

    /// The source's event count; it changes with every event.
    pub(crate) fn tick(&self) -> usize {
        self.readiness.load(Ordering::Acquire) >> TICK_SHIFT
    }

    /// Whether `dir` may make progress, without registering a waker:
    /// `None` if not, an error if the source was shut down.
    pub(crate) fn check(&self, dir: Direction) -> Option<io::Result<ReadyEvent>> {
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
    #[inline]
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        // The common case, kept small enough to inline into every read and
        // write: readiness already set.
        let cur = self.readiness.load(Ordering::Acquire);
        if cur & SHUTDOWN == 0 && cur & dir.mask() != 0 {
            // Ready: the caller will do I/O; that spends budget, so a task
            // cannot loop on always-ready I/O without yielding.
            std::task::ready!(crate::executor::coop::poll_spend(cx));
            return Poll::Ready(Ok(ReadyEvent {
                tick: cur >> TICK_SHIFT,
                direction: dir,
            }));
        }
        self.poll_ready_slow(cx, dir)
    }

    /// `poll_ready` when not ready (or shut down): register, then look again.
    #[inline(never)]
    fn poll_ready_slow(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        if let Some(r) = self.check(dir) {
            std::task::ready!(crate::executor::coop::poll_spend(cx));
            return Poll::Ready(r);
        }
        let displaced = self.waiters().register(dir, cx.waker());
        // Dropped after the lock is released (see `Waiters::register`).
        drop(displaced);
        // An event may have landed between the check and the registration;
        // the reactor sets bits *before* taking waiters, so looking again
        // after registering closes the gap.
        match self.check(dir) {
            Some(r) => {
                std::task::ready!(crate::executor::coop::poll_spend(cx));
                Poll::Ready(r)
            }
            None => Poll::Pending,
        }
    }

    /// After a `WouldBlock`: forget the readiness `ev` reported, unless a
    /// newer event has arrived since, and give back the budget unit the
    /// `poll_ready` that reported it spent (the operation made no
    /// progress).
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        // Only if the direction is now waiting: if a newer event keeps it
        // ready, the caller retries, and that retry must spend budget, so
        // that a source whose events keep coming while it answers
        // `WouldBlock` cannot hold the worker (spent, the budget makes it
        // yield, as in tokio).
        if self.forget(ev) {
            crate::executor::coop::refund();
        }
    }

    /// Forgets the readiness `ev` reported, unless a newer event has
    /// arrived since; whether the direction is now waiting. (For an
    /// operation that spent no budget; see `clear_readiness`.)
    pub(crate) fn forget(&self, ev: ReadyEvent) -> bool {
        let clear = ev.direction.clearable();
        self.readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                if cur >> TICK_SHIFT == ev.tick && cur & clear != 0 {
                    Some(cur & !clear)
                } else {
                    None
                }
            })
            .is_ok_and(|prev| (prev & !clear) & ev.direction.mask() == 0)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wait_id_tests;
