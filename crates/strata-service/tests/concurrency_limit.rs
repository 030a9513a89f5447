//! `ConcurrencyLimit` and its `PermitPool`: the bound, FIFO order, and
//! cancellation at every stage.

mod scripted;

use std::pin::{Pin, pin};
use std::sync::{Arc, mpsc};
use std::task::Poll;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use futures_executor::block_on;
use scripted::{Scripted, Step, poll_once};
use strata_service::clock::ManualClock;
use strata_service::limit::{ConcurrencyLimit, ConcurrencyLimitLayer, PermitPool};
use strata_service::{Layer, Service};

#[test]
fn at_most_n_calls_are_inside() {
    let inner = Scripted::new(ManualClock::new());
    let svc = ConcurrencyLimit::new(inner.clone(), 2);
    let mut calls: Vec<Pin<Box<_>>> = (0..5).map(|_| Box::pin(svc.call(Step::Pending))).collect();
    for call in &mut calls {
        assert!(poll_once(call.as_mut()).is_pending());
    }
    assert_eq!(inner.counts.in_flight(), 2);
    assert_eq!(
        inner.counts.calls(),
        2,
        "the others never reached the service"
    );
    assert_eq!(svc.pool().waiting(), 3);

    drop(calls.remove(0)); // one finishes (is dropped): the first waiter gets in
    for call in &mut calls {
        assert!(poll_once(call.as_mut()).is_pending());
    }
    assert_eq!(inner.counts.in_flight(), 2);
    assert_eq!(inner.counts.max_in_flight(), 2);
    drop(calls);
    assert_eq!(svc.pool().available(), 2);
    assert_eq!(block_on(svc.call(Step::Ok(1))).unwrap(), 1);
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let pool = PermitPool::new(1);
    let held = pool.try_acquire().unwrap();
    let mut a = pin!(pool.acquire());
    let mut b = pin!(pool.acquire());
    let mut c = pin!(pool.acquire());
    // Polled in reverse: order of arrival (first poll) is what counts.
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());

    drop(held);
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    let Poll::Ready(permit_a) = poll_once(a.as_mut()) else {
        panic!("a came first")
    };
    drop(permit_a);
    assert!(poll_once(c.as_mut()).is_pending());
    let Poll::Ready(_permit_b) = poll_once(b.as_mut()) else {
        panic!("b came second")
    };
}

#[test]
fn a_newcomer_does_not_overtake_a_waiter() {
    let pool = PermitPool::new(1);
    let held = pool.try_acquire().unwrap();
    let mut waiter = pin!(pool.acquire());
    assert!(poll_once(waiter.as_mut()).is_pending());
    drop(held); // handed to the waiter, not put back
    assert_eq!(pool.available(), 0);
    assert!(pool.try_acquire().is_none());
    let mut newcomer = pin!(pool.acquire());
    assert!(poll_once(newcomer.as_mut()).is_pending());
    assert!(poll_once(waiter.as_mut()).is_ready());
}

#[test]
fn a_cancelled_waiter_leaves_the_queue() {
    let pool = PermitPool::new(1);
    let held = pool.try_acquire().unwrap();
    let mut quitter = Box::pin(pool.acquire());
    let mut stayer = pin!(pool.acquire());
    assert!(poll_once(quitter.as_mut()).is_pending());
    assert!(poll_once(stayer.as_mut()).is_pending());
    drop(quitter);
    assert_eq!(pool.waiting(), 1);
    drop(held);
    assert!(poll_once(stayer.as_mut()).is_ready());
}

#[test]
fn a_permit_granted_to_a_cancelled_waiter_is_passed_on() {
    let pool = PermitPool::new(1);
    let held = pool.try_acquire().unwrap();
    let mut granted = Box::pin(pool.acquire());
    let mut next = pin!(pool.acquire());
    assert!(poll_once(granted.as_mut()).is_pending());
    assert!(poll_once(next.as_mut()).is_pending());
    drop(held); // goes to `granted`, which never polls again
    drop(granted);
    assert!(poll_once(next.as_mut()).is_ready());
    assert_eq!(pool.available(), 1, "no permit leaked");
}

