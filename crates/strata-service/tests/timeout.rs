//! `Timeout` against a scripted service on a manual clock, and once on
//! strata's real timers.

mod scripted;

use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures_executor::block_on;
use scripted::{Scripted, Step, poll_once};
use strata_service::clock::ManualClock;
use strata_service::timeout::{Elapsed, Timeout, TimeoutLayer};
use strata_service::{Layer, Service, ServiceBuilder};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_prompt_answer_passes_through() {
    let clock = ManualClock::new();
    let svc = Timeout::with_clock(Scripted::new(clock.clone()), SECOND, clock);
    assert_eq!(block_on(svc.call(Step::Ok(7))).unwrap(), 7);
    assert_eq!(
        block_on(svc.call(Step::Fail("no")))
            .unwrap_err()
            .to_string(),
        "no"
    );
}

#[test]
fn a_call_past_its_deadline_fails_with_elapsed_and_is_dropped() {
    let clock = ManualClock::new();
    let inner = Scripted::new(clock.clone());
    let svc = TimeoutLayer::with_clock(SECOND, clock.clone()).layer(inner.clone());
    let mut call = Box::pin(svc.call(Step::Pending));
    assert!(poll_once(call.as_mut()).is_pending());
    assert_eq!(inner.counts.in_flight(), 1);

    clock.advance(SECOND - Duration::from_nanos(1));
    assert!(poll_once(call.as_mut()).is_pending(), "not yet");
    clock.advance(Duration::from_nanos(1));
    let Poll::Ready(Err(err)) = poll_once(call.as_mut()) else {
        panic!("the deadline passed")
    };
    let elapsed = err.downcast_ref::<Elapsed>().expect("an Elapsed");
    assert_eq!(elapsed.after(), SECOND);
    assert_eq!(err.to_string(), "request timed out after 1s");
    // Timing out cancels the inner call at once, not when the caller
    // drops the finished future.
    assert_eq!(inner.counts.in_flight(), 0);
    drop(call);
}

#[test]
fn an_answer_ready_at_the_deadline_wins() {
    let clock = ManualClock::new();
    let svc = Timeout::with_clock(Scripted::new(clock.clone()), SECOND, clock.clone());
    let mut call = pin!(svc.call(Step::Delay(SECOND, 3)));
    assert!(poll_once(call.as_mut()).is_pending());
    clock.advance(SECOND); // both the answer and the deadline are due
    assert!(matches!(poll_once(call.as_mut()), Poll::Ready(Ok(3))));
}

#[test]
fn each_call_gets_its_own_deadline() {
    let clock = ManualClock::new();
    let svc = Timeout::with_clock(Scripted::new(clock.clone()), SECOND, clock.clone());
    let mut first = pin!(svc.call(Step::Pending));
    assert!(poll_once(first.as_mut()).is_pending());
    clock.advance(SECOND / 2);
    let mut second = pin!(svc.call(Step::Pending));
    assert!(poll_once(second.as_mut()).is_pending());
    clock.advance(SECOND / 2);
    assert!(matches!(poll_once(first.as_mut()), Poll::Ready(Err(_))));
    assert!(poll_once(second.as_mut()).is_pending());
    clock.advance(SECOND / 2);
    assert!(matches!(poll_once(second.as_mut()), Poll::Ready(Err(_))));
}

/// `Duration::MAX` means no deadline: it saturates about thirty years
/// out (the crate's "never") instead of overflowing, and does not come
/// early; a clock moved "forever" ahead reaches it.
#[test]
fn a_timeout_of_duration_max_does_not_fire_for_decades() {
    let clock = ManualClock::new();
    let svc = Timeout::with_clock(Scripted::new(clock.clone()), Duration::MAX, clock.clone());
    let mut call = pin!(svc.call(Step::Pending));
    assert!(poll_once(call.as_mut()).is_pending());
    clock.advance(Duration::from_secs(86_400 * 365 * 29));
    assert!(
        poll_once(call.as_mut()).is_pending(),
        "29 years is not never"
    );
    clock.advance(Duration::MAX);
    assert!(matches!(poll_once(call.as_mut()), Poll::Ready(Err(_))));
}

#[test]
fn a_timeout_reports_its_duration_and_shows_it_in_debug_output() {
    let clock = ManualClock::new();
    let svc = TimeoutLayer::with_clock(SECOND, clock.clone()).layer(Scripted::new(clock));
    assert_eq!(svc.timeout(), SECOND);
    let shown = format!("{svc:?}");
    assert!(shown.starts_with("Timeout { inner: Scripted"), "{shown}");
    assert!(
        shown.ends_with("timeout: 1s, clock: ManualClock { sleepers: 0, .. } }"),
        "{shown}"
    );
}

#[test]
fn elapsed_converts_to_io_timed_out() {
    let clock = ManualClock::new();
    let inner = Scripted::new(clock.clone());
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::with_clock(Duration::ZERO, clock))
        .map_err(|e: strata_service::BoxError| std::io::Error::other(e.to_string()))
        .service(inner);
    // map_err is below the timeout, so the stack's error is io::Error.
    let err = block_on(svc.call(Step::Pending)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn the_system_clock_times_out_on_strata_timers() {
    let svc = ServiceBuilder::new()
        .timeout(Duration::from_millis(20))
        .service(Scripted::new(strata_service::clock::SystemClock));
    let (slow, fast) = strata_rt::run(async {
        (
            svc.call(Step::Delay(Duration::from_secs(60), 1)).await,
            svc.call(Step::Delay(Duration::from_millis(1), 2)).await,
        )
    });
    assert!(slow.unwrap_err().is::<Elapsed>());
    assert_eq!(fast.unwrap(), 2);
}
