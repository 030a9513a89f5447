//! `ServiceBuilder`: stacking layers in reading order.

use std::fmt;

use crate::layer::{Identity, LayerFn, Stack, layer_fn};
use crate::service_fn::{ServiceFn, service_fn};
use crate::{
    AndThenLayer, Either, Layer, MapErrLayer, MapRequestLayer, MapResponseLayer, option_layer,
};

/// Stacks layers around a service, in the order a request meets them.
///
/// # Order
///
/// **The first layer added is the outermost.** A request passes through
/// the layers from the top of the builder chain to the bottom, reaches the
/// service, and the response comes back up in reverse:
///
/// ```text
/// ServiceBuilder::new()
///     .layer(a)          request  │  ▲ response     a sees the request first
///     .layer(b)                   │  │             and the response last
///     .layer(c)                   ▼  │
///     .service(svc)             svc
/// ```
///
/// so `.service(svc)` returns `a.layer(b.layer(c.layer(svc)))`. Put what
/// must see every request (logging, metrics, admission) on top, and what
/// concerns the service's own calls (request rewriting, error mapping) near
/// the bottom.
///
/// The builder itself is a [`Layer`] (the whole stack as one), and each
/// `.layer` only records the layer; nothing is built until
/// [`service`](ServiceBuilder::service) is called, which takes `&self` so
/// that one builder can wrap a fresh service per connection.
///
/// # Example
///
/// ```
/// use strata_service::{Service, ServiceBuilder, service_fn};
///
/// let svc = ServiceBuilder::new()
///     .map_request(|line: &str| line.trim().to_owned()) // runs first
///     .map_response(|n: usize| format!("{n} bytes"))     // runs last
///     .service(service_fn(|line: String| async move { Ok::<_, ()>(line.len()) }));
///
/// assert_eq!(futures_executor::block_on(svc.call("  hello\n")), Ok("5 bytes".to_owned()));
/// ```
#[derive(Clone)]
pub struct ServiceBuilder<L> {
    layer: L,
}

impl ServiceBuilder<Identity> {
    /// Returns a builder with no layers.
    pub const fn new() -> Self {
        ServiceBuilder {
            layer: Identity::new(),
        }
    }
}

impl Default for ServiceBuilder<Identity> {
    fn default() -> Self {
        ServiceBuilder::new()
    }
}

impl<L> ServiceBuilder<L> {
    /// Adds `layer` below the layers added so far: it wraps the service
    /// before they do, and sees requests after them.
    pub fn layer<T>(self, layer: T) -> ServiceBuilder<Stack<T, L>> {
        ServiceBuilder {
            layer: Stack::new(layer, self.layer),
        }
    }

    /// Adds `layer` if it is `Some`, and nothing if it is `None`; see
    /// [`option_layer`](crate::option_layer) for what the service looks
    /// like.
    pub fn option_layer<T>(
        self,
        layer: Option<T>,
    ) -> ServiceBuilder<Stack<Either<T, Identity>, L>> {
        self.layer(option_layer(layer))
    }

    /// Adds a layer made from a closure; see [`layer_fn`](crate::layer_fn).
    pub fn layer_fn<F>(self, f: F) -> ServiceBuilder<Stack<LayerFn<F>, L>> {
        self.layer(layer_fn(f))
    }

    /// Adds a layer that rewrites requests with `f`; see
    /// [`MapRequest`](crate::MapRequest).
    pub fn map_request<F>(self, f: F) -> ServiceBuilder<Stack<MapRequestLayer<F>, L>> {
        self.layer(MapRequestLayer::new(f))
    }

    /// Adds a layer that rewrites successful responses with `f`; see
    /// [`MapResponse`](crate::MapResponse).
    pub fn map_response<F>(self, f: F) -> ServiceBuilder<Stack<MapResponseLayer<F>, L>> {
        self.layer(MapResponseLayer::new(f))
    }

    /// Adds a layer that converts errors with `f`; see
    /// [`MapErr`](crate::MapErr).
    pub fn map_err<F>(self, f: F) -> ServiceBuilder<Stack<MapErrLayer<F>, L>> {
        self.layer(MapErrLayer::new(f))
    }

    /// Adds a layer that runs the asynchronous step `f` after each
    /// success; see [`AndThen`](crate::AndThen).
    pub fn and_then<F>(self, f: F) -> ServiceBuilder<Stack<AndThenLayer<F>, L>> {
        self.layer(AndThenLayer::new(f))
    }

    /// Wraps `service` in the stack.
    pub fn service<S>(&self, service: S) -> L::Service
    where
        L: Layer<S>,
    {
        self.layer.layer(service)
    }

    /// Wraps [`service_fn(f)`](crate::service_fn) in the stack.
    pub fn service_fn<F>(&self, f: F) -> L::Service
    where
        L: Layer<ServiceFn<F>>,
    {
        self.service(service_fn(f))
    }

    /// Returns the stack as one layer.
    pub fn into_inner(self) -> L {
        self.layer
    }
}

impl<S, L: Layer<S>> Layer<S> for ServiceBuilder<L> {
    type Service = L::Service;

    fn layer(&self, inner: S) -> L::Service {
        self.layer.layer(inner)
    }
}

impl<L: fmt::Debug> fmt::Debug for ServiceBuilder<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ServiceBuilder").field(&self.layer).finish()
    }
}
