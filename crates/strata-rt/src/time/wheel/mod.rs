//! A hierarchical timing wheel: the mechanism under every worker's timers.
//!
//! This module knows nothing about wakers, threads or clocks. It files
//! nodes under deadlines measured in whole milliseconds ("ticks") and hands
//! them back once the caller says the time has come. The caller passes "now"
//! into [`Wheel::advance`]; the wheel never reads a clock, so its tests drive
//! time by hand and are exact.
//!
//! The wheel is *intrusive*: it allocates nothing and owns nothing. Each
//! node carries its own [`Links`] (deadline, list pointers, position), the
//! wheel threads its lists through them, and the caller keeps every linked
//! node alive until it is removed or handed back. So a timer costs exactly
//! its own allocation, with no side table that grows with the number of
//! live timers.
//!
//! # Levels and slots
//!
//! ```text
//!  level 5  [64 slots × 64^5 ms ≈ 12.4 days]   one rotation ≈ 795 days
//!  level 4  [64 slots × 64^4 ms ≈ 4.7 hours]
//!  level 3  [64 slots × 64^3 ms ≈ 4.4 minutes]
//!  level 2  [64 slots × 4096 ms]
//!  level 1  [64 slots × 64 ms]
//!  level 0  [64 slots × 1 ms]                  one rotation = 64 ms
//! ```
//!
//! A tick `t` is read as six base-64 digits, one per level (bits `6L..6L+6`
//! are the digit of level `L`). The wheel remembers `elapsed`, the tick up to
//! which everything due has been handed out. A value with deadline `when`
//! goes to the level of the *highest digit in which `when` differs from
//! `elapsed`*, into the slot named by `when`'s digit at that level:
//!
//! ```text
//!   level = msb((elapsed ^ when) | 63) / 6      slot = (when >> 6·level) & 63
//! ```
//!
//! So a deadline 3 ms away sits in level 0, one 10 s away in level 2, and
//! one three days away in level 5. Every slot is a doubly linked list threaded
//! through the nodes' own `prev`/`next` pointers, and every level keeps a
//! 64-bit "occupied" mask, so:
//!
//! * insert is O(1): compute level and slot, push at the list head;
//! * cancel is O(1): unlink through the node's own pointers, clear the mask
//!   bit if the list emptied;
//! * finding the next deadline is O(levels): one `trailing_zeros` per level;
//! * nothing allocates, ever: the wheel is a fixed array of list heads.
//!
//! # Advancing and cascading
//!
//! [`Wheel::advance`] repeatedly takes the earliest occupied slot (the lowest
//! level with anything in it always holds the earliest one) whose start time
//! is not after "now", moves `elapsed` to that start time, and empties the
//! slot: a value whose deadline has been reached is handed out, any other is
//! inserted again relative to the new `elapsed`, which puts it on a lower
//! level ("cascading"). A level-0 slot is a single millisecond, so values
//! come out in deadline order at millisecond resolution, and a value is
//! handed out only once `now >= when`: never early. A value is moved at most
//! five times over its life, so the cost stays O(1) per value.
//!
//! # Far deadlines
//!
//! The six levels span 2^36 ms (about 795 days). A deadline further away is
//! placed in the top level as if it were just within range (the level
//! computation is clamped); when its slot comes round it is not due yet, so
//! it is re-inserted and waits another rotation. The top level therefore acts
//! as a ring: a slot "before" the current position, or the current slot
//! itself, means one rotation ahead, after every other slot.
//!
//! # Deadlines in the past
//!
//! [`Wheel::insert`] refuses a deadline at or before `elapsed` (returns
//! `false`, leaving the node unlinked), so the caller can complete it at
//! once instead of waiting for the next advance.
//!
//! # Cross-thread use
//!
//! The wheel is single-threaded (it holds raw pointers, so it is neither
//! `Send` nor `Sync`): each worker owns one and only the worker's thread
//! touches it or the links of any node in it. How timers created or dropped on other threads reach
//! it (an operation queue in the worker's shared state, and each node's
//! "linked" mark, read only on the owner's thread) is described in [`super::driver`].

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;

