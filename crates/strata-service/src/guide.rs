//! Writing your own middleware, one step at a time.
//!
//! This module has no code; it is a tutorial. We build `Journal`, a
//! middleware that writes a line for each request it sees and for each
//! outcome, into a log that a test (or an admin endpoint) can read. It is
//! small, but on the way it meets every question a real middleware
//! meets: where the inner service lives, how the future borrows it, what
//! happens when a call is cancelled, where shared state goes, and how the
//! layer stacks with others.
//!
//! # Step 1: the service to wrap
//!
//! Middleware wraps *some* service, so we start with one: the line
//! protocol's `hello` → `world`, which refuses empty lines.
//!
//! ```
//! use strata_service::{Service, service_fn};
//!
//! let hello = service_fn(|line: String| async move {
//!     match line.as_str() {
//!         "" => Err("empty line"),
//!         "hello" => Ok("world"),
//!         _ => Ok("idk"),
//!     }
//! });
//! # assert_eq!(futures_executor::block_on(hello.call("hello".into())), Ok("world"));
//! ```
//!
//! # Step 2: a struct that holds the inner service
//!
//! A middleware is a service that owns another one. It is generic over the
//! inner service `S` *and* over the request type, so it wraps any service
//! for any protocol. At first it only forwards:
//!
//! ```
//! use strata_service::Service;
//!
//! #[derive(Debug)]
//! pub struct Journal<S> {
//!     inner: S,
//! }
//!
//! impl<S, Req> Service<Req> for Journal<S>
//! where
//!     S: Service<Req>,
//! {
//!     type Response = S::Response;
//!     type Error = S::Error;
//!
//!     async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
//!         self.inner.call(req).await
//!     }
//! }
//! ```
//!
//! Two things to notice. The response and error types are the inner
//! service's: a middleware that does not change them passes them through,
//! so it can be stacked anywhere. And `call` is an `async fn` whose future
//! borrows `self`; it may read `self.inner` without cloning it, because
//! [`Service`](crate::Service) lets a call's future borrow the service.
//!
//! # Step 3: work before and after the call
//!
//! Now the journal itself. Each wrapped service writes into a shared log,
//! an `Rc<RefCell<Vec<String>>>`: `Rc` because all the services one layer
//! makes share one log, `RefCell` because `call` only has `&self`. The
//! request must be `Debug` to be written down; the bound goes on the
//! `Service` impl, not on the struct, so the struct can be built (and
//! stacked) before anyone knows the request type.
//!
//! ```
//! use std::cell::RefCell;
//! use std::fmt::Debug;
//! use std::rc::Rc;
//! use strata_service::Service;
//!
//! #[derive(Debug)]
//! pub struct Journal<S> {
//!     inner: S,
//!     log: Rc<RefCell<Vec<String>>>,
//! }
//!
//! impl<S, Req> Service<Req> for Journal<S>
//! where
//!     S: Service<Req>,
//!     Req: Debug,
//!     S::Error: Debug,
//! {
//!     type Response = S::Response;
//!     type Error = S::Error;
//!
//!     async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
//!         self.log.borrow_mut().push(format!("-> {req:?}"));
//!         let result = self.inner.call(req).await;
//!         let line = match &result {
//!             Ok(_) => "<- ok".to_owned(),
//!             Err(e) => format!("<- error: {e:?}"),
//!         };
//!         self.log.borrow_mut().push(line);
//!         result
//!     }
//! }
//! ```
//!
//! Each `borrow_mut()` ends on its own line, before the `.await`. Had we
//! kept one borrow for the whole call, a second call running while the
//! first waits would find the log borrowed and panic. The
//! [`Service`](crate::Service) docs show this mistake side by side with the
//! fix.
//!
//! # Step 4: a call that never finishes
//!
//! A call's future can be dropped at any `.await`: the peer hung up, or a
//! caller stopped waiting. Our journal would then hold a `->` line with no
//! `<-` line, which is confusing when reading it later. Code after an
//! `.await` may never run, so the closing line belongs in a `Drop` guard,
//! which runs however the future ends:
//!
//! ```
//! # use std::cell::RefCell;
//! # use std::fmt::Debug;
//! # use std::rc::Rc;
//! # use strata_service::Service;
//! # pub struct Journal<S> { inner: S, log: Rc<RefCell<Vec<String>>> }
//! /// Writes "<- cancelled" unless told how the call ended.
//! struct Closing<'a> {
//!     log: &'a RefCell<Vec<String>>,
//!     line: Option<String>,
//! }
//!
//! impl Drop for Closing<'_> {
//!     fn drop(&mut self) {
//!         let line = self.line.take().unwrap_or_else(|| "<- cancelled".to_owned());
//!         self.log.borrow_mut().push(line);
//!     }
//! }
//!
//! impl<S, Req> Service<Req> for Journal<S>
//! where
//!     S: Service<Req>,
//!     Req: Debug,
//!     S::Error: Debug,
//! {
//!     type Response = S::Response;
//!     type Error = S::Error;
//!
//!     async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
//!         self.log.borrow_mut().push(format!("-> {req:?}"));
//!         let mut closing = Closing { log: &self.log, line: None };
//!         let result = self.inner.call(req).await;
//!         closing.line = Some(match &result {
//!             Ok(_) => "<- ok".to_owned(),
//!             Err(e) => format!("<- error: {e:?}"),
//!         });
//!         result
//!     }
//! }
//! ```
//!
//! The guard borrows `self.log` for the whole call, which is fine: the
//! future borrows the service anyway, and the guard only touches the
//! `RefCell` inside `drop`, never across an `.await`.
//!
//! # Step 5: the layer
//!
//! To be stacked by a [`ServiceBuilder`](crate::ServiceBuilder), a
//! middleware needs a [`Layer`](crate::Layer): a value that holds the
//! configuration (here, the shared log) and wraps any inner service.
//! `layer` takes `&self` and is called for every connection, so it only
//! clones an `Rc`. Following the crate's habit, the service also gets
//! `new`, `get_ref`, `get_mut` and `into_inner`.
//!
//! ```
//! # use std::cell::RefCell;
//! # use std::rc::Rc;
//! use strata_service::Layer;
//! # pub struct Journal<S> { inner: S, log: Rc<RefCell<Vec<String>>> }
//!
//! impl<S> Journal<S> {
//!     pub fn new(inner: S, log: Rc<RefCell<Vec<String>>>) -> Self {
//!         Journal { inner, log }
//!     }
//!     pub fn get_ref(&self) -> &S { &self.inner }
//!     pub fn get_mut(&mut self) -> &mut S { &mut self.inner }
//!     pub fn into_inner(self) -> S { self.inner }
//! }
//!
//! #[derive(Clone, Debug, Default)]
//! pub struct JournalLayer {
//!     log: Rc<RefCell<Vec<String>>>,
//! }
//!
//! impl JournalLayer {
//!     /// The lines written so far, oldest first.
//!     pub fn lines(&self) -> Vec<String> {
//!         self.log.borrow().clone()
//!     }
//! }
//!
//! impl<S> Layer<S> for JournalLayer {
//!     type Service = Journal<S>;
//!
//!     fn layer(&self, inner: S) -> Journal<S> {
//!         Journal::new(inner, Rc::clone(&self.log))
//!     }
//! }
//! ```
//!
//! # Step 6: stack it, and check it
//!
//! The first layer given to a builder sees requests first. Putting the
//! journal above a `map_request` that trims lines means the journal
//! records what the peer sent, untrimmed; putting it below would record
//! what the service received. Everything from steps 1 to 5, put together
//! and exercised:
//!
//! ```
//! # use std::cell::RefCell;
//! # use std::fmt::Debug;
//! # use std::rc::Rc;
//! # use strata_service::{Layer, Service};
//! # pub struct Journal<S> { inner: S, log: Rc<RefCell<Vec<String>>> }
//! # struct Closing<'a> { log: &'a RefCell<Vec<String>>, line: Option<String> }
//! # impl Drop for Closing<'_> {
//! #     fn drop(&mut self) {
//! #         let line = self.line.take().unwrap_or_else(|| "<- cancelled".to_owned());
//! #         self.log.borrow_mut().push(line);
//! #     }
//! # }
//! # impl<S, Req> Service<Req> for Journal<S>
//! # where S: Service<Req>, Req: Debug, S::Error: Debug {
//! #     type Response = S::Response;
//! #     type Error = S::Error;
//! #     async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
//! #         self.log.borrow_mut().push(format!("-> {req:?}"));
//! #         let mut closing = Closing { log: &self.log, line: None };
//! #         let result = self.inner.call(req).await;
//! #         closing.line = Some(match &result {
//! #             Ok(_) => "<- ok".to_owned(),
//! #             Err(e) => format!("<- error: {e:?}"),
//! #         });
//! #         result
//! #     }
//! # }
//! # #[derive(Clone, Default)]
//! # pub struct JournalLayer { log: Rc<RefCell<Vec<String>>> }
//! # impl JournalLayer { pub fn lines(&self) -> Vec<String> { self.log.borrow().clone() } }
//! # impl<S> Layer<S> for JournalLayer {
//! #     type Service = Journal<S>;
//! #     fn layer(&self, inner: S) -> Journal<S> { Journal { inner, log: Rc::clone(&self.log) } }
//! # }
//! use futures_util::FutureExt;
//! use strata_service::ServiceBuilder;
//!
//! let journal = JournalLayer::default();
//! let svc = ServiceBuilder::new()
//!     .layer(journal.clone())
//!     .map_request(|line: String| line.trim().to_owned())
//!     .service_fn(|line: String| async move {
//!         match line.as_str() {
//!             "" => Err("empty line"),
//!             "hello" => Ok("world"),
//!             "wait" => std::future::pending().await, // never answers
//!             _ => Ok("idk"),
//!         }
//!     });
//!
//! assert_eq!(svc.call("hello\r".to_owned()).now_or_never(), Some(Ok("world")));
//! assert_eq!(svc.call(" ".to_owned()).now_or_never(), Some(Err("empty line")));
//! let mut waiting = Box::pin(svc.call("wait".to_owned()));
//! assert!(waiting.as_mut().now_or_never().is_none());
//! drop(waiting); // the peer went away
//!
//! assert_eq!(journal.lines(), [
//!     r#"-> "hello\r""#, "<- ok",
//!     r#"-> " ""#, r#"<- error: "empty line""#,
//!     r#"-> "wait""#, "<- cancelled",
//! ]);
//! ```
//!
//! # A checklist for your own
//!
//! - Generic over the inner service and the request; bounds on the
//!   `Service` impl, not on the struct or the layer.
//! - Pass the inner `Response` and `Error` through unless changing them is
//!   the point; when the middleware adds its own failure (a refusal, a
//!   limit), give that failure a small error type of its own and require
//!   `S::Error: From<YourError>`, as the middleware in this crate do (see
//!   [the error scheme](crate#errors-one-type-per-stack)): the stack keeps
//!   one error type, and callers still match on each failure.
//! - If it needs time, take a [`Clock`](crate::clock::Clock) type
//!   parameter defaulting to [`SystemClock`](crate::clock::SystemClock),
//!   so tests can drive it with a [`ManualClock`](crate::clock::ManualClock).
//! - No `RefCell` borrow or lock guard alive across an `.await`.
//! - Clean-up in `Drop` guards: a call can stop at any `.await`.
//! - Backpressure waits in the call's future or fails fast with an error;
//!   there is no readiness step to hide it in.
//! - `Layer::layer` stays cheap; shared state lives behind an `Rc` (one
//!   worker) or an `Arc` (all workers) in the layer.
//! - `new`, `get_ref`, `get_mut`, `into_inner` on the service; `Debug` on
//!   both types.
//!
//! # Further reading: the middleware in this crate
//!
//! Each of the crate's own middleware follows this checklist and is short
//! enough to read as a worked example:
//!
//! - [`metrics`](crate::metrics): `Journal` with real counters, and the
//!   same cancel-safe guard for its in-flight gauge;
//! - [`limit::ConcurrencyLimit`](crate::limit::ConcurrencyLimit): shared
//!   state behind an `Arc`, and waiting inside the call's future;
//! - [`load_shed`](crate::load_shed): failing fast with an error of its
//!   own instead of waiting;
//! - [`timeout`](crate::timeout): a hand-written future, for when an
//!   `async` block would hold more than it needs;
//! - [`retry`](crate::retry): the policy supplied by the caller, the
//!   mechanism kept generic.
