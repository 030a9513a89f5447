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
mod tests {
    use super::*;

    /// `WaitId::enter` with the waker a call is polled with.
    pub(super) fn enter_with<R>(id: WaitId, waker: &Waker, f: impl FnOnce() -> R) -> R {
        id.enter(waker.data(), waker.vtable(), f)
    }
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
        // The only waiter is resident: handed out to be woken (outside the
        // lock), and kept.
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
    fn a_stale_clear_keeps_newer_readiness_however_many_events_came_before() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let mut cx = Context::from_waker(Waker::noop());
        for round in 0..100 {
            io.set_readiness(Ready(READABLE), &mut Vec::new());
            let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
                panic!("round {round}: expected readiness")
            };
            // A new event arrives before the task reports WouldBlock: the
            // clear must not erase it.
            io.set_readiness(Ready(READABLE), &mut Vec::new());
            io.clear_readiness(ev);
            assert!(
                io.poll_ready(&mut cx, Direction::Read).is_ready(),
                "round {round}: a stale clear erased newer readiness"
            );
        }
        let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("expected readiness")
        };
        io.clear_readiness(ev);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
    }

    /// Inside a budgeted poll: the units left, counted by spending them.
    fn budget_left() -> usize {
        let io = ScheduledIo::new(1, Ready(READABLE));
        let mut cx = Context::from_waker(Waker::noop());
        (0..10_000)
            .take_while(|_| io.poll_ready(&mut cx, Direction::Read).is_ready())
            .count()
    }

    #[test]
    fn a_would_block_gives_back_its_budget_unit_only_if_it_cleared_the_readiness() {
        use crate::executor::coop::{TASK_BUDGET, with_budget};
        let full = TASK_BUDGET as usize;
        let mut cx = Context::from_waker(Waker::noop());
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let ready = |cx: &mut Context<'_>| {
            io.set_readiness(Ready(READABLE), &mut Vec::new());
            let Poll::Ready(Ok(ev)) = io.poll_ready(cx, Direction::Read) else {
                panic!("the budget ran out")
            };
            ev
        };
        // Each WouldBlock that clears the readiness gives its unit back:
        // any number of them cost nothing.
        let left = with_budget(|| {
            for _ in 0..3 * full {
                io.clear_readiness(ready(&mut cx));
            }
            budget_left()
        });
        assert_eq!(left, full);
        // A second WouldBlock on the same readiness cleared nothing: no
        // second unit back.
        let left = with_budget(|| {
            for _ in 0..3 * full {
                let ev = ready(&mut cx);
                io.clear_readiness(ev);
                io.clear_readiness(ev);
            }
            budget_left()
        });
        assert_eq!(left, full);
        // A newer event keeps the direction ready: the retry spends.
        let left = with_budget(|| {
            for _ in 0..10 {
                let ev = ready(&mut cx);
                io.set_readiness(Ready(READABLE), &mut Vec::new());
                io.clear_readiness(ev);
            }
            budget_left()
        });
        assert_eq!(left, full - 10);
    }

    fn flag_waker() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        (flag, waker)
    }

    #[test]
    fn a_resident_that_stopped_waiting_is_not_woken_and_is_replaced() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let (a, wa) = flag_waker();
        let (b, wb) = flag_waker();
        let mut to_wake = Vec::new();
        // A waits (resident), B waits too in an `async fn` call (queued):
        // one event wakes both.
        assert!(
            io.poll_ready(&mut Context::from_waker(&wa), Direction::Read)
                .is_pending()
        );
        let cx = &mut Context::from_waker(&wb);
        assert!(
            enter_with(WaitId::next(), &wb, || io.poll_ready(cx, Direction::Read)).is_pending()
        );
        io.set_readiness(Ready(READABLE), &mut to_wake);
        assert_eq!(to_wake.len(), 2);
        to_wake.drain(..).for_each(Waker::wake);
        assert!(a.0.swap(false, Ordering::SeqCst));
        assert!(b.0.swap(false, Ordering::SeqCst));
        let Poll::Ready(Ok(ev)) = io.poll_ready(&mut Context::from_waker(&wa), Direction::Read)
        else {
            panic!("expected readiness")
        };
        io.clear_readiness(ev);
        // Neither waits now: the next event wakes nobody.
        io.set_readiness(Ready(READABLE), &mut to_wake);
        assert!(to_wake.is_empty());
        assert!(!a.0.load(Ordering::SeqCst) && !b.0.load(Ordering::SeqCst));
        let Poll::Ready(Ok(ev)) = io.poll_ready(&mut Context::from_waker(&wb), Direction::Read)
        else {
            panic!("expected readiness")
        };
        io.clear_readiness(ev);
        // B waits again: it replaces the idle resident A and is woken.
        assert!(
            io.poll_ready(&mut Context::from_waker(&wb), Direction::Read)
                .is_pending()
        );
        io.set_readiness(Ready(READABLE), &mut to_wake);
        assert_eq!(to_wake.len(), 1);
        to_wake.drain(..).for_each(Waker::wake);
        assert!(b.0.load(Ordering::SeqCst));
        assert!(!a.0.load(Ordering::SeqCst));
    }

    #[test]
    fn of_several_poll_star_waiters_only_the_latest_is_kept() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let (a, wa) = flag_waker();
        let (b, wb) = flag_waker();
        let (c, wc) = flag_waker();
        let (d, wd) = flag_waker();
        let mut to_wake = Vec::new();
        // A and B poll (no call id): B replaces A as the resident.
        for w in [&wa, &wb] {
            assert!(
                io.poll_ready(&mut Context::from_waker(w), Direction::Read)
                    .is_pending()
            );
        }
        // C waits in an `async fn` call (queued with its id), then D polls:
        // D takes the one entry without an id.
        let cx = &mut Context::from_waker(&wc);
        assert!(
            enter_with(WaitId::next(), &wc, || io.poll_ready(cx, Direction::Read)).is_pending()
        );
        assert!(
            io.poll_ready(&mut Context::from_waker(&wd), Direction::Read)
                .is_pending()
        );
        io.set_readiness(Ready(READABLE), &mut to_wake);
        assert_eq!(to_wake.len(), 2);
        to_wake.drain(..).for_each(Waker::wake);
        assert!(!a.0.load(Ordering::SeqCst) && !b.0.load(Ordering::SeqCst));
        assert!(c.0.load(Ordering::SeqCst) && d.0.load(Ordering::SeqCst));
    }

    #[test]
    fn a_resident_now_in_an_async_fn_is_not_replaced_by_a_poll_star_caller() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let (a, wa) = flag_waker();
        let (b, wb) = flag_waker();
        let mut to_wake = Vec::new();
        // A polls (no id), then waits again in an `async fn` call.
        assert!(
            io.poll_ready(&mut Context::from_waker(&wa), Direction::Read)
                .is_pending()
        );
        let cx = &mut Context::from_waker(&wa);
        assert!(
            enter_with(WaitId::next(), &wa, || io.poll_ready(cx, Direction::Read)).is_pending()
        );
        // B polls once: it must not take A's place.
        assert!(
            io.poll_ready(&mut Context::from_waker(&wb), Direction::Read)
                .is_pending()
        );
        io.set_readiness(Ready(READABLE), &mut to_wake);
        to_wake.drain(..).for_each(Waker::wake);
        assert!(
            a.0.load(Ordering::SeqCst),
            "the async fn waiter lost its wake-up"
        );
        assert!(b.0.load(Ordering::SeqCst));
    }

    #[test]
    fn a_poll_star_caller_queued_behind_an_async_fn_resident_is_replaced_by_the_next() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let (r, wr) = flag_waker();
        let (a, wa) = flag_waker();
        let (b, wb) = flag_waker();
        let mut to_wake = Vec::new();
        // R waits in an `async fn` call: the resident, with its id.
        let cx = &mut Context::from_waker(&wr);
        assert!(
            enter_with(WaitId::next(), &wr, || io.poll_ready(cx, Direction::Read)).is_pending()
        );
        // A polls (queued, no id), gives up; B polls: B takes A's entry.
        for w in [&wa, &wb] {
            assert!(
                io.poll_ready(&mut Context::from_waker(w), Direction::Read)
                    .is_pending()
            );
        }
        io.set_readiness(Ready(READABLE), &mut to_wake);
        assert_eq!(to_wake.len(), 2);
        to_wake.drain(..).for_each(Waker::wake);
        assert!(r.0.load(Ordering::SeqCst));
        assert!(
            b.0.load(Ordering::SeqCst),
            "the latest poll_* caller lost its wake-up"
        );
        assert!(!a.0.load(Ordering::SeqCst));
    }

    #[test]
    fn an_event_wakes_only_the_waiters_of_the_directions_it_reports() {
        for (event, woken) in [(READABLE, Direction::Read), (WRITABLE, Direction::Write)] {
            let io = ScheduledIo::new(1, Ready::EMPTY);
            let (r, wr) = flag_waker();
            let (w, ww) = flag_waker();
            let mut to_wake = Vec::new();
            for (waker, dir) in [(&wr, Direction::Read), (&ww, Direction::Write)] {
                assert!(
                    io.poll_ready(&mut Context::from_waker(waker), dir)
                        .is_pending()
                );
            }
            io.set_readiness(Ready(event), &mut to_wake);
            assert_eq!(to_wake.len(), 1, "a {woken:?} event woke both directions");
            to_wake.drain(..).for_each(Waker::wake);
            assert_eq!(r.0.load(Ordering::SeqCst), woken == Direction::Read);
            assert_eq!(w.0.load(Ordering::SeqCst), woken == Direction::Write);
        }
    }

    #[test]
    fn a_withdrawn_wait_takes_out_its_own_entry_only() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let (a, wa) = flag_waker();
        let (b, wb) = flag_waker();
        let (first, second) = (WaitId::next(), WaitId::next());
        let mut to_wake = Vec::new();
        // A is the resident; B waits through two calls, queued.
        assert!(
            io.poll_ready(&mut Context::from_waker(&wa), Direction::Read)
                .is_pending()
        );
        for id in [first, second] {
            let cx = &mut Context::from_waker(&wb);
            assert!(enter_with(id, &wb, || io.poll_ready(cx, Direction::Read)).is_pending());
        }
        // The first call is dropped: its entry goes, nobody is woken.
        io.withdraw(Direction::Read, first);
        assert!(!a.0.load(Ordering::SeqCst) && !b.0.load(Ordering::SeqCst));
        // The second call still waits, and the event wakes both tasks.
        io.set_readiness(Ready(READABLE), &mut to_wake);
        assert_eq!(to_wake.len(), 2);
        to_wake.drain(..).for_each(Waker::wake);
        assert!(a.0.load(Ordering::SeqCst) && b.0.load(Ordering::SeqCst));
    }

    #[test]
    fn a_write_would_block_clears_a_write_closed_bit_from_an_error_event() {
        // mio reports EPOLLOUT|EPOLLERR as write-closed; a WouldBlock proves
        // the direction is open, so the bit must not stay set.
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let mut cx = Context::from_waker(Waker::noop());
        io.set_readiness(Ready(WRITABLE | WRITE_CLOSED | ERROR), &mut Vec::new());
        let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Write) else {
            panic!("expected readiness")
        };
        io.clear_readiness(ev);
        assert!(io.poll_ready(&mut cx, Direction::Write).is_pending());
    }

    /// A closed bit survives a `WouldBlock` from before it (an older tick),
    /// and goes with one after it: a direction that says `WouldBlock` is
    /// not closed (a shut-down UDP socket or listener reports itself so),
    /// and must wait for its next event rather than be retried forever.
    #[test]
    fn closed_bits_outlive_older_would_blocks_only_and_shutdown_fails() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut to_wake = Vec::new();
        io.set_readiness(Ready(READABLE), &mut to_wake);
        let Poll::Ready(Ok(old)) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("expected readiness")
        };
        io.set_readiness(Ready(READABLE | READ_CLOSED), &mut to_wake);
        io.clear_readiness(old);
        let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("the close must survive a WouldBlock from before it")
        };
        io.clear_readiness(ev);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
        assert!(io.poll_ready(&mut cx, Direction::Write).is_pending());
        io.shutdown(&mut to_wake);
        assert!(matches!(
            io.poll_ready(&mut cx, Direction::Write),
            Poll::Ready(Err(_))
        ));
    }
}