/// Bits of a tick per level.
const BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << BITS;
/// Number of levels.
pub(crate) const LEVELS: usize = 6;
/// Ticks covered by one rotation of the top level: 2^36 ms.
const RANGE: u64 = 1 << (BITS * LEVELS as u32);
/// The `level` of a node that is in no list.
const UNLINKED: u8 = u8::MAX;

/// The part of a node that the wheel manages: its deadline and its place in
/// a slot's list. Plain cells: only the thread that owns the wheel the node
/// is (or will be) linked into may touch them.
pub(crate) struct Links<T> {
    when: Cell<u64>,
    prev: Cell<Option<NonNull<T>>>,
    next: Cell<Option<NonNull<T>>>,
    level: Cell<u8>,
    slot: Cell<u8>,
}

impl<T> Links<T> {
    /// Links of a node in no wheel.
    pub(crate) const fn new() -> Self {
        Links {
            when: Cell::new(0),
            prev: Cell::new(None),
            next: Cell::new(None),
            level: Cell::new(UNLINKED),
            slot: Cell::new(0),
        }
    }

    /// `true` while the node is in a wheel's list.
    pub(crate) fn is_linked(&self) -> bool {
        self.level.get() != UNLINKED
    }

    /// The deadline the node was last inserted with.
    #[cfg(test)]
    pub(crate) fn when(&self) -> u64 {
        self.when.get()
    }
}

impl<T> fmt::Debug for Links<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Links")
            .field("when", &self.when.get())
            .field("linked", &self.is_linked())
            .finish()
    }
}

/// A node type that embeds [`Links`].
///
/// # Safety
///
/// `links` must return the same `Links`, embedded in `self`, every time.
pub(crate) unsafe trait Linked: Sized {
    fn links(&self) -> &Links<Self>;
}

/// A hierarchical timing wheel of intrusive nodes of type `T`.
pub(crate) struct Wheel<T: Linked> {
    /// Every node with a deadline `<= elapsed` has been handed out; every
    /// linked node has a deadline `> elapsed`.
    elapsed: u64,
    /// Number of linked nodes.
    len: usize,
    levels: [Level<T>; LEVELS],
}

struct Level<T> {
    /// Bit `s` is set iff slot `s` has at least one node.
    occupied: u64,
    /// The first node of each slot's list.
    heads: [Option<NonNull<T>>; SLOTS],
}

/// The earliest occupied slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expiration {
    level: usize,
    slot: usize,
    /// The tick at which the slot starts.
    deadline: u64,
}

/// The level on which a deadline `when > elapsed` is filed.
fn level_for(elapsed: u64, when: u64) -> usize {
    // `| 63` puts anything differing only in the lowest digit on level 0;
    // the clamp puts anything beyond the top level's range on the top level.
    let masked = ((elapsed ^ when) | (SLOTS as u64 - 1)).min(RANGE - 1);
    let msb = u64::BITS - 1 - masked.leading_zeros();
    (msb / BITS) as usize
}

/// The slot of `when` on `level`.
fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (BITS * level as u32)) as usize) & (SLOTS - 1)
}

/// The links of a linked node.
///
/// # Safety
///
/// `node` must be alive (every linked node is, by [`Wheel::insert`]'s
/// contract), and the returned reference must not outlive it.
unsafe fn links<'a, T: Linked>(node: NonNull<T>) -> &'a Links<T> {
    // SAFETY: the caller guarantees that `node` is alive.
    unsafe { node.as_ref() }.links()
}

