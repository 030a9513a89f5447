//! Timers on workers: the glue between the user's futures and each worker's
//! [`Wheel`].
//!
//! # Pieces
//!
//! * [`Entry`]: the state one timer shares between its future and the wheel,
//!   behind an `Arc`: a state word and a waker slot. A worker keeps the
//!   entries of timers cancelled on its thread in a small pool and reuses
//!   them, so the common "arm, then cancel" cycle allocates nothing in the
//!   steady state; otherwise it is one allocation per *registered* timer.
//! * [`Driver`]: a worker's wheel plus reusable buffers; thread-local, held in
//!   the worker's `WorkerLocal`, touched only on the worker's thread.
//! * [`Remote`]: an operation queue in the worker's `WorkerShared`, through
//!   which other threads register and cancel timers on that worker.
//! * [`Timer`]: what a `Sleep` holds; it runs the protocol below.
//!
//! # The state word
//!
//! ```text
//!   0 ..= MAX_TICK   pending, with this deadline (ms since the process origin)
//!   FIRED            the deadline passed; the waker was (or is being) woken
//!   CANCELLED        the future was dropped; the worker discards the entry
//!   SHUT_DOWN        the owning worker stopped; the entry is in no wheel
//! ```
//!
//! # Protocol
//!
//! Registration is lazy, on the first poll, so a `timeout` whose future
//! finishes at once never touches a wheel.
//!
//! * **On a worker thread** the timer goes straight into that worker's wheel
//!   and that worker becomes its *owner*. No lock, no atomic beyond the
//!   `Arc`.
//! * **On any other thread inside a runtime** (e.g. `Runtime::block_on`) an
//!   owner is picked round-robin and a `Register` op is pushed onto its
//!   [`Remote`] queue; the owner is woken if it sleeps (the same
//!   `sleeping`-flag handshake as remote task wake-ups).
//! * **Outside a runtime** polling panics with a message saying so.
//!
//! Firing happens on the owner: after each reactor poll the worker advances
//! its wheel to "now", CASes each due entry from its deadline to `FIRED` and
//! wakes the stored waker (after releasing every borrow, so a waker may
//! re-enter the runtime). A future polled on another thread sees `FIRED` in
//! the state word; the waker slot is a mutex, and both sides check the state
//! under it, so a wake-up cannot slip between "check" and "store waker".
//!
//! Cancellation (dropping the future) works like this:
//!
//! * on the owner's thread, removes the entry from the wheel at once, O(1),
//!   by the slab key stored in the entry; the key is trusted only if the slab
//!   slot still holds this very `Arc` (pointer equality), so a stale key
//!   after reuse is harmless. An entry found in the wheel there has no
//!   queued op and no other user, so this path needs no atomic at all and
//!   returns the entry to the pool;
//! * elsewhere, pushes a `Cancel` op onto the owner's queue *without* waking
//!   it: the owner handles it on its next turn, at the latest when the
//!   cancelled timer's own deadline wakes it;
//! * in both other cases the state is first swapped to `CANCELLED`, so that
//!   a `Register` op still queued for the entry is skipped.
//!
//! Moving a registered timer to another thread changes nothing: the owner
//! keeps firing it and the state word and waker slot are thread-safe.
//!
//! # Shutdown
//!
//! A stopping worker first drops its tasks (their timers cancel directly),
//! then closes its queue, marks every entry left in its wheel or queue
//! `SHUT_DOWN` and wakes (then drops) their wakers: the wheel keeps no waker
//! and so keeps no task alive. A timer that finds `SHUT_DOWN` registers
//! again with the runtime it is polled in; if it is polled outside any
//! runtime, or its new owner is stopping too, it panics with a message
//! saying that its runtime is gone, rather than hang.

use std::cell::RefCell;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::wheel::Wheel;
use crate::context;
use crate::executor::worker::WorkerShared;

