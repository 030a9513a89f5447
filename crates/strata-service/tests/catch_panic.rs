//! `CatchPanic`: panics in `call` and in the future become errors.

mod scripted;

use futures_executor::block_on;
use scripted::{Scripted, Step, quiet_panics};
use strata_service::catch_panic::{CatchPanic, CatchPanicLayer, Panicked};
use strata_service::clock::ManualClock;
use strata_service::{BoxError, Layer, Service, service_fn};

#[test]
fn a_panic_in_call_becomes_an_error() {
    quiet_panics();
    let svc = CatchPanic::new(Scripted::new(ManualClock::new()));
    let err = block_on(svc.call(Step::PanicInCall)).unwrap_err();
    let panicked = err.downcast_ref::<Panicked>().expect("Panicked");
    assert_eq!(panicked.message(), Some("scripted panic in call"));
    assert_eq!(err.to_string(), "service panicked: scripted panic in call");
    assert_eq!(
        block_on(svc.call(Step::Ok(4))).unwrap(),
        4,
        "the service carries on"
    );
}

#[test]
fn a_panic_in_the_future_becomes_an_error() {
    quiet_panics();
    let inner = Scripted::new(ManualClock::new());
    let svc = CatchPanicLayer::new().layer(inner.clone());
    let err = block_on(svc.call(Step::PanicInFuture)).unwrap_err();
    assert_eq!(
        err.downcast_ref::<Panicked>().unwrap().message(),
        Some("scripted panic in future")
    );
    assert_eq!(
        inner.counts.in_flight(),
        0,
        "the panicked future was dropped"
    );
    assert_eq!(block_on(svc.call(Step::Ok(5))).unwrap(), 5);
}

#[test]
fn a_payload_that_is_not_a_string_has_no_message() {
    quiet_panics();
    let svc = CatchPanic::new(service_fn(|_: ()| async {
        std::panic::panic_any(42_u8);
        #[allow(unreachable_code)]
        Ok::<(), BoxError>(())
    }));
    let err = block_on(svc.call(())).unwrap_err();
    assert_eq!(err.downcast_ref::<Panicked>().unwrap().message(), None);
    assert_eq!(err.to_string(), "service panicked");
}

/// A panic whose payload panics when dropped still becomes an error: the
/// payload was dropped unguarded, and its panic escaped the layer.
#[test]
fn a_panic_with_a_payload_that_panics_when_dropped_becomes_an_error() {
    struct PanickyPayload;
    impl Drop for PanickyPayload {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("test: the payload's destructor panicked");
            }
        }
    }
    let svc = CatchPanic::new(service_fn(|n: u32| async move {
        if n == 13 {
            std::panic::panic_any(PanickyPayload);
        }
        Ok::<_, BoxError>(n)
    }));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(svc.call(13))));
    let err = caught.expect("a panic got out of CatchPanic").unwrap_err();
    let panicked = err.downcast_ref::<Panicked>().expect("a Panicked error");
    assert_eq!(panicked.message(), None);
}
