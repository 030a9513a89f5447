//! `BoxService`, `BoxCloneService` and `BoxCloneSyncService`.

mod support;

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_executor::block_on;
use strata_service::{
    BoxCloneService, BoxCloneSyncService, BoxService, Service, ServiceBuilder, ServiceExt,
    service_fn,
};
use support::yield_once;

#[test]
fn boxed_services_of_different_types_share_one_type() {
    let mut routes: HashMap<&str, BoxService<i64, i64, String>> = HashMap::new();
    routes.insert(
        "double",
        service_fn(|n: i64| async move { Ok(n * 2) }).boxed(),
    );
    routes.insert(
        "checked",
        service_fn(|n: i64| async move { n.checked_neg().ok_or("overflow") })
            .map_err(str::to_owned)
            .boxed(),
    );
    routes.insert(
        "stacked",
        ServiceBuilder::new()
            .map_response(|n: i64| n + 1)
            .service_fn(|n: i64| async move { Ok(n) })
            .boxed(),
    );

    assert_eq!(block_on(routes["double"].call(21)), Ok(42));
    assert_eq!(block_on(routes["checked"].call(5)), Ok(-5));
    assert_eq!(
        block_on(routes["checked"].call(i64::MIN)),
        Err("overflow".to_owned())
    );
    assert_eq!(block_on(routes["stacked"].call(1)), Ok(2));
}

#[test]
fn box_service_new_matches_boxed() {
    let svc = BoxService::new(service_fn(|s: String| async move { Ok::<_, ()>(s.len()) }));
    assert_eq!(block_on(svc.call("four".into())), Ok(4));
    assert_eq!(format!("{svc:?}"), "BoxService { .. }");
}

#[test]
fn box_clone_service_clones_share_the_service() {
    let calls = Rc::new(Cell::new(0));
    let counting = {
        let calls = Rc::clone(&calls);
        service_fn(move |()| {
            calls.set(calls.get() + 1);
            async { Ok::<_, ()>(()) }
        })
    };
    let a: BoxCloneService<(), (), ()> = counting.boxed_clone();
    let b = a.clone();
    let c = BoxCloneService::clone(&b);
    block_on(async {
        a.call(()).await.unwrap();
        b.call(()).await.unwrap();
        c.call(()).await.unwrap();
    });
    assert_eq!(calls.get(), 3);
    assert_eq!(format!("{c:?}"), "BoxCloneService { .. }");
    drop((a, b, c));
    // The service was dropped with the last clone.
    assert_eq!(Rc::strong_count(&calls), 1);
}

#[test]
fn box_clone_sync_service_crosses_threads_with_non_send_futures() {
    fn assert_send_sync<T: Send + Sync + Clone>(_: &T) {}

    static CALLS: AtomicU32 = AtomicU32::new(0);
    // The closure is Send + Sync; its future holds an `Rc` across an
    // `.await`, so the future is not Send. The boxed service still is.
    let svc: BoxCloneSyncService<u32, u32, ()> = service_fn(|n: u32| async move {
        let local = Rc::new(n);
        yield_once().await;
        CALLS.fetch_add(1, Ordering::Relaxed);
        Ok(*local + 1)
    })
    .boxed_clone_sync();
    assert_send_sync(&svc);

    std::thread::scope(|s| {
        for n in 0..4 {
            let svc = svc.clone();
            s.spawn(move || assert_eq!(block_on(svc.call(n)), Ok(n + 1)));
        }
    });
    assert_eq!(CALLS.load(Ordering::Relaxed), 4);
    assert!(format!("{:?}", BoxCloneSyncService::clone(&svc)).starts_with("BoxCloneSyncService"));
}