const FIRED: u64 = u64::MAX;
const CANCELLED: u64 = u64::MAX - 1;
const SHUT_DOWN: u64 = u64::MAX - 2;
/// The largest deadline the state word can hold (about 584 million years).
const MAX_TICK: u64 = u64::MAX - 3;

// ---------------------------------------------------------------------------
// The clock

/// The instant ticks count from; shared by every worker and runtime so that
/// a tick means the same on every thread.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The first tick at or after `deadline` (rounded up: never early).
pub(crate) fn deadline_tick(deadline: Instant) -> u64 {
    let d = deadline.saturating_duration_since(origin());
    // u64 arithmetic (no u128 division: this is on every timer's path).
    let ms = d
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_nanos().div_ceil(1_000_000)));
    ms.min(MAX_TICK)
}

/// The current tick (rounded down).
fn now_tick() -> u64 {
    let d = Instant::now().saturating_duration_since(origin());
    let ms = d
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()));
    ms.min(MAX_TICK)
}

// ---------------------------------------------------------------------------
// Shared entry

/// The state one registered timer shares between its future and its owner.
#[derive(Debug)]
pub(crate) struct Entry {
    /// See "The state word" above.
    state: AtomicU64,
    waker: Mutex<Option<Waker>>,
    /// The entry's key in its owner's wheel; written and read only on the
    /// owner's thread (so `Relaxed`). `usize::MAX` until inserted.
    key: AtomicUsize,
}

enum EntryPoll {
    Pending,
    Fired,
    ShutDown,
}

impl Entry {
    fn new(tick: u64, waker: &Waker) -> Arc<Entry> {
        Arc::new(Entry {
            state: AtomicU64::new(tick),
            waker: Mutex::new(Some(waker.clone())),
            key: AtomicUsize::new(usize::MAX),
        })
    }

    fn poll(&self, waker: &Waker) -> EntryPoll {
        let state = self.state.load(Ordering::Acquire);
        if state == FIRED {
            return EntryPoll::Fired;
        }
        let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        // Re-check under the lock: a firing thread stores FIRED before it
        // takes the lock, so either we see FIRED or it sees our waker.
        match self.state.load(Ordering::Acquire) {
            FIRED => EntryPoll::Fired,
            SHUT_DOWN => EntryPoll::ShutDown,
            _ => {
                match &mut *slot {
                    Some(w) if w.will_wake(waker) => {}
                    other => *other = Some(waker.clone()),
                }
                EntryPoll::Pending
            }
        }
    }

