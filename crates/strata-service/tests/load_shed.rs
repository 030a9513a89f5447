//! `LoadShed` over a `ConcurrencyLimit` on the same pool.

mod scripted;

use std::pin::pin;

use futures_executor::block_on;
use scripted::{Scripted, Step, poll_once};
use strata_service::clock::ManualClock;
use strata_service::limit::PermitPool;
use strata_service::load_shed::{LoadShed, LoadShedLayer, Overloaded};
use strata_service::{Layer, Service, ServiceBuilder};

#[test]
fn sheds_at_once_when_the_pool_is_full_and_recovers() {
    let pool = PermitPool::new(2);
    let inner = Scripted::new(ManualClock::new());
    let svc = ServiceBuilder::new()
        .load_shed(pool.clone())
        .concurrency_limit_shared(pool.clone())
        .service(inner.clone());
    let mut a = pin!(svc.call(Step::Pending));
    let mut b = pin!(svc.call(Step::Pending));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());

    let err = block_on(svc.call(Step::Ok(1))).unwrap_err();
    assert!(err.is::<Overloaded>());
    assert_eq!(err.to_string(), "service overloaded; request shed");
    assert_eq!(inner.counts.calls(), 2);
    assert_eq!(pool.waiting(), 0, "nothing queued");
}

#[test]
fn the_check_happens_on_first_poll_not_on_call() {
    let pool = PermitPool::new(1);
    let inner = Scripted::new(ManualClock::new());
    let svc = LoadShed::new(inner.clone(), pool.clone());
    let created = svc.call(Step::Ok(5)); // pool full only after this
    let held = pool.try_acquire().unwrap();
    assert!(block_on(created).unwrap_err().is::<Overloaded>());
    drop(held);
    assert_eq!(block_on(svc.call(Step::Ok(5))).unwrap(), 5);
}

#[test]
fn max_waiting_lets_a_short_queue_form() {
    let pool = PermitPool::new(1);
    let inner = Scripted::new(ManualClock::new());
    let svc = ServiceBuilder::new()
        .layer(LoadShedLayer::new(pool.clone()).max_waiting(1))
        .concurrency_limit_shared(pool.clone())
        .service(inner);
    let mut running = pin!(svc.call(Step::Pending));
    let mut queued = pin!(svc.call(Step::Ok(2)));
    assert!(poll_once(running.as_mut()).is_pending());
    assert!(poll_once(queued.as_mut()).is_pending());
    assert_eq!(pool.waiting(), 1);
    assert!(
        block_on(svc.call(Step::Ok(3)))
            .unwrap_err()
            .is::<Overloaded>()
    );
}

/// With `max_waiting(n)` a call is shed only once `n` callers are queued:
/// with room for two, the second waiter still queues and the third is shed.
#[test]
fn max_waiting_admits_callers_until_the_queue_holds_that_many() {
    let pool = PermitPool::new(1);
    let inner = Scripted::new(ManualClock::new());
    let svc = ServiceBuilder::new()
        .layer(LoadShedLayer::new(pool.clone()).max_waiting(2))
        .concurrency_limit_shared(pool.clone())
        .service(inner.clone());
    let mut running = pin!(svc.call(Step::Pending));
    let mut first = pin!(svc.call(Step::Ok(1)));
    let mut second = pin!(svc.call(Step::Ok(2)));
    assert!(poll_once(running.as_mut()).is_pending());
    assert!(poll_once(first.as_mut()).is_pending());
    assert_eq!(pool.waiting(), 1);
    assert!(
        poll_once(second.as_mut()).is_pending(),
        "one queued: room for one more"
    );
    assert_eq!(pool.waiting(), 2);
    assert!(
        block_on(svc.call(Step::Ok(3)))
            .unwrap_err()
            .is::<Overloaded>()
    );
    assert_eq!(inner.counts.calls(), 1);
}

#[test]
fn debug_output_shows_the_pool_and_the_queue_allowed() {
    let svc = LoadShed::new(Scripted::new(ManualClock::new()), PermitPool::new(2)).max_waiting(3);
    let shown = format!("{svc:?}");
    assert!(shown.starts_with("LoadShed { inner: Scripted"), "{shown}");
    assert!(
        shown.ends_with("pool: PermitPool { max: 2, available: 2, waiting: 0 }, max_waiting: 3 }"),
        "{shown}"
    );
}

#[test]
fn the_layer_builds_services_watching_one_pool() {
    let pool = PermitPool::new(0);
    let svc = LoadShedLayer::new(pool).layer(Scripted::new(ManualClock::new()));
    assert!(
        block_on(svc.call(Step::Ok(0)))
            .unwrap_err()
            .is::<Overloaded>()
    );
    assert_eq!(svc.get_ref().counts.calls(), 0);
}
