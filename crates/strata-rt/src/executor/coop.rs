//! Cooperative budget: how many I/O operations a task may complete in one
//! poll before it must yield.
//!
//! A task whose I/O is always ready (a socket that keeps having data, or a
//! source that keeps failing, retried in a loop) would otherwise never
//! return `Pending`, and its worker would run nothing else: no other task,
//! no reactor poll, no shutdown. Each task poll starts with
//! [`TASK_BUDGET`] units; every readiness check that lets an operation
//! proceed spends one; at zero the check returns `Pending` after waking the
//! task, which is then polled again after the tasks queued behind it.
//!
//! Outside task polls (the thread running `block_on`) the budget is
//! unlimited.

use std::cell::Cell;
use std::task::{Context, Poll};

/// I/O operations a task may complete in one poll.
pub(crate) const TASK_BUDGET: u32 = 128;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// Runs one task poll with a fresh budget, restoring the previous one
/// (tasks never nest, but `block_on` inside a blocking-pool task could).
pub(crate) fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    let prev = BUDGET.with(|b| b.replace(TASK_BUDGET));
    let out = f();
    BUDGET.with(|b| b.set(prev));
    out
}

/// Spends one unit, or, with none left, wakes the task and returns
/// `Pending` so that it yields.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
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
