//! `RateLimit`: the token bucket's arithmetic, waiting and rejecting, on a
//! manual clock.

mod scripted;

use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures_executor::block_on;
use scripted::{Scripted, Step, poll_once};
use strata_service::clock::ManualClock;
use strata_service::limit::{Rate, RateLimit, RateLimitLayer, RateLimited, TokenBucket};
use strata_service::{Layer, Service};

const TENTH: Duration = Duration::from_millis(100);

fn rejecting(burst: u32) -> (ManualClock, RateLimit<Scripted, ManualClock>) {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), burst, clock.clone());
    let svc = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket).reject();
    (clock, svc)
}

#[test]
fn a_burst_goes_through_then_calls_are_rejected() {
    let (_clock, svc) = rejecting(3);
    for n in 0..3 {
        assert_eq!(block_on(svc.call(Step::Ok(n))).unwrap(), n);
    }
    let err = block_on(svc.call(Step::Ok(9))).unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(limited.retry_after(), TENTH);
    assert_eq!(
        svc.get_ref().counts.calls(),
        3,
        "the refused call never got in"
    );
}

#[test]
fn tokens_come_back_at_the_rate() {
    let (clock, svc) = rejecting(1);
    assert!(block_on(svc.call(Step::Ok(0))).is_ok());
    assert!(block_on(svc.call(Step::Ok(0))).is_err());
    clock.advance(TENTH - Duration::from_nanos(1));
    assert!(block_on(svc.call(Step::Ok(0))).is_err());
    clock.advance(Duration::from_nanos(1));
    assert!(block_on(svc.call(Step::Ok(0))).is_ok());
    // A long pause refills up to the burst only.
    clock.advance(Duration::from_secs(60));
    assert!(block_on(svc.call(Step::Ok(0))).is_ok());
    assert!(block_on(svc.call(Step::Ok(0))).is_err());
}

#[test]
fn waiting_calls_go_in_order_one_interval_apart() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let svc = RateLimitLayer::with_bucket(bucket).layer(Scripted::new(clock.clone()));
    let mut a = pin!(svc.call(Step::Ok(1)));
    let mut b = pin!(svc.call(Step::Ok(2)));
    let mut c = pin!(svc.call(Step::Ok(3)));
    assert!(matches!(poll_once(a.as_mut()), Poll::Ready(Ok(1))));
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());
    clock.advance(TENTH);
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(matches!(poll_once(b.as_mut()), Poll::Ready(Ok(2))));
    clock.advance(TENTH);
    assert!(matches!(poll_once(c.as_mut()), Poll::Ready(Ok(3))));
}

#[test]
fn a_waiter_that_gives_up_returns_its_token() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let svc = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket.clone());
    assert!(bucket.try_take());
    let mut waiter = Box::pin(svc.call(Step::Ok(1)));
    assert!(poll_once(waiter.as_mut()).is_pending()); // reserved the next token
    drop(waiter);
    clock.advance(TENTH);
    assert!(bucket.try_take(), "the reserved token came back");
}

/// A waiter that gives up after others booked behind it does not hand its
/// slot to a newcomer: that slot's time is already the next waiter's, and
/// two calls would then go at once.
#[test]
fn a_waiter_that_gives_up_behind_others_never_doubles_a_slot() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let svc = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket.clone());
    assert!(bucket.try_take());
    let mut a = Box::pin(svc.call(Step::Ok(1))); // booked for 100 ms
    let mut b = Box::pin(svc.call(Step::Ok(2))); // booked for 200 ms
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    drop(a);
    let mut c = Box::pin(svc.call(Step::Ok(3)));
    assert!(poll_once(c.as_mut()).is_pending());
    clock.advance(2 * TENTH);
    assert!(matches!(poll_once(b.as_mut()), Poll::Ready(Ok(2))));
    assert!(
        poll_once(c.as_mut()).is_pending(),
        "the newcomer went in the same slot as the waiter ahead of it"
    );
    clock.advance(TENTH);
    assert!(matches!(poll_once(c.as_mut()), Poll::Ready(Ok(3))));
}

#[test]
fn clones_and_layered_services_share_one_bucket() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(1), 2, clock.clone());
    let layer = RateLimitLayer::with_bucket(bucket).reject();
    let a = layer.layer(Scripted::new(clock.clone()));
    let b = layer.layer(Scripted::new(clock.clone()));
    let a2 = a.clone();
    assert!(block_on(a.call(Step::Ok(0))).is_ok());
    assert!(block_on(b.call(Step::Ok(0))).is_ok());
    assert!(block_on(a2.call(Step::Ok(0))).is_err());
}

#[test]
fn a_burst_longer_than_u64_nanoseconds_still_counts_its_tokens() {
    // One token a day, a burst of 300,000: (burst - 1) * interval is far
    // beyond 584 years of nanoseconds.
    let day = Duration::from_secs(86_400);
    let bucket = TokenBucket::with_clock(Rate::new(1, day), 300_000, ManualClock::new());
    let taken = (0..400_000).filter(|_| bucket.try_take()).count();
    assert_eq!(taken, 300_000, "only the burst may go at once");

    let slow = TokenBucket::with_clock(Rate::new(1, Duration::MAX), 2, ManualClock::new());
    assert!(slow.try_take() && slow.try_take());
    assert!(!slow.try_take(), "the burst of two is spent");
}

#[test]
fn a_rate_faster_than_one_per_nanosecond_is_still_a_limit() {
    for rate in [
        Rate::per_second(2_000_000_000),
        Rate::new(5, Duration::ZERO),
    ] {
        assert_eq!(rate.interval(), Duration::from_nanos(1));
        let bucket = TokenBucket::with_clock(rate, 3, ManualClock::new());
        let taken = (0..10).filter(|_| bucket.try_take()).count();
        assert_eq!(taken, 3, "without time passing, only the burst goes");
    }
}
