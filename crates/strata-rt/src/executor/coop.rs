//! Cooperative budget: how many I/O operations a task may complete in one
//! poll before it must yield.
//!
//! A task whose I/O is always ready (a socket that keeps having data, or a
//! source that keeps failing, retried in a loop) would otherwise never
//! return `Pending`, and its worker would run nothing else: no other task,
//! no reactor poll, no shutdown. Each task poll starts with
//! [`TASK_BUDGET`] units; every readiness check that lets an operation
//! proceed spends one, given back if the operation then finds nothing to
//! do (`WouldBlock`: see [`refund`]); at zero the check returns `Pending`
//! after waking the task, which is then polled again after the tasks
//! queued behind it.
//!
//! Outside task polls (the thread running `block_on`) the budget is
//! unlimited.

use std::cell::Cell;
use std::marker::PhantomData;
use std::task::{Context, Poll};

/// I/O operations a task may complete in one poll.
pub(crate) const TASK_BUDGET: u32 = 128;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// Runs one task poll with a fresh budget, restoring the previous one.
pub(crate) fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    with(TASK_BUDGET, f)
}

/// Runs `f` with no budget, then restores the previous one: for polls
/// that are not a worker's task (`block_on`, blocking-pool closures), where
/// nothing else waits for the thread and a spent budget could only spin.
pub(crate) fn unconstrained<R>(f: impl FnOnce() -> R) -> R {
    with(u32::MAX, f)
}

/// Runs `f` with `budget`, then restores the previous budget. (Not on
/// unwinding: task polls catch their panics inside `f`, and a panic out of
/// `block_on` leaves the unlimited budget every thread starts with.)
#[inline(always)]
fn with<R>(budget: u32, f: impl FnOnce() -> R) -> R {
    let prev = BUDGET.with(|b| b.replace(budget));
    let out = f();
    BUDGET.with(|b| b.set(prev));
    out
}

/// Spends one unit, or, with none left, wakes the task and returns
/// `Pending` so that it yields. An operation that then finds nothing to do
/// (`WouldBlock`) gives the unit back with [`refund`].
#[inline]
pub(crate) fn poll_spend(cx: &mut Context<'_>) -> Poll<()> {
    BUDGET.with(|b| {
        let left = b.get();
        if left == 0 {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            b.set(left - 1);
            Poll::Ready(())
        }
    })
}

/// Gives back the unit an operation spent when it found nothing to do, so
/// that only operations that made progress count (as in tokio): a read
/// that found its socket empty cannot be what spends a task's last unit.
#[inline]
pub(crate) fn refund() {
    BUDGET.with(|b| b.set(b.get().saturating_add(1)));
}

/// Lets an operation of an I/O source proceed if the current task's budget
/// has a unit left, spending it; with none left, wakes the task and returns
/// `Pending`, so that it yields and runs again after the tasks queued
/// behind it.
///
/// The unit is given back when the returned guard is dropped, unless the
/// operation made progress ([`RestoreOnPending::made_progress`]): a source
/// that found nothing to do (it returns `Pending`) costs nothing.
#[inline]
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<RestoreOnPending> {
    poll_spend(cx).map(|()| RestoreOnPending {
        restore: Cell::new(true),
        _thread: PhantomData,
    })
}

/// The unit [`poll_proceed`] spent, given back on drop unless the
/// operation made progress.
///
/// Not `Send` (as tokio's): the budget it gives back is its thread's, so
/// it must be dropped where it was taken.
#[derive(Debug)]
#[must_use = "dropped at once, the guard gives the unit back"]
pub struct RestoreOnPending {
    restore: Cell<bool>,
    _thread: PhantomData<*const ()>,
}

impl RestoreOnPending {
    /// The operation made progress: keep the unit spent.
    pub fn made_progress(&self) {
        self.restore.set(false);
    }
}

impl Drop for RestoreOnPending {
    fn drop(&mut self) {
        if self.restore.get() {
            refund();
        }
    }
}

/// Whether the current task may still complete I/O in this poll: `false`
/// once its budget is spent (every socket operation then returns `Pending`
/// until the task has yielded). Always `true` outside a task poll.
#[inline]
pub fn has_budget_remaining() -> bool {
    BUDGET.with(Cell::get) > 0
}

/// Polls `op` if a unit is left, and spends one only if `op` made
/// progress (`Ready`); with none left, wakes the task and returns
/// `Pending` without polling. For sources whose `Pending` or end costs
/// nothing (a channel with nothing queued), so that a task polling many
/// idle ones does not run out of budget and spin.
#[inline]
pub(crate) fn poll_spend_if_ready<T>(
    cx: &mut Context<'_>,
    op: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    if BUDGET.with(Cell::get) == 0 {
        cx.waker().wake_by_ref();
        return Poll::Pending;
    }
    let out = op(cx);
    if out.is_ready() {
        BUDGET.with(|b| b.set(b.get().saturating_sub(1)));
    }
    out
}
