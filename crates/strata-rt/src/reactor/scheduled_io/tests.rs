//! Unit tests of the readiness word and the waiter queue.

use super::*;

/// `WaitId::enter` with the waker a call is polled with.
pub(super) fn enter_with<R>(id: WaitId, waker: &Waker, f: impl FnOnce() -> R) -> R {
    id.enter(waker.data(), waker.vtable(), f)
}
use std::sync::Arc;
use std::task::Wake;

struct Flag(std::sync::atomic::AtomicBool);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn stale_clear_keeps_newer_readiness() {
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let flag = Arc::new(Flag(false.into()));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());

    let mut to_wake = Vec::new();
    io.set_readiness(Ready(READABLE), &mut to_wake);
    // The only waiter is resident: handed out to be woken (outside the
    // lock), and kept.
    assert_eq!(to_wake.len(), 1);
    to_wake.drain(..).for_each(Waker::wake);
    assert!(flag.0.load(Ordering::SeqCst));

    let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
        panic!("expected readiness")
    };
    // A new event arrives before the task reports WouldBlock...
    io.set_readiness(Ready(READABLE), &mut to_wake);
    io.clear_readiness(ev);
    // ...so the clear must not erase it.
    assert!(io.poll_ready(&mut cx, Direction::Read).is_ready());

    let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
        panic!("expected readiness")
    };
    io.clear_readiness(ev);
    assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
}

#[test]
fn a_stale_clear_keeps_newer_readiness_however_many_events_came_before() {
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let mut cx = Context::from_waker(Waker::noop());
    for round in 0..100 {
        io.set_readiness(Ready(READABLE), &mut Vec::new());
        let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("round {round}: expected readiness")
        };
        // A new event arrives before the task reports WouldBlock: the
        // clear must not erase it.
        io.set_readiness(Ready(READABLE), &mut Vec::new());
        io.clear_readiness(ev);
        assert!(
            io.poll_ready(&mut cx, Direction::Read).is_ready(),
            "round {round}: a stale clear erased newer readiness"
        );
    }
    let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
        panic!("expected readiness")
    };
    io.clear_readiness(ev);
    assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
}

/// Inside a budgeted poll: the units left, counted by spending them.
fn budget_left() -> usize {
    let io = ScheduledIo::new(1, Ready(READABLE));
    let mut cx = Context::from_waker(Waker::noop());
    (0..10_000)
        .take_while(|_| io.poll_ready(&mut cx, Direction::Read).is_ready())
        .count()
}

#[test]
fn a_would_block_gives_back_its_budget_unit_only_if_it_cleared_the_readiness() {
    use crate::executor::coop::{TASK_BUDGET, with_budget};
    let full = TASK_BUDGET as usize;
    let mut cx = Context::from_waker(Waker::noop());
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let ready = |cx: &mut Context<'_>| {
        io.set_readiness(Ready(READABLE), &mut Vec::new());
        let Poll::Ready(Ok(ev)) = io.poll_ready(cx, Direction::Read) else {
            panic!("the budget ran out")
        };
        ev
    };
    // Each WouldBlock that clears the readiness gives its unit back:
    // any number of them cost nothing.
    let left = with_budget(|| {
        for _ in 0..3 * full {
            io.clear_readiness(ready(&mut cx));
        }
        budget_left()
    });
    assert_eq!(left, full);
    // A second WouldBlock on the same readiness cleared nothing: no
    // second unit back.
    let left = with_budget(|| {
        for _ in 0..3 * full {
            let ev = ready(&mut cx);
            io.clear_readiness(ev);
            io.clear_readiness(ev);
        }
        budget_left()
    });
    assert_eq!(left, full);
    // A newer event keeps the direction ready: the retry spends.
    let left = with_budget(|| {
        for _ in 0..10 {
            let ev = ready(&mut cx);
            io.set_readiness(Ready(READABLE), &mut Vec::new());
            io.clear_readiness(ev);
        }
        budget_left()
    });
    assert_eq!(left, full - 10);
}

fn flag_waker() -> (Arc<Flag>, Waker) {
    let flag = Arc::new(Flag(false.into()));
    let waker = Waker::from(flag.clone());
    (flag, waker)
}

