//! `&S`, `Box<S>`, `Rc<S>` and `Arc<S>` are services when `S` is.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_executor::block_on;
use strata_service::Service;

/// Counts its calls and answers with the count so far.
#[derive(Default)]
struct Counter {
    calls: Cell<u32>,
}

impl Service<()> for Counter {
    type Response = u32;
    type Error = ();

    async fn call(&self, (): ()) -> Result<u32, ()> {
        self.calls.set(self.calls.get() + 1);
        Ok(self.calls.get())
    }
}

/// Calls any service twice; the pointers are passed where `S` is expected.
fn call_twice<S: Service<(), Response = u32, Error = ()>>(svc: S) -> (u32, u32) {
    block_on(async { (svc.call(()).await.unwrap(), svc.call(()).await.unwrap()) })
}

#[test]
fn reference_forwards_to_the_service() {
    let counter = Counter::default();
    assert_eq!(call_twice(&counter), (1, 2));
    let by_ref: &Counter = &counter;
    assert_eq!(call_twice::<&&Counter>(&by_ref), (3, 4));
    assert_eq!(counter.calls.get(), 4);
}

#[test]
fn box_forwards_to_the_service() {
    assert_eq!(call_twice(Box::new(Counter::default())), (1, 2));
}

#[test]
fn rc_clones_share_the_service() {
    let counter = Rc::new(Counter::default());
    assert_eq!(call_twice(Rc::clone(&counter)), (1, 2));
    assert_eq!(call_twice(Rc::clone(&counter)), (3, 4));
    assert_eq!(counter.calls.get(), 4);
}

/// Like `Counter`, but `Sync`, so it can sit in an `Arc` across threads.
#[derive(Default)]
struct AtomicCounter {
    calls: AtomicU32,
}

impl Service<()> for AtomicCounter {
    type Response = u32;
    type Error = ();

    async fn call(&self, (): ()) -> Result<u32, ()> {
        Ok(self.calls.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

#[test]
fn arc_clones_share_the_service_across_threads() {
    let counter = Arc::new(AtomicCounter::default());
    std::thread::scope(|s| {
        for _ in 0..4 {
            let counter = Arc::clone(&counter);
            s.spawn(move || call_twice(counter));
        }
    });
    assert_eq!(counter.calls.load(Ordering::Relaxed), 8);
}
