//! Socket addresses: the [`ToSocketAddrs`] trait the sockets take, and
//! resolving it without blocking a worker.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::vec;

use crate::context;

/// An address a socket can bind, connect or send to: the types std's
/// [`ToSocketAddrs`](std::net::ToSocketAddrs) takes, minus its iterators.
///
/// * A [`SocketAddr`] (or `SocketAddrV4`, `SocketAddrV6`), an IP address
///   with a port (`(IpAddr, u16)`, `(Ipv4Addr, u16)`, `(Ipv6Addr, u16)`),
///   or several socket addresses (`&[SocketAddr]`, `[SocketAddr; N]`),
///   taken in their order.
/// * A string, `"host:port"` (`&str` or `String`), or a host and a port
///   (`(&str, u16)`, `(String, u16)`). A string that is an address
///   (`"127.0.0.1:80"`, `"[::1]:80"`) is parsed; any other host is
///   looked up with the system resolver, and its addresses are taken in
///   the order it gives them (often `::1` before `127.0.0.1` for
///   `localhost`).
///
/// What an operation does with several addresses:
///
/// * [`TcpListener::bind`], [`UdpSocket::bind`], [`TcpStream::connect`]
///   and [`UdpSocket::connect`] try each address in turn, move on after
///   any error, and stop at the first that succeeds; if none does, they
///   give the last address's error.
/// * [`UdpSocket::send_to`] sends its datagram once, to the first address
///   of a family the socket can send to (a v4 socket: v4 addresses; a v6
///   one: v6 addresses, and v4 ones too unless it is v6-only; see there),
///   and that send's outcome is the call's. With no such address, the
///   error is `InvalidInput` and names the target and the socket's
///   family.
///
/// An empty list (or a lookup that answers no address) gives
/// `InvalidInput`; a failed lookup gives the resolver's error.
///
/// The system resolver blocks its thread, for seconds if a name server is
/// slow. So the operations that wait anyway, [`TcpStream::connect`] and
/// [`UdpSocket::send_to`], look a name up on the blocking pool when they
/// run on a worker (the worker's other tasks run on meanwhile); anywhere
/// else, and in the operations that do not wait ([`TcpListener::bind`],
/// [`UdpSocket::bind`], [`UdpSocket::connect`]), on the calling thread.
/// A socket address or a string that is one is never looked up.
///
/// The trait is sealed: it is implemented for the types above only.
///
/// [`TcpStream::connect`]: crate::net::TcpStream::connect
/// [`UdpSocket::send_to`]: crate::net::UdpSocket::send_to
/// [`TcpListener::bind`]: crate::net::TcpListener::bind
/// [`UdpSocket::bind`]: crate::net::UdpSocket::bind
/// [`UdpSocket::connect`]: crate::net::UdpSocket::connect
///
/// # Examples
///
/// ```
/// use strata_rt::net::{TcpListener, TcpStream};
///
/// strata_rt::run(async {
///     let listener = TcpListener::bind(("127.0.0.1", 0))?;
///     let port = listener.local_addr()?.port();
///     // A name: looked up on the blocking pool, then each address tried.
///     let stream = TcpStream::connect(format!("localhost:{port}")).await?;
///     assert_eq!(stream.peer_addr()?, listener.local_addr()?);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub trait ToSocketAddrs: sealed::Sealed {}

mod sealed {
    /// The hidden half of [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait Sealed {
        /// The addresses, or the name to look up for them.
        fn to_addrs(&self) -> super::Addrs;
    }
}

/// What a [`ToSocketAddrs`] gives before any lookup.
#[derive(Debug)]
pub enum Addrs {
    /// One address, parsed or given.
    One(SocketAddr),
    /// Several addresses, to try in turn.
    List(Vec<SocketAddr>),
    /// A `"host:port"` string whose host is a name.
    Lookup(String),
    /// A host name and a port.
    LookupPair(String, u16),
}

impl Addrs {
    /// Resolves on the calling thread (a lookup blocks it).
    fn blocking(self) -> io::Result<AddrIter> {
        use std::net::ToSocketAddrs as _;
        match self {
            Addrs::One(a) => Ok(AddrIter::One(Some(a))),
            Addrs::List(v) => Ok(AddrIter::Many(v.into_iter())),
            Addrs::Lookup(s) => Ok(AddrIter::Many(s.to_socket_addrs()?)),
            Addrs::LookupPair(host, port) => {
                Ok(AddrIter::Many((host.as_str(), port).to_socket_addrs()?))
            }
        }
    }

    /// Resolves without blocking a worker: on a worker thread a lookup
    /// runs on the blocking pool; elsewhere as [`blocking`](Self::blocking).
    async fn resolve(self, api: &'static str) -> io::Result<AddrIter> {
        let lookup = matches!(self, Addrs::Lookup(_) | Addrs::LookupPair(..));
        if !lookup || context::try_worker().is_none() {
            return self.blocking();
        }
        match context::handle(api)
            .spawn_blocking(move || self.blocking())
            .await
        {
            Ok(resolved) => resolved,
            Err(e) => Err(io::Error::other(format!(
                "{api}: the name lookup on the blocking pool did not finish: {e}"
            ))),
        }
    }
}

/// The addresses a [`ToSocketAddrs`] resolved to.
pub(crate) enum AddrIter {
    One(Option<SocketAddr>),
    Many(vec::IntoIter<SocketAddr>),
}

