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
fn debug_output_shows_the_bucket_and_the_mode() {
    let (_clock, svc) = rejecting(3);
    let shown = format!("{svc:?}");
    assert!(shown.starts_with("RateLimit { inner: Scripted"), "{shown}");
    assert!(
        shown.contains("bucket: TokenBucket { interval_ns: 100000000, tolerance_ns: 200000000"),
        "{shown}"
    );
    assert!(shown.ends_with("reject: true }"), "{shown}");
}

#[test]
fn the_retry_after_of_a_rejection_counts_down_with_the_clock() {
    let (clock, svc) = rejecting(1);
    assert!(block_on(svc.call(Step::Ok(0))).is_ok());
    clock.advance(Duration::from_millis(30));
    let err = block_on(svc.call(Step::Ok(0))).unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("RateLimited");
    assert_eq!(limited.retry_after(), Duration::from_millis(70));
    assert_eq!(err.to_string(), "rate limited; retry after 70ms");
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

/// A waiter that gives up after others booked behind it leaves a hole:
/// the next waiting call takes that slot (its time, not the next
/// waiter's), so no slot holds two calls and none is lost.
#[test]
fn a_waiter_that_gives_up_behind_others_leaves_its_slot_to_the_next() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let svc = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket.clone());
    assert!(bucket.try_take());
    let mut a = Box::pin(svc.call(Step::Ok(1))); // booked for 100 ms
    let mut b = Box::pin(svc.call(Step::Ok(2))); // booked for 200 ms
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    drop(a);
    let mut c = Box::pin(svc.call(Step::Ok(3))); // a's slot: 100 ms
    let mut d = Box::pin(svc.call(Step::Ok(4))); // after b: 300 ms
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(poll_once(d.as_mut()).is_pending());
    clock.advance(TENTH);
    assert!(matches!(poll_once(c.as_mut()), Poll::Ready(Ok(3))));
    assert!(poll_once(b.as_mut()).is_pending(), "b went in c's slot");
    clock.advance(TENTH);
    assert!(matches!(poll_once(b.as_mut()), Poll::Ready(Ok(2))));
    assert!(poll_once(d.as_mut()).is_pending(), "d went in b's slot");
    assert!(!bucket.try_take(), "a token beyond the booked ones");
    clock.advance(TENTH);
    assert!(matches!(poll_once(d.as_mut()), Poll::Ready(Ok(4))));
}

/// A call that does not wait (`try_take`, a rejecting limit) is refused
/// while the bucket is booked ahead, and must not use up a slot a waiter
/// gave up: that slot stays for the next call that waits.
#[test]
fn a_call_that_does_not_wait_leaves_a_given_up_slot_to_the_next_waiter() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let waiting = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket.clone());
    let rejecting = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket.clone()).reject();
    assert!(bucket.try_take());
    let mut a = Box::pin(waiting.call(Step::Ok(1))); // booked for 100 ms
    let mut b = Box::pin(waiting.call(Step::Ok(2))); // booked for 200 ms
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    drop(a); // a hole at 100 ms
    assert!(!bucket.try_take());
    let err = block_on(rejecting.call(Step::Ok(9))).unwrap_err();
    assert!(err.is::<RateLimited>());
    let mut c = Box::pin(waiting.call(Step::Ok(3)));
    assert!(poll_once(c.as_mut()).is_pending());
    clock.advance(TENTH);
    assert!(
        matches!(poll_once(c.as_mut()), Poll::Ready(Ok(3))),
        "c went in a's slot"
    );
    assert!(poll_once(b.as_mut()).is_pending());
}

/// A slot given up and not taken before it is due is lost, not handed to
/// a later call: taken late it would crowd the slots after it.
#[test]
fn a_given_up_slot_that_passes_is_not_taken_late() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let svc = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket.clone());
    assert!(bucket.try_take());
    let mut a = Box::pin(svc.call(Step::Ok(1))); // 100 ms
    let mut b = Box::pin(svc.call(Step::Ok(2))); // 200 ms
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    drop(a);
    clock.advance(TENTH + TENTH / 2); // a's slot has passed
    let mut c = Box::pin(svc.call(Step::Ok(3)));
    assert!(poll_once(c.as_mut()).is_pending(), "c took the passed slot");
    clock.advance(TENTH / 2);
    assert!(matches!(poll_once(b.as_mut()), Poll::Ready(Ok(2))));
    assert!(poll_once(c.as_mut()).is_pending(), "c went in b's slot");
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

