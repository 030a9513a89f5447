//! Timers on workers: the glue between the user's futures and each worker's
//! [`Wheel`].
//!
//! # Pieces
//!
//! * [`Entry`]: the state one timer shares between its future and the wheel,
//!   behind an `Arc`: a state word, a waker slot, the owning worker, and the
//!   wheel's intrusive [`Links`]. It is the timer's only allocation: the
//!   wheel threads its lists through the entries themselves.
//! * [`Driver`]: a worker's wheel, reusable buffers and a pool of spare
//!   entries; thread-local, held in the worker's `WorkerLocal`, touched only
//!   on the worker's thread.
//! * [`Remote`]: an operation queue in the worker's `WorkerShared`, through
//!   which other threads register and cancel timers on that worker.
//! * [`Timer`]: what a `Sleep` holds (its deadline and, once registered, its
//!   entry); it runs the protocol below.
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
//! # Ownership and threads
//!
//! An entry belongs to one worker, its *owner*, for its whole life. Only the
//! owner's thread touches the entry's links (through its wheel), so they are
//! plain cells; the state word and the waker slot are thread-safe. While an
//! entry is linked, the wheel holds one strong reference to it (taken with
//! `Arc::into_raw`, given back when the entry is unlinked), so an entry
//! whose future was dropped elsewhere stays valid until the owner unlinks
//! it.
//!
//! # Protocol
//!
//! Registration is lazy, on the first poll, so a `timeout` whose future
//! finishes at once never touches a wheel.
//!
//! * **On a worker thread** the timer goes straight into that worker's wheel
//!   and that worker becomes its owner. No lock; the entry comes from the
//!   worker's pool when it can (see "Pool" below), and then the only atomic
//!   operation is cloning the waker, and not even that when the spare
//!   entry still holds a waker of the same task.
//! * **On any other thread inside a runtime** (e.g. `Runtime::block_on`) an
//!   owner is picked round-robin and a `Register` op is pushed onto its
//!   [`Remote`] queue; the owner is woken if it sleeps (the same
//!   `sleeping`-flag handshake as remote task wake-ups).
//! * **Outside a runtime** polling panics with a message saying so, unless
//!   a reset left the timer a worker to register with (see below).
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
//! * on the owner's thread, an entry still linked is unlinked at once, O(1),
//!   through its own links. Such an entry has no queued op and no user
//!   besides the future and the wheel (checked: exactly two strong
//!   references), so this path needs no atomic read-modify-write at all: the
//!   entry goes back to the pool with both references;
//! * elsewhere, pushes a `Cancel` op onto the owner's queue *without* waking
//!   it: the owner handles it on its next turn, at the latest when the
//!   cancelled timer's own deadline wakes it;
//! * in both other cases the state is first swapped to `CANCELLED`, so that
//!   a `Register` op still queued for the entry is skipped.
//!
//! Moving a registered timer to another thread changes nothing: the owner
//! keeps firing it and the state word and waker slot are thread-safe. A
//! reset is the exception: made on another worker, it moves the timer into
//! that worker's wheel; made off the workers, it postpones a pending timer
//! in place (below), and otherwise (the timer fired, or the new deadline
//! is earlier) it cancels the registration and, in `block_on`, leaves the
//! next poll to make one (with the old owner if that poll is made outside
//! any runtime), or, outside any runtime, registers the new deadline with
//! the old owner at once (see `Timer::reregister`).
//!
//! # Postponing
//!
//! Off the workers, a reset that moves a pending timer's deadline later
//! only CASes its state word from the old deadline to the new one: no op,
//! no allocation, no wake-up of the owner, so a loop of such resets (an
//! `Interval` catching up in `block_on`, a plain thread pushing a deadline
//! back) queues nothing while the owner is busy. The wheel still files the
//! entry under the old deadline (its links keep their own); when the owner
//! finds it due there, or registers it, it fires the entry only if the
//! state word's deadline has passed, by a CAS from that deadline to
//! `FIRED`, and otherwise links it again at that deadline. The CAS decides
//! every race: a postpone that loses to the firing sees `FIRED` and takes
//! the slow path; a firing that loses re-reads the new deadline.
//!
//! # Pool
//!
//! A worker keeps up to [`POOL_MAX`] spare entries. A spare entry has
//! exactly two strong references, both held by the pool: on reuse one goes
//! to the future and one to the wheel, and a timer cancelled on its owner's
//! thread gives both back, so the "arm, then cancel" cycle neither allocates
//! nor touches a reference count. A fired timer dropped on its owner's
//! thread with no other reference is pooled too (one count added).
//!
//! A spare entry keeps the waker it had until the end of the worker's loop
//! turn: a task that arms and cancels timers in a loop then neither clones
//! nor drops its waker (`will_wake` decides on reuse). At the end of each
//! turn (in [`fire_due`]), and before it sleeps, the worker drops the
//! wakers of the entries pooled during the turn, outside any borrow, so the
//! pool keeps no task alive past the turn it ran in, nor while the worker
//! is idle.
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
use std::fmt;
use std::mem;
use std::ptr::NonNull;
use std::sync::atomic::{self, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::wheel::{Linked, Links, Wheel};
use crate::context;
use crate::executor::worker::WorkerShared;

mod timer;
pub(crate) use timer::Timer;

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
pub(crate) struct Entry {
    /// See "The state word" above.
    state: AtomicU64,
    waker: Mutex<Option<Waker>>,
    /// The worker whose wheel fires this entry, for the entry's whole life.
    owner: Arc<WorkerShared>,
    /// The wheel's links; touched only on the owner's thread.
    links: Links<Entry>,
}

// SAFETY: every field but `links` is `Send + Sync`. `links` is only touched
// on the owner's worker thread: by its wheel, and by `Driver` methods, which
// run there and are only given entries whose `owner` is their worker.
unsafe impl Send for Entry {}
// SAFETY: as above.
unsafe impl Sync for Entry {}

// SAFETY: returns the entry's own `links` field.
unsafe impl Linked for Entry {
    fn links(&self) -> &Links<Entry> {
        &self.links
    }
}

// An entry (plus the `Arc`'s two counts) fits glibc's 96-byte chunk; keep it
// from growing unnoticed.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(mem::size_of::<Entry>() == 72);

impl fmt::Debug for Entry {
    // Not the links: any thread may format an entry (e.g. in a queued op),
    // and only the owner's thread may read them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("state", &self.state.load(Ordering::Relaxed))
            .field("owner", &self.owner.uid())
            .finish_non_exhaustive()
    }
}

