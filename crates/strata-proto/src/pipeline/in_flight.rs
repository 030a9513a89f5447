//! The in-flight queue of a pipelined connection: service futures in
//! request order, each polled until done, outputs released in order.
//!
//! Futures live in pinned boxes that are recycled: when a future finishes,
//! its box is emptied in place (`Pin::set(None)`) and kept for the next
//! request, so a busy connection allocates a slot only when its in-flight
//! count reaches a new high. An idle connection can release all boxes with
//! [`InFlight::release_idle`].
//!
//! A future that panics while polled is dropped, and its panic becomes its
//! output ([`Panicked`]), in its turn: the responses ahead of it still go
//! out before the connection acts on it.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

type Slot<F> = Pin<Box<Option<F>>>;

/// What a request's handler left instead of an output: the panic's text.
#[derive(Debug, PartialEq)]
pub(crate) struct Panicked(pub(crate) String);

impl Panicked {
    /// Logs the panic and keeps its text.
    #[cold]
    #[inline(never)]
    pub(crate) fn new(payload: Box<dyn Any + Send>) -> Panicked {
        let msg = crate::server::panic_message(&*payload);
        tracing::error!(panic = %msg, "request handler panicked; the connection closes after the responses before it");
        crate::server::drop_payload(payload);
        Panicked(msg)
    }
}

/// A request's outcome: its future's output, or its panic.
pub(crate) type Outcome<T> = Result<T, Panicked>;

struct Entry<F: Future> {
    slot: Slot<F>,
    /// The outcome, once the future finished (possibly ahead of its turn).
    out: Option<Outcome<F::Output>>,
}

/// Futures in request order; see the module docs.
pub(crate) struct InFlight<F: Future> {
    queue: VecDeque<Entry<F>>,
    free: Vec<Slot<F>>,
}

impl<F: Future> InFlight<F> {
    pub(crate) fn new() -> Self {
        InFlight {
            queue: VecDeque::new(),
            free: Vec::new(),
        }
    }

    /// Requests whose responses have not been taken yet.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Makes a request's future (`call`) and polls it once right away:
    /// most responses are ready on the first poll, which then costs no
    /// extra wake-up.
    ///
    /// Returns the outcome at once if the future finished on that poll (or
    /// `call` or the poll panicked) and nothing is queued ahead of it;
    /// otherwise it waits in the queue.
    pub(crate) fn push(
        &mut self,
        call: impl FnOnce() -> F,
        cx: &mut Context<'_>,
    ) -> Option<Outcome<F::Output>> {
        // Run it in the spare slot, which it keeps only if it has to wait:
        // unfinished, or finished behind others still queued.
        if self.free.is_empty() {
            self.free.push(Box::pin(None));
        }
        let slot = self.free.last_mut().expect("a spare slot");
        // One unwind guard for `call` and the first poll together.
        let polled = catch_unwind(AssertUnwindSafe(|| {
            slot.set(Some(call()));
            slot.as_mut().as_pin_mut().expect("just set").poll(cx)
        }));
        let out = match polled {
            Ok(Poll::Pending) => None,
            Ok(Poll::Ready(v)) => Some(drop_in_slot(slot).map(|()| v)),
            Err(payload) => {
                let _ = drop_in_slot(slot);
                Some(Err(Panicked::new(payload)))
            }
        };
        if out.is_some() && self.queue.is_empty() {
            return out;
        }
        let slot = self.free.pop().expect("a spare slot");
        self.queue.push_back(Entry { slot, out });
        None
    }