#[test]
fn a_resident_that_stopped_waiting_is_not_woken_and_is_replaced() {
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let (a, wa) = flag_waker();
    let (b, wb) = flag_waker();
    let mut to_wake = Vec::new();
    // A waits (resident), B waits too in an `async fn` call (queued):
    // one event wakes both.
    assert!(
        io.poll_ready(&mut Context::from_waker(&wa), Direction::Read)
            .is_pending()
    );
    let cx = &mut Context::from_waker(&wb);
    assert!(enter_with(WaitId::next(), &wb, || io.poll_ready(cx, Direction::Read)).is_pending());
    io.set_readiness(Ready(READABLE), &mut to_wake);
    assert_eq!(to_wake.len(), 2);
    to_wake.drain(..).for_each(Waker::wake);
    assert!(a.0.swap(false, Ordering::SeqCst));
    assert!(b.0.swap(false, Ordering::SeqCst));
    let Poll::Ready(Ok(ev)) = io.poll_ready(&mut Context::from_waker(&wa), Direction::Read) else {
        panic!("expected readiness")
    };
    io.clear_readiness(ev);
    // Neither waits now: the next event wakes nobody.
    io.set_readiness(Ready(READABLE), &mut to_wake);
    assert!(to_wake.is_empty());
    assert!(!a.0.load(Ordering::SeqCst) && !b.0.load(Ordering::SeqCst));
    let Poll::Ready(Ok(ev)) = io.poll_ready(&mut Context::from_waker(&wb), Direction::Read) else {
        panic!("expected readiness")
    };
    io.clear_readiness(ev);
    // B waits again: it replaces the idle resident A and is woken.
    assert!(
        io.poll_ready(&mut Context::from_waker(&wb), Direction::Read)
            .is_pending()
    );
    io.set_readiness(Ready(READABLE), &mut to_wake);
    assert_eq!(to_wake.len(), 1);
    to_wake.drain(..).for_each(Waker::wake);
    assert!(b.0.load(Ordering::SeqCst));
    assert!(!a.0.load(Ordering::SeqCst));
}

#[test]
fn of_several_poll_star_waiters_only_the_latest_is_kept() {
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let (a, wa) = flag_waker();
    let (b, wb) = flag_waker();
    let (c, wc) = flag_waker();
    let (d, wd) = flag_waker();
    let mut to_wake = Vec::new();
    // A and B poll (no call id): B replaces A as the resident.
    for w in [&wa, &wb] {
        assert!(
            io.poll_ready(&mut Context::from_waker(w), Direction::Read)
                .is_pending()
        );
    }
    // C waits in an `async fn` call (queued with its id), then D polls:
    // D takes the one entry without an id.
    let cx = &mut Context::from_waker(&wc);
    assert!(enter_with(WaitId::next(), &wc, || io.poll_ready(cx, Direction::Read)).is_pending());
    assert!(
        io.poll_ready(&mut Context::from_waker(&wd), Direction::Read)
            .is_pending()
    );
    io.set_readiness(Ready(READABLE), &mut to_wake);
    assert_eq!(to_wake.len(), 2);
    to_wake.drain(..).for_each(Waker::wake);
    assert!(!a.0.load(Ordering::SeqCst) && !b.0.load(Ordering::SeqCst));
    assert!(c.0.load(Ordering::SeqCst) && d.0.load(Ordering::SeqCst));
}

#[test]
fn a_resident_now_in_an_async_fn_is_not_replaced_by_a_poll_star_caller() {
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let (a, wa) = flag_waker();
    let (b, wb) = flag_waker();
    let mut to_wake = Vec::new();
    // A polls (no id), then waits again in an `async fn` call.
    assert!(
        io.poll_ready(&mut Context::from_waker(&wa), Direction::Read)
            .is_pending()
    );
    let cx = &mut Context::from_waker(&wa);
    assert!(enter_with(WaitId::next(), &wa, || io.poll_ready(cx, Direction::Read)).is_pending());
    // B polls once: it must not take A's place.
    assert!(
        io.poll_ready(&mut Context::from_waker(&wb), Direction::Read)
            .is_pending()
    );
    io.set_readiness(Ready(READABLE), &mut to_wake);
    to_wake.drain(..).for_each(Waker::wake);
    assert!(
        a.0.load(Ordering::SeqCst),
        "the async fn waiter lost its wake-up"
    );
    assert!(b.0.load(Ordering::SeqCst));
}

