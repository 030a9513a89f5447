//! Cancellation and drop safety of the middleware, with a
//! manual-poll harness (counting wakers, `Pin`, no executor).

mod recorder;

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use recorder::TestRecorder;
use strata_service::backoff::Backoff;
use strata_service::catch_panic::CatchPanic;
use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitState};
use strata_service::clock::{Clock, ManualClock};
use strata_service::limit::{ConcurrencyLimit, PermitPool, Rate, RateLimitLayer, TokenBucket};
use strata_service::load_shed::LoadShed;
use strata_service::metrics::{IN_FLIGHT, Metrics};
use strata_service::retry::{RetryBudget, RetryLayer, on_error};
use strata_service::timeout::TimeoutLayer;
use strata_service::{BoxError, Service, ServiceBuilder, service_fn};

#[derive(Default)]
struct CountWake(AtomicUsize);
impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
impl CountWake {
    fn n(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn counting() -> (Arc<CountWake>, Waker) {
    let c = Arc::new(CountWake::default());
    (c.clone(), Waker::from(c))
}

fn poll<F: Future>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(w))
}

/// What the inner test service does.
#[derive(Clone, Copy, Debug)]
enum Do {
    Ok,
    Fail,
    Pending,
    /// Pending until the shared gate opens.
    Gate,
    PanicInPoll,
}

/// Inner service counting calls and live futures.
#[derive(Clone, Default)]
struct Inner {
    calls: Rc<Cell<usize>>,
    live: Rc<Cell<usize>>,
    gate: Rc<Cell<bool>>,
}

