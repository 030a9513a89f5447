//! The `Service` trait and its impls for pointers to services.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

/// An asynchronous function from a request to a response, as a value.
///
/// A `Service` is what an application plugs into strata: it says what it
/// accepts (`Req`), what it answers ([`Response`](Service::Response)), how it
/// can fail ([`Error`](Service::Error)), and holds the logic in
/// [`call`](Service::call). The same trait describes both ends of a
/// connection: a server hands each decoded request to a service, and a
/// client *is* a service that sends the request over the wire and resolves
/// with the peer's answer. Middleware (see [`Layer`](crate::Layer)) wraps a
/// service in another service, so logging, limits or request rewriting can
/// be written once and stacked in front of any of them.
///
/// An `impl` may use `async fn` for `call`; the trait spells the method as a
/// function returning `impl Future` so that it can state what the future is
/// allowed to do (see [the contract](#the-contract)).
///
/// # Server side
///
/// The line protocol from strata's first example: `hello` is answered with
/// `world`, anything else with `idk`. The server decodes a line, calls the
/// service and writes the answer back; the service itself knows nothing of
/// sockets.
///
/// ```
/// use std::convert::Infallible;
/// use strata_service::Service;
///
/// struct Hello;
///
/// impl Service<String> for Hello {
///     type Response = String;
///     type Error = Infallible;
///
///     async fn call(&self, line: String) -> Result<String, Infallible> {
///         Ok(if line == "hello" { "world" } else { "idk" }.to_owned())
///     }
/// }
///
/// # futures_executor::block_on(async {
/// assert_eq!(Hello.call("hello".to_owned()).await, Ok("world".to_owned()));
/// assert_eq!(Hello.call("bonjour".to_owned()).await, Ok("idk".to_owned()));
/// # });
/// ```
///
/// # Client side
///
/// Code that talks to a peer takes the client as "some service": it does
/// not care whether it is a pipelined TCP connection, a pool, or a test
/// double. Because `call` takes `&self`, several requests can be in flight
/// over one client at the same time.
///
/// ```
/// use futures_util::future::join;
/// use strata_service::{Service, service_fn};
///
/// /// Greets the peer in two languages at once.
/// async fn greet<C>(client: &C) -> Result<(String, String), C::Error>
/// where
///     C: Service<String, Response = String>,
/// {
///     let (en, fr) = join(
///         client.call("hello".to_owned()),
///         client.call("bonjour".to_owned()),
///     )
///     .await;
///     Ok((en?, fr?))
/// }
///
/// // In a test, a closure stands in for the connection.
/// let fake = service_fn(|line: String| async move {
///     Ok::<_, std::io::Error>(if line == "hello" { "world".into() } else { "idk".into() })
/// });
/// let answers = futures_executor::block_on(greet(&fake)).unwrap();
/// assert_eq!(answers, ("world".to_owned(), "idk".to_owned()));
/// ```
///
/// # The contract
///
/// **Shared and concurrent.** `call` takes `&self`, and a caller may start
/// any number of calls before the first one finishes: a pipelining server
/// keeps several requests of one connection in flight, and a client is
/// shared by every task that talks to the peer. A service must give each
/// call a correct answer however the calls interleave.
///
/// **Always callable; no readiness step.** There is no `poll_ready`: a
/// service is always ready to be called (hyper 1.x made the same choice,
/// after tower's experience that a separate readiness step is easy to skip
/// and hard to combine with cloning). Backpressure lives in two places
/// instead. Inside the service, a call that cannot be served yet waits *in
/// its future* (for a permit, a pooled connection, a slot in a queue), or
/// fails fast with an error if the service prefers to shed load. Around the
/// service, the protocol layer bounds how many requests of one connection
/// are in flight and stops reading from the socket when the bound is
/// reached, so a slow service slows its peers down rather than buffering
/// without end.
///
/// **The future may borrow the service.** The future returned by `call`
/// captures the lifetime of `&self`: it may read the service's fields
/// without cloning them, and the borrow checker makes sure the service
/// outlives every future it handed out. strata's server holds each service
/// in the async function that drives the connection, so the service always
/// outlives its calls. The price is that a call's future cannot be handed
/// to `spawn` on its own (that needs `'static`); to run a call as a separate
/// task, move an owning handle into the task and call from there, for
/// example `let svc = Rc::clone(&svc); spawn_local(async move { svc.call(req).await })`
/// ([`Rc`] and [`Arc`] of a service are services too).
///
/// **Futures need not be `Send`.** A connection lives on one worker thread
/// for its whole life (thread-per-core), and the futures of its calls are
/// polled on that thread. So a service may keep `Rc`, `Cell` and `RefCell`
/// state and hold them across `.await`s. Code that wants to move a call to
/// another thread can still do so with a concrete service whose future
/// happens to be `Send`: the compiler sees through `impl Future` for
/// concrete types.
///
/// **Dropping a future cancels the call.** When a connection closes or a
/// caller gives up, the future is dropped at whatever `.await` it was
/// parked on and is never polled again. Clean-up that must happen (give a
/// permit back, lower a counter) belongs in a `Drop` guard, not after an
/// `.await`; the middleware example below shows one.
///
/// **Errors are the service's own.** [`Error`](Service::Error) is whatever
/// type describes the failure best; nothing forces boxing. Stacks that
/// join services with different errors unify them with
/// [`ServiceExt::map_err`](crate::ServiceExt::map_err), or box them into
/// [`BoxError`](crate::BoxError) where that is the simplest choice.
///
/// # State that changes: interior mutability
///
/// Because `call` takes `&self`, a service that keeps mutable state wraps
/// it: [`Cell`](std::cell::Cell) or [`RefCell`](std::cell::RefCell) for
/// state that stays on one worker, [`Mutex`](std::sync::Mutex) or atomics
/// for state shared between workers. The one rule: **never hold a borrow or
/// a lock guard across an `.await`**. Another call of the same service can
/// run while this one is parked, and it would find the state borrowed.
///
/// The wrong way. This compiles, and panics with "already borrowed" as
/// soon as two calls overlap:
///
/// ```no_run
/// # use std::{cell::RefCell, collections::HashMap, convert::Infallible};
/// # use strata_service::Service;
/// # async fn store_to_disk(_: &str) {}
/// struct Cache {
///     entries: RefCell<HashMap<String, String>>,
/// }
///
/// impl Service<String> for Cache {
///     type Response = ();
///     type Error = Infallible;
///
///     async fn call(&self, key: String) -> Result<(), Infallible> {
///         let mut entries = self.entries.borrow_mut();
///         store_to_disk(&key).await; // the borrow is still alive here
///         entries.insert(key, "stored".to_owned());
///         Ok(())
///     }
/// }
/// ```
///
/// The right way: do the `.await` with no borrow alive, and take short
/// borrows before or after it.
///
/// ```
/// # use std::{cell::RefCell, collections::HashMap, convert::Infallible};
/// # use strata_service::Service;
/// # async fn store_to_disk(_: &str) {}
/// # struct Cache { entries: RefCell<HashMap<String, String>> }
/// impl Service<String> for Cache {
///     type Response = ();
///     type Error = Infallible;
///
///     async fn call(&self, key: String) -> Result<(), Infallible> {
///         store_to_disk(&key).await;
///         self.entries.borrow_mut().insert(key, "stored".to_owned());
///         Ok(())
///     }
/// }
/// # let cache = Cache { entries: RefCell::default() };
/// # futures_executor::block_on(cache.call("k".to_owned())).unwrap();
/// # assert_eq!(cache.entries.borrow()["k"], "stored");
/// ```
///
/// Clippy's `await_holding_refcell_ref` and `await_holding_lock` lints (on
/// by default) catch both forms of the mistake.
///
/// If a call truly needs the state for its whole duration, the state wants
/// an async-aware lock, or a design where one task owns it and calls send
/// it messages.
///
/// # A middleware, written inline
///
/// A middleware is a service that wraps another one, plus a
/// [`Layer`](crate::Layer) that does the wrapping so a
/// [`ServiceBuilder`](crate::ServiceBuilder) can stack it. This one keeps
/// a count of the requests in flight, which a server could export as a
/// gauge. Note the guard: the count goes down when the call's future is
/// dropped, whether it finished or was cancelled half-way. Writing
/// `in_flight -= 1` after the `.await` instead would leak one count for
/// every cancelled call.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use strata_service::{Layer, Service, ServiceBuilder, service_fn};
///
/// /// Counts the calls of the inner service that have not finished.
/// struct InFlight<S> {
///     inner: S,
///     count: Rc<Cell<usize>>,
/// }
///
/// /// Lowers the count when dropped, finished or not.
/// struct Guard(Rc<Cell<usize>>);
///
/// impl Drop for Guard {
///     fn drop(&mut self) {
///         self.0.set(self.0.get() - 1);
///     }
/// }
///
/// impl<S: Service<Req>, Req> Service<Req> for InFlight<S> {
///     type Response = S::Response;
///     type Error = S::Error;
///
///     async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
///         self.count.set(self.count.get() + 1);
///         let _guard = Guard(Rc::clone(&self.count));
///         self.inner.call(req).await
///     }
/// }
///
/// /// Wraps services in [`InFlight`], all sharing one counter.
/// struct InFlightLayer {
///     count: Rc<Cell<usize>>,
/// }
///
/// impl<S> Layer<S> for InFlightLayer {
///     type Service = InFlight<S>;
///
///     fn layer(&self, inner: S) -> InFlight<S> {
///         InFlight { inner, count: Rc::clone(&self.count) }
///     }
/// }
///
/// use futures_util::FutureExt;
///
/// let count = Rc::new(Cell::new(0));
/// let svc = ServiceBuilder::new()
///     .layer(InFlightLayer { count: Rc::clone(&count) })
///     .service(service_fn(|slow: bool| async move {
///         if slow {
///             std::future::pending::<()>().await; // a peer that never answers
///         }
///         Ok::<_, std::io::Error>("done")
///     }));
///
/// assert_eq!(svc.call(false).now_or_never().unwrap().unwrap(), "done");
/// assert_eq!(count.get(), 0);
///
/// let mut stuck = Box::pin(svc.call(true));
/// assert!(stuck.as_mut().now_or_never().is_none());
/// assert_eq!(count.get(), 1);
/// drop(stuck); // the caller gives up; the guard still runs
/// assert_eq!(count.get(), 0);
/// ```
///
/// The [`guide`](crate::guide) builds a middleware like this step by step.
pub trait Service<Req> {
    /// What a successful call resolves to.
    type Response;

