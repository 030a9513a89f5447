//! The future side of a timer: [`Timer`], what a `Sleep` holds, running
//! the registration, reset and cancellation protocol described in the
//! parent module.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::{CANCELLED, Entry, EntryPoll, FIRED, MAX_TICK, Op, SHUT_DOWN, deadline_tick};
use crate::context;
use crate::executor::worker::WorkerShared;

/// One timer as its future holds it: a deadline and, once polled, the entry
/// registered with its owning worker.
#[derive(Debug)]
pub(crate) struct Timer {
    /// Converted to a tick only on registration: a timer that is never
    /// polled (a `timeout` whose future is ready at once) costs nothing.
    deadline: Instant,
    entry: Option<Arc<Entry>>,
    /// The worker of a registration that a reset off the workers cancelled
    /// (see `reset`): the next poll registers there if it is made on a
    /// thread outside any runtime, where it could register nowhere else.
    home: Option<Arc<WorkerShared>>,
}

impl Timer {
    pub(crate) fn new(deadline: Instant) -> Timer {
        Timer {
            deadline,
            entry: None,
            home: None,
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// `true` once the timer has fired (as seen by its last poll or reset).
    pub(crate) fn is_fired(&self) -> bool {
        self.entry
            .as_ref()
            .is_some_and(|e| e.state.load(Ordering::Acquire) == FIRED)
    }

    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut orphaned = false;
        if let Some(entry) = &self.entry {
            match entry.poll(cx.waker()) {
                EntryPoll::Fired => return Poll::Ready(()),
                EntryPoll::Pending => return Poll::Pending,
                // Its runtime is gone: try the one we are polled in.
                EntryPoll::ShutDown => {
                    self.entry = None;
                    orphaned = true;
                }
            }
        }
        self.register(cx, orphaned)
    }

    /// Registers a timer that has none yet, as a poll would, but quietly:
    /// with no budget spent, and outside a runtime, or in one that is
    /// stopping, it stays unregistered instead of panicking.
    pub(crate) fn register_quietly(&mut self, cx: &mut Context<'_>) {
        if self.entry.is_some() {
            return;
        }
        if context::try_worker().is_some() {
            // A worker registers in its own wheel: no op to refuse.
            let _ = self.register(cx, false);
        } else if let Some(handle) = context::try_handle() {
            let _ = self.register_off_worker(&handle, cx);
        } else if let Some(home) = self.home.take()
            && !self.register_with(&home, cx.waker())
        {
            // Refused (that runtime has stopped): kept, for the next poll
            // to say so.
            self.home = Some(home);
        }
    }

    /// Queues a registration with `owner`; `false` if it refused it (it
    /// has stopped).
    fn register_with(&mut self, owner: &Arc<WorkerShared>, waker: &Waker) -> bool {
        let entry = Entry::new(deadline_tick(self.deadline), waker, owner.clone());
        if owner.push_timer_op(Op::Register(entry.clone())).is_err() {
            return false;
        }
        self.entry = Some(entry);
        self.home = None;
        true
    }

    /// Off the workers: queues a registration with a worker of `handle`'s
    /// runtime; `false` if that worker refused it (it is stopping).
    fn register_off_worker(
        &mut self,
        handle: &crate::runtime::Handle,
        cx: &mut Context<'_>,
    ) -> bool {
        let owner = handle.next_timer_worker().clone();
        self.register_with(&owner, cx.waker())
    }

    /// Registers with this thread's worker, or with a worker of the runtime
    /// we are in; `orphaned`: the timer's own runtime has shut down (for
    /// the panic message when there is no other).
    fn register(&mut self, cx: &mut Context<'_>, mut orphaned: bool) -> Poll<()> {
        let tick = deadline_tick(self.deadline);
        if let Some(worker) = context::try_worker() {
            let (entry, linked, old_waker) =
                worker
                    .timers()
                    .borrow_mut()
                    .register(worker.shared(), tick, cx.waker());
            drop(old_waker);
            self.home = None;
            if !linked {
                // Already due: complete now, keeping the (fired) entry so
                // that a later `reset` can reuse it, but not the waker (a
                // completed sleep keeps none, as one fired by the wheel).
                entry.state.store(FIRED, Ordering::Release);
                drop(entry.take_waker());
                self.entry = Some(entry);
                return Poll::Ready(());
            }
            self.entry = Some(entry);
            return Poll::Pending;
        }
        let Some(handle) = context::try_handle() else {
            // Outside any runtime: only the worker a reset left it with.
            if let Some(home) = self.home.take() {
                if self.register_with(&home, cx.waker()) {
                    return Poll::Pending;
                }
                orphaned = true;
            }
            if orphaned {
                panic!(
                    "strata: a timer was polled after the runtime that drives it shut down, \
                     outside any other strata runtime; it can never fire."
                );
            }
            panic!(
                "strata: a timer (`Sleep`, `timeout` or `Interval`) was polled outside a \
                 strata runtime; timers need a runtime to fire them. Poll it from a task \
                 or from a future passed to `Runtime::block_on` / `strata_rt::run`."
            );
        };
        if !self.register_off_worker(&handle, cx) {
            panic!(
                "strata: a timer was polled after the runtime that drives it shut down; \
                 it can never fire."
            );
        }
        Poll::Pending
    }

    /// Sets a new deadline. A pending or fired registration on this thread's
    /// worker is moved in place; off the workers, a pending one moved later
    /// is postponed in place (see "Postponing" in the parent module);
    /// otherwise it is cancelled, and the new deadline registered as
    /// `reregister` says.
    ///
    /// A waker it wakes (the timer's, when the new deadline is already
    /// due) may be another executor's: its panic is contained, as when
    /// the owner fires the timer.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        let Some(entry) = &self.entry else { return };
        let tick = deadline_tick(deadline);
        let moved = context::with_worker_if(entry.owner.uid(), |w| {
            let state = entry.state.load(Ordering::Acquire);
            if state != FIRED && state > MAX_TICK {
                return None;
            }
            let mut d = w.timers().borrow_mut();
            let wheel_ref = match d.unlink(entry) {
                Some(r) => r,
                None if state == FIRED => entry.clone(),
                // Pending but not linked: its `Register` op is still
                // queued. Take the slow path rather than link it twice.
                None => return None,
            };
            entry.state.store(tick, Ordering::Release);
            Some(d.link(tick, wheel_ref).err())
        })
        .flatten();
        match moved {
            Some(None) => {}
            Some(Some(wheel_ref)) => {
                // Due at once: fire it, outside the wheel's borrow.
                drop(wheel_ref);
                if let Some(w) = entry.finish(FIRED) {
                    crate::executor::wake_contained(w);
                }
            }
            // Off the workers, a pending timer moved later stays with its
            // owner, which links it again when the old deadline comes.
            None if context::try_worker().is_none() && entry.postpone(tick) => {}
            None => {
                let waker = entry.take_waker();
                let owner = entry.owner.clone();
                self.cancel();
                self.reregister(tick, waker, owner);
            }
        }
    }