impl Iterator for AddrIter {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        match self {
            AddrIter::One(a) => a.take(),
            AddrIter::Many(it) => it.next(),
        }
    }
}

/// The error for an address that resolved to nothing.
pub(crate) fn no_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any address",
    )
}

/// Calls `f` with each address `addr` resolves to until one succeeds;
/// returns the last error otherwise. A name is looked up on the calling
/// thread.
pub(crate) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_addrs().blocking()? {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_address))
}

/// The addresses `addr` resolves to, a name looked up without blocking a
/// worker (see [`ToSocketAddrs`]); `api` names the caller in errors.
pub(crate) async fn resolve(addr: &impl ToSocketAddrs, api: &'static str) -> io::Result<AddrIter> {
    addr.to_addrs().resolve(api).await
}

/// `addr` as given, for error messages: the address, the list, or the
/// name with its port followed by `resolved`, the addresses it gave.
pub(crate) fn describe(addr: &impl ToSocketAddrs, resolved: &[SocketAddr]) -> String {
    match addr.to_addrs() {
        Addrs::One(a) => a.to_string(),
        Addrs::List(v) => format!("{v:?}"),
        Addrs::Lookup(s) => format!("{s} (resolved to {resolved:?})"),
        Addrs::LookupPair(host, port) => format!("{host}:{port} (resolved to {resolved:?})"),
    }
}

/// Parses `host` as an IP address, or keeps it as a name to look up.
fn host_port(host: &str, port: u16) -> Addrs {
    match host.parse::<IpAddr>() {
        Ok(ip) => Addrs::One(SocketAddr::new(ip, port)),
        Err(_) => Addrs::LookupPair(host.to_owned(), port),
    }
}

macro_rules! one_addr {
    ($($ty:ty),*) => {$(
        impl ToSocketAddrs for $ty {}
        impl sealed::Sealed for $ty {
            fn to_addrs(&self) -> Addrs {
                Addrs::One(SocketAddr::from(*self))
            }
        }
    )*};
}

one_addr!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToSocketAddrs for [SocketAddr] {}
impl sealed::Sealed for [SocketAddr] {
    fn to_addrs(&self) -> Addrs {
        Addrs::List(self.to_vec())
    }
}

impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {}
impl<const N: usize> sealed::Sealed for [SocketAddr; N] {
    fn to_addrs(&self) -> Addrs {
        Addrs::List(self.to_vec())
    }
}

impl ToSocketAddrs for str {}
impl sealed::Sealed for str {
    fn to_addrs(&self) -> Addrs {
        match self.parse() {
            Ok(a) => Addrs::One(a),
            Err(_) => Addrs::Lookup(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {}
impl sealed::Sealed for String {
    fn to_addrs(&self) -> Addrs {
        self.as_str().to_addrs()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl sealed::Sealed for (&str, u16) {
    fn to_addrs(&self) -> Addrs {
        host_port(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {}
impl sealed::Sealed for (String, u16) {
    fn to_addrs(&self) -> Addrs {
        host_port(&self.0, self.1)
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {
    fn to_addrs(&self) -> Addrs {
        (**self).to_addrs()
    }
}

#[cfg(test)]
mod tests {
    use super::sealed::Sealed as _;
    use super::*;

    fn parsed(addr: impl ToSocketAddrs) -> Option<SocketAddr> {
        match addr.to_addrs() {
            Addrs::One(a) => Some(a),
            _ => None,
        }
    }

    #[test]
    fn addresses_and_strings_that_are_addresses_need_no_lookup() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(parsed(v4), Some(v4));
        assert_eq!(parsed("127.0.0.1:80"), Some(v4));
        assert_eq!(parsed(String::from("[::1]:80")), Some(v6));
        assert_eq!(parsed(("::1", 80)), Some(v6));
        assert_eq!(parsed((String::from("127.0.0.1"), 80)), Some(v4));
        assert_eq!(parsed((Ipv4Addr::LOCALHOST, 80)), Some(v4));
        let by_ref: &&SocketAddr = &&v6;
        assert_eq!(parsed(by_ref), Some(v6));
    }

    #[test]
    fn names_are_kept_for_a_lookup() {
        assert!(matches!(
            "localhost:80".to_addrs(),
            Addrs::Lookup(s) if s == "localhost:80"
        ));
        assert!(matches!(
            ("localhost", 80).to_addrs(),
            Addrs::LookupPair(h, 80) if h == "localhost"
        ));
    }

    #[test]
    fn lists_are_tried_in_order() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let tried: Vec<_> = [a, b].to_addrs().blocking().unwrap().collect();
        assert_eq!(tried, [a, b]);
        let err = each_addr(&[][..] as &[SocketAddr], Ok).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn targets_are_described_as_given() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "[::1]:2".parse().unwrap();
        assert_eq!(describe(&a, &[a]), "127.0.0.1:1");
        assert_eq!(describe(&[b, a], &[b, a]), "[[::1]:2, 127.0.0.1:1]");
        assert_eq!(
            describe(&"localhost:80", &[b]),
            "localhost:80 (resolved to [[::1]:2])"
        );
        assert_eq!(
            describe(&("localhost", 80), &[b, a]),
            "localhost:80 (resolved to [[::1]:2, 127.0.0.1:1])"
        );
    }

    #[test]
    fn a_string_without_a_port_is_an_invalid_input() {
        let err = "localhost".to_addrs().blocking().err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