impl<T: Linked> Wheel<T> {
    /// An empty wheel whose clock starts at tick `now`.
    pub(crate) fn new(now: u64) -> Self {
        Wheel {
            elapsed: now,
            len: 0,
            levels: std::array::from_fn(|_| Level {
                occupied: 0,
                heads: [None; SLOTS],
            }),
        }
    }

    /// The tick up to which the wheel has advanced.
    #[cfg(test)]
    pub(crate) fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Number of linked nodes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Links `node` to be handed out at tick `when`, in O(1). Returns
    /// `false`, leaving it unlinked, if `when` is not after
    /// [`elapsed`](Self::elapsed): it is already due.
    ///
    /// # Safety
    ///
    /// `node` must be alive and in no wheel, and must stay alive (not
    /// moved, not freed) until [`remove`](Self::remove), `advance` or
    /// `drain` gives it back. Meanwhile its links belong to this wheel.
    pub(crate) unsafe fn insert(&mut self, when: u64, node: NonNull<T>) -> bool {
        if when <= self.elapsed {
            return false;
        }
        // SAFETY: `node` is alive (caller).
        let l = unsafe { links(node) };
        debug_assert!(!l.is_linked(), "a timer node linked twice");
        l.when.set(when);
        self.len += 1;
        // SAFETY: `node` is alive and now counted as linked here.
        unsafe { self.link(node) };
        true
    }

    /// Unlinks `node` in O(1); `false` if it was not linked.
    ///
    /// # Safety
    ///
    /// `node` must be alive and, if linked, linked in *this* wheel.
    pub(crate) unsafe fn remove(&mut self, node: NonNull<T>) -> bool {
        // SAFETY: `node` is alive (caller).
        let l = unsafe { links(node) };
        if !l.is_linked() {
            return false;
        }
        // SAFETY: linked here (caller), so its neighbours are alive too.
        unsafe { self.unlink(l) };
        self.len -= 1;
        true
    }

    /// The tick at which [`advance`](Self::advance) next has work to do:
    /// a deadline, or a slot start where nodes cascade to a lower level.
    /// Never before the earliest deadline's slot; `None` when empty.
    pub(crate) fn next_wakeup(&self) -> Option<u64> {
        self.next_expiration().map(|e| e.deadline)
    }