/// When the last booked waiter gives up, the bucket moves back over it
/// and over the holes right before it: that time is free again.
#[test]
fn given_up_slots_at_the_end_free_the_bucket() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let svc = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket.clone());
    assert!(bucket.try_take());
    let mut a = Box::pin(svc.call(Step::Ok(1))); // 100 ms
    let mut b = Box::pin(svc.call(Step::Ok(2))); // 200 ms
    let mut c = Box::pin(svc.call(Step::Ok(3))); // 300 ms
    for f in [&mut a, &mut b, &mut c] {
        assert!(poll_once(f.as_mut()).is_pending());
    }
    drop(b); // a hole behind a
    drop(c); // the last: the bucket moves back over c and b
    clock.advance(TENTH);
    assert!(matches!(poll_once(a.as_mut()), Poll::Ready(Ok(1))));
    clock.advance(TENTH);
    assert!(bucket.try_take(), "the slot at 200 ms is free again");
    assert!(!bucket.try_take());
}

/// The bucket remembers up to 4 096 given-up slots; one given up beyond
/// that is lost (fewer calls, never more), not handed to a later waiter.
#[test]
fn a_slot_given_up_beyond_the_4096_remembered_is_lost() {
    const REMEMBERED: usize = 4_096;
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
    let svc = RateLimit::with_bucket(Scripted::new(clock.clone()), bucket.clone());
    assert!(bucket.try_take());
    // Waiters booked for 100 ms, 200 ms, ...; all but the last give up,
    // one more than the bucket remembers.
    let mut booked: Vec<_> = (0..REMEMBERED + 2)
        .map(|_| Box::pin(svc.call(Step::Ok(0))))
        .collect();
    for waiter in &mut booked {
        assert!(poll_once(waiter.as_mut()).is_pending());
    }
    let last = booked.pop();
    drop(booked);
    // New waiters take the remembered slots in order; the one after them
    // books after the last booked slot: the forgotten slot is gone.
    let mut fresh: Vec<_> = (0..=REMEMBERED)
        .map(|_| Box::pin(svc.call(Step::Ok(1))))
        .collect();
    for waiter in &mut fresh {
        assert!(poll_once(waiter.as_mut()).is_pending());
    }
    let forgotten_slot = TENTH * (REMEMBERED as u32 + 1);
    clock.advance(forgotten_slot);
    assert!(poll_once(fresh[REMEMBERED - 1].as_mut()).is_ready());
    assert!(
        poll_once(fresh[REMEMBERED].as_mut()).is_pending(),
        "a slot beyond the remembered ones was handed out"
    );
    clock.advance(TENTH * 2); // after the last booked slot
    assert!(poll_once(fresh[REMEMBERED].as_mut()).is_ready());
    drop(last);
}

/// Waiters that arrive and give up at random never get calls through
/// closer together than the rate allows: with a burst of one, no two calls
/// less than an interval apart (less the 1 ms the clock moves per step).
/// A slot given up and taken late by another waiter would show as two
/// calls close together. Many seeds, a manual clock.
#[test]
fn random_waiters_and_give_ups_never_exceed_the_rate() {
    let tick = Duration::from_millis(1);
    for seed in 1..=100u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let clock = ManualClock::new();
        let bucket = TokenBucket::with_clock(Rate::per_second(10), 1, clock.clone());
        let inner = Scripted::new(clock.clone());
        let svc = RateLimit::with_bucket(inner.clone(), bucket);
        let mut waiting = Vec::new();
        let mut last_call: Option<Duration> = None;
        let mut now = Duration::ZERO;
        for n in 0..3_000 {
            match next() % 64 {
                0..=2 => waiting.push(Box::pin(svc.call(Step::Ok(n)))),
                3..=5 if !waiting.is_empty() => {
                    let i = (next() % waiting.len() as u64) as usize;
                    drop(waiting.swap_remove(i));
                }
                _ => {}
            }
            let before = inner.counts.calls();
            waiting.retain_mut(|f| poll_once(f.as_mut()).is_pending());
            let made = inner.counts.calls() - before;
            assert!(made <= 1, "seed {seed}: {made} calls at {now:?}");
            if made == 1 {
                if let Some(last) = last_call {
                    assert!(
                        now - last >= TENTH - tick,
                        "seed {seed}: calls at {last:?} and {now:?}"
                    );
                }
                last_call = Some(now);
            }
            clock.advance(tick);
            now += tick;
        }
        assert!(
            inner.counts.calls() > 10,
            "seed {seed}: the test made few calls"
        );
    }
}

// A waiting `RateLimit` under a `Timeout`, the documented way to bound
// its wait. Every waiter books the next slot; when waiters that booked
// before others time out, their slots must go to later callers. When they
// were simply lost, the booked time ran away from the clock under an
// overload, every newcomer was booked further out than its timeout, and
// the inner service got no call at all although the limit allows ten a
// second.
mod under_a_timeout {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::Pin;
    use std::time::Duration;

