//! Unit tests of `WaitId`: which call of a task a waker belongs to.

use super::tests::enter_with;
use super::*;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::Wake;

struct Flag(AtomicBool);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}
fn flag_waker() -> (Arc<Flag>, Waker) {
    let f = Arc::new(Flag(false.into()));
    (f.clone(), Waker::from(f))
}

/// A poll of an async fn call that panics (caught by the task harness)
/// must not leave its id as the thread's current wait id: later
/// `poll_*` registrations of other tasks would carry it, be merged into
/// one entry (the last waker wins), and lose wake-ups.
#[test]
fn a_panicking_wait_poll_does_not_leak_its_id() {
    let id = WaitId::next();
    let _ = std::panic::catch_unwind(|| enter_with(id, Waker::noop(), || panic!("poll panicked")));
    assert_eq!(
        WaitId::current(),
        WaitId::NONE,
        "stale wait id left on the thread"
    );
}

/// Same, observed as a lost wake-up: after a caught panic, two tasks
/// waiting through `poll_*` behind an armed resident.
#[test]
fn after_a_panicking_wait_poll_its_task_s_poll_star_entries_carry_no_id() {
    // The panicking call's task (A) registers through `poll_*` next, with
    // the same waker: a stale thread-local id would be taken for a call.
    let id = WaitId::next();
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let (_r, wr) = flag_waker();
    let (_a, wa) = flag_waker();
    let _ = std::panic::catch_unwind(|| enter_with(id, &wa, || panic!("poll panicked")));
    for w in [&wr, &wa] {
        assert!(
            io.poll_ready(&mut Context::from_waker(w), Direction::Read)
                .is_pending()
        );
    }
    assert!(
        io.waiters()
            .more_readers
            .iter()
            .all(|q| q.wait == WaitId::NONE),
        "a stale id on a poll_* entry"
    );
}

/// A waker run inside an async fn's poll (coop budget, deferred read)
/// that polls another task's `poll_*` inline registers with the outer
/// call's id; when the outer call is dropped its withdrawal takes the
/// inner task's entry with it.
#[test]
fn an_inline_poll_star_inside_a_wait_poll_is_not_withdrawn_with_it() {
    let io = ScheduledIo::new(1, Ready::EMPTY);
    let (_r, wr) = flag_waker();
    let (a, wa) = flag_waker();
    let (_b, wb) = flag_waker();
    assert!(
        io.poll_ready(&mut Context::from_waker(&wr), Direction::Read)
            .is_pending()
    );
    let outer = WaitId::next();
    enter_with(outer, &wb, || {
        // B's call registers (queued, id `outer`)...
        assert!(
            io.poll_ready(&mut Context::from_waker(&wb), Direction::Read)
                .is_pending()
        );
        // ...and, inside that poll, A's poll_* runs (an inline waker).
        assert!(
            io.poll_ready(&mut Context::from_waker(&wa), Direction::Read)
                .is_pending()
        );
    });
    // B's call is dropped.
    io.withdraw(Direction::Read, outer);
    let mut to_wake = Vec::new();
    io.set_readiness(Ready(READABLE), &mut to_wake);
    to_wake.drain(..).for_each(Waker::wake);
    assert!(a.0.load(Ordering::SeqCst), "task A's wake-up was lost");
}
