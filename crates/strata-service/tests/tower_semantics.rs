//! strata-service middleware against what a tower / Finagle user
//! expects. Every test here counts events on a `ManualClock` or by
//! hand; none depends on wall-clock time.

mod scripted;

use std::cell::Cell;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_executor::block_on;
use scripted::{Scripted, Step, poll_once};
use strata_service::backoff::Backoff;
use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitOpen, CircuitState};
use strata_service::clock::ManualClock;
use strata_service::limit::{
    ConcurrencyLimit, PermitPool, Rate, RateLimit, RateLimitLayer, TokenBucket,
};
use strata_service::load_shed::Overloaded;
use strata_service::retry::{Retry, RetryBudget, on_error};
use strata_service::timeout::{Elapsed, TimeoutLayer};
use strata_service::trace::Trace;
use strata_service::{BoxError, Layer, Service, ServiceBuilder, service_fn};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

// ---------------------------------------------------------------------------
// Trace: does the span cover everything the inner service logs?
// ---------------------------------------------------------------------------

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Counts events logged inside and outside any entered span.
#[derive(Default, Clone)]
struct InSpan {
    next: Arc<AtomicU64>,
    inside: Arc<Mutex<Vec<String>>>,
    outside: Arc<Mutex<Vec<String>>>,
}

struct Msg(String);
impl tracing::field::Visit for Msg {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for InSpan {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut msg = Msg(String::new());
        event.record(&mut msg);
        if DEPTH.with(Cell::get) > 0 {
            self.inside.lock().unwrap().push(msg.0);
        } else {
            self.outside.lock().unwrap().push(msg.0);
        }
    }
    fn enter(&self, _: &Id) {
        DEPTH.with(|d| d.set(d.get() + 1));
    }
    fn exit(&self, _: &Id) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Everything the inner service logs is inside the request span, as with
/// tower-http's Trace, which enters the span around `inner.call(req)`:
/// here the inner service logs once in `call` (before its future exists,
/// as `service_fn` closures, `map_request` closures and hand-written
/// `call`s do) and once in its future. (The first used to be outside.)
#[test]
fn trace_span_covers_what_the_inner_call_logs_synchronously() {
    let subscriber = InSpan::default();
    tracing::subscriber::with_default(subscriber.clone(), || {
        let svc = Trace::new(
            service_fn(|n: u32| {
                tracing::info!("inner call");
                async move {
                    tracing::info!("inner future");
                    Ok::<_, BoxError>(n)
                }
            }),
            "api",
        );
        assert_eq!(block_on(svc.call(1)).unwrap(), 1);
    });
    let outside = subscriber.outside.lock().unwrap().clone();
    assert!(
        outside.is_empty(),
        "events logged by the inner service outside the request span: {outside:?} \
         (inside: {:?})",
        subscriber.inside.lock().unwrap()
    );
}

/// The same through a builder: a `map_request` below `trace` logs inside
/// the span.
#[test]
fn trace_span_covers_a_map_request_below_it() {
    let subscriber = InSpan::default();
    tracing::subscriber::with_default(subscriber.clone(), || {
        let svc = ServiceBuilder::new()
            .trace("api")
            .map_request(|n: u32| {
                tracing::info!(n, "rewriting request");
                n + 1
            })
            .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
        assert_eq!(block_on(svc.call(1)).unwrap(), 2);
    });
    let outside = subscriber.outside.lock().unwrap().clone();
    assert!(
        outside.is_empty(),
        "logged outside the request span: {outside:?}"
    );
}

// ---------------------------------------------------------------------------
// Circuit breaker: "over the last `window`"
// ---------------------------------------------------------------------------

/// `Accrual::FailureRate` counts the calls that finished over the last
/// `window`, kept in ten slots; the oldest tenth may already be forgotten
/// (documented). Two failures 8.9 s apart, inside 0.9 × a 10 s window,
/// with `min_calls: 2` and `rate: 1.0`, open the circuit; two 10.1 s apart
/// do not.
#[test]
fn failure_rate_counts_the_calls_inside_the_window() {
    for (gap_ms, tripped) in [(8_900, true), (10_100, false)] {
        let clock = ManualClock::new();
        let breaker = Breaker::with_clock(
            Accrual::FailureRate {
                rate: 1.0,
                min_calls: 2,
                window: Duration::from_secs(10),
            },
            clock.clone(),
        );
        let svc = CircuitBreaker::new(Scripted::new(clock.clone()), breaker.clone());
        clock.advance(Duration::from_millis(900));
        assert!(block_on(svc.call(Step::Fail("down"))).is_err());
        clock.advance(Duration::from_millis(gap_ms));
        assert!(block_on(svc.call(Step::Fail("down"))).is_err());
        let want = if tripped {
            CircuitState::Open
        } else {
            CircuitState::Closed
        };
        assert_eq!(breaker.state(), want, "two failures {gap_ms} ms apart");
    }
}

/// Only one probe in half-open; others fail fast with CircuitOpen.
#[test]
fn half_open_allows_exactly_one_probe() {
    let clock = ManualClock::new();
    let breaker = Breaker::with_clock(Accrual::ConsecutiveFailures(1), clock.clone())
        .backoff(Backoff::constant(Duration::from_secs(1)));
    let svc = CircuitBreaker::new(Scripted::new(clock.clone()), breaker.clone());
    assert!(block_on(svc.call(Step::Fail("x"))).is_err());
    clock.advance(Duration::from_secs(1));
    let mut probe = pin!(svc.call(Step::Pending));
    assert!(poll_once(probe.as_mut()).is_pending());
    for _ in 0..3 {
        let e = block_on(svc.call(Step::Ok(1))).unwrap_err();
        assert!(e.is::<CircuitOpen>());
    }
    assert_eq!(svc.get_ref().counts.calls(), 2);
}

// ---------------------------------------------------------------------------
// Sanity probes (expected to pass): errors, limits, retry accounting.
// ---------------------------------------------------------------------------

/// Leaf errors survive a BoxError stack and are told apart by downcast.
#[test]
fn leaf_errors_downcast_through_a_boxed_stack() {
    let clock = ManualClock::new();
    let pool = PermitPool::new(1);
    let svc = ServiceBuilder::new()
        .load_shed(pool.clone())
        .layer(TimeoutLayer::with_clock(
            Duration::from_secs(1),
            clock.clone(),
        ))
        .concurrency_limit_shared(pool)
        .service(Scripted::new(clock.clone()));
    let mut busy = pin!(svc.call(Step::Pending));
    assert!(poll_once(busy.as_mut()).is_pending());
    let shed = block_on(svc.call(Step::Ok(1))).unwrap_err();
    assert!(shed.is::<Overloaded>());
    clock.advance(Duration::from_secs(1));
    match poll_once(busy.as_mut()) {
        std::task::Poll::Ready(Err(e)) => assert!(e.is::<Elapsed>()),
        other => panic!("expected Elapsed, got {other:?}"),
    }
}

/// A token bucket never holds more than `burst` tokens after idling.
#[test]
fn rate_limit_idle_does_not_accumulate_beyond_burst() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 3, clock.clone());
    let svc = RateLimitLayer::with_bucket(bucket)
        .reject()
        .layer(Scripted::new(clock.clone()));
    clock.advance(Duration::from_secs(3600));
    let ok = (0..10)
        .filter(|_| block_on(svc.call(Step::Ok(1))).is_ok())
        .count();
    assert_eq!(ok, 3);
    clock.advance(Duration::from_millis(100));
    let ok = (0..10)
        .filter(|_| block_on(svc.call(Step::Ok(1))).is_ok())
        .count();
    assert_eq!(ok, 1);
}

