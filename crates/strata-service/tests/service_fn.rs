//! `service_fn`: closures as services.

use std::cell::Cell;
use std::convert::Infallible;

use futures_executor::block_on;
use strata_service::{Service, service_fn};

#[test]
fn calls_the_closure_with_each_request() {
    let hello = service_fn(|line: String| async move {
        Ok::<_, Infallible>(if line == "hello" { "world" } else { "idk" })
    });
    assert_eq!(block_on(hello.call("hello".into())), Ok("world"));
    assert_eq!(block_on(hello.call("bonjour".into())), Ok("idk"));
}

#[test]
fn errors_come_back_as_they_are() {
    let parse = service_fn(|text: &str| {
        let parsed = text.parse::<u8>();
        async move { parsed }
    });
    assert_eq!(block_on(parse.call("42")), Ok(42));
    assert!(block_on(parse.call("4200")).is_err());
}

#[test]
fn closure_state_is_shared_between_calls() {
    let calls = Cell::new(0);
    let counting = service_fn(|()| {
        calls.set(calls.get() + 1);
        let n = calls.get();
        async move { Ok::<_, Infallible>(n) }
    });
    assert_eq!(block_on(counting.call(())), Ok(1));
    assert_eq!(block_on(counting.call(())), Ok(2));
    assert_eq!(calls.get(), 2);
}

#[test]
fn into_inner_returns_the_closure() {
    let svc = service_fn(|n: u32| async move { Ok::<_, ()>(n) });
    let f = svc.into_inner();
    assert_eq!(block_on(f(7)), Ok(7));
}