#[cfg(test)]
mod wait_id_tests {
    use super::tests::enter_with;
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    fn flag_waker() -> (Arc<Flag>, Waker) {
        let f = Arc::new(Flag(false.into()));
        (f.clone(), Waker::from(f))
    }

    /// A poll of an async fn call that panics (caught by the task harness)
    /// must not leave its id as the thread's current wait id: later
    /// `poll_*` registrations of other tasks would carry it, be merged into
    /// one entry (the last waker wins), and lose wake-ups.
    #[test]
    fn a_panicking_wait_poll_does_not_leak_its_id() {
        let id = WaitId::next();
        let _ =
            std::panic::catch_unwind(|| enter_with(id, Waker::noop(), || panic!("poll panicked")));
        assert_eq!(
            WaitId::current(),
            WaitId::NONE,
            "stale wait id left on the thread"
        );
    }

    /// Same, observed as a lost wake-up: after a caught panic, two tasks
    /// waiting through `poll_*` behind an armed resident.
    #[test]
    fn after_a_panicking_wait_poll_its_task_s_poll_star_entries_carry_no_id() {
        // The panicking call's task (A) registers through `poll_*` next, with
        // the same waker: a stale thread-local id would be taken for a call.
        let id = WaitId::next();
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let (_r, wr) = flag_waker();
        let (_a, wa) = flag_waker();
        let _ = std::panic::catch_unwind(|| enter_with(id, &wa, || panic!("poll panicked")));
        for w in [&wr, &wa] {
            assert!(
                io.poll_ready(&mut Context::from_waker(w), Direction::Read)
                    .is_pending()
            );
        }
        assert!(
            io.waiters()
                .more_readers
                .iter()
                .all(|q| q.wait == WaitId::NONE),
            "a stale id on a poll_* entry"
        );
    }

