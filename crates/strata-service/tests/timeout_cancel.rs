//! A timed-out call cancels its inner call at once: the inner future is
//! dropped (its permit goes back) when the call resolves to `Elapsed`, not
//! when the caller drops the finished future; and a zero timeout needs no
//! timer, so it works outside a runtime.
//!
//! All bounded: they poll by hand on a `ManualClock`, or run under a hang
//! guard.

mod scripted;
mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use scripted::{Scripted, Step, poll_once};
use strata_service::clock::ManualClock;
use strata_service::limit::PermitPool;
use strata_service::load_shed::Overloaded;
use strata_service::timeout::{Elapsed, Timeout, TimeoutLayer};
use strata_service::{BoxError, Service, ServiceBuilder, service_fn};

const SECOND: Duration = Duration::from_secs(1);

/// Runs `f` on its own thread and fails the test if it does not finish
/// within `limit` (a hang guard, not a performance assertion).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("hang guard: the test did not finish within {limit:?}"),
    }
}

/// The `timeout` module docs: "[`Timeout`] fails a
/// call with [`Elapsed`] ... The inner call's future is then dropped,
/// which cancels it (its own guards run: a permit goes back, a counter
/// goes down)." Once the call has resolved to `Elapsed`, the inner call
/// must be cancelled and its permit returned, without waiting for the
/// caller to drop the already-completed outer future.
#[test]
fn timeout_elapsed_cancels_the_inner_call_when_it_resolves() {
    let clock = ManualClock::new();
    let inner = Scripted::new(clock.clone());
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::with_clock(SECOND, clock.clone()))
        .concurrency_limit(1)
        .service(inner.clone());

    let mut call = pin!(svc.call(Step::Pending));
    assert!(poll_once(call.as_mut()).is_pending());
    assert_eq!(inner.counts.in_flight(), 1);
    assert_eq!(svc.get_ref().pool().available(), 0);

    clock.advance(SECOND);
    let Poll::Ready(Err(err)) = poll_once(call.as_mut()) else {
        panic!("the deadline passed: the call must resolve to Elapsed")
    };
    assert!(err.is::<Elapsed>());

    // The call is over for the caller. The docs say the inner call is then
    // dropped: its in-flight guard ran and its permit is back.
    assert_eq!(
        inner.counts.in_flight(),
        0,
        "the inner call is still alive after the timeout resolved with Elapsed"
    );
    assert_eq!(
        svc.get_ref().pool().available(),
        1,
        "the concurrency permit is still held by a call that already timed out"
    );
}

/// What that means for a caller when the timeout is the outermost layer
/// and the timed-out future is still in scope (pinned on the stack, as
/// with `select!` on `&mut fut` or a hand-rolled retry loop): the next
/// call, which answers at once, is not refused as `Overloaded` by the
/// shedder below, since the only call in flight already timed out. (With
/// an `async fn` layer above the timeout the awaited future is dropped at
/// once anyway.)
#[test]
fn a_timed_out_call_does_not_keep_the_next_one_out() {
    let clock = ManualClock::new();
    let pool = PermitPool::new(1);
    let inner = Scripted::new(clock.clone());
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::with_clock(SECOND, clock.clone()))
        .load_shed(pool.clone())
        .concurrency_limit_shared(pool.clone())
        .service(inner.clone());

    let mut first = pin!(svc.call(Step::Pending));
    assert!(poll_once(first.as_mut()).is_pending());
    clock.advance(SECOND);
    let Poll::Ready(Err(err)) = poll_once(first.as_mut()) else {
        panic!("the first call must time out")
    };
    assert!(err.is::<Elapsed>());

    // `first` is finished but still in scope; nothing should be in flight.
    let mut second = pin!(svc.call(Step::Ok(7)));
    match poll_once(second.as_mut()) {
        Poll::Ready(Ok(7)) => {}
        Poll::Ready(Err(e)) if e.is::<Overloaded>() => panic!(
            "shed as Overloaded while the only call had already timed out \
             (its permit is still held inside the completed Timeout future)"
        ),
        other => panic!("expected Ok(7), got {other:?}"),
    }
}

/// The `clock` docs on `SystemClock`: "the first poll of
/// one [sleep] that has not elapsed must happen inside a strata runtime,
/// or it panics". A timeout of zero has a deadline that has elapsed by
/// the time it is polled, so outside a runtime the call should fail with
/// `Elapsed`, not panic.
#[test]
fn a_zero_timeout_outside_a_runtime_fails_with_elapsed() {
    let outcome = within(Duration::from_secs(30), || {
        catch_unwind(|| {
            let svc = Timeout::new(
                service_fn(|()| async {
                    support::yield_once().await; // Pending on the first poll
                    Ok::<_, BoxError>(1)
                }),
                Duration::ZERO,
            );
            futures_executor::block_on(svc.call(())).map_err(|e| e.is::<Elapsed>())
        })
    });
    match outcome {
        Ok(Err(true)) => {}
        Ok(other) => panic!("expected Err(Elapsed), got {other:?}"),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            panic!("a zero timeout panicked outside a runtime: {msg}")
        }
    }
}