    /// What a failed call resolves to.
    type Error;

    /// Handles one request; the returned future resolves with its outcome.
    ///
    /// The future may borrow `self`, need not be `Send`, and may be
    /// dropped before it completes, which cancels the call. Several calls
    /// may be in flight at once. See [the contract](#the-contract).
    fn call(&self, req: Req) -> impl Future<Output = Result<Self::Response, Self::Error>>;
}

impl<S, Req> Service<Req> for &S
where
    S: Service<Req> + ?Sized,
{
    type Response = S::Response;
    type Error = S::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<S::Response, S::Error>> {
        (**self).call(req)
    }
}

impl<S, Req> Service<Req> for Box<S>
where
    S: Service<Req> + ?Sized,
{
    type Response = S::Response;
    type Error = S::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<S::Response, S::Error>> {
        (**self).call(req)
    }
}

impl<S, Req> Service<Req> for Rc<S>
where
    S: Service<Req> + ?Sized,
{
    type Response = S::Response;
    type Error = S::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<S::Response, S::Error>> {
        (**self).call(req)
    }
}

impl<S, Req> Service<Req> for Arc<S>
where
    S: Service<Req> + ?Sized,
{
    type Response = S::Response;
    type Error = S::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<S::Response, S::Error>> {
        (**self).call(req)
    }
}
