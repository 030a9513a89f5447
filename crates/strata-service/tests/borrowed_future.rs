//! A call's future may borrow the service, and many calls may be in flight
//! over one shared service.

mod support;

use std::cell::{Cell, RefCell};
use std::convert::Infallible;

use futures_executor::block_on;
use futures_util::future::join_all;
use strata_service::{Service, ServiceExt};
use support::yield_once;

/// Answers with an entry of its table. The future holds a `&str` into the
/// table across an `.await`: it borrows the service, with no clone.
struct Lookup {
    table: Vec<String>,
    in_flight: Cell<usize>,
    max_in_flight: Cell<usize>,
}

impl Lookup {
    fn new(n: usize) -> Self {
        Lookup {
            table: (0..n).map(|i| format!("entry-{i}")).collect(),
            in_flight: Cell::new(0),
            max_in_flight: Cell::new(0),
        }
    }
}

impl Service<usize> for Lookup {
    type Response = String;
    type Error = Infallible;

    async fn call(&self, index: usize) -> Result<String, Infallible> {
        let entry: &str = &self.table[index];
        self.in_flight.set(self.in_flight.get() + 1);
        self.max_in_flight
            .set(self.max_in_flight.get().max(self.in_flight.get()));
        yield_once().await; // other calls run here, while `entry` is held
        self.in_flight.set(self.in_flight.get() - 1);
        Ok(entry.to_uppercase())
    }
}

const CALLS: usize = 64;

#[test]
fn many_borrowing_calls_in_flight_at_once() {
    let lookup = Lookup::new(CALLS);
    let answers = block_on(join_all((0..CALLS).map(|i| lookup.call(i))));
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), format!("ENTRY-{i}"));
    }
    // Every call had started before the first one finished.
    assert_eq!(lookup.max_in_flight.get(), CALLS);
    assert_eq!(lookup.in_flight.get(), 0);
}

#[test]
fn combinators_keep_the_borrow() {
    let lookup = Lookup::new(CALLS);
    let svc = (&lookup)
        .map_request(|i: usize| CALLS - 1 - i)
        .map_response(|s: String| s.len());
    let answers = block_on(join_all((0..CALLS).map(|i| svc.call(i))));
    assert_eq!(answers[0], Ok(format!("ENTRY-{}", CALLS - 1).len()));
    assert_eq!(lookup.max_in_flight.get(), CALLS);
}

#[test]
fn boxed_futures_keep_the_borrow() {
    let svc = Lookup::new(CALLS).boxed();
    let answers = block_on(join_all((0..CALLS).map(|i| svc.call(i))));
    assert_eq!(answers[CALLS - 1], Ok(format!("ENTRY-{}", CALLS - 1)));
}

/// The mistake from the `Service` docs: a `RefCell` borrow held across an
/// `.await`. Two overlapping calls find the state borrowed.
struct HoldsBorrow {
    seen: RefCell<Vec<u32>>,
}

impl Service<u32> for HoldsBorrow {
    type Response = ();
    type Error = Infallible;

    #[allow(clippy::await_holding_refcell_ref)] // the mistake, on purpose
    async fn call(&self, n: u32) -> Result<(), Infallible> {
        let mut seen = self.seen.borrow_mut();
        yield_once().await;
        seen.push(n);
        Ok(())
    }
}

/// The fix: short borrows, none alive at the `.await`.
struct ShortBorrows {
    seen: RefCell<Vec<u32>>,
}

impl Service<u32> for ShortBorrows {
    type Response = ();
    type Error = Infallible;

    async fn call(&self, n: u32) -> Result<(), Infallible> {
        yield_once().await;
        self.seen.borrow_mut().push(n);
        Ok(())
    }
}

#[test]
#[should_panic(expected = "already")]
fn refcell_borrow_across_await_panics_when_calls_overlap() {
    let svc = HoldsBorrow {
        seen: RefCell::default(),
    };
    block_on(join_all((0..2).map(|n| svc.call(n))));
}

#[test]
fn short_borrows_survive_overlapping_calls() {
    let svc = ShortBorrows {
        seen: RefCell::default(),
    };
    block_on(join_all((0..8).map(|n| svc.call(n))));
    assert_eq!(*svc.seen.borrow(), (0..8).collect::<Vec<_>>());
}