    use super::scripted::{Scripted, Step, poll_once};
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
}

// `Rate::new(n, period)` rounds `period / n` up to whole nanoseconds:
// truncated, a rate whose interval is not a whole number of nanoseconds
// let more than `n` tokens per `period` through.
mod rounding {
    use std::time::Duration;

    use strata_service::clock::ManualClock;
    use strata_service::limit::{Rate, TokenBucket};

    /// Takes every token the bucket gives while the clock moves one
    /// nanosecond at a time for `span`.
    fn tokens_over(rate: Rate, span_ns: u64) -> u64 {
        let clock = ManualClock::new();
        let bucket = TokenBucket::with_clock(rate, 1, clock.clone());
        let mut taken = 0;
        for _ in 0..span_ns {
            while bucket.try_take() {
                taken += 1;
            }
            clock.advance(Duration::from_nanos(1));
        }
        taken
    }

    /// 600 million a second is slower than one per nanosecond, so it is not
    /// clamped by the docs; over 3 µs it allows 1 800 tokens (plus the burst
    /// of one).
    #[test]
    fn six_hundred_million_per_second_is_not_one_per_nanosecond() {
        let rate = Rate::per_second(600_000_000);
        let taken = tokens_over(rate, 3_000);
        assert!(
            taken <= 1_800 + 1,
            "{taken} tokens in 3 µs at 600 M/s (interval {:?})",
            rate.interval()
        );
    }

    /// Two tokens per three nanoseconds: over 3 µs, 2 000 (plus the burst).
    #[test]
    fn two_per_three_nanoseconds_is_not_three() {
        let taken = tokens_over(Rate::new(2, Duration::from_nanos(3)), 3_000);
        assert!(taken <= 2_000 + 1, "{taken} tokens in 3 µs at 2 per 3 ns");
    }
}

struct Echo;
impl Service<u32> for Echo {
    type Response = u32;
    type Error = std::io::Error;
    async fn call(&self, req: u32) -> Result<u32, std::io::Error> {
        Ok(req)
    }
}

/// A rate-limited call that must wait, on a manual clock within 30 years
/// of the end of `Instant`'s range, waits: the bucket's "never" deadline
/// (30 years on) used to overflow there and panic.
#[test]
fn a_waiting_call_near_the_end_of_instant_s_range_waits() {
    use strata_service::clock::Clock;
    let clock = ManualClock::new();
    let end = end_of_instant(clock.now());
    let near_end = end.checked_sub(Duration::from_secs(86_400 * 365)).unwrap();
    clock.advance(near_end - clock.now());
    // One token per century: the second call's turn is past what an
    // `Instant` holds.
    let rate = Rate::new(1, Duration::from_secs(86_400 * 365 * 100));
    let svc = RateLimit::with_bucket(Echo, TokenBucket::with_clock(rate, 1, clock.clone()));
    assert_eq!(block_on(svc.call(1)).unwrap(), 1);
    let mut second = pin!(svc.call(2));
    assert!(poll_once(second.as_mut()).is_pending());
}

/// The bucket's "never" deadline is 30 years after now: it was 30 years
/// after the bucket was made, which for a bucket older than that (on a
/// manual clock, near the end of `Instant`'s range) lay in the past, and a
/// call that had to wait about forever went at once.
#[test]
fn a_call_that_must_wait_past_instant_s_range_does_not_go_at_once() {
    use strata_service::clock::Clock;
    const YEAR: u64 = 86_400 * 365;
    let clock = ManualClock::new();
    let end = end_of_instant(clock.now());
    // The bucket is made 40 years before the end, and used 35 years later.
    let made = end.checked_sub(Duration::from_secs(40 * YEAR)).unwrap();
    clock.advance(made - clock.now());
    // One token per century, burst 1.
    let rate = Rate::new(1, Duration::from_secs(100 * YEAR));
    let svc = RateLimit::with_bucket(Echo, TokenBucket::with_clock(rate, 1, clock.clone()));
    clock.advance(Duration::from_secs(35 * YEAR));
    assert_eq!(block_on(svc.call(1)).unwrap(), 1);
    // The next token is a century away (past the end of the range).
    let mut second = pin!(svc.call(2));
    assert!(
        poll_once(second.as_mut()).is_pending(),
        "a second call went at once, with one token per century and a burst of one"
    );
}

/// The last instant (to the second) that `Instant` can hold after `from`.
fn end_of_instant(from: std::time::Instant) -> std::time::Instant {
    let mut end = from;
    let mut step = Duration::from_secs(u64::MAX / 4);
    while step >= Duration::from_secs(1) {
        match end.checked_add(step) {
            Some(next) => end = next,
            None => step /= 2,
        }
    }
    end
}