#[test]
fn a_poll_star_caller_queued_behind_an_async_fn_resident_is_replaced_by_the_next() {
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let (r, wr) = flag_waker();
    let (a, wa) = flag_waker();
    let (b, wb) = flag_waker();
    let mut to_wake = Vec::new();
    // R waits in an `async fn` call: the resident, with its id.
    let cx = &mut Context::from_waker(&wr);
    assert!(enter_with(WaitId::next(), &wr, || io.poll_ready(cx, Direction::Read)).is_pending());
    // A polls (queued, no id), gives up; B polls: B takes A's entry.
    for w in [&wa, &wb] {
        assert!(
            io.poll_ready(&mut Context::from_waker(w), Direction::Read)
                .is_pending()
        );
    }
    io.set_readiness(Ready(READABLE), &mut to_wake);
    assert_eq!(to_wake.len(), 2);
    to_wake.drain(..).for_each(Waker::wake);
    assert!(r.0.load(Ordering::SeqCst));
    assert!(
        b.0.load(Ordering::SeqCst),
        "the latest poll_* caller lost its wake-up"
    );
    assert!(!a.0.load(Ordering::SeqCst));
}

#[test]
fn an_event_wakes_only_the_waiters_of_the_directions_it_reports() {
    for (event, woken) in [(READABLE, Direction::Read), (WRITABLE, Direction::Write)] {
        let io = ScheduledIo::new(1, Ready::EMPTY);
        let (r, wr) = flag_waker();
        let (w, ww) = flag_waker();
        let mut to_wake = Vec::new();
        for (waker, dir) in [(&wr, Direction::Read), (&ww, Direction::Write)] {
            assert!(
                io.poll_ready(&mut Context::from_waker(waker), dir)
                    .is_pending()
            );
        }
        io.set_readiness(Ready(event), &mut to_wake);
        assert_eq!(to_wake.len(), 1, "a {woken:?} event woke both directions");
        to_wake.drain(..).for_each(Waker::wake);
        assert_eq!(r.0.load(Ordering::SeqCst), woken == Direction::Read);
        assert_eq!(w.0.load(Ordering::SeqCst), woken == Direction::Write);
    }
}

#[test]
fn a_withdrawn_wait_takes_out_its_own_entry_only() {
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let (a, wa) = flag_waker();
    let (b, wb) = flag_waker();
    let (first, second) = (WaitId::next(), WaitId::next());
    let mut to_wake = Vec::new();
    // A is the resident; B waits through two calls, queued.
    assert!(
        io.poll_ready(&mut Context::from_waker(&wa), Direction::Read)
            .is_pending()
    );
    for id in [first, second] {
        let cx = &mut Context::from_waker(&wb);
        assert!(enter_with(id, &wb, || io.poll_ready(cx, Direction::Read)).is_pending());
    }
    // The first call is dropped: its entry goes, nobody is woken.
    io.withdraw(Direction::Read, first);
    assert!(!a.0.load(Ordering::SeqCst) && !b.0.load(Ordering::SeqCst));
    // The second call still waits, and the event wakes both tasks.
    io.set_readiness(Ready(READABLE), &mut to_wake);
    assert_eq!(to_wake.len(), 2);
    to_wake.drain(..).for_each(Waker::wake);
    assert!(a.0.load(Ordering::SeqCst) && b.0.load(Ordering::SeqCst));
}

#[test]
fn a_write_would_block_clears_a_write_closed_bit_from_an_error_event() {
    // mio reports EPOLLOUT|EPOLLERR as write-closed; a WouldBlock proves
    // the direction is open, so the bit must not stay set.
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let mut cx = Context::from_waker(Waker::noop());
    io.set_readiness(Ready(WRITABLE | WRITE_CLOSED | ERROR), &mut Vec::new());
    let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Write) else {
        panic!("expected readiness")
    };
    io.clear_readiness(ev);
    assert!(io.poll_ready(&mut cx, Direction::Write).is_pending());
}

/// A closed bit survives a `WouldBlock` from before it (an older tick),
/// and goes with one after it: a direction that says `WouldBlock` is
/// not closed (a shut-down UDP socket or listener reports itself so),
/// and must wait for its next event rather than be retried forever.
#[test]
fn closed_bits_outlive_older_would_blocks_only_and_shutdown_fails() {
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut to_wake = Vec::new();
    io.set_readiness(Ready(READABLE), &mut to_wake);
    let Poll::Ready(Ok(old)) = io.poll_ready(&mut cx, Direction::Read) else {
        panic!("expected readiness")
    };
    io.set_readiness(Ready(READABLE | READ_CLOSED), &mut to_wake);
    io.clear_readiness(old);
    let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, Direction::Read) else {
        panic!("the close must survive a WouldBlock from before it")
    };
    io.clear_readiness(ev);
    assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
    assert!(io.poll_ready(&mut cx, Direction::Write).is_pending());
    io.shutdown(&mut to_wake);
    assert!(matches!(
        io.poll_ready(&mut cx, Direction::Write),
        Poll::Ready(Err(_))
    ));
}
