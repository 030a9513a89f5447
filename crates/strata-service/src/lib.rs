//! strata-service: the [`Service`] trait, and the pieces to build stacks of
//! services.
//!
//! A [`Service`] is an asynchronous function from a request to a response,
//! held in a value: what it accepts, what it answers, how it can fail, and
//! the logic. It is the one trait an application writes against. Above it,
//! strata's protocol layer turns frames into requests and calls the
//! service; beside it, middleware wraps a service in another service to
//! add behaviour (rewriting, logging, limits) without touching its code.
//!
//! This crate holds the trait and what every stack is made of:
//!
//! - **Services.** [`Service`] itself (its docs are the place to start: a
//!   server, a client, the contract, and a middleware written inline), and
//!   [`service_fn`] to make one from a closure. References, `Box`, `Rc`
//!   and `Arc` of a service are services too.
//! - **Layers.** A [`Layer`] wraps a service in middleware.
//!   [`ServiceBuilder`] stacks layers in the order a request meets them:
//!   the first layer added is the outermost. [`Identity`], [`Stack`],
//!   [`layer_fn`] and [`option_layer`] are the small parts stacks are made
//!   of.
//! - **Combinators.** [`ServiceExt`] adds [`map_request`], [`map_response`],
//!   [`map_err`] and [`and_then`] to every service, each a middleware of its
//!   own with a matching layer; [`Either`] picks one of two services or
//!   layers.
//! - **Boxed services**, for when a stack's type must be named or chosen
//!   at run time (see below).
//! - **Factories.** A server makes one service per connection through a
//!   [`NewService`]: a plain closure `|| Ok(MyService)`, or
//!   [`new_service_fn`] for a closure that wants the connection's
//!   [`ConnectionInfo`] (peer and local address).
//!
//! - **Middleware**, one module each (see [below](#middleware)): timeout,
//!   limits, load shedding, retry, circuit breaking, panic catching,
//!   tracing and metrics.
//!
//! The [`guide`] builds a middleware step by step.
//!
//! # Design in three choices
//!
//! - **`call(&self)`, no readiness step.** A service is shared by the
//!   calls in flight and always callable; backpressure waits inside the
//!   call's future or in the protocol's bounded in-flight queue. State that
//!   changes uses interior mutability.
//! - **Futures may borrow the service, and need not be `Send`.** A
//!   connection and all its calls run on one worker thread, and the
//!   service outlives its calls; so a call's future can read the service's
//!   fields directly and use `Rc` and `RefCell`.
//! - **Errors are the service's own.** Nothing is boxed unless you ask:
//!   [`map_err`] unifies error types, and [`BoxError`] is there for those
//!   who want a catch-all.
//!
//! # Boxed services
//!
//! `dyn Service` cannot exist (the trait returns `impl Future`), so the
//! boxed forms erase a service behind a private object-safe trait that
//! boxes each call's future. The boxed future keeps the borrow of the
//! service, as unboxed ones do.
//!
//! | type | holds the service in | `Clone` | `Send + Sync` |
//! |---|---|---|---|
//! | [`BoxService`] | `Box` | no | no |
//! | [`BoxCloneService`] | `Rc` | yes, clones share the service | no |
//! | [`BoxCloneSyncService`] | `Arc` | yes, clones share the service | yes |
//!
//! In all three the futures are *not* `Send`, like every future in this
//! crate. A variant with `Send` futures would need the bound "the future of
//! `S::call` is `Send`" for a generic `S`, which stable Rust cannot state
//! yet (it is the unstable return-type notation). A concrete service whose
//! future is `Send` can still be shared with `Arc` and called from any
//! thread; only erasing its type loses that fact.
//!
//! # Middleware
//!
//! One module per middleware, each with its service, its layer and its
//! error; each module's docs say whether it **waits** or **sheds** when
//! over its bound.
//!
//! | module | does | over the bound | error |
//! |---|---|---|---|
//! | [`timeout`] | a deadline per call | fails the call | [`timeout::Elapsed`] |
//! | [`limit`] | concurrency limit, rate limit (token bucket) | waits (FIFO); the rate limit may reject | [`limit::RateLimited`] |
//! | [`load_shed`] | refuses calls while a permit pool is exhausted | sheds at once | [`load_shed::Overloaded`] |
//! | [`retry`] | retries with a [`Policy`](retry::Policy), [`backoff`] and a budget | stops retrying | the last attempt's; opt-in: [`retry::BudgetExhausted`] |
//! | [`circuit`] | failure accrual (a [`Classify`](circuit::Classify) says what counts), fail fast while open, half-open probes | sheds at once | [`circuit::CircuitOpen`] |
//! | [`catch_panic`] | a panic in the inner service becomes an error | – | [`catch_panic::Panicked`] |
//! | [`trace`] | a `tracing` span per call, with latency and outcome | – | – |
//! | [`metrics`] | counters, in-flight gauge, latency histogram via the `metrics` facade | – | – |
//!
//! [`ServiceBuilder`] has a method for each and
//! [a recommended order](ServiceBuilder#a-sensible-order).
//!
//! ## Errors: one type per stack
//!
//! A middleware that can fail on its own (a timeout, a refusal) does not
//! wrap the inner error in an enum of its own, and does not box it. It
//! returns **the inner service's error type**, and requires that type to
//! accept its leaf error through `From`: `Timeout<S>` needs
//! `S::Error: From<Elapsed>`, `LoadShed<S>` needs `S::Error: From<Overloaded>`,
//! and so on. Why:
//!
//! - **A stack keeps one error type.** With a wrapper enum per layer, five
//!   layers give `Error<Error<Error<Error<Error<E>>>>>`, and reordering two
//!   layers changes the type. Here every layer has the same error type,
//!   so layers reorder freely.
//! - **Still typed.** Give your error enum a variant per leaf error you
//!   expect (`impl From<Elapsed> for MyError`), and match on it. The leaf
//!   errors are small data-carrying structs (`Elapsed::after`,
//!   `RateLimited::retry_after`, ...).
//! - **Boxing is free for those who want it.** Every leaf error is a
//!   `std::error::Error + Send + Sync`, so [`BoxError`] accepts them all
//!   as it is: end the stack with `.map_err(BoxError::from)` just above
//!   the service and every layer works, and `err.is::<Elapsed>()` tells
//!   them apart.
//!
//! A service whose error is `Infallible` or a foreign type wraps it first
//! (`map_err` at the bottom of the stack, into your enum or `BoxError`).
//! `std::io::Error` needs no wrapping: every leaf error converts into it
//! (kind `TimedOut` for [`Elapsed`](timeout::Elapsed), `Other` for the
//! rest).
//!
//! ## Time: the [`clock`]
//!
//! The middleware that needs time (timeout, rate limit, retry backoff and
//! budget, circuit breaker) reads it and sleeps on it through a
//! [`Clock`](clock::Clock) type parameter that defaults to
//! [`SystemClock`](clock::SystemClock), which uses strata-rt's timers
//! (this crate depends on strata-rt, the layer below it). Tests swap in a
//! [`ManualClock`](clock::ManualClock) and move time by hand: exact, fast,
//! and without a runtime.
//!
//! [`map_request`]: ServiceExt::map_request
//! [`map_response`]: ServiceExt::map_response
//! [`map_err`]: ServiceExt::map_err
//! [`and_then`]: ServiceExt::and_then
#![forbid(unsafe_code)]

mod and_then;
mod boxed;
mod builder;
mod connection;
mod either;
mod error;
mod ext;
mod inner_panic;
mod layer;
mod map_err;
mod map_request;
mod map_response;
mod new_service;
mod service;
mod service_fn;
mod window;

pub mod backoff;
pub mod catch_panic;
pub mod circuit;
pub mod clock;
pub mod guide;
pub mod limit;
pub mod load_shed;
pub mod metrics;
pub mod retry;
pub mod timeout;
pub mod trace;

pub use and_then::{AndThen, AndThenLayer};
pub use boxed::{BoxCloneService, BoxCloneSyncService, BoxService};
pub use builder::ServiceBuilder;
pub use connection::ConnectionInfo;
pub use either::{Either, option_layer};
pub use error::BoxError;
pub use ext::ServiceExt;
pub use layer::{Identity, Layer, LayerFn, Stack, layer_fn};
pub use map_err::{MapErr, MapErrLayer};
pub use map_request::{MapRequest, MapRequestLayer};
pub use map_response::{MapResponse, MapResponseLayer};
pub use new_service::{NewService, NewServiceFn, new_service_fn};
pub use service::Service;
pub use service_fn::{ServiceFn, service_fn};
