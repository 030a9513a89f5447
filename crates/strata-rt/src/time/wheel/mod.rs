//! A hierarchical timing wheel: the mechanism under every worker's timers.
//!
//! This module knows nothing about wakers, threads or clocks. It stores
//! values under deadlines measured in whole milliseconds ("ticks") and hands
//! them back once the caller says the time has come. The caller passes "now"
//! into [`Wheel::advance`]; the wheel never reads a clock, so its tests drive
//! time by hand and are exact.
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
//! through a slab (`prev`/`next` are slab keys), and every level keeps a
//! 64-bit "occupied" mask, so:
//!
//! * insert is O(1): compute level and slot, push at the list head;
//! * cancel is O(1): unlink by key, clear the mask bit if the list emptied;
//! * finding the next deadline is O(levels): one `trailing_zeros` per level;
//! * nothing allocates per tick; the slab grows only with the number of
//!   *live* entries and keeps its capacity for reuse.
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
//! as a ring: a slot "before" the current position means one rotation ahead.
//!
//! # Deadlines in the past
//!
//! [`Wheel::insert`] refuses a deadline at or before `elapsed` and gives the
//! value back (`Err`), so the caller can complete it at once instead of
//! waiting for the next advance.
//!
//! # Cross-thread use
//!
//! The wheel is single-threaded: each worker owns one and only the worker's
//! thread touches it. How timers created or dropped on other threads reach
//! it (an operation queue in the worker's shared state, and a generation-free
//! identity check on cancel) is described in [`super::driver`].

#[cfg(test)]
mod tests;

use slab::Slab;

/// Bits of a tick per level.
const BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << BITS;
/// Number of levels.
pub(crate) const LEVELS: usize = 6;
/// Ticks covered by one rotation of the top level: 2^36 ms.
const RANGE: u64 = 1 << (BITS * LEVELS as u32);
/// "No node": the end of a list.
const NIL: usize = usize::MAX;

/// A hierarchical timing wheel holding values of type `T`.
#[derive(Debug)]
pub(crate) struct Wheel<T> {
    /// Every value with a deadline `<= elapsed` has been handed out; every
    /// stored value has a deadline `> elapsed`.
    elapsed: u64,
    levels: [Level; LEVELS],
    nodes: Slab<Node<T>>,
}

#[derive(Debug, Clone, Copy)]
struct Level {
    /// Bit `s` is set iff slot `s` has at least one node.
    occupied: u64,
    /// The first node of each slot's list, or `NIL`.
    heads: [usize; SLOTS],
}

#[derive(Debug)]
struct Node<T> {
    when: u64,
    prev: usize,
    next: usize,
    level: u8,
    slot: u8,
    value: T,
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

impl<T> Wheel<T> {
    /// An empty wheel whose clock starts at tick `now`.
    pub(crate) fn new(now: u64) -> Self {
        Wheel {
            elapsed: now,
            levels: [Level {
                occupied: 0,
                heads: [NIL; SLOTS],
            }; LEVELS],
            nodes: Slab::new(),
        }
    }

    /// The tick up to which the wheel has advanced.
    #[cfg(test)]
    pub(crate) fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Number of stored values.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Capacity of the node slab (for leak checks).
    pub(crate) fn capacity(&self) -> usize {
        self.nodes.capacity()
    }

    /// Stores `value` to be handed out at tick `when`; returns its key.
    ///
    /// # Errors
    ///
    /// Gives `value` back if `when` is not after [`elapsed`](Self::elapsed):
    /// it is already due.
    pub(crate) fn insert(&mut self, when: u64, value: T) -> Result<usize, T> {
        if when <= self.elapsed {
            return Err(value);
        }
        let key = self.nodes.insert(Node {
            when,
            prev: NIL,
            next: NIL,
            level: 0,
            slot: 0,
            value,
        });
        self.link(key);
        Ok(key)
    }

    /// The value stored under `key`, if any.
    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        self.nodes.get(key).map(|n| &n.value)
    }

    /// Removes and returns the value under `key`, if any, in O(1).
    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        if !self.nodes.contains(key) {
            return None;
        }
        self.unlink(key);
        Some(self.nodes.remove(key).value)
    }

    /// The tick at which [`advance`](Self::advance) next has work to do:
    /// a deadline, or a slot start where values cascade to a lower level.
    /// Never before the earliest deadline's slot; `None` when empty.
    pub(crate) fn next_wakeup(&self) -> Option<u64> {
        self.next_expiration().map(|e| e.deadline)
    }

    /// Hands every value whose deadline is `<= now` to `fire`, in deadline
    /// order (at tick resolution), and moves the clock to `now`.
    pub(crate) fn advance(&mut self, now: u64, mut fire: impl FnMut(T)) {
        while let Some(exp) = self.next_expiration() {
            if exp.deadline > now {
                break;
            }
            self.elapsed = exp.deadline;
            self.process(exp, &mut fire);
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// Removes every value, in no particular order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        for level in &mut self.levels {
            level.occupied = 0;
            level.heads = [NIL; SLOTS];
        }
        self.nodes.drain().map(|n| n.value)
    }

    fn next_expiration(&self) -> Option<Expiration> {
        for (level, l) in self.levels.iter().enumerate() {
            if l.occupied == 0 {
                continue;
            }
            let shift = BITS * level as u32;
            let pos = slot_for(self.elapsed, level);
            let slot =
                (l.occupied.rotate_right(pos as u32).trailing_zeros() as usize + pos) & (SLOTS - 1);
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

    /// Empties the slot of `exp`: due values go to `fire`, others cascade.
    fn process(&mut self, exp: Expiration, fire: &mut impl FnMut(T)) {
        let level = &mut self.levels[exp.level];
        let mut key = std::mem::replace(&mut level.heads[exp.slot], NIL);
        level.occupied &= !(1 << exp.slot);
        while key != NIL {
            let node = &mut self.nodes[key];
            let next = node.next;
            if node.when <= exp.deadline {
                fire(self.nodes.remove(key).value);
            } else {
                self.link(key);
            }
            key = next;
        }
    }

    /// Pushes node `key` onto the head of the list its deadline belongs to.
    fn link(&mut self, key: usize) {
        let elapsed = self.elapsed;
        let node = &mut self.nodes[key];
        let level = level_for(elapsed, node.when);
        let slot = slot_for(node.when, level);
        let l = &mut self.levels[level];
        let head = l.heads[slot];
        node.level = level as u8;
        node.slot = slot as u8;
        node.prev = NIL;
        node.next = head;
        l.heads[slot] = key;
        l.occupied |= 1 << slot;
        if head != NIL {
            self.nodes[head].prev = key;
        }
    }

    /// Takes node `key` out of its list (it stays in the slab).
    fn unlink(&mut self, key: usize) {
        let node = &self.nodes[key];
        let (prev, next) = (node.prev, node.next);
        let (level, slot) = (node.level as usize, node.slot as usize);
        if prev == NIL {
            let l = &mut self.levels[level];
            l.heads[slot] = next;
            if next == NIL {
                l.occupied &= !(1 << slot);
            }
        } else {
            self.nodes[prev].next = next;
        }
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }
}