    /// The next output in request order, polling unfinished futures first.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcome<F::Output>>> {
        let Some(front) = self.queue.front_mut() else {
            return Poll::Ready(None);
        };
        if front.out.is_none() {
            // Poll everything unfinished: later futures make progress (and
            // register wakers) even while the head is slow, also those
            // behind a panicked one: the head may wait on one of them.
            for e in self.queue.iter_mut() {
                poll_entry(e, cx);
            }
        }
        let front = self.queue.front_mut().expect("checked above");
        match front.out.take() {
            Some(out) => {
                let entry = self.queue.pop_front().expect("checked above");
                self.free.push(entry.slot);
                Poll::Ready(Some(out))
            }
            None => Poll::Pending,
        }
    }

    /// Polls every unfinished future without taking any output: for when
    /// the connection cannot take outputs (its write side is full), so
    /// that requests still run meanwhile, and finish, and let go of what
    /// they hold (a permit of a shared limit, say). Their outputs wait in
    /// the queue, which `max_in_flight` bounds.
    ///
    /// A request that panicked ends the connection at its turn, and the
    /// requests behind it are never answered. While a request ahead of it
    /// is unfinished they still run (that one may wait on one of them);
    /// once none is, they are dropped here and now, letting go of what
    /// they hold, rather than left halfway (or, waking themselves, polled
    /// on for as long as the peer does not read).
    pub(crate) fn poll_unfinished(&mut self, cx: &mut Context<'_>) {
        let mut unfinished_ahead = false;
        let mut last = None;
        for (i, e) in self.queue.iter_mut().enumerate() {
            poll_entry(e, cx);
            match e.out {
                None => unfinished_ahead = true,
                Some(Err(Panicked(_))) if !unfinished_ahead => {
                    last = Some(i);
                    break;
                }
                Some(_) => {}
            }
        }
        if let Some(last) = last {
            while self.queue.len() > last + 1 {
                let entry = self.queue.pop_back().expect("longer than `last`");
                drop_guarded(entry);
            }
        }
    }

    /// Drops every request still in flight (after a fatal error), one at a
    /// time: a future that panics in its `Drop` is logged, and the others
    /// are still dropped (a second panic while the first unwound would
    /// abort the process). The connection ends for the reason it dropped
    /// them.
    pub(crate) fn clear(&mut self) {
        while let Some(entry) = self.queue.pop_front() {
            drop_guarded(entry);
        }
    }

    /// Drops the recycled boxes (call when the connection goes idle).
    pub(crate) fn release_idle(&mut self) {
        self.free = Vec::new();
    }
}

impl<F: Future> Drop for InFlight<F> {
    /// A connection that ends with requests in flight (a timeout, a write
    /// error) drops them as `clear` does.
    fn drop(&mut self) {
        self.clear();
    }
}

/// Drops a request that will not be answered; a panic in its `Drop` is
/// logged, not propagated (see [`InFlight::clear`]).
fn drop_guarded<F: Future>(entry: Entry<F>) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(entry))) {
        let msg = crate::server::panic_message(&*payload);
        tracing::error!(panic = %msg, "a cancelled request's future panicked when dropped");
        crate::server::drop_payload(payload);
    }
}

fn poll_entry<F: Future>(e: &mut Entry<F>, cx: &mut Context<'_>) {
    if e.out.is_none() {
        e.out = poll_slot(&mut e.slot, cx);
    }
}

/// Polls the future in `slot`, if any; when it finishes or panics, drops
/// it in place (keeping the box) and returns its outcome.
fn poll_slot<F: Future>(slot: &mut Slot<F>, cx: &mut Context<'_>) -> Option<Outcome<F::Output>> {
    let fut = slot.as_mut().as_pin_mut()?;
    let out = match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
        Ok(Poll::Ready(v)) => Ok(v),
        Ok(Poll::Pending) => return None,
        Err(payload) => Err(Panicked::new(payload)),
    };
    let dropped = drop_in_slot(slot);
    Some(out.and_then(|v| dropped.map(|()| v)))
}

