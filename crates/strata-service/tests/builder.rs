//! `ServiceBuilder` stacks layers outermost first.

mod support;

use futures_executor::block_on;
use strata_service::{Layer, Service, ServiceBuilder, Stack, layer_fn, service_fn};
use support::Log;

/// A middleware that writes `name>` when a request passes in and `<name`
/// when the response passes out.
struct Record<S> {
    name: &'static str,
    log: Log,
    inner: S,
}

impl<S: Service<Req>, Req> Service<Req> for Record<S> {
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
        self.log.push(format!("{}>", self.name));
        let result = self.inner.call(req).await;
        self.log.push(format!("<{}", self.name));
        result
    }
}

/// Its layer, which also writes `wrap name` when it wraps a service.
#[derive(Clone)]
struct RecordLayer {
    name: &'static str,
    log: Log,
}

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        self.log.push(format!("wrap {}", self.name));
        Record {
            name: self.name,
            log: self.log.clone(),
            inner,
        }
    }
}

fn recording_service(log: &Log) -> impl Service<(), Response = (), Error = ()> {
    let log = log.clone();
    service_fn(move |()| {
        log.push("svc");
        async { Ok(()) }
    })
}

fn layer(name: &'static str, log: &Log) -> RecordLayer {
    RecordLayer {
        name,
        log: log.clone(),
    }
}

#[test]
fn first_layer_added_is_outermost() {
    let log = Log::default();
    let svc = ServiceBuilder::new()
        .layer(layer("a", &log))
        .layer(layer("b", &log))
        .layer(layer("c", &log))
        .service(recording_service(&log));

    // Built from the inside out...
    assert_eq!(log.take(), ["wrap c", "wrap b", "wrap a"]);

    // ...so a request meets the first layer first, and the response
    // leaves through it last.
    block_on(svc.call(())).unwrap();
    assert_eq!(log.take(), ["a>", "b>", "c>", "svc", "<c", "<b", "<a"]);

    // The outermost wrapper is `a`.
    assert_eq!(svc.name, "a");
    assert_eq!(svc.inner.name, "b");
    assert_eq!(svc.inner.inner.name, "c");
}

#[test]
fn builder_is_reusable_and_is_itself_a_layer() {
    let log = Log::default();
    let builder = ServiceBuilder::new()
        .layer(layer("outer", &log))
        .layer(layer("inner", &log));

    // `service` takes `&self`: one builder wraps a service per connection.
    let first = builder.service(recording_service(&log));
    let second = builder.service(recording_service(&log));
    log.take();
    block_on(first.call(())).unwrap();
    block_on(second.call(())).unwrap();
    assert_eq!(log.take().len(), 10);

    // Used as a layer inside another builder, the whole stack keeps its
    // order, below the layers added before it.
    let svc = ServiceBuilder::new()
        .layer(layer("top", &log))
        .layer(builder)
        .service(recording_service(&log));
    log.take();
    block_on(svc.call(())).unwrap();
    assert_eq!(
        log.take(),
        [
            "top>", "outer>", "inner>", "svc", "<inner", "<outer", "<top"
        ]
    );
}

#[test]
fn builder_shorthands_stack_in_the_same_order() {
    // The request goes through map_request first and the response through
    // map_response last, as they are listed top to bottom.
    let svc = ServiceBuilder::new()
        .map_response(|s: String| format!("[{s}]"))
        .map_request(|n: u32| n * 2)
        .map_response(|n: u32| n.to_string())
        .map_request(|n: u32| n + 1)
        .service_fn(|n: u32| async move { Ok::<_, ()>(n) });
    // (3 * 2) + 1 = 7, then "7", then "[7]".
    assert_eq!(block_on(svc.call(3)), Ok("[7]".to_owned()));
}

#[test]
fn layer_fn_and_into_inner() {
    let log = Log::default();
    let log2 = log.clone();
    let builder = ServiceBuilder::new().layer_fn(move |inner| Record {
        name: "fn",
        log: log2.clone(),
        inner,
    });
    let svc = builder.service(recording_service(&log));
    block_on(svc.call(())).unwrap();
    assert_eq!(log.take(), ["fn>", "svc", "<fn"]);

    // The stack can be taken out and used as a plain layer.
    let stack: Stack<_, _> = builder.into_inner();
    let svc = stack.layer(recording_service(&log));
    block_on(svc.call(())).unwrap();
    assert_eq!(log.take(), ["fn>", "svc", "<fn"]);

    let twice = layer_fn(|s| (s, "wrapped"));
    assert_eq!(twice.layer(1).1, "wrapped");
}

#[test]
fn empty_builder_returns_the_service_unchanged() {
    let svc = ServiceBuilder::new().service(7_u8);
    assert_eq!(svc, 7);
    assert!(format!("{:?}", ServiceBuilder::new()).starts_with("ServiceBuilder"));
}