#[test]
fn a_pool_reports_the_permits_it_was_created_with() {
    let pool = PermitPool::new(3);
    let _held = pool.try_acquire().unwrap();
    assert_eq!(
        (pool.max(), pool.available()),
        (3, 2),
        "taking leaves max alone"
    );
    let svc = ConcurrencyLimit::new(Scripted::new(ManualClock::new()), 5);
    assert_eq!(svc.pool().max(), 5);
    let shown = format!("{svc:?}");
    assert!(
        shown.starts_with("ConcurrencyLimit { inner: Scripted"),
        "{shown}"
    );
    assert!(
        shown.ends_with("pool: PermitPool { max: 5, available: 5, waiting: 0 } }"),
        "{shown}"
    );
}

/// "Someone is queued" must be forgotten once the queue empties (the last
/// waiter served): a permit given back afterwards is free for
/// `try_acquire` again.
#[test]
fn try_acquire_takes_a_permit_again_after_the_last_waiter_is_served() {
    let pool = PermitPool::new(1);
    let held = pool.try_acquire().unwrap();
    let mut waiter = pin!(pool.acquire());
    assert!(poll_once(waiter.as_mut()).is_pending());
    drop(held); // handed to the waiter: the queue is empty now
    let Poll::Ready(permit) = poll_once(waiter.as_mut()) else {
        panic!("the waiter was handed the permit")
    };
    drop(permit);
    assert_eq!((pool.available(), pool.waiting()), (1, 0));
    assert!(
        pool.try_acquire().is_some(),
        "a free permit and nobody queued"
    );
}

/// The same when the last waiter gives up instead.
#[test]
fn try_acquire_takes_a_permit_again_after_the_last_waiter_gives_up() {
    let pool = PermitPool::new(1);
    let held = pool.try_acquire().unwrap();
    let mut quitter = Box::pin(pool.acquire());
    assert!(poll_once(quitter.as_mut()).is_pending());
    assert_eq!(format!("{quitter:?}"), "Acquire { queued: true }");
    drop(quitter);
    drop(held);
    assert_eq!((pool.available(), pool.waiting()), (1, 0));
    let permit = pool.try_acquire().expect("a free permit and nobody queued");
    assert_eq!(format!("{permit:?}"), "Permit { .. }");
}

#[test]
fn the_layer_gives_each_service_its_own_limit_or_shares_one() {
    let clock = ManualClock::new();
    let each = ConcurrencyLimitLayer::new(1);
    let (a, b) = (
        each.layer(Scripted::new(clock.clone())),
        each.layer(Scripted::new(clock.clone())),
    );
    let mut ca = pin!(a.call(Step::Pending));
    let mut cb = pin!(b.call(Step::Pending));
    assert!(poll_once(ca.as_mut()).is_pending());
    assert!(poll_once(cb.as_mut()).is_pending());
    assert_eq!(
        a.pool().available() + b.pool().available(),
        0,
        "both got in"
    );

    let pool = PermitPool::new(1);
    let shared = ConcurrencyLimitLayer::shared(pool.clone());
    let inner = Scripted::new(clock);
    let (c, d) = (shared.layer(inner.clone()), shared.layer(inner.clone()));
    let mut cc = pin!(c.call(Step::Pending));
    let mut cd = pin!(d.call(Step::Pending));
    assert!(poll_once(cc.as_mut()).is_pending());
    assert!(poll_once(cd.as_mut()).is_pending());
    assert_eq!(inner.counts.in_flight(), 1, "one budget for both");
    assert_eq!(pool.waiting(), 1);
}

#[test]
fn permits_are_conserved_under_contention_between_threads() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let pool = PermitPool::new(2);
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pool, inside, most) = (pool.clone(), Arc::clone(&inside), Arc::clone(&most));
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    let permit = if i % 2 == 0 {
                        block_on(pool.acquire())
                    } else {
                        match pool.try_acquire() {
                            Some(p) => p,
                            None => continue,
                        }
                    };
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::hint::spin_loop();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= 2);
    assert_eq!(pool.available(), 2);
    assert_eq!(pool.waiting(), 0);
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

struct TryOnDrop(PermitPool, mpsc::Sender<bool>);
impl Wake for TryOnDrop {
    fn wake(self: Arc<Self>) {}
}
impl Drop for TryOnDrop {
    fn drop(&mut self) {
        let got = self.0.try_acquire().is_some();
        let _ = self.1.send(got);
    }
}