/// Drops the future in `slot` (the box is kept); a panic in its `Drop` is
/// caught and becomes the request's outcome. The slot is `None` either way.
fn drop_in_slot<F>(slot: &mut Slot<F>) -> Result<(), Panicked> {
    catch_unwind(AssertUnwindSafe(|| slot.set(None))).map_err(Panicked::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::Waker;

    /// A future that becomes ready when its flag is set.
    struct Gate(Rc<Cell<bool>>, u32);
    impl Future for Gate {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            if self.0.get() {
                Poll::Ready(self.1)
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn outputs_come_in_push_order_even_when_later_ones_finish_first() {
        let mut cx = Context::from_waker(Waker::noop());
        let gates: Vec<_> = (0..3).map(|_| Rc::new(Cell::new(false))).collect();
        let mut q = InFlight::new();
        for (i, g) in gates.iter().enumerate() {
            assert_eq!(q.push(|| Gate(g.clone(), i as u32), &mut cx), None);
        }
        gates[2].set(true);
        gates[1].set(true);
        assert!(q.poll_next(&mut cx).is_pending());
        gates[0].set(true);
        assert_eq!(q.poll_next(&mut cx), Poll::Ready(Some(Ok(0))));
        assert_eq!(q.poll_next(&mut cx), Poll::Ready(Some(Ok(1))));
        assert_eq!(q.poll_next(&mut cx), Poll::Ready(Some(Ok(2))));
        assert_eq!(q.poll_next(&mut cx), Poll::Ready(None));
        // Boxes are recycled, not reallocated.
        assert_eq!(q.free.len(), 3);
        // Ready at once with nothing queued: handed straight back.
        assert_eq!(q.push(|| Gate(gates[0].clone(), 9), &mut cx), Some(Ok(9)));
        assert_eq!(q.free.len(), 3);
        assert!(q.is_empty());
        let closed = Rc::new(Cell::new(false));
        assert_eq!(q.push(|| Gate(closed.clone(), 10), &mut cx), None);
        // Ready, but queued behind a pending one: it waits its turn.
        assert_eq!(q.push(|| Gate(gates[0].clone(), 11), &mut cx), None);
        assert!(q.poll_next(&mut cx).is_pending());
        closed.set(true);
        assert_eq!(q.poll_next(&mut cx), Poll::Ready(Some(Ok(10))));
        assert_eq!(q.poll_next(&mut cx), Poll::Ready(Some(Ok(11))));
        q.release_idle();
        assert!(q.free.is_empty());
    }

    /// A future that panics when its flag is set.
    struct Bomb(Rc<Cell<bool>>);
    impl Future for Bomb {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            assert!(!self.0.get(), "bomb went off");
            Poll::Pending
        }
    }

    #[test]
    fn a_panic_is_an_outcome_in_its_turn() {
        let mut cx = Context::from_waker(Waker::noop());
        let (first, fuse, last) = (
            Rc::new(Cell::new(false)),
            Rc::new(Cell::new(false)),
            Rc::new(Cell::new(true)),
        );
        let mut q: InFlight<std::pin::Pin<Box<dyn Future<Output = u32>>>> = InFlight::new();
        assert_eq!(q.push(|| Box::pin(Gate(first.clone(), 1)), &mut cx), None);
        assert_eq!(q.push(|| Box::pin(Bomb(fuse.clone())), &mut cx), None);
        assert_eq!(q.push(|| panic!("in call"), &mut cx), None);
        assert_eq!(q.push(|| Box::pin(Gate(last, 3)), &mut cx), None);
        fuse.set(true);
        assert!(q.poll_next(&mut cx).is_pending(), "the head is not done");
        first.set(true);
        assert_eq!(q.poll_next(&mut cx), Poll::Ready(Some(Ok(1))));
        assert_eq!(
            q.poll_next(&mut cx),
            Poll::Ready(Some(Err(Panicked("bomb went off".into()))))
        );
        assert_eq!(
            q.poll_next(&mut cx),
            Poll::Ready(Some(Err(Panicked("in call".into()))))
        );
        assert_eq!(q.poll_next(&mut cx), Poll::Ready(Some(Ok(3))));
        assert_eq!(
            q.push(|| panic!("alone"), &mut cx),
            Some(Err(Panicked("alone".into())))
        );
    }

    /// Panics when polled, and again when dropped.
    struct DoubleBomb;
    impl Future for DoubleBomb {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            panic!("poll bomb")
        }
    }
    impl Drop for DoubleBomb {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("drop bomb");
            }
        }
    }

    #[test]
    fn a_future_whose_drop_panics_after_its_poll_panicked_is_contained() {
        let mut cx = Context::from_waker(Waker::noop());
        let gate = Rc::new(Cell::new(false));
        let mut q: InFlight<std::pin::Pin<Box<dyn Future<Output = u32>>>> = InFlight::new();
        assert_eq!(q.push(|| Box::pin(Gate(gate.clone(), 1)), &mut cx), None);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.push(|| Box::pin(DoubleBomb), &mut cx)
        }));
        assert!(r.is_ok(), "the drop panic escaped InFlight::push");
    }

    /// Pending until dropped, then panics.
    struct DropBomb(Rc<Cell<u32>>);
    impl Future for DropBomb {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            Poll::Pending
        }
    }
    impl Drop for DropBomb {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            panic!("drop bomb");
        }
    }

    #[test]
    fn clearing_futures_whose_drops_panic_drops_them_all_and_contains_it() {
        let mut cx = Context::from_waker(Waker::noop());
        let dropped = Rc::new(Cell::new(0));
        let mut q: InFlight<std::pin::Pin<Box<dyn Future<Output = u32>>>> = InFlight::new();
        for _ in 0..3 {
            assert_eq!(
                q.push(|| Box::pin(DropBomb(dropped.clone())), &mut cx),
                None
            );
        }
        // Before, the second panic came while the first unwound: an abort.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.clear()));
        assert!(r.is_ok(), "a drop panic escaped InFlight::clear");
        assert_eq!(dropped.get(), 3);
        assert_eq!(q.poll_next(&mut cx), Poll::Ready(None));
        // Dropping the queue with requests in it does the same.
        q.push(|| Box::pin(DropBomb(dropped.clone())), &mut cx);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(q)));
        assert!(r.is_ok(), "a drop panic escaped InFlight's drop");
        assert_eq!(dropped.get(), 4);
    }
}