    /// After `reset` cancelled a registration it could not move in place
    /// (made by `owner`, another worker, or not yet linked there): makes
    /// the next one, handing it `waker`, the waker of the old.
    ///
    /// * On a worker, in that worker's wheel: the timer moves to the worker
    ///   it is reset (and presumably polled) on, so that later resets there
    ///   move it in place.
    /// * Off the workers, inside a runtime (`block_on`), at the next poll,
    ///   wherever that is made; `waker` is woken so that it comes. Resets
    ///   in between only store their deadline, and a poll on a thread
    ///   outside any runtime registers with `owner`.
    /// * On a thread outside any runtime, with `owner` at once (if it still
    ///   runs), so that the waker is woken at the new deadline only.
    fn reregister(&mut self, tick: u64, waker: Option<Waker>, owner: Arc<WorkerShared>) {
        let noop = Waker::noop();
        if let Some(worker) = context::try_worker() {
            let (entry, linked, old_waker) = worker.timers().borrow_mut().register(
                worker.shared(),
                tick,
                waker.as_ref().unwrap_or(noop),
            );
            drop(old_waker);
            // Already due: fired now, keeping no waker.
            let fired = if linked { None } else { entry.finish(FIRED) };
            self.entry = Some(entry);
            if let Some(w) = fired {
                crate::executor::wake_contained(w);
            }
            return;
        }
        if context::try_handle().is_some() {
            self.home = Some(owner);
        } else {
            let fresh = Entry::new(tick, waker.as_ref().unwrap_or(noop), owner.clone());
            let stopped = owner.push_timer_op(Op::Register(fresh.clone())).is_err();
            if stopped {
                // Kept, marked so, for the next poll to say that the
                // runtime is gone.
                fresh.state.store(SHUT_DOWN, Ordering::Release);
            }
            self.entry = Some(fresh);
            if !stopped {
                return;
            }
        }
        if let Some(w) = waker {
            crate::executor::wake_contained(w);
        }
    }

    fn cancel(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        let uid = entry.owner.uid();
        // The common case: dropped on the owner's thread.
        let mut slot = Some(entry);
        let on_owner =
            context::with_worker_if(uid, |w| w.timers().borrow_mut().cancel_local(&mut slot));
        // Dropped after the borrow: it may be the last reference to a task.
        drop(on_owner);
        let Some(entry) = slot else { return };
        let prev = entry.state.swap(CANCELLED, Ordering::AcqRel);
        if prev > MAX_TICK {
            // Fired or shut down: in no wheel.
            return;
        }
        if context::with_worker_if(uid, |_| ()).is_some() {
            // On the owner's thread but not linked: the `Register` op is
            // still queued, and the worker will skip it as cancelled.
            return;
        }
        // Elsewhere: the owner frees the slot at its next turn, which may
        // be as late as this timer's deadline; the waker (and the task it
        // keeps alive) goes now. A refused op means the owner is gone, and
        // its wheel with it.
        drop(entry.take_waker());
        let owner = entry.owner.clone();
        drop(owner.push_timer_op(Op::Cancel(entry)));
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}
