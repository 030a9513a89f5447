//! `ManualClock`, the test clock, with wakers that run code of their own.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use strata_service::clock::{Clock, ManualClock};

static CLOCK: OnceLock<ManualClock> = OnceLock::new();

/// A waker whose clone reads `CLOCK` (an executor stamping each clone with
/// the test's time, say).
fn clock_reading_waker() -> Waker {
    unsafe fn clone(_: *const ()) -> RawWaker {
        if let Some(c) = CLOCK.get() {
            let _ = c.now();
        }
        RawWaker::new(std::ptr::null(), &VTABLE)
    }
    unsafe fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions ignore the data pointer.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// `ManualSleep::poll` cloned the waker with the clock's lock held, and a
/// clone that read the clock locked it again on the same thread, for good.
#[test]
fn a_sleep_clones_the_waker_with_the_clock_unlocked() {
    let clock = CLOCK.get_or_init(ManualClock::new).clone();
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let waker = clock_reading_waker();
        let mut nap = clock.sleep_until(clock.now() + Duration::from_secs(1));
        let pending = Pin::new(&mut nap)
            .poll(&mut Context::from_waker(&waker))
            .is_pending();
        let _ = done_tx.send(pending);
    });
    // A hang guard, not a timing bound.
    assert_eq!(done.recv_timeout(Duration::from_secs(30)), Ok(true));
}
