//! `ServiceBuilder`: stacking layers in reading order.

use std::fmt;

use std::time::Duration;

use crate::catch_panic::CatchPanicLayer;
use crate::circuit::{Breaker, CircuitBreakerLayer};
use crate::clock::Clock;
use crate::layer::{Identity, LayerFn, Stack, layer_fn};
use crate::limit::{ConcurrencyLimitLayer, PermitPool, Rate, RateLimitLayer};
use crate::load_shed::LoadShedLayer;
use crate::metrics::MetricsLayer;
use crate::retry::RetryLayer;
use crate::service_fn::{ServiceFn, service_fn};
use crate::timeout::TimeoutLayer;
use crate::trace::TraceLayer;
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
/// # A sensible order
///
/// Each middleware has a method here (`.timeout(d)`,
/// `.concurrency_limit(n)`, ...). From the outside in, a server stack
/// usually reads:
///
/// ```text
/// ServiceBuilder::new()
///     .trace("api")            // sees everything, including shed calls
///     .metrics("api")          // counts what the client saw: one request, however many retries
///     .load_shed(pool.clone()) // refuse at once when full, before queueing anywhere
///     .timeout(overall)        // bounds queueing in the limits too
///     .concurrency_limit_shared(pool)
///     .rate_limit(rate, burst)
///     .catch_panic()           // innermost: a panic becomes an error the layers above see
///     .service(svc)
/// ```
///
/// and a client stack towards one backend:
///
/// ```text
/// ServiceBuilder::new()
///     .metrics("db")           // outside retry: one request, not one per attempt
///     .retry(policy)           // outside the breaker: a refused call is not retried into the wall
///     .circuit_breaker(breaker)
///     .timeout(per_attempt)    // inside retry: each attempt is bounded
///     .service(client)
/// ```
///
/// Rules of thumb: **load shed outside the concurrency limit** it watches
/// (it refuses before a call queues); **timeout outside anything that
/// waits**, if waiting should count against the deadline; **timeout
/// inside retry** to bound each attempt (and another one outside to bound
/// the whole, backoff included); **metrics and tracing outermost**, so
/// they count refusals and see one request per client request;
/// **catch panic innermost**, so every layer sees a panic as an ordinary
/// error.
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

    /// Adds a [`Timeout`](crate::timeout::Timeout) of `timeout` per call.
    pub fn timeout(self, timeout: Duration) -> ServiceBuilder<Stack<TimeoutLayer, L>> {
        self.layer(TimeoutLayer::new(timeout))
    }

    /// Adds a [`ConcurrencyLimit`](crate::limit::ConcurrencyLimit) of
    /// `max` calls, one limit per service built.
    ///
    /// # Panics
    ///
    /// If `max` is 0: every call would wait forever.
    pub fn concurrency_limit(self, max: usize) -> ServiceBuilder<Stack<ConcurrencyLimitLayer, L>> {
        self.layer(ConcurrencyLimitLayer::new(max))
    }

    /// Adds a [`ConcurrencyLimit`](crate::limit::ConcurrencyLimit) drawing
    /// on `pool`, shared by every service built.
    pub fn concurrency_limit_shared(
        self,
        pool: PermitPool,
    ) -> ServiceBuilder<Stack<ConcurrencyLimitLayer, L>> {
        self.layer(ConcurrencyLimitLayer::shared(pool))
    }

    /// Adds a waiting [`RateLimit`](crate::limit::RateLimit) of `rate`
    /// with bursts of `burst`, one bucket shared by every service built.
    pub fn rate_limit(self, rate: Rate, burst: u32) -> ServiceBuilder<Stack<RateLimitLayer, L>> {
        self.layer(RateLimitLayer::new(rate, burst))
    }

    /// Adds a [`LoadShed`](crate::load_shed::LoadShed) that refuses calls
    /// while `pool` is exhausted; pair it with
    /// [`concurrency_limit_shared`](ServiceBuilder::concurrency_limit_shared)
    /// on the same pool, below it.
    pub fn load_shed(self, pool: PermitPool) -> ServiceBuilder<Stack<LoadShedLayer, L>> {
        self.layer(LoadShedLayer::new(pool))
    }

    /// Adds a [`Retry`](crate::retry::Retry) with `policy` and the default
    /// budget and backoff (use [`RetryLayer`] to set them, or to report a
    /// spent budget as [`BudgetExhausted`](crate::retry::BudgetExhausted)).
    pub fn retry<P>(self, policy: P) -> ServiceBuilder<Stack<RetryLayer<P>, L>> {
        self.layer(RetryLayer::new(policy))
    }

    /// Adds a [`CircuitBreaker`](crate::circuit::CircuitBreaker) sharing
    /// `breaker`, counting every `Err` as a failure (to count only some,
    /// add a [`CircuitBreakerLayer`] with
    /// [`classify`](CircuitBreakerLayer::classify) through
    /// [`layer`](ServiceBuilder::layer)).
    pub fn circuit_breaker<C: Clock>(
        self,
        breaker: Breaker<C>,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<C>, L>> {
        self.layer(CircuitBreakerLayer::new(breaker))
    }

    /// Adds a [`CatchPanic`](crate::catch_panic::CatchPanic).
    pub fn catch_panic(self) -> ServiceBuilder<Stack<CatchPanicLayer, L>> {
        self.layer(CatchPanicLayer::new())
    }

    /// Adds a [`Trace`](crate::trace::Trace) whose spans carry
    /// `service = name`.
    pub fn trace(self, name: &'static str) -> ServiceBuilder<Stack<TraceLayer, L>> {
        self.layer(TraceLayer::new(name))
    }

    /// Adds [`Metrics`](crate::metrics::Metrics) labelled `service = name`.
    pub fn metrics(self, name: &'static str) -> ServiceBuilder<Stack<MetricsLayer, L>> {
        self.layer(MetricsLayer::new(name))
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
