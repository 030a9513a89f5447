//! A service that fails with `std::io::Error` takes every layer that can
//! refuse or fail a call on its own: each such error converts into an
//! `io::Error` (a newcomer's review found only the timeout's did).

mod scripted;

use std::io;
use std::pin::pin;

use futures_executor::block_on;
use scripted::poll_once;
use strata_service::catch_panic::Panicked;
use strata_service::circuit::CircuitOpen;
use strata_service::limit::PermitPool;
use strata_service::limit::RateLimited;
use strata_service::load_shed::Overloaded;
use strata_service::retry::BudgetExhausted;
use strata_service::timeout::Elapsed;
use strata_service::{Service, ServiceBuilder, service_fn};

fn converts_into_io_error<E: Into<io::Error>>() {}

#[test]
fn every_layer_error_converts_into_io_error() {
    converts_into_io_error::<Overloaded>();
    converts_into_io_error::<RateLimited>();
    converts_into_io_error::<CircuitOpen>();
    converts_into_io_error::<Panicked>();
    converts_into_io_error::<Elapsed>();
    converts_into_io_error::<BudgetExhausted>();
}

#[test]
fn an_io_error_service_takes_load_shedding_and_panic_catching() {
    let pool = PermitPool::new(1);
    let svc = ServiceBuilder::new()
        .catch_panic()
        .load_shed(pool.clone())
        .concurrency_limit_shared(pool)
        .service(service_fn(|req: &'static str| async move {
            match req {
                "panic" => panic!("boom"),
                "wait" => std::future::pending().await,
                _ => Ok::<_, io::Error>(req),
            }
        }));
    assert_eq!(block_on(svc.call("hi")).unwrap(), "hi");
    let err = block_on(svc.call("panic")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert_eq!(err.to_string(), "service panicked: boom");
    // The one permit held by a call that waits: the next is shed.
    let mut waiting = pin!(svc.call("wait"));
    assert!(poll_once(waiting.as_mut()).is_pending());
    let err = block_on(svc.call("hi")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert!(
        err.get_ref().is_some_and(|e| e.is::<Overloaded>()),
        "{err:?}"
    );
}