    /// Moves a pending entry to `to` (FIRED or SHUT_DOWN) and returns its
    /// waker; `None` if it was cancelled (or already final).
    fn finish(&self, to: u64) -> Option<Waker> {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur > MAX_TICK {
                return None;
            }
            match self
                .state
                .compare_exchange(cur, to, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.waker.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn take_waker(&self) -> Option<Waker> {
        self.waker.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

// ---------------------------------------------------------------------------
// Worker side

/// A cross-thread operation on a worker's wheel.
#[derive(Debug)]
pub(crate) enum Op {
    Register(Arc<Entry>),
    Cancel(Arc<Entry>),
}

/// The queue through which other threads reach a worker's wheel; lives in
/// the worker's shared state.
#[derive(Debug, Default)]
pub(crate) struct Remote {
    ops: Mutex<Ops>,
    /// Set (under the lock) when `ops` is non-empty.
    has_ops: AtomicBool,
}

#[derive(Debug, Default)]
struct Ops {
    queue: Vec<Op>,
    /// Set when the worker stops; later ops are refused.
    closed: bool,
}

impl Remote {
    pub(crate) fn has_ops(&self) -> bool {
        self.has_ops.load(Ordering::SeqCst)
    }

    /// Queues `op`; gives it back if the worker has stopped.
    pub(crate) fn push(&self, op: Op) -> Result<(), Op> {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        if ops.closed {
            return Err(op);
        }
        ops.queue.push(op);
        self.has_ops.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// A worker's timers: its wheel and reusable buffers.
#[derive(Debug)]
pub(crate) struct Driver {
    wheel: Wheel<Arc<Entry>>,
    /// Entries taken out of the wheel, to finish once borrows are released.
    due: Vec<Arc<Entry>>,
    /// A spare op buffer swapped with the remote queue.
    ops: Vec<Op>,
    /// Entries of timers cancelled on this thread, kept for reuse so that
    /// the common "arm, then cancel" cycle does not allocate. Every entry
    /// here is unique (no other `Arc` to it) and holds no waker.
    pool: Vec<Arc<Entry>>,
}

/// How many cancelled entries a worker keeps for reuse (about 64 bytes
/// each).
const POOL_MAX: usize = 1024;

impl Driver {
    pub(crate) fn new() -> Self {
        Driver {
            wheel: Wheel::new(now_tick()),
            due: Vec::new(),
            ops: Vec::new(),
            pool: Vec::new(),
        }
    }

    /// A pending entry for `tick`, reused from the pool if possible.
    fn new_entry(&mut self, tick: u64, waker: &Waker) -> Arc<Entry> {
        let Some(mut entry) = self.pool.pop() else {
            return Entry::new(tick, waker);
        };
        let e = Arc::get_mut(&mut entry).expect("pooled timer entries are unique");
        *e.state.get_mut() = tick;
        *e.waker.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(waker.clone());
        *e.key.get_mut() = usize::MAX;
        entry
    }

    /// Cancels `slot`'s entry if it is in this wheel, without atomics: on
    /// the owner's thread, an entry in the wheel has no queued op and no
    /// other user. Takes the entry (into the pool) and returns its waker,
    /// for the caller to drop once no borrow is held. Leaves `slot` alone if
    /// the entry is not in the wheel.
    fn cancel_local(&mut self, slot: &mut Option<Arc<Entry>>) -> Option<Waker> {
        let in_wheel = self.remove(slot.as_ref()?)?;
        drop(in_wheel);
        let mut entry = slot.take()?;
        let waker = match Arc::get_mut(&mut entry) {
            Some(e) => e.waker.get_mut().unwrap_or_else(|e| e.into_inner()).take(),
            // Not unique after all; let the caller drop it.
            None => {
                *slot = Some(entry);
                return None;
            }
        };
        if self.pool.len() < POOL_MAX {
            self.pool.push(entry);
        }
        waker
    }

    /// Inserts a pending entry; `false` if it is already due.
    fn insert(&mut self, entry: &Arc<Entry>) -> bool {
        let tick = entry.state.load(Ordering::Acquire);
        if tick > MAX_TICK {
            // Cancelled before the worker got to it.
            return true;
        }
        match self.wheel.insert(tick, entry.clone()) {
            Ok(key) => {
                entry.key.store(key, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Takes `entry` out of the wheel if it is there.
    fn remove(&mut self, entry: &Arc<Entry>) -> Option<Arc<Entry>> {
        let key = entry.key.load(Ordering::Relaxed);
        match self.wheel.get(key) {
            Some(e) if Arc::ptr_eq(e, entry) => self.wheel.remove(key),
            _ => None,
        }
    }

    /// Number of timers in the wheel.
    pub(crate) fn len(&self) -> usize {
        self.wheel.len()
    }

    /// Capacity of the wheel's node slab.
    pub(crate) fn capacity(&self) -> usize {
        self.wheel.capacity()
    }
}

/// Applies the ops other threads queued for this worker.
pub(crate) fn process_ops(driver: &RefCell<Driver>, remote: &Remote) {
    let mut ops = mem::take(&mut driver.borrow_mut().ops);
    {
        let mut q = remote.ops.lock().unwrap_or_else(|e| e.into_inner());
        mem::swap(&mut q.queue, &mut ops);
        remote.has_ops.store(false, Ordering::SeqCst);
    }
    let mut due = {
        let mut d = driver.borrow_mut();
        let mut due = mem::take(&mut d.due);
        for op in &ops {
            match op {
                Op::Register(entry) => {
                    if !d.insert(entry) {
                        due.push(entry.clone());
                    }
                }
                Op::Cancel(entry) => {
                    if let Some(e) = d.remove(entry) {
                        due.push(e);
                    }
                }
            }
        }
        due
    };
    // Outside the borrow: dropping an entry or waking may re-enter.
    ops.clear();
    finish_all(&mut due, FIRED);
    let mut d = driver.borrow_mut();
    d.ops = ops;
    d.due = due;
}

/// Fires every timer whose deadline has passed.
pub(crate) fn fire_due(driver: &RefCell<Driver>) {
    let mut due = {
        let mut d = driver.borrow_mut();
        if d.wheel.is_empty() {
            return;
        }
        let mut due = mem::take(&mut d.due);
        d.wheel.advance(now_tick(), |e| due.push(e));
        due
    };
    finish_all(&mut due, FIRED);
    driver.borrow_mut().due = due;
}

/// How long the worker may block: until the wheel's next wake-up, or
/// forever (`None`) if it has no timers.
pub(crate) fn poll_timeout(driver: &RefCell<Driver>) -> Option<Duration> {
    let next = driver.borrow().wheel.next_wakeup()?;
    Some(Duration::from_millis(next.saturating_sub(now_tick())))
}

/// Stops this worker's timers: refuses further ops and marks every entry
/// left `SHUT_DOWN`, waking its waker; see "Shutdown" above.
pub(crate) fn shut_down(driver: &RefCell<Driver>, remote: &Remote) {
    let ops = {
        let mut q = remote.ops.lock().unwrap_or_else(|e| e.into_inner());
        q.closed = true;
        remote.has_ops.store(false, Ordering::SeqCst);
        mem::take(&mut q.queue)
    };
    let mut left: Vec<Arc<Entry>> = driver.borrow_mut().wheel.drain().collect();
    for op in ops {
        if let Op::Register(e) = op {
            left.push(e);
        }
    }
    finish_all(&mut left, SHUT_DOWN);
}

/// Moves each entry to `to`, wakes its waker, and drops the entry, all with
/// no borrow held. Cancelled entries are just dropped.
fn finish_all(entries: &mut Vec<Arc<Entry>>, to: u64) {
    for e in entries.drain(..) {
        if let Some(w) = e.finish(to) {
            w.wake();
        }
    }
}

// ---------------------------------------------------------------------------
// Future side

/// One timer as its future holds it: a deadline and, once polled, the
/// registration with its owning worker.
#[derive(Debug)]
pub(crate) struct Timer {
    /// Converted to a tick only on registration: a timer that is never
    /// polled (a `timeout` whose future is ready at once) costs nothing.
    deadline: Instant,
    reg: Option<Registration>,
}

#[derive(Debug)]
struct Registration {
    entry: Arc<Entry>,
    owner: Arc<WorkerShared>,
}

impl Timer {
    pub(crate) fn new(deadline: Instant) -> Timer {
        Timer {
            deadline,
            reg: None,
        }
    }

    /// `true` once the timer has fired (as seen by its last poll or reset).
    pub(crate) fn is_fired(&self) -> bool {
        self.reg
            .as_ref()
            .is_some_and(|r| r.entry.state.load(Ordering::Acquire) == FIRED)
    }

    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(reg) = &self.reg {
            match reg.entry.poll(cx.waker()) {
                EntryPoll::Fired => return Poll::Ready(()),
                EntryPoll::Pending => return Poll::Pending,
                // Its runtime is gone: try the one we are polled in.
                EntryPoll::ShutDown => self.reg = None,
            }
        }
        self.register(cx)
    }

    fn register(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(worker) = context::try_worker() {
            let owner = worker.shared().clone();
            let (entry, inserted) = {
                let mut d = worker.timers().borrow_mut();
                let entry = d.new_entry(deadline_tick(self.deadline), cx.waker());
                let inserted = d.insert(&entry);
                (entry, inserted)
            };
            if !inserted {
                // Already due: complete now, keeping the (fired) entry so
                // that a later `reset` can reuse it.
                entry.state.store(FIRED, Ordering::Release);
                self.reg = Some(Registration { entry, owner });
                return Poll::Ready(());
            }
            self.reg = Some(Registration { entry, owner });
            return Poll::Pending;
        }
        let entry = Entry::new(deadline_tick(self.deadline), cx.waker());
        let Some(handle) = context::try_handle() else {
            panic!(
                "strata: a timer (`Sleep`, `timeout` or `Interval`) was polled outside a \
                 strata runtime; timers need a runtime to fire them. Poll it from a task \
                 or from a future passed to `Runtime::block_on` / `strata_rt::run`."
            );
        };
        let owner = handle.next_worker().clone();
        if owner.push_timer_op(Op::Register(entry.clone())).is_err() {
            panic!(
                "strata: a timer was polled after the runtime that drives it shut down; \
                 it can never fire."
            );
        }
        self.reg = Some(Registration { entry, owner });
        Poll::Pending
    }

    /// Sets a new deadline. A pending or fired registration on this thread's
    /// worker is moved in place; otherwise it is cancelled, and its waker is
    /// woken so that the next poll registers the new deadline.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        let Some(reg) = &self.reg else { return };
        let tick = deadline_tick(deadline);
        let moved = context::with_worker_if(reg.owner.uid(), |w| {
            let state = reg.entry.state.load(Ordering::Acquire);
            if state != FIRED && state > MAX_TICK {
                return None;
            }
            let mut d = w.timers().borrow_mut();
            let old = d.remove(&reg.entry);
            if old.is_none() && state != FIRED {
                // Pending but not in the wheel: its `Register` op is still
                // queued. Take the slow path rather than insert it twice.
                return None;
            }
            reg.entry.state.store(tick, Ordering::Release);
            let inserted = d.insert(&reg.entry);
            Some((old, inserted))
        })
        .flatten();
        match moved {
            Some((old, true)) => drop(old),
            Some((old, false)) => {
                // Due at once: fire it, outside the wheel's borrow.
                drop(old);
                if let Some(w) = reg.entry.finish(FIRED) {
                    w.wake();
                }
            }
            None => {
                let waker = reg.entry.take_waker();
                self.cancel();
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
    }

    fn cancel(&mut self) {
        let Some(Registration { entry, owner }) = self.reg.take() else {
            return;
        };
        // The common case: dropped on the owner's thread while in its wheel.
        let mut slot = Some(entry);
        let on_owner = context::with_worker_if(owner.uid(), |w| {
            w.timers().borrow_mut().cancel_local(&mut slot)
        });
        // Dropped after the borrow: it may be the last reference to a task.
        drop(on_owner);
        let Some(entry) = slot else { return };
        let prev = entry.state.swap(CANCELLED, Ordering::AcqRel);
        if prev > MAX_TICK {
            // Fired or shut down: in no wheel.
            return;
        }
        if context::with_worker_if(owner.uid(), |_| ()).is_some() {
            // On the owner's thread but not in its wheel: the `Register` op
            // is still queued, and the worker will skip it as cancelled.
            return;
        }
        // Elsewhere. A refused op means the owner is gone, and its wheel
        // with it.
        drop(owner.push_timer_op(Op::Cancel(entry)));
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Number of timers in the current worker's wheel and its slab capacity.
///
/// # Panics
///
/// Panics if not called on a worker thread.
pub(crate) fn current_wheel_stats() -> (usize, usize) {
    let worker =
        context::try_worker().expect("strata: wheel stats are only available on a worker thread");
    let d = worker.timers().borrow();
    (d.len(), d.capacity())
}
