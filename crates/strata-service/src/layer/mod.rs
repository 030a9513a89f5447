//! The `Layer` trait and the small layers every stack is built from.

mod identity;
mod layer_fn;
mod stack;

pub use identity::Identity;
pub use layer_fn::{LayerFn, layer_fn};
pub use stack::Stack;

/// Wraps a service in another service: the building block of middleware.
///
/// A middleware comes in two parts. The *service* (say `InFlight<S>`)
/// holds the inner service and does the work on each call. The *layer*
/// (say `InFlightLayer`) holds the middleware's configuration and knows how
/// to wrap any inner service; it is what a
/// [`ServiceBuilder`](crate::ServiceBuilder) stacks. Keeping the two apart
/// lets one configured layer wrap many services, for example one per
/// connection.
///
/// # Contract
///
/// - `layer` takes `&self` and may be called any number of times, each
///   time with a fresh inner service. A server builds its stack once per
///   connection, so `layer` should be cheap: clone an `Rc` or a small
///   config value, do not open files or sockets.
/// - State that all wrapped services share (a counter, a cache, a pool)
///   goes behind an `Rc` or `Arc` in the layer and is cloned into each
///   service; state per service is created in `layer`.
/// - A layer is generic over the inner service `S`; it places bounds on
///   `S` only in the `Service` impl of the service it builds, so that it
///   can be stacked before the inner service's type is known.
///
/// # Example
///
/// A layer that makes a service answer in upper case:
///
/// ```
/// use strata_service::{Layer, MapResponse, Service, service_fn};
///
/// struct Shout;
///
/// fn to_upper(s: String) -> String {
///     s.to_uppercase()
/// }
///
/// impl<S> Layer<S> for Shout {
///     type Service = MapResponse<S, fn(String) -> String>;
///
///     fn layer(&self, inner: S) -> Self::Service {
///         MapResponse::new(inner, to_upper)
///     }
/// }
///
/// let echo = service_fn(|s: String| async move { Ok::<_, std::io::Error>(s) });
/// let loud = Shout.layer(echo);
/// let answer = futures_executor::block_on(loud.call("hi".to_owned()));
/// assert_eq!(answer.unwrap(), "HI");
/// ```
///
/// The [`Service`](crate::Service) docs carry a full middleware with its
/// layer, and the [`guide`](crate::guide) builds one step by step.
pub trait Layer<S> {
    /// The service that wraps `S`.
    type Service;

    /// Wraps `inner`.
    fn layer(&self, inner: S) -> Self::Service;
}

impl<L, S> Layer<S> for &L
where
    L: Layer<S> + ?Sized,
{
    type Service = L::Service;

    fn layer(&self, inner: S) -> L::Service {
        (**self).layer(inner)
    }
}