    /// Hands every node whose deadline is `<= now` to `fire`, unlinked, in
    /// deadline order (at tick resolution), and moves the clock to `now`.
    ///
    /// Should `fire` unwind, the nodes of the slot being emptied that it
    /// had not been given yet are unlinked and forgotten (never handed out;
    /// the caller still owns them), and the rest of the wheel stays intact.
    pub(crate) fn advance(&mut self, now: u64, mut fire: impl FnMut(NonNull<T>)) {
        while let Some(exp) = self.next_expiration() {
            if exp.deadline > now {
                break;
            }
            self.elapsed = exp.deadline;
            self.process(exp, &mut fire);
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// Unlinks every node and hands it to `f`, in no particular order.
    ///
    /// Each node is unlinked before `f` sees it, so should `f` unwind, the
    /// wheel still holds exactly the nodes not handed out.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(NonNull<T>)) {
        for level in 0..LEVELS {
            for slot in 0..SLOTS {
                while let Some(node) = self.levels[level].heads[slot] {
                    // SAFETY: linked here, hence alive (insert's contract),
                    // and its neighbours too.
                    unsafe { self.unlink(links(node)) };
                    self.len -= 1;
                    f(node);
                }
            }
        }
    }

    fn next_expiration(&self) -> Option<Expiration> {
        for (level, l) in self.levels.iter().enumerate() {
            if l.occupied == 0 {
                continue;
            }
            let shift = BITS * level as u32;
            // Scanned from the slot after the current one: a lower level
            // never holds its current slot, and the top level's current
            // slot can only hold a far deadline clamped there, a whole
            // rotation ahead, so it comes last.
            let from = (slot_for(self.elapsed, level) + 1) & (SLOTS - 1);
            let slot = (l.occupied.rotate_right(from as u32).trailing_zeros() as usize + from)
                & (SLOTS - 1);
            let slot_span = 1u64 << shift;
            let level_span = slot_span << BITS;
            let level_start = self.elapsed & !(level_span - 1);
            let mut deadline = level_start + slot as u64 * slot_span;
            if deadline <= self.elapsed {
                // Only the top level wraps (see "Far deadlines"): the slot is
                // one rotation ahead.
                debug_assert_eq!(level, LEVELS - 1, "a lower level holds a past slot");
                deadline += level_span;
            }
            return Some(Expiration {
                level,
                slot,
                deadline,
            });
        }
        None
    }

    /// Empties the slot of `exp`: due nodes go to `fire`, others cascade.
    ///
    /// The slot's list is detached first (a node cascading off the top
    /// level can land in the same slot again). Should `fire` unwind, the
    /// nodes left in the detached list are unlinked for good, so that none
    /// keeps links into a list it is no longer in.
    fn process(&mut self, exp: Expiration, fire: &mut impl FnMut(NonNull<T>)) {
        let level = &mut self.levels[exp.level];
        let mut cur = level.heads[exp.slot].take();
        level.occupied &= !(1 << exp.slot);
        while let Some(node) = cur {
            // SAFETY: linked, hence alive (insert's contract).
            let l = unsafe { links(node) };
            cur = l.next.get();
            if l.when.get() <= exp.deadline {
                l.level.set(UNLINKED);
                self.len -= 1;
                let fired = panic::catch_unwind(AssertUnwindSafe(|| fire(node)));
                if let Err(panic) = fired {
                    self.forget(cur);
                    panic::resume_unwind(panic);
                }
            } else {
                // SAFETY: as above; it stays counted as linked.
                unsafe { self.link(node) };
            }
        }
    }

    /// Marks the nodes of a detached list, from `cur` on, unlinked.
    fn forget(&mut self, mut cur: Option<NonNull<T>>) {
        while let Some(node) = cur {
            // SAFETY: still counted as linked here, hence alive.
            let l = unsafe { links(node) };
            cur = l.next.get();
            l.level.set(UNLINKED);
            self.len -= 1;
        }
    }

    /// Pushes `node` onto the head of the list its deadline belongs to.
    ///
    /// # Safety
    ///
    /// `node` must be alive, and every node in the target list too.
    unsafe fn link(&mut self, node: NonNull<T>) {
        // SAFETY: alive (caller).
        let l = unsafe { links(node) };
        let when = l.when.get();
        let level = level_for(self.elapsed, when);
        let slot = slot_for(when, level);
        let lv = &mut self.levels[level];
        let head = lv.heads[slot].replace(node);
        lv.occupied |= 1 << slot;
        l.level.set(level as u8);
        l.slot.set(slot as u8);
        l.prev.set(None);
        l.next.set(head);
        if let Some(h) = head {
            // SAFETY: linked, hence alive.
            unsafe { links(h) }.prev.set(Some(node));
        }
    }

    /// Takes a linked node out of its list.
    ///
    /// # Safety
    ///
    /// `l` must be the links of a node linked in this wheel.
    unsafe fn unlink(&mut self, l: &Links<T>) {
        let (prev, next) = (l.prev.get(), l.next.get());
        match prev {
            // SAFETY: neighbours of a linked node are linked, hence alive.
            Some(p) => unsafe { links(p) }.next.set(next),
            None => {
                let lv = &mut self.levels[l.level.get() as usize];
                let slot = l.slot.get() as usize;
                lv.heads[slot] = next;
                if next.is_none() {
                    lv.occupied &= !(1 << slot);
                }
            }
        }
        if let Some(n) = next {
            // SAFETY: as above.
            unsafe { links(n) }.prev.set(prev);
        }
        l.level.set(UNLINKED);
    }
}

impl<T: Linked> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len)
            .finish()
    }
}