/// The pool drops a waiter's old waker only after releasing its lock: code
/// run by that drop may use the pool. A review found `try_acquire` (which
/// takes the lock while the waiters bit is set) deadlocking there, when a
/// waiter re-polled with another waker dropped its old one.
#[test]
fn try_acquire_from_a_waker_dropped_by_a_repoll_does_not_deadlock() {
    let (tx, rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let pool = PermitPool::new(1);
        let held = pool.try_acquire().expect("a free permit");
        let mut acq = pin!(pool.acquire());
        {
            let w1 = Waker::from(Arc::new(TryOnDrop(pool.clone(), tx)));
            let mut cx = Context::from_waker(&w1);
            assert!(acq.as_mut().poll(&mut cx).is_pending());
        }
        // Only the queued waiter holds w1 now; this poll replaces it.
        let w2 = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&w2);
        assert!(acq.as_mut().poll(&mut cx).is_pending());
        drop(held);
        let _ = done_tx.send(());
    });
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("try_acquire, called while the pool's lock is held, deadlocked");
    assert!(!got, "a queued waiter was overtaken");
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the pool deadlocked");
}

/// The same through `Acquire`'s drop: a queued waiter that gives up drops
/// its waker after the lock.
#[test]
fn try_acquire_from_a_waker_dropped_by_a_cancelled_waiter_does_not_deadlock() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let pool = PermitPool::new(1);
        let _held = pool.try_acquire().expect("a free permit");
        // A second waiter keeps the waiters bit set after the first leaves.
        let mut other = Box::pin(pool.acquire());
        let mut acq = Box::pin(pool.acquire());
        {
            let w = Waker::from(Arc::new(Noop));
            let mut cx = Context::from_waker(&w);
            assert!(other.as_mut().poll(&mut cx).is_pending());
            let w1 = Waker::from(Arc::new(TryOnDrop(pool.clone(), tx)));
            let mut cx = Context::from_waker(&w1);
            assert!(acq.as_mut().poll(&mut cx).is_pending());
        }
        drop(acq);
        drop(other);
    });
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("try_acquire, called while the pool's lock is held, deadlocked");
    assert!(!got, "a queued waiter was overtaken");
}

/// A waker whose clone uses the pool: its data pointer is the pool.
static CLONE_TRIES_POOL: std::task::RawWakerVTable =
    std::task::RawWakerVTable::new(clone_tries_pool, no_op, no_op, no_op);

/// # Safety
///
/// `p` points to a `PermitPool` that outlives every copy of the waker.
unsafe fn clone_tries_pool(p: *const ()) -> std::task::RawWaker {
    // SAFETY: the caller's contract (the tests leak the pool).
    let pool = unsafe { &*p.cast::<PermitPool>() };
    drop(pool.try_acquire());
    std::task::RawWaker::new(p, &CLONE_TRIES_POOL)
}

unsafe fn no_op(_: *const ()) {}

fn clone_tries(pool: &'static PermitPool) -> Waker {
    let raw = std::task::RawWaker::new(std::ptr::from_ref(pool).cast(), &CLONE_TRIES_POOL);
    // SAFETY: the vtable's functions keep the RawWaker contract (clone
    // returns a waker of the same data and vtable; the others do nothing),
    // and the pool is leaked, so the data pointer stays valid.
    unsafe { Waker::from_raw(raw) }
}

/// The pool clones a waiter's waker only with its lock released, on the
/// first poll and on a poll with another waker (a review found the clone
/// still under the lock after the drops were moved out).
#[test]
fn try_acquire_from_a_waker_cloned_by_acquire_does_not_deadlock() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let pool: &'static PermitPool = Box::leak(Box::new(PermitPool::new(1)));
        let _held = pool.try_acquire().expect("a free permit");
        // A first waiter sets the waiters bit: try_acquire now locks.
        let mut first = pin!(pool.acquire());
        assert!(
            first
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
        let waker = clone_tries(pool);
        // Queued with that waker (a clone at the first poll).
        let mut second = pin!(pool.acquire());
        assert!(
            second
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        // Polled again with another waker, then with that one again.
        assert!(
            second
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
        assert!(
            second
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("Acquire::poll deadlocked: it cloned the waker under the pool's lock");
}
