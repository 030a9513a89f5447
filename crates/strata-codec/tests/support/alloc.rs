//! A global allocator that counts the heap bytes live on each thread
//! (allocated minus freed there) and their peak, the bytes asked for in
//! all, and, while a thread turns it on, the largest block asked for there, for tests that check what a
//! framed reader or writer holds. A test binary installs it with
//! `#[global_allocator] static GLOBAL: support::alloc::Counting =
//! support::alloc::Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator; see the module docs.
pub(crate) struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

/// A block of `size` bytes asked for (by `alloc` or `realloc`).
fn note(size: usize) {
    let _ = ALLOCATED.try_with(|a| a.set(a.get() + size));
    // `try_with`: the allocator also runs while thread locals are torn down.
    if TRACK.try_with(Cell::get).unwrap_or(false) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }
}

fn bump(delta: isize) {
    let _ = LIVE.try_with(|l| {
        l.set(l.get() + delta);
        let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
    });
}

// SAFETY: every call is passed on unchanged to the system allocator, which
// upholds the `GlobalAlloc` contract; the counting beside it does not
// allocate (thread-local `Cell`s only).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(layout.size() as isize);
        note(layout.size());
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` through this allocator, with
        // this layout (the caller's contract).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        bump(new as isize - layout.size() as isize);
        note(new);
        // SAFETY: as for `dealloc`; `new` is valid (the caller's contract).
        unsafe { System.realloc(ptr, layout, new) }
    }
}

/// Heap bytes live on this thread.
pub(crate) fn live() -> isize {
    LIVE.with(Cell::get)
}

/// The most heap bytes live on this thread since `reset_peak`.
pub(crate) fn peak() -> isize {
    PEAK.with(Cell::get)
}

/// Starts a new peak from `to`.
pub(crate) fn reset_peak(to: isize) {
    PEAK.with(|p| p.set(to));
}

/// Turns recording the largest block asked for on this thread on or off.
pub(crate) fn track_largest(on: bool) {
    TRACK.with(|t| t.set(on));
}

/// The largest block asked for on this thread while tracking was on.
pub(crate) fn largest() -> usize {
    LARGEST.with(Cell::get)
}

/// Forgets the largest block recorded on this thread.
pub(crate) fn reset_largest() {
    LARGEST.with(|l| l.set(0));
}

/// The bytes of every block asked for on this thread (by `alloc`, or by
/// `realloc` at its new size) since `reset_allocated`: what a run cost in
/// allocations, not what it holds.
pub(crate) fn allocated() -> usize {
    ALLOCATED.with(Cell::get)
}

/// Starts counting `allocated` from zero.
pub(crate) fn reset_allocated() {
    ALLOCATED.with(|a| a.set(0));
}
