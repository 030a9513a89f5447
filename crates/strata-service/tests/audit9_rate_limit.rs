//! Audit: a waiting `RateLimit` under a `Timeout`, the documented way to
//! bound its wait ("put a Timeout above the limit to bound it").
//!
//! Every waiter books the next slot (`tat += interval`). A waiter that
//! times out gives its slot back only if nobody booked after it; with
//! steady traffic somebody always has, so the slots of timed-out waiters
//! are never reused. Under an overload the booked time then runs away
//! from the clock, every newcomer is booked further out than its
//! timeout, and the inner service gets no call at all, although the
//! limit allows ten a second.

mod scripted;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use scripted::{Scripted, Step, poll_once};
use strata_service::clock::ManualClock;
use strata_service::limit::{Rate, RateLimitLayer, TokenBucket};
use strata_service::timeout::TimeoutLayer;
use strata_service::{BoxError, Service, ServiceBuilder};

type Call<'a> = Pin<Box<dyn Future<Output = Result<u32, BoxError>> + 'a>>;

#[test]
fn timed_out_waiters_do_not_starve_the_service_under_twofold_overload() {
    let clock = ManualClock::new();
    // 10 calls a second, no burst.
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let inner = Scripted::new(clock.clone());
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::with_clock(
            Duration::from_secs(1),
            clock.clone(),
        ))
        .layer(RateLimitLayer::with_bucket(bucket))
        .service(inner.clone());

    // 20 callers a second, each giving up after 1 s: twice the rate.
    let tick = Duration::from_millis(50);
    let mut pending: VecDeque<Call<'_>> = VecDeque::new();
    let mut calls_at_5s = 0;
    let mut timed_out = 0;
    for n in 0..200 {
        if n == 100 {
            calls_at_5s = inner.counts.calls();
        }
        let mut call: Call<'_> = Box::pin(svc.call(Step::Ok(n)));
        if poll_once(call.as_mut()).is_pending() {
            pending.push_back(call);
        }
        clock.advance(tick);
        let mut still = VecDeque::new();
        for mut call in pending.drain(..) {
            match poll_once(call.as_mut()) {
                std::task::Poll::Pending => still.push_back(call),
                std::task::Poll::Ready(Ok(_)) => {}
                std::task::Poll::Ready(Err(_)) => timed_out += 1,
            }
        }
        pending = still;
    }
    let served_in_last_5s = inner.counts.calls() - calls_at_5s;
    // A limiter of 10/s should serve about 50 calls in these 5 seconds
    // (the callers are there all the time). Ask for 40.
    assert!(
        served_in_last_5s >= 40,
        "the limit allows 10 calls/s, but the inner service got {served_in_last_5s} \
         calls in the last 5 s ({} in all; {timed_out} callers timed out)",
        inner.counts.calls()
    );
}
