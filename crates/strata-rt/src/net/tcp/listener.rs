//! `TcpListener`: accepting connections.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use mio::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use super::TcpStream;
use crate::context;
use crate::net::ToSocketAddrs;
use crate::net::addr::each_addr;
use crate::reactor::{Direction, PollEvented, Ready};

/// A TCP socket listening for connections.
///
/// # Examples
///
/// ```
/// use strata_rt::net::{TcpListener, TcpStream};
///
/// strata_rt::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let client = strata_rt::spawn(async move { TcpStream::connect(addr).await });
///     let (_conn, peer) = listener.accept().await?;
///     assert_eq!(peer, client.await.unwrap()?.local_addr()?);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    io: PollEvented<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` with `SO_REUSEADDR` and a backlog of 1024; see
    /// [`TcpListener::builder`] for other options such as `SO_REUSEPORT`.
    ///
    /// If `addr` resolves to several addresses, each is tried in turn.
    ///
    /// # Errors
    ///
    /// The OS error of the last address tried (address in use, permission
    /// denied, ...).
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        context::require("TcpListener::bind");
        each_addr(addr, |a| TcpListenerBuilder::new(a).bind())
    }

    /// Options for a listener on `addr`: `SO_REUSEPORT`, backlog, ...
    pub fn builder(addr: SocketAddr) -> TcpListenerBuilder {
        TcpListenerBuilder::new(addr)
    }

    /// Wraps a std listener (switched to non-blocking mode).
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        context::require("TcpListener::from_std");
        listener.set_nonblocking(true)?;
        let io = PollEvented::new(
            mio::net::TcpListener::from_std(listener),
            Interest::READABLE,
            Ready::LISTENING,
            "TcpListener::from_std",
        )?;
        Ok(TcpListener { io })
    }

    /// Accepts a connection.
    ///
    /// The new stream joins the reactor of the worker that first reads or
    /// writes it (see [the module docs](crate::net)), and
    /// has `TCP_NODELAY` unset, as the OS left it.
    ///
    /// # Errors
    ///
    /// The OS error of `accept(2)`: for example `EMFILE` when the process is
    /// out of file descriptors. Such errors are transient for a server; back
    /// off and retry rather than stop.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it completes loses no
    /// connection (it stays in the kernel's queue).
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.io
            .wait(Direction::Read, |cx| self.poll_accept(cx))
            .await
    }

    /// Polls for a connection; see [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (stream, addr) =
            std::task::ready!(self.io.poll_io(cx, Direction::Read, |l| l.accept()))?;
        Poll::Ready(TcpStream::from_accepted(stream, self.io.io_handle()).map(|s| (s, addr)))
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets the IP time-to-live (`IP_TTL`) of accepted sockets. On an IPv6
    /// listener it does not set the hop limit (`IPV6_UNICAST_HOPS`), as
    /// with std's and tokio's `set_ttl`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }
}

impl_as_fd!(TcpListener);

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

/// Socket options for a [`TcpListener`], applied before `bind(2)`.
///
/// # Examples
///
/// ```
/// use strata_rt::net::TcpListener;
///
/// strata_rt::run(async {
///     let addr = "127.0.0.1:0".parse().unwrap();
///     let a = TcpListener::builder(addr).reuse_port(true).backlog(4096).bind()?;
///     // With SO_REUSEPORT, a second listener may share the port.
///     let b = TcpListener::builder(a.local_addr()?).reuse_port(true).bind()?;
///     assert_eq!(a.local_addr()?, b.local_addr()?);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct TcpListenerBuilder {
    addr: SocketAddr,
    reuse_address: bool,
    reuse_port: bool,
    reuse_port_after_listen: bool,
    backlog: i32,
    only_v6: Option<bool>,
}

impl TcpListenerBuilder {
    fn new(addr: SocketAddr) -> Self {
        TcpListenerBuilder {
            addr,
            reuse_address: true,
            reuse_port: false,
            reuse_port_after_listen: false,
            backlog: 1024,
            only_v6: None,
        }
    }

    /// `SO_REUSEADDR` (default on): rebind right after a restart even while
    /// old connections linger in `TIME_WAIT`.
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT` (default off, Unix only): several listeners, typically
    /// one per worker, bind the same port and the kernel spreads incoming
    /// connections over them.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// With [`reuse_port`](Self::reuse_port): set `SO_REUSEPORT` only once
    /// the socket listens, instead of before `bind(2)` (default off). The
    /// bind, or the `listen(2)`, then fails with `AddrInUse` if another
    /// socket holds the address, even one that shares its port, as it
    /// would without `SO_REUSEPORT`; listeners bound later with
    /// `reuse_port` still join this one. For the first listener of a
    /// group, so that two servers cannot silently split one port, also
    /// when they start at the same moment: on Linux, set between bind and
    /// listen, two such sockets bound together (which `SO_REUSEADDR`
    /// allows while neither listens) could both go on to listen and share
    /// the port.
    ///
    /// ```
    /// use strata_rt::net::TcpListener;
    ///
    /// strata_rt::run(async {
    ///     let addr = "127.0.0.1:0".parse().unwrap();
    ///     let first = TcpListener::builder(addr)
    ///         .reuse_port(true)
    ///         .reuse_port_after_listen(true)
    ///         .bind()?;
    ///     let addr = first.local_addr()?;
    ///     // Another group's first listener cannot take the port...
    ///     let rival = TcpListener::builder(addr)
    ///         .reuse_port(true)
    ///         .reuse_port_after_listen(true)
    ///         .bind();
    ///     assert_eq!(rival.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
    ///     // ...while this group's next listener joins it.
    ///     let second = TcpListener::builder(addr).reuse_port(true).bind()?;
    ///     assert_eq!(second.local_addr()?, addr);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn reuse_port_after_listen(mut self, on: bool) -> Self {
        self.reuse_port_after_listen = on;
        self
    }

    /// Length of the kernel's queue of not-yet-accepted connections
    /// (default 1024; the kernel caps it at `net.core.somaxconn`).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self
    }

    /// `IPV6_V6ONLY` for IPv6 addresses (default: the OS default).
    pub fn only_v6(mut self, on: bool) -> Self {
        self.only_v6 = Some(on);
        self
    }

    /// Creates the socket, applies the options, binds and listens.
    ///
    /// # Errors
    ///
    /// The OS error of whichever step failed.
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn bind(self) -> io::Result<TcpListener> {
        context::require("TcpListener::bind");
        let socket = Socket::new(
            Domain::for_address(self.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(self.reuse_address)?;
        #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
        if self.reuse_port && !self.reuse_port_after_listen {
            socket.set_reuse_port(true)?;
        }
        if let (Some(v6), SocketAddr::V6(_)) = (self.only_v6, self.addr) {
            socket.set_only_v6(v6)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&self.addr.into())?;
        socket.listen(self.backlog)?;
        // Listening, the socket holds the port alone; from here, listeners
        // bound with `SO_REUSEPORT` join it (the kernel makes the group
        // when the second one listens).
        #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
        if self.reuse_port && self.reuse_port_after_listen {
            socket.set_reuse_port(true)?;
        }
        let io = PollEvented::new(
            mio::net::TcpListener::from_std(socket.into()),
            Interest::READABLE,
            Ready::LISTENING,
            "TcpListener::bind",
        )?;
        Ok(TcpListener { io })
    }
}
