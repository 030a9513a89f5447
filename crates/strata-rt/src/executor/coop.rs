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
//! Elsewhere the budget is unlimited: in `block_on`, in a blocking-pool
//! closure, and on a thread that is not the runtime's. (tokio's
//! `block_on` has one, and an executor nested in its future, such as a
//! synchronous helper that drives sources with its own waker, then spins
//! forever once it is spent: it never returns to `block_on` to have it
//! refilled.) The price: in `block_on`, a future that keeps finding its
//! I/O ready is not made to yield, so a timeout or other branch beside it
//! waits until the I/O runs dry; spawn such work as a task. An executor
//! nested in a worker's task spends that task's budget and is stopped by
//! it, as in tokio: run one in `spawn_blocking` instead.

use std::cell::Cell;
use std::marker::PhantomData;
use std::task::{Context, Poll};

/// I/O operations a task may complete in one poll.
pub(crate) const TASK_BUDGET: u32 = 128;

/// The budget of polls that have none: never spent.
const UNLIMITED: u32 = u32::MAX;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(UNLIMITED) };
}

/// Runs one task poll with a fresh budget, restoring the previous one.
pub(crate) fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    with(TASK_BUDGET, f)
}

/// Runs `f` with no budget, then restores the previous one: for
/// `block_on` and blocking-pool closures (see the module docs).
pub(crate) fn unconstrained<R>(f: impl FnOnce() -> R) -> R {
    with(UNLIMITED, f)
}

/// Runs `f` with `budget`, then restores the previous budget, on
/// unwinding too: a panic out of a budgeted poll must not leave its thread
/// a budget that nothing refills.
#[inline(always)]
fn with<R>(budget: u32, f: impl FnOnce() -> R) -> R {
    struct Restore(u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUDGET.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BUDGET.with(|b| b.replace(budget)));
    f()
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
            if left != UNLIMITED {
                b.set(left - 1);
            }
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
/// until the task has yielded). Always `true` where there is no budget
/// (see the module docs).
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
        BUDGET.with(|b| {
            let left = b.get();
            if left != UNLIMITED {
                b.set(left - 1);
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn budget() -> u32 {
        BUDGET.with(Cell::get)
    }

    /// A thread with no budget never spends one: it used to count down
    /// from `u32::MAX`, and after that many operations every socket,
    /// channel and timer of a long-lived plain thread returned `Pending`
    /// and woke itself forever.
    #[test]
    fn an_unlimited_budget_is_never_spent() {
        std::thread::spawn(|| {
            let mut cx = Context::from_waker(Waker::noop());
            assert_eq!(budget(), UNLIMITED);
            for _ in 0..3 {
                let Poll::Ready(unit) = poll_proceed(&mut cx) else {
                    panic!("no budget to spend")
                };
                unit.made_progress();
                assert!(poll_spend(&mut cx).is_ready());
                assert!(poll_spend_if_ready(&mut cx, |_| Poll::Ready(())).is_ready());
            }
            assert_eq!(budget(), UNLIMITED);
            // And inside a budgeted poll, units are spent and given back.
            with_budget(|| {
                assert!(poll_spend(&mut cx).is_ready());
                assert_eq!(budget(), TASK_BUDGET - 1);
                refund();
                assert_eq!(budget(), TASK_BUDGET);
            });
            assert_eq!(budget(), UNLIMITED);
        })
        .join()
        .unwrap();
    }

    /// A panic out of a budgeted poll (out of `block_on`, say) restores the
    /// thread's budget: left at what the poll had, nothing would refill it.
    #[test]
    fn a_panic_out_of_a_budgeted_poll_restores_the_budget() {
        std::thread::spawn(|| {
            let mut cx = Context::from_waker(Waker::noop());
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                with_budget(|| {
                    let _ = poll_spend(&mut cx);
                    panic!("out of the poll");
                })
            }));
            assert!(r.is_err());
            assert_eq!(budget(), UNLIMITED);
        })
        .join()
        .unwrap();
    }
}
