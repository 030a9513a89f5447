//! `ServiceExt` combinators, their layers, `Either` and `option_layer`.

use std::cell::Cell;

use futures_executor::block_on;
use strata_service::{
    AndThenLayer, BoxError, Either, Layer, MapErrLayer, MapRequestLayer, MapResponseLayer, Service,
    ServiceBuilder, ServiceExt, layer_fn, option_layer, service_fn,
};

/// Parses a number; the error is a `&'static str`.
fn parser() -> impl Service<String, Response = i64, Error = &'static str> + Copy {
    service_fn(|text: String| async move { text.trim().parse::<i64>().map_err(|_| "not a number") })
}

#[test]
fn map_request_rewrites_before_the_inner_service() {
    let svc = parser().map_request(|bytes: Vec<u8>| String::from_utf8(bytes).unwrap());
    assert_eq!(block_on(svc.call(b"12".to_vec())), Ok(12));
    assert_eq!(svc.get_ref().call("3".into()).now(), Ok(3));
}

#[test]
fn map_request_runs_once_per_call() {
    let mapped = Cell::new(0);
    let svc = parser().map_request(|n: u32| {
        mapped.set(mapped.get() + 1);
        n.to_string()
    });
    assert_eq!(block_on(svc.call(5)), Ok(5));
    assert_eq!(block_on(svc.call(6)), Ok(6));
    assert_eq!(mapped.get(), 2);
}

#[test]
fn map_response_rewrites_successes_only() {
    let svc = parser().map_response(|n| n * 10);
    assert_eq!(block_on(svc.call("4".into())), Ok(40));
    assert_eq!(block_on(svc.call("x".into())), Err("not a number"));
}