    /// A waker run inside an async fn's poll (coop budget, deferred read)
    /// that polls another task's `poll_*` inline registers with the outer
    /// call's id; when the outer call is dropped its withdrawal takes the
    /// inner task's entry with it.
    #[test]
    fn an_inline_poll_star_inside_a_wait_poll_is_not_withdrawn_with_it() {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let (_r, wr) = flag_waker();
        let (a, wa) = flag_waker();
        let (_b, wb) = flag_waker();
        assert!(
            io.poll_ready(&mut Context::from_waker(&wr), Direction::Read)
                .is_pending()
        );
        let outer = WaitId::next();
        enter_with(outer, &wb, || {
            // B's call registers (queued, id `outer`)...
            assert!(
                io.poll_ready(&mut Context::from_waker(&wb), Direction::Read)
                    .is_pending()
            );
            // ...and, inside that poll, A's poll_* runs (an inline waker).
            assert!(
                io.poll_ready(&mut Context::from_waker(&wa), Direction::Read)
                    .is_pending()
            );
        });
        // B's call is dropped.
        io.withdraw(Direction::Read, outer);
        let mut to_wake = Vec::new();
        io.set_readiness(Ready(READABLE), &mut to_wake);
        to_wake.drain(..).for_each(Waker::wake);
        assert!(a.0.load(Ordering::SeqCst), "task A's wake-up was lost");
    }
}