struct Live(Rc<Cell<usize>>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl Service<Do> for Inner {
    type Response = u32;
    type Error = BoxError;
    async fn call(&self, d: Do) -> Result<u32, BoxError> {
        self.calls.set(self.calls.get() + 1);
        self.live.set(self.live.get() + 1);
        let _live = Live(self.live.clone());
        match d {
            Do::Ok => Ok(1),
            Do::Fail => Err("fail".into()),
            Do::Pending => std::future::pending().await,
            Do::Gate => {
                std::future::poll_fn(|_| {
                    if self.gate.get() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                Ok(2)
            }
            Do::PanicInPoll => panic!("inner panicked"),
        }
    }
}

fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

// --- ConcurrencyLimit -------------------------------------------------

#[test]
fn concurrency_limit_drop_at_every_point_returns_the_permit() {
    let inner = Inner::default();
    let svc = ConcurrencyLimit::new(inner.clone(), 1);
    let (_c, w) = counting();
    // Before the first poll.
    drop(svc.call(Do::Pending));
    assert_eq!(svc.pool().available(), 1);
    // Holding the permit, inner Pending.
    let mut a = Box::pin(svc.call(Do::Pending));
    assert!(poll(a.as_mut(), &w).is_pending());
    assert_eq!(svc.pool().available(), 0);
    // Queued, polled spuriously many times with different wakers.
    let mut b = Box::pin(svc.call(Do::Ok));
    for _ in 0..5 {
        let (_c2, w2) = counting();
        assert!(poll(b.as_mut(), &w2).is_pending());
    }
    assert_eq!(svc.pool().waiting(), 1);
    let (bc, bw) = counting();
    assert!(poll(b.as_mut(), &bw).is_pending());
    // Releasing grants b (wakes its latest waker once); drop b before it runs.
    drop(a);
    assert_eq!(bc.n(), 1, "the latest waker is woken once");
    assert_eq!(svc.pool().waiting(), 0);
    drop(b);
    assert_eq!(svc.pool().available(), 1, "granted-but-dropped permit lost");
    assert_eq!(inner.live.get(), 0);
}

#[test]
fn concurrency_limit_panicking_inner_returns_the_permit() {
    quiet_panics();
    let inner = Inner::default();
    let svc = CatchPanic::new(ConcurrencyLimit::new(inner.clone(), 1));
    let (_c, w) = counting();
    let mut f = pin!(svc.call(Do::PanicInPoll));
    assert!(matches!(poll(f.as_mut(), &w), Poll::Ready(Err(_))));
    assert_eq!(svc.get_ref().pool().available(), 1);
    // And without CatchPanic: the panic unwinds through the future.
    let bare = ConcurrencyLimit::new(inner.clone(), 1);
    let mut g = Box::pin(bare.call(Do::PanicInPoll));
    let r = catch_unwind(AssertUnwindSafe(|| poll(g.as_mut(), &w)));
    assert!(r.is_err());
    drop(g);
    assert_eq!(bare.pool().available(), 1);
    assert_eq!(inner.live.get(), 0);
}

// --- LoadShed + ConcurrencyLimit --------------------------------------

#[test]
fn load_shed_over_limit_cancellations_keep_the_pool_whole() {
    let pool = PermitPool::new(1);
    let inner = Inner::default();
    let svc = LoadShed::new(
        ConcurrencyLimit::with_pool(inner.clone(), pool.clone()),
        pool.clone(),
    )
    .max_waiting(1);
    let (_c, w) = counting();
    let mut a = Box::pin(svc.call(Do::Pending));
    assert!(poll(a.as_mut(), &w).is_pending());
    let mut b = Box::pin(svc.call(Do::Pending));
    assert!(poll(b.as_mut(), &w).is_pending());
    assert_eq!(pool.waiting(), 1);
    let mut c = Box::pin(svc.call(Do::Ok));
    assert!(matches!(poll(c.as_mut(), &w), Poll::Ready(Err(_))), "shed");
    drop(b);
    assert_eq!(pool.waiting(), 0);
    drop(a);
    assert_eq!(pool.available(), 1);
    let mut d = Box::pin(svc.call(Do::Ok));
    assert!(matches!(poll(d.as_mut(), &w), Poll::Ready(Ok(1))));
}

// --- RateLimit ---------------------------------------------------------

#[test]
fn rate_limit_dropped_waiter_refunds_and_unpolled_takes_nothing() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let svc = RateLimitLayer::with_bucket(bucket.clone());
    let svc = strata_service::Layer::layer(&svc, Inner::default());
    let (_c, w) = counting();
    // Unpolled: nothing taken.
    for _ in 0..10 {
        drop(svc.call(Do::Ok));
    }
    let mut a = Box::pin(svc.call(Do::Ok));
    assert!(matches!(poll(a.as_mut(), &w), Poll::Ready(Ok(1))));
    // A waiter that gives up returns its slot.
    for _ in 0..10 {
        let mut b = Box::pin(svc.call(Do::Ok));
        assert!(poll(b.as_mut(), &w).is_pending());
        drop(b);
    }
    clock.advance(Duration::from_millis(100));
    assert!(
        bucket.try_take(),
        "refunded token is there after one interval"
    );
    assert!(!bucket.try_take());
}

// --- Composed stack ----------------------------------------------------

#[test]
fn timeout_retry_limit_rate_stack_cancellation_leaks_nothing() {
    let clock = ManualClock::new();
    let pool = PermitPool::new(1);
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 100, 1.0, clock.clone());
    let inner = Inner::default();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::with_clock(
            Duration::from_secs(5),
            clock.clone(),
        ))
        .layer(
            RetryLayer::with_budget(on_error(|_: &BoxError| true), budget)
                .backoff(Backoff::constant(Duration::from_secs(1)))
                .max_retries(3),
        )
        .concurrency_limit_shared(pool.clone())
        .layer(RateLimitLayer::with_bucket(bucket.clone()))
        .service(inner.clone());
    let (_c, w) = counting();

    // 1. Holds the permit, inner Pending; dropped.
    let mut a = Box::pin(svc.call(Do::Pending));
    assert!(poll(a.as_mut(), &w).is_pending());
    assert_eq!((pool.available(), inner.live.get()), (0, 1));
    // 2. Queued for the permit; dropped.
    let mut b = Box::pin(svc.call(Do::Ok));
    assert!(poll(b.as_mut(), &w).is_pending());
    assert_eq!(pool.waiting(), 1);
    drop(b);
    drop(a);
    assert_eq!(
        (pool.available(), pool.waiting(), inner.live.get()),
        (1, 0, 0)
    );

    // 3. Waiting for a token while holding the permit; then timeout.
    clock.advance(Duration::from_secs(1));
    let mut c = Box::pin(svc.call(Do::Ok)); // takes the token
    assert!(matches!(poll(c.as_mut(), &w), Poll::Ready(Ok(1))));
    let mut d = Box::pin(svc.call(Do::Ok)); // waits for the next token
    assert!(poll(d.as_mut(), &w).is_pending());
    assert_eq!(pool.available(), 0);
    drop(d);
    assert_eq!(pool.available(), 1);
    clock.advance(Duration::from_millis(100));
    assert!(bucket.try_take(), "token refunded");

    // 4. In the retry backoff: no permit held; then the outer timeout.
    clock.advance(Duration::from_secs(1));
    let mut e = Box::pin(svc.call(Do::Fail));
    assert!(poll(e.as_mut(), &w).is_pending(), "backing off");
    assert_eq!(
        (pool.available(), inner.live.get(), inner.calls.get()),
        (1, 0, 3)
    );
    clock.advance(Duration::from_secs(5));
    let r = poll(e.as_mut(), &w);
    assert!(matches!(r, Poll::Ready(Err(_))), "{r:?}");
    drop(e);
    assert_eq!(
        (pool.available(), pool.waiting(), inner.live.get()),
        (1, 0, 0)
    );
}

// --- CircuitBreaker -----------------------------------------------------