#[test]
fn map_err_rewrites_errors_only() {
    #[derive(Debug, PartialEq)]
    enum AppError {
        BadInput(&'static str),
    }
    let svc = parser().map_err(AppError::BadInput);
    assert_eq!(block_on(svc.call("4".into())), Ok(4));
    assert_eq!(
        block_on(svc.call("x".into())),
        Err(AppError::BadInput("not a number"))
    );
}

#[test]
fn map_err_to_box_error_keeps_the_original() {
    let failing = service_fn(|()| async { Err::<(), _>(std::fmt::Error) });
    let svc = failing.map_err(BoxError::from);
    let err = block_on(svc.call(())).unwrap_err();
    assert!(err.downcast_ref::<std::fmt::Error>().is_some());
}

#[test]
fn and_then_chains_an_async_step_after_success() {
    let svc = parser().and_then(|n| async move {
        if n >= 0 {
            Ok(n as u64)
        } else {
            Err("negative")
        }
    });
    assert_eq!(block_on(svc.call("7".into())), Ok(7));
    assert_eq!(block_on(svc.call("-7".into())), Err("negative"));
}

#[test]
fn and_then_is_skipped_after_an_error() {
    let ran = Cell::new(false);
    let svc = parser().and_then(|n| {
        ran.set(true);
        async move { Ok(n) }
    });
    assert_eq!(block_on(svc.call("x".into())), Err("not a number"));
    assert!(!ran.get());
}

#[test]
fn wrappers_give_back_their_inner_service() {
    let mut svc = parser().map_response(|n| n + 1);
    let _: &mut _ = svc.get_mut();
    let inner = svc.into_inner();
    assert_eq!(block_on(inner.call("1".into())), Ok(1));
}

#[test]
fn layers_build_the_same_wrappers() {
    let svc = ServiceBuilder::new()
        .layer(MapErrLayer::new(|e: &'static str| e.len()))
        .layer(AndThenLayer::new(|n: i64| async move { Ok(n + 1) }))
        .layer(MapResponseLayer::new(|n: i64| n * 2))
        .layer(MapRequestLayer::new(|n: u8| n.to_string()))
        .service(parser());
    assert_eq!(block_on(svc.call(20)), Ok(41));

    let failing = MapErrLayer::new(|e: &'static str| e.len()).layer(parser());
    assert_eq!(
        block_on(failing.call("x".into())),
        Err("not a number".len())
    );
}

#[test]
fn either_calls_the_side_it_holds() {
    let double = service_fn(|n: i64| async move { Ok::<_, &'static str>(n * 2) });
    let negate = service_fn(|n: i64| async move { Ok::<_, &'static str>(-n) });

    // One service type, its side chosen at run time.
    let pick = |negative: bool| {
        if negative {
            Either::Right(negate)
        } else {
            Either::Left(double)
        }
    };
    assert_eq!(block_on(pick(false).call(5)), Ok(10));
    assert_eq!(block_on(pick(true).call(5)), Ok(-5));
}

#[test]
fn either_converts_the_right_error_into_the_left() {
    let owned = service_fn(|()| async { Err::<(), String>("left failed".to_owned()) });
    let borrowed = service_fn(|()| async { Err::<(), &'static str>("right failed") });

    let pick = |right: bool| {
        if right {
            Either::Right(borrowed)
        } else {
            Either::Left(owned)
        }
    };
    let left: Result<(), String> = block_on(pick(false).call(()));
    assert_eq!(left, Err("left failed".to_owned()));
    let right: Result<(), String> = block_on(pick(true).call(()));
    assert_eq!(right, Err("right failed".to_owned()));
}

#[test]
fn either_as_a_layer_wraps_with_the_side_it_holds() {
    let shout = MapResponseLayer::new(|n: i64| n * 100);
    let add = MapResponseLayer::new(|n: i64| n + 100);

    let svc = Either::<_, MapResponseLayer<fn(i64) -> i64>>::Left(shout).layer(parser());
    assert_eq!(block_on(svc.call("2".into())), Ok(200));
    let svc = Either::<MapResponseLayer<fn(i64) -> i64>, _>::Right(add).layer(parser());
    assert_eq!(block_on(svc.call("2".into())), Ok(102));
}

#[test]
fn option_layer_applies_some_and_skips_none() {
    let times_ten = MapResponseLayer::new(|n: i64| n * 10);

    let on = option_layer(Some(times_ten)).layer(parser());
    assert_eq!(block_on(on.call("3".into())), Ok(30));
    assert!(matches!(on, Either::Left(_)));

    let off = option_layer(None::<MapResponseLayer<fn(i64) -> i64>>).layer(parser());
    assert_eq!(block_on(off.call("3".into())), Ok(3));
    assert!(matches!(off, Either::Right(_)));
}

#[test]
fn builder_option_layer_matches_the_free_function() {
    for enabled in [false, true] {
        let svc = ServiceBuilder::new()
            .option_layer(enabled.then_some(MapResponseLayer::new(|n: i64| n + 1)))
            .service(parser());
        let expected = if enabled { 8 } else { 7 };
        assert_eq!(block_on(svc.call("7".into())), Ok(expected));
    }
}

/// Drives a future that must be ready at once (every service here is).
trait Now: std::future::Future + Sized {
    fn now(self) -> Self::Output {
        use futures_util::FutureExt;
        self.now_or_never().expect("future was not ready")
    }
}
impl<F: std::future::Future> Now for F {}

fn double(n: i64) -> i64 {
    n * 2
}

/// Each combinator names itself, its inner service and its function in
/// `Debug` output, so a printed stack reads as it was built.
#[test]
fn combinators_and_their_layers_show_what_they_wrap_in_debug_output() {
    let echo = service_fn(|n: i64| async move { Ok::<_, &'static str>(n) });
    let shown = format!("{:?}", echo.map_response(double));
    assert!(
        shown.starts_with("MapResponse { inner: ServiceFn { f: "),
        "{shown}"
    );
    assert!(shown.ends_with("double\" }"), "{shown}");
    let services = [
        format!("{:?}", echo.map_request(double)),
        format!("{:?}", echo.map_err(|e: &'static str| e)),
        format!("{:?}", echo.and_then(|n| async move { Ok(n) })),
    ];
    for (shown, name) in services.iter().zip(["MapRequest", "MapErr", "AndThen"]) {
        assert!(
            shown.starts_with(&format!("{name} {{ inner: ServiceFn {{ f: ")),
            "{shown}"
        );
    }
    let layers = [
        format!("{:?}", MapRequestLayer::new(double)),
        format!("{:?}", MapResponseLayer::new(double)),
        format!("{:?}", MapErrLayer::new(double)),
        format!("{:?}", AndThenLayer::new(double)),
        format!("{:?}", layer_fn(|s: u32| s)),
    ];
    let names = [
        "MapRequestLayer",
        "MapResponseLayer",
        "MapErrLayer",
        "AndThenLayer",
        "LayerFn",
    ];
    for (shown, name) in layers.iter().zip(names) {
        assert!(shown.starts_with(&format!("{name} {{ f: \"")), "{shown}");
    }
}
