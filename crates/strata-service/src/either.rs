//! One of two services (or layers), chosen when the stack is built.

use crate::layer::Identity;
use crate::{Layer, Service};

/// One of two services, or one of two layers.
///
/// As a service, `Either` forwards each call to whichever side it holds.
/// Both sides must answer with the same response type; the right side's
/// error must convert [`Into`] the left side's, which holds when they are
/// the same type. The shape fits [`option_layer`], where the left side is
/// the service with the optional middleware and the right side the bare
/// service, whose error the middleware's error usually wraps.
///
/// As a layer, `Either` wraps with whichever layer it holds, giving an
/// `Either` of the two wrapped services.
///
/// # Example
///
/// ```
/// use strata_service::{Either, Service, service_fn};
///
/// for polite in [true, false] {
///     let svc = if polite {
///         Either::Left(service_fn(|name: &str| {
///             let answer = format!("hello, {name}");
///             async move { Ok::<_, ()>(answer) }
///         }))
///     } else {
///         Either::Right(service_fn(|_: &str| async { Ok::<_, ()>("what?".to_owned()) }))
///     };
///     let answer = futures_executor::block_on(svc.call("strata")).unwrap();
///     assert_eq!(answer, if polite { "hello, strata" } else { "what?" });
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first service or layer.
    Left(A),
    /// The second service or layer.
    Right(B),
}

impl<A, B, Req> Service<Req> for Either<A, B>
where
    A: Service<Req>,
    B: Service<Req, Response = A::Response>,
    B::Error: Into<A::Error>,
{
    type Response = A::Response;
    type Error = A::Error;

    async fn call(&self, req: Req) -> Result<A::Response, A::Error> {
        match self {
            Either::Left(a) => a.call(req).await,
            Either::Right(b) => b.call(req).await.map_err(Into::into),
        }
    }
}

impl<S, A, B> Layer<S> for Either<A, B>
where
    A: Layer<S>,
    B: Layer<S>,
{
    type Service = Either<A::Service, B::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        match self {
            Either::Left(a) => Either::Left(a.layer(inner)),
            Either::Right(b) => Either::Right(b.layer(inner)),
        }
    }
}

/// Turns an optional layer into a layer: `Some(l)` wraps with `l`, `None`
/// leaves the service as it is.
///
/// For middleware switched on by configuration. The resulting service is
/// an [`Either`] of the wrapped and the bare service, so the bare
/// service's error must convert into the middleware's error (the usual
/// case: equal types, or a middleware error that wraps the inner one).
/// [`ServiceBuilder::option_layer`](crate::ServiceBuilder::option_layer)
/// does the same inside a builder.
///
/// # Example
///
/// ```
/// use strata_service::{Layer, MapResponseLayer, Service, option_layer, service_fn};
///
/// let echo = service_fn(|s: String| async move { Ok::<_, ()>(s) });
/// let shout = MapResponseLayer::new(|s: String| s.to_uppercase());
///
/// let quiet = option_layer(None::<MapResponseLayer<fn(String) -> String>>).layer(echo);
/// let loud = option_layer(Some(shout)).layer(echo);
///
/// use futures_executor::block_on;
/// assert_eq!(block_on(quiet.call("hi".into())), Ok("hi".to_owned()));
/// assert_eq!(block_on(loud.call("hi".into())), Ok("HI".to_owned()));
/// ```
pub fn option_layer<L>(layer: Option<L>) -> Either<L, Identity> {
    match layer {
        Some(layer) => Either::Left(layer),
        None => Either::Right(Identity::new()),
    }
}
