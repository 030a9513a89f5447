//! Factories that make a service for each connection.

use std::fmt;

/// Makes a service for each connection (or each worker) a server handles.
///
/// A server does not share one service across all its connections: it asks
/// a factory for a fresh one, passing what it knows about the connection
/// as the `Target` (for strata's TCP server, a
/// [`ConnectionInfo`](crate::ConnectionInfo) with the peer and local
/// addresses). The service then lives as long as the connection and is
/// dropped with it, which gives per-connection state a natural home.
///
/// Two kinds of factory implement this trait:
///
/// - any closure `Fn() -> Result<S, E>`, which ignores the target: the
///   classic `serve(|| Ok(MyService))`;
/// - [`new_service_fn`], for a closure `Fn(&Target) -> Result<S, E>` that
///   wants to see the connection.
///
/// # Contract
///
/// - The server calls `new_service` once per accepted connection, before
///   reading from it, on the worker that will run the connection. Keep it
///   cheap: build the stack, clone `Rc`s or `Arc`s to shared state, and do
///   no blocking work.
/// - An `Err` refuses that connection only: the server closes it (and may
///   log the error) and keeps accepting others. It does not stop the
///   server.
/// - The factory itself is shared by everything that accepts; a server that
///   runs several worker threads needs it to be `Send + Sync`, while the
///   services it makes stay on their worker and need not be.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use std::io;
/// use strata_service::{ConnectionInfo, NewService, Service, new_service_fn, service_fn};
///
/// // The classic form: the connection is ignored.
/// let plain = || Ok::<_, io::Error>(service_fn(|line: String| async move {
///     Ok::<_, Infallible>(if line == "hello" { "world" } else { "idk" })
/// }));
///
/// // A factory that greets each peer by address, and refuses one network.
/// let by_peer = new_service_fn(|conn: &ConnectionInfo| {
///     if conn.peer.ip().is_unspecified() {
///         return Err(io::Error::other("who are you?"));
///     }
///     let peer = conn.peer;
///     Ok(service_fn(move |_line: String| async move {
///         Ok::<_, Infallible>(format!("hello, {peer}"))
///     }))
/// });
///
/// let conn = ConnectionInfo::new("192.0.2.7:51000".parse()?, "192.0.2.1:7000".parse()?);
/// futures_executor::block_on(async {
///     let svc = plain.new_service(&conn)?;
///     assert_eq!(svc.call("hello".into()).await, Ok("world"));
///
///     let svc = by_peer.new_service(&conn)?;
///     assert_eq!(svc.call("hi".into()).await.unwrap(), "hello, 192.0.2.7:51000");
///     Ok::<_, io::Error>(())
/// })?;
///
/// let stranger = ConnectionInfo::new("0.0.0.0:1".parse()?, "192.0.2.1:7000".parse()?);
/// assert!(by_peer.new_service(&stranger).is_err());
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
///
/// # Naming the error type
///
/// `|| Ok(MyService)` says nothing about its error type. Where the server's
/// signature fixes it (for example `N: NewService<ConnectionInfo, Error =
/// io::Error>`) the compiler infers it; elsewhere write it out, as in
/// `|| Ok::<_, io::Error>(MyService)`.
pub trait NewService<Target: ?Sized> {
    /// The service made for each target.
    type Service;

    /// Why a service could not be made.
    type Error;

    /// Makes the service for one connection, described by `target`.
    fn new_service(&self, target: &Target) -> Result<Self::Service, Self::Error>;
}

impl<F, S, E, Target> NewService<Target> for F
where
    F: Fn() -> Result<S, E>,
    Target: ?Sized,
{
    type Service = S;
    type Error = E;

    fn new_service(&self, _target: &Target) -> Result<S, E> {
        self()
    }
}

/// Returns a [`NewService`] that passes the target to `f`.
///
/// Use it when the service wants to know its connection; a closure that
/// takes no argument is a `NewService` already. See [`NewService`] for an
/// example.
pub fn new_service_fn<F>(f: F) -> NewServiceFn<F> {
    NewServiceFn { f }
}

/// A [`NewService`] backed by a closure that receives the target; made by
/// [`new_service_fn`].
#[derive(Clone, Copy)]
pub struct NewServiceFn<F> {
    f: F,
}

impl<F, S, E, Target> NewService<Target> for NewServiceFn<F>
where
    F: Fn(&Target) -> Result<S, E>,
    Target: ?Sized,
{
    type Service = S;
    type Error = E;

    fn new_service(&self, target: &Target) -> Result<S, E> {
        (self.f)(target)
    }
}

impl<F> fmt::Debug for NewServiceFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewServiceFn")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}
