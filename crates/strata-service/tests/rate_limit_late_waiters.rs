//! `RateLimit` waiters polled long after their slots (a worker busy for a
//! while, a timer that fired late, a clock that jumped) do not all go at
//! once: the bucket counts the calls that actually go, and the late ones
//! go one interval apart, a fresh call among them. Calls whose slots fall
//! within one millisecond (the timer's resolution) may go together, so
//! that a fast rate is still met on a millisecond timer. (The first test
//! is a review's finding: four calls at one instant through a bucket with
//! a burst of one.)

mod scripted;

use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use scripted::{Scripted, Step, poll_once};
use strata_service::Service;
use strata_service::clock::{Clock, ManualClock};
use strata_service::limit::{Rate, RateLimit, TokenBucket};

/// Polls every call in `calls` that has not gone yet; records when those
/// that go now went.
fn poll_all<F: Future>(
    calls: &mut [Option<Pin<Box<F>>>],
    clock: &ManualClock,
    went: &mut Vec<Instant>,
) {
    for slot in calls.iter_mut() {
        if let Some(call) = slot
            && poll_once(call.as_mut()).is_ready()
        {
            went.push(clock.now());
            *slot = None;
        }
    }
}

#[test]
fn waiters_polled_after_their_slots_go_one_interval_apart() {
    let clock = ManualClock::new();
    // One token per 100 ms, a burst of one.
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let inner = Scripted::new(clock.clone());
    let svc = RateLimit::with_bucket(inner.clone(), bucket);
    let mut went: Vec<Instant> = Vec::new();

    // The token goes at once.
    let mut first = Box::pin(svc.call(Step::Ok(0)));
    assert!(matches!(poll_once(first.as_mut()), Poll::Ready(Ok(0))));
    went.push(clock.now());

    // Three waiters, booked for 100, 200 and 300 ms.
    let mut calls: Vec<_> = (1..=3)
        .map(|n| Some(Box::pin(svc.call(Step::Ok(n)))))
        .collect();
    poll_all(&mut calls, &clock, &mut went);
    assert_eq!(went.len(), 1, "the waiters wait");

    // The worker is busy for a second; then it polls the woken waiters,
    // and a new call arrives.
    clock.advance(Duration::from_secs(1));
    poll_all(&mut calls, &clock, &mut went);
    calls.push(Some(Box::pin(svc.call(Step::Ok(4)))));
    poll_all(&mut calls, &clock, &mut went);
    assert_eq!(went.len(), 2, "one call at the late instant, not {went:?}");

    // The others go one interval apart, none lost.
    for _ in 0..3 {
        clock.advance(Duration::from_millis(100));
        poll_all(&mut calls, &clock, &mut went);
    }
    assert_eq!(went.len(), 5, "every call went: {went:?}");
    assert_eq!(inner.counts.calls(), 5);
    for pair in went[1..].windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(99),
            "two calls closer than an interval: {went:?}"
        );
    }
}

#[test]
fn at_a_fast_rate_waiters_due_within_a_millisecond_go_together_but_a_stall_sends_no_more() {
    let clock = ManualClock::new();
    // One token per 100 µs, a burst of one: ten per millisecond.
    let bucket = TokenBucket::with_clock(Rate::per_second(10_000), 1, clock.clone());
    let inner = Scripted::new(clock.clone());
    let svc = RateLimit::with_bucket(inner.clone(), bucket);
    let mut went: Vec<Instant> = Vec::new();
    let mut calls: Vec<_> = (0..50)
        .map(|n| Some(Box::pin(svc.call(Step::Ok(n)))))
        .collect();
    poll_all(&mut calls, &clock, &mut went);
    assert_eq!(went.len(), 1, "one goes at once, the rest wait");

    // A millisecond later (a timer tick), the waiters whose slots passed
    // go together: the rate is met on a millisecond timer.
    clock.advance(Duration::from_millis(1));
    poll_all(&mut calls, &clock, &mut went);
    let tick = went.len() - 1;
    assert!(
        (9..=11).contains(&tick),
        "{tick} waiters went at the first tick"
    );

    // After a one-second stall, no more go at one instant than a
    // millisecond's worth, though every slot has passed.
    clock.advance(Duration::from_secs(1));
    let before = went.len();
    poll_all(&mut calls, &clock, &mut went);
    let at_once = went.len() - before;
    assert!(
        (1..=11).contains(&at_once),
        "{at_once} calls at one instant after the stall"
    );

    // Millisecond by millisecond, the rest go.
    for _ in 0..10 {
        clock.advance(Duration::from_millis(1));
        poll_all(&mut calls, &clock, &mut went);
    }
    assert_eq!(went.len(), 50, "every call went");
    assert_eq!(inner.counts.calls(), 50);
}

#[test]
fn a_rejecting_limit_after_a_stall_lets_through_no_more_than_its_burst() {
    let clock = ManualClock::new();
    // One token per 100 ms, a burst of two; waiters and a rejecting view
    // share the bucket.
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 2, clock.clone());
    let waiting = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket.clone());
    let mut went: Vec<Instant> = Vec::new();
    let mut calls: Vec<_> = (0..6)
        .map(|n| Some(Box::pin(waiting.call(Step::Ok(n)))))
        .collect();
    poll_all(&mut calls, &clock, &mut went);
    assert_eq!(went.len(), 2, "the burst goes at once");
    clock.advance(Duration::from_secs(1));
    poll_all(&mut calls, &clock, &mut went);
    let late = went.len() - 2;
    assert_eq!(late, 2, "a burst's worth of late waiters go");
    assert!(!bucket.try_take(), "the burst is spent by the late waiters");
}

/// A review's finding: a waiter whose slot passed while the worker was
/// busy has no precedence over calls booked after it. When each tick a
/// fresh call reaches the bucket before the late waiter is polled again
/// (fresh calls at exactly the rate, a worker still a little late), every
/// fresh call goes and the waiter, booked first, is sent back every time:
/// it never goes. (Before `depart`, it went when first polled.)
#[test]
fn a_late_waiter_is_not_overtaken_forever_by_fresh_calls() {
    let clock = ManualClock::new();
    // One token per 100 ms, a burst of one.
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let inner = Scripted::new(clock.clone());
    let svc = RateLimit::with_bucket(inner.clone(), bucket);
    let mut first = Box::pin(svc.call(Step::Ok(0)));
    assert!(matches!(poll_once(first.as_mut()), Poll::Ready(Ok(0))));
    // Booked for 100 ms.
    let mut late = Box::pin(svc.call(Step::Ok(1)));
    assert!(poll_once(late.as_mut()).is_pending());

    // The worker is busy for a second.
    clock.advance(Duration::from_secs(1));
    let mut fresh_went = 0;
    for round in 0..50 {
        // A fresh call, one per interval, is polled before the waiter.
        let mut fresh = Box::pin(svc.call(Step::Ok(100 + round)));
        if poll_once(fresh.as_mut()).is_ready() {
            fresh_went += 1;
        }
        if poll_once(late.as_mut()).is_ready() {
            return;
        }
        clock.advance(Duration::from_millis(100));
    }
    panic!(
        "the waiter booked for 100 ms has not gone 6 s later, \
         while {fresh_went} calls booked after it went"
    );
}