/// A waiting rate limit keeps its calls in arrival order.
#[test]
fn rate_limit_waiters_keep_arrival_order() {
    let clock = ManualClock::new();
    let svc = RateLimit::with_bucket(
        Scripted::new(clock.clone()),
        TokenBucket::with_clock(Rate::per_second(1), 1, clock.clone()),
    );
    let mut a = pin!(svc.call(Step::Ok(1)));
    let mut b = pin!(svc.call(Step::Ok(2)));
    let mut c = pin!(svc.call(Step::Ok(3)));
    assert!(poll_once(a.as_mut()).is_ready());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());
    clock.advance(Duration::from_secs(1));
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_ready());
    clock.advance(Duration::from_secs(1));
    assert!(poll_once(c.as_mut()).is_ready());
}

/// A permit is held until the inner future completes, not until `call`
/// returns.
#[test]
fn concurrency_permit_held_until_response_completes() {
    let clock = ManualClock::new();
    let svc = ConcurrencyLimit::new(Scripted::new(clock.clone()), 1);
    let mut slow = pin!(svc.call(Step::Delay(Duration::from_secs(1), 1)));
    assert!(poll_once(slow.as_mut()).is_pending());
    assert_eq!(svc.pool().available(), 0);
    let mut next = pin!(svc.call(Step::Ok(2)));
    assert!(poll_once(next.as_mut()).is_pending());
    clock.advance(Duration::from_secs(1));
    assert!(poll_once(slow.as_mut()).is_ready());
    assert!(poll_once(next.as_mut()).is_ready());
    assert_eq!(svc.pool().available(), 1);
}

/// `max_retries(n)` is n retries, n + 1 attempts; the budget is charged one
/// withdrawal per retry.
#[test]
fn retry_attempts_and_budget_accounting() {
    let clock = ManualClock::new();
    // floor 0, ratio 0.5: 2 requests deposit enough for exactly 1 retry.
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 0, 0.5, clock.clone());
    let attempts = AtomicUsize::new(0);
    let svc = Retry::with_budget(
        service_fn(|_: u32| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Err::<u32, _>(BoxError::from("down")) }
        }),
        on_error(|_: &BoxError| true),
        budget.clone(),
    )
    .backoff(Backoff::none())
    .max_retries(5);
    assert!(block_on(svc.call(1)).is_err());
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "0.5 of 1 deposit: no retry"
    );
    assert!(block_on(svc.call(1)).is_err());
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "1.0 of 2 deposits: one retry"
    );
    assert_eq!(budget.balance(), 0);
}