#[test]
fn circuit_probe_dropped_at_every_point_frees_the_probe_slot() {
    quiet_panics();
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(1), clock.clone())
        .backoff(Backoff::constant(Duration::from_secs(1)));
    let inner = Inner::default();
    let svc = CircuitBreaker::new(inner.clone(), breaker.clone());
    let (_c, w) = counting();
    let mut f = pin!(svc.call(Do::Fail));
    assert!(poll(f.as_mut(), &w).is_ready());
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(1));
    // Probe dropped before its first poll: not a probe yet.
    drop(svc.call(Do::Ok));
    assert_eq!(breaker.state(), CircuitState::Open);
    // Probe dropped while Pending: next caller probes.
    for _ in 0..3 {
        let mut p = Box::pin(svc.call(Do::Pending));
        assert!(poll(p.as_mut(), &w).is_pending());
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        drop(p);
    }
    // A panicking probe, not caught: reopens.
    let mut p = Box::pin(svc.call(Do::PanicInPoll));
    assert!(catch_unwind(AssertUnwindSafe(|| poll(p.as_mut(), &w))).is_err());
    drop(p);
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(1));
    let mut ok = pin!(svc.call(Do::Ok));
    assert!(matches!(poll(ok.as_mut(), &w), Poll::Ready(Ok(1))));
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(inner.live.get(), 0);
}

// --- Metrics ------------------------------------------------------------

#[test]
fn metrics_gauge_after_cancel_and_panic() {
    quiet_panics();
    let recorder = TestRecorder::default();
    let inner = Inner::default();
    let svc = metrics::with_local_recorder(&recorder, || {
        CatchPanic::new(Metrics::new(ConcurrencyLimit::new(inner.clone(), 1), "rv"))
    });
    let (_c, w) = counting();
    drop(svc.call(Do::Pending)); // never polled
    assert_eq!(recorder.get(IN_FLIGHT, "rv").gauge(), 0.0);
    let mut a = Box::pin(svc.call(Do::Pending));
    assert!(poll(a.as_mut(), &w).is_pending());
    let mut b = Box::pin(svc.call(Do::Pending)); // queued in the limit
    assert!(poll(b.as_mut(), &w).is_pending());
    assert_eq!(recorder.get(IN_FLIGHT, "rv").gauge(), 2.0);
    drop(a);
    drop(b);
    assert_eq!(recorder.get(IN_FLIGHT, "rv").gauge(), 0.0);
    let mut p = Box::pin(svc.call(Do::PanicInPoll));
    assert!(matches!(poll(p.as_mut(), &w), Poll::Ready(Err(_))));
    assert_eq!(
        recorder.get(IN_FLIGHT, "rv").gauge(),
        0.0,
        "panicked call left the gauge up"
    );
    assert_eq!(svc.get_ref().get_ref().pool().available(), 1);
}

// --- Timeout ------------------------------------------------------------

#[test]
fn timeout_drop_and_wake_paths() {
    let clock = ManualClock::new();
    let inner = Inner::default();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::with_clock(
            Duration::from_secs(1),
            clock.clone(),
        ))
        .concurrency_limit(1)
        .service(inner.clone());
    let (c, w) = counting();
    let mut a = Box::pin(svc.call(Do::Gate));
    assert!(poll(a.as_mut(), &w).is_pending());
    // Spurious polls do not re-arm or duplicate anything.
    for _ in 0..5 {
        assert!(poll(a.as_mut(), &w).is_pending());
    }
    inner.gate.set(true);
    assert!(matches!(poll(a.as_mut(), &w), Poll::Ready(Ok(2))));
    drop(a);
    inner.gate.set(false);
    let mut b = Box::pin(svc.call(Do::Gate));
    assert!(poll(b.as_mut(), &w).is_pending());
    let before = c.n();
    clock.advance(Duration::from_secs(1));
    assert!(c.n() > before, "deadline wakes the task");
    assert!(matches!(poll(b.as_mut(), &w), Poll::Ready(Err(_))));
    drop(b);
    assert_eq!(inner.live.get(), 0);
    assert_eq!(svc.get_ref().pool().available(), 1);
    let _ = clock.now();
}

// --- Retry backoff dropped; budget --------------------------------------

#[test]
fn retry_dropped_before_first_poll_deposits_nothing() {
    let clock = ManualClock::new();
    // No floor, ratio 1: each deposit allows one retry.
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 1.0, clock.clone());
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::with_budget(on_error(|_: &BoxError| true), budget.clone())
                .backoff(Backoff::none()),
        )
        .service(Inner::default());
    for _ in 0..5 {
        drop(svc.call(Do::Fail));
    }
    assert_eq!(budget.balance(), 0);
    let _ = service_fn(|()| async { Ok::<(), ()>(()) });
}