enum EntryPoll {
    Pending,
    Fired,
    ShutDown,
}

impl Entry {
    fn new(tick: u64, waker: &Waker, owner: Arc<WorkerShared>) -> Arc<Entry> {
        Arc::new(Entry {
            state: AtomicU64::new(tick),
            waker: Mutex::new(Some(waker.clone())),
            owner,
            links: Links::new(),
        })
    }

    fn poll(&self, waker: &Waker) -> EntryPoll {
        let state = self.state.load(Ordering::Acquire);
        if state == FIRED {
            return EntryPoll::Fired;
        }
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
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

    /// Off the workers, for the timer's holder: moves a pending entry's
    /// deadline to `tick` in place if that is not earlier, without its
    /// owner (see "Postponing" above); `false` if it cannot (the entry
    /// fired, was cancelled or shut down, or `tick` is earlier).
    fn postpone(&self, tick: u64) -> bool {
        let cur = self.state.load(Ordering::Acquire);
        cur <= MAX_TICK
            && tick >= cur
            && (tick == cur
                || self
                    .state
                    .compare_exchange(cur, tick, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok())
    }

    /// On the owner, for an entry found due (by the wheel, or by a
    /// registration): moves it to `FIRED` (`Ok(true)`) unless it was
    /// cancelled (`Ok(false)`) or postponed past now (`Err(tick)`: link it
    /// again at `tick`). `now` is the current tick, read when first needed.
    fn fire(&self, now: &mut Option<u64>) -> Result<bool, u64> {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur > MAX_TICK {
                return Ok(false);
            }
            if cur > *now.get_or_insert_with(now_tick) {
                return Err(cur);
            }
            match self
                .state
                .compare_exchange(cur, FIRED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(true),
                Err(actual) => cur = actual,
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
        self.take_waker()
    }

    fn take_waker(&self) -> Option<Waker> {
        self.waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Gives up `entry`'s strong reference as a pointer (for the wheel or the
/// pool); [`from_ptr`] takes it back.
fn into_ptr(entry: Arc<Entry>) -> NonNull<Entry> {
    // SAFETY: `Arc::into_raw` never returns null.
    unsafe { NonNull::new_unchecked(Arc::into_raw(entry).cast_mut()) }
}

/// Takes back one strong reference given up by [`into_ptr`].
///
/// # Safety
///
/// `ptr` must come from `into_ptr` (or `Arc::as_ptr` of the same entry), and
/// the caller must own the strong reference it stands for.
unsafe fn from_ptr(ptr: NonNull<Entry>) -> Arc<Entry> {
    // SAFETY: the caller's contract.
    unsafe { Arc::from_raw(ptr.as_ptr()) }
}

/// The entry behind `entry`, exclusively.
///
/// # Safety
///
/// The caller must own every strong reference to the entry (there are never
/// weak ones), so nothing else can reach it while the borrow lasts.
unsafe fn exclusive<'a>(ptr: NonNull<Entry>) -> &'a mut Entry {
    // SAFETY: the caller's contract.
    unsafe { &mut *ptr.as_ptr() }
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
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        if ops.closed {
            return Err(op);
        }
        ops.queue.push(op);
        self.has_ops.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// A worker's timers: its wheel, reusable buffers and spare entries.
#[derive(Debug)]
pub(crate) struct Driver {
    /// Holds one strong reference to each linked entry.
    wheel: Wheel<Entry>,
    /// Entries taken out of the wheel, to drop once borrows are released.
    due: Vec<Arc<Entry>>,
    /// The wakers of the entries just fired, to wake once borrows are
    /// released.
    fired: Vec<Waker>,
    /// A spare op buffer swapped with the remote queue.
    ops: Vec<Op>,
    /// Spare entries of this worker; each has exactly two strong
    /// references, both held here. See "Pool" above.
    pool: Vec<NonNull<Entry>>,
    /// The spare entries `pool[..clean]` hold no waker.
    clean: usize,
    /// A buffer for wakers to drop once no borrow is held.
    wakers: Vec<Waker>,
}

/// How many spare entries a worker keeps (about 100 bytes each).
const POOL_MAX: usize = 1024;

impl Driver {
    pub(crate) fn new() -> Self {
        Driver {
            wheel: Wheel::new(now_tick()),
            due: Vec::new(),
            fired: Vec::new(),
            ops: Vec::new(),
            pool: Vec::new(),
            clean: 0,
            wakers: Vec::new(),
        }
    }

    /// A pending entry for `tick`, owned by `owner` (this driver's worker),
    /// linked into the wheel. The flag is `false` if the deadline is already
    /// due: the entry is then pending but not linked. Also returns a spare
    /// entry's previous waker, for the caller to drop once no borrow is held.
    fn register(
        &mut self,
        owner: &Arc<WorkerShared>,
        tick: u64,
        waker: &Waker,
    ) -> (Arc<Entry>, bool, Option<Waker>) {
        let mut old = None;
        let (entry, wheel_ref) = match self.pool.pop() {
            Some(ptr) => {
                self.clean = self.clean.min(self.pool.len());
                // SAFETY: a spare entry's two references are the pool's,
                // now ours: nothing else can reach it.
                let e = unsafe { exclusive(ptr) };
                debug_assert!(Arc::ptr_eq(&e.owner, owner));
                *e.state.get_mut() = tick;
                match e.waker.get_mut().unwrap_or_else(PoisonError::into_inner) {
                    // The same task arming timers in a loop: keep its waker.
                    Some(w) if w.will_wake(waker) => {}
                    slot => old = slot.replace(waker.clone()),
                }
                // SAFETY: the pool's two references, handed out.
                unsafe { (from_ptr(ptr), from_ptr(ptr)) }
            }
            None => {
                let entry = Entry::new(tick, waker, owner.clone());
                let wheel_ref = entry.clone();
                (entry, wheel_ref)
            }
        };
        let linked = self.link(tick, wheel_ref).is_ok();
        (entry, linked, old)
    }

    /// Links the entry of `wheel_ref`, whose reference the wheel keeps; if
    /// `tick` is already due, gives the reference back unlinked.
    ///
    /// The entry must be owned by this driver's worker and be unlinked.
    fn link(&mut self, tick: u64, wheel_ref: Arc<Entry>) -> Result<(), Arc<Entry>> {
        let ptr = into_ptr(wheel_ref);
        // SAFETY: the wheel holds the strong reference `ptr` stands for
        // until it hands the pointer back, so the entry stays alive; it is
        // unlinked (caller) and owned by this worker, so only this thread
        // touches its links.
        if unsafe { self.wheel.insert(tick, ptr) } {
            Ok(())
        } else {
            // SAFETY: not linked: the reference is still ours.
            Err(unsafe { from_ptr(ptr) })
        }
    }

    /// Unlinks `entry` (owned by this driver's worker) if it is linked, and
    /// returns the reference the wheel held.
    fn unlink(&mut self, entry: &Arc<Entry>) -> Option<Arc<Entry>> {
        debug_assert!(context::with_worker_if(entry.owner.uid(), |_| ()).is_some());
        // `as_ptr` keeps the provenance of the whole allocation, which
        // `from_ptr` needs.
        // SAFETY: `Arc::as_ptr` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(Arc::as_ptr(entry).cast_mut()) };
        // SAFETY: alive (`entry` is a reference to it); owned by this
        // worker, so if linked, then in this wheel.
        if unsafe { self.wheel.remove(ptr) } {
            // SAFETY: unlinked: the wheel's reference is ours now.
            Some(unsafe { from_ptr(ptr) })
        } else {
            None
        }
    }

    /// Cancels the entry in `slot` on its owner's thread if that can be done
    /// here and now: if it is linked, or fired and unshared. Takes it (into
    /// the pool, with its waker) and returns a waker to drop once no borrow
    /// is held, if any. Otherwise leaves `slot` alone.
    fn cancel_local(&mut self, slot: &mut Option<Arc<Entry>>) -> Option<Waker> {
        let entry = slot.as_ref()?;
        if let Some(wheel_ref) = self.unlink(entry) {
            let entry = slot.take()?;
            if Arc::strong_count(&entry) != 2 {
                // Not expected (a linked entry has no user besides its
                // future and the wheel), but then someone else may look at
                // it: cancel it the shared way.
                entry.state.store(CANCELLED, Ordering::Release);
                let waker = entry.take_waker();
                drop((entry, wheel_ref));
                return waker;
            }
            // Synchronise with any earlier release of a third reference,
            // as `Arc::get_mut` does.
            atomic::fence(Ordering::Acquire);
            mem::forget(wheel_ref);
            return self.recycle(into_ptr(entry));
        }
        if entry.state.load(Ordering::Acquire) == FIRED && Arc::strong_count(entry) == 1 {
            atomic::fence(Ordering::Acquire);
            let ptr = into_ptr(slot.take()?);
            // SAFETY: ours (the only reference); the pool keeps two.
            unsafe { Arc::increment_strong_count(ptr.as_ptr()) };
            return self.recycle(ptr);
        }
        None
    }

    /// Puts an unlinked entry of this worker into the pool, waker and all
    /// (see "Pool" above), or frees it if the pool is full and returns its
    /// waker.
    ///
    /// `ptr` must stand for two strong references, the only ones, owned by
    /// the caller.
    fn recycle(&mut self, ptr: NonNull<Entry>) -> Option<Waker> {
        if self.pool.len() < POOL_MAX {
            self.pool.push(ptr);
            return None;
        }
        // SAFETY: the caller owns every reference.
        let waker = unsafe { exclusive(ptr) }
            .waker
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // SAFETY: the caller's two references; the waker is out, so
        // dropping the entry runs no foreign code.
        drop(unsafe { (from_ptr(ptr), from_ptr(ptr)) });
        waker
    }

    /// Moves the wakers of the spare entries pooled since the last call
    /// into `self.wakers`.
    fn take_spare_wakers(&mut self) {
        for &ptr in &self.pool[self.clean..] {
            // SAFETY: a spare entry's two references are the pool's.
            let e = unsafe { exclusive(ptr) };
            if let Some(w) = e
                .waker
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                self.wakers.push(w);
            }
        }
        self.clean = self.pool.len();
    }

    /// Frees the spare entries, whose wakers must have been taken.
    fn clear_pool(&mut self) {
        debug_assert_eq!(self.clean, self.pool.len(), "spare entries with wakers");
        for ptr in self.pool.drain(..) {
            // SAFETY: a spare entry's two references are the pool's.
            drop(unsafe { (from_ptr(ptr), from_ptr(ptr)) });
        }
        self.clean = 0;
    }

    /// Fires the entries in `due`, found due at `now` (the current tick,
    /// read when first needed), taking each one's waker into `self.fired`
    /// as it moves it to `FIRED`, and links again the ones postponed past
    /// `now`; the rest stay in `due`, to be dropped with no borrow held.
    ///
    /// The waker goes with the state change: a waker woken before a later
    /// entry of the batch may reset that entry on this thread, and the
    /// waker a poll then stores is for the new deadline, not this firing.
    fn fire(&mut self, due: &mut Vec<Arc<Entry>>, mut now: Option<u64>) {
        let mut i = 0;
        while i < due.len() {
            match due[i].fire(&mut now) {
                Ok(true) => {
                    self.fired.extend(due[i].take_waker());
                    i += 1;
                }
                Ok(false) => i += 1,
                Err(tick) => {
                    let e = due.swap_remove(i);
                    if let Err(e) = self.link(tick, e) {
                        // Not expected (`tick` is past the wheel's clock);
                        // then it is due after all.
                        if e.fire(&mut Some(MAX_TICK)) == Ok(true) {
                            self.fired.extend(e.take_waker());
                        }
                        // At the end, where the loop finds it fired (and
                        // keeps it, to drop); `due[i]` is the entry that
                        // `swap_remove` moved there, still to look at.
                        due.push(e);
                    }
                }
            }
        }
    }

    /// Number of timers in the wheel.
    pub(crate) fn len(&self) -> usize {
        self.wheel.len()
    }

    /// Number of spare entries kept for reuse.
    pub(crate) fn pooled(&self) -> usize {
        self.pool.len()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Normally there is none left: `shut_down` takes them.
        self.take_spare_wakers();
        self.wakers.clear();
        self.clear_pool();
        // Normally empty: `shut_down` drains the wheel first.
        // SAFETY: each pointer handed out stands for the wheel's reference.
        self.wheel.drain(|ptr| drop(unsafe { from_ptr(ptr) }));
    }
}

/// Applies the ops other threads queued for this worker.
pub(crate) fn process_ops(driver: &RefCell<Driver>, remote: &Remote) {
    let mut ops = mem::take(&mut driver.borrow_mut().ops);
    {
        let mut q = remote.ops.lock().unwrap_or_else(PoisonError::into_inner);
        mem::swap(&mut q.queue, &mut ops);
        remote.has_ops.store(false, Ordering::SeqCst);
    }
    let mut due = {
        let mut d = driver.borrow_mut();
        let mut due = mem::take(&mut d.due);
        for op in &ops {
            match op {
                Op::Register(entry) => {
                    let tick = entry.state.load(Ordering::Acquire);
                    if tick > MAX_TICK {
                        // Cancelled before the worker got to it.
                        continue;
                    }
                    if let Err(e) = d.link(tick, entry.clone()) {
                        // Already due.
                        due.push(e);
                    }
                }
                Op::Cancel(entry) => {
                    if let Some(e) = d.unlink(entry) {
                        due.push(e);
                    }
                }
            }
        }
        if !due.is_empty() {
            d.fire(&mut due, None);
        }
        due
    };
    // Outside the borrow: dropping an entry or waking may re-enter.
    ops.clear();
    wake_fired(driver, &mut due);
    driver.borrow_mut().ops = ops;
}

/// Drops the wakers that spare entries kept during this loop turn, with no
/// borrow held (dropping a waker may drop a task, whose destructor may wake
/// others); `true` if there were any. The worker calls it before it sleeps
/// too, so that an idle worker keeps no task alive.
#[inline]
pub(crate) fn release_spare_wakers(driver: &RefCell<Driver>) -> bool {
    let kept = {
        let d = driver.borrow();
        d.clean != d.pool.len()
    };
    if kept {
        drop_spare_wakers(driver);
    }
    kept
}

/// The work of [`release_spare_wakers`], out of the worker's loop. Dropping
/// a waker may drop a task that held sleeps, whose entries come to the
/// pool with their wakers: those go too.
#[inline(never)]
fn drop_spare_wakers(driver: &RefCell<Driver>) {
    loop {
        let mut wakers = {
            let mut d = driver.borrow_mut();
            if d.clean == d.pool.len() {
                return;
            }
            d.take_spare_wakers();
            mem::take(&mut d.wakers)
        };
        wakers.clear();
        driver.borrow_mut().wakers = wakers;
    }
}

/// Fires every timer whose deadline has passed. Runs once per turn of the
/// worker's loop, which is also when the wakers spare entries kept during
/// the turn are dropped.
pub(crate) fn fire_due(driver: &RefCell<Driver>) {
    release_spare_wakers(driver);
    let mut due = {
        let mut d = driver.borrow_mut();
        if d.wheel.is_empty() {
            return;
        }
        let now = now_tick();
        let Driver { wheel, due, .. } = &mut *d;
        // SAFETY: each pointer handed out stands for the wheel's reference.
        wheel.advance(now, |ptr| due.push(unsafe { from_ptr(ptr) }));
        // Most turns: nothing due, and nothing to move or wake.
        if due.is_empty() {
            return;
        }
        let mut due = mem::take(&mut d.due);
        d.fire(&mut due, Some(now));
        due
    };
    wake_fired(driver, &mut due);
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
        let mut q = remote.ops.lock().unwrap_or_else(PoisonError::into_inner);
        q.closed = true;
        remote.has_ops.store(false, Ordering::SeqCst);
        mem::take(&mut q.queue)
    };
    release_spare_wakers(driver);
    let mut left = Vec::new();
    {
        let mut d = driver.borrow_mut();
        d.clear_pool();
        // SAFETY: each pointer handed out stands for the wheel's reference.
        d.wheel.drain(|ptr| left.push(unsafe { from_ptr(ptr) }));
    }
    for op in ops {
        if let Op::Register(e) = op {
            left.push(e);
        }
    }
    finish_all(&mut left, SHUT_DOWN);
}

/// With no borrow held, wakes the wakers [`Driver::fire`] took and drops
/// the entries of `due`; then gives the buffers back to the driver.
fn wake_fired(driver: &RefCell<Driver>, due: &mut Vec<Arc<Entry>>) {
    let mut fired = mem::take(&mut driver.borrow_mut().fired);
    for w in fired.drain(..) {
        crate::executor::wake_contained(w);
    }
    due.clear();
    let mut d = driver.borrow_mut();
    d.fired = fired;
    d.due = mem::take(due);
}

/// Moves each entry to `to`, wakes its waker, and drops the entry, all with
/// no borrow held. Cancelled entries are just dropped.
fn finish_all(entries: &mut Vec<Arc<Entry>>, to: u64) {
    for e in entries.drain(..) {
        if let Some(w) = e.finish(to) {
            crate::executor::wake_contained(w);
        }
    }
}

/// Number of timers in the current worker's wheel and of spare entries it
/// keeps.
///
/// # Panics
///
/// Panics if not called on a worker thread.
pub(crate) fn current_wheel_stats() -> (usize, usize) {
    let worker =
        context::try_worker().expect("strata: wheel stats are only available on a worker thread");
    let d = worker.timers().borrow();
    (d.len(), d.pooled())
}
