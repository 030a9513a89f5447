//! What a service may learn about the connection it serves.

use std::net::SocketAddr;

/// The addresses of one accepted connection.
///
/// A server passes this to its [`NewService`](crate::NewService) factory
/// once per connection, so a service can know who it is talking to: to
/// log the peer, to allow or refuse it, or to pick a configuration per
/// listening address.
///
/// Marked `#[non_exhaustive]` so that more facts about a connection can be
/// added later without breaking code; build it with
/// [`ConnectionInfo::new`].
///
/// # Example
///
/// ```
/// use strata_service::ConnectionInfo;
///
/// let info = ConnectionInfo::new(
///     "192.0.2.7:51000".parse().unwrap(),
///     "192.0.2.1:7000".parse().unwrap(),
/// );
/// assert_eq!(info.peer.port(), 51000);
/// assert_eq!(info.local.port(), 7000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The remote end: the address the connection came from. On a
    /// dual-stack listener (`[::]`) an IPv4 client shows as an IPv4-mapped
    /// IPv6 address (`[::ffff:127.0.0.1]`), for which `is_loopback()` and
    /// the like say `false`: judge `peer.ip().to_canonical()`.
    pub peer: SocketAddr,
    /// The local end: the address the connection was accepted on.
    pub local: SocketAddr,
}

impl ConnectionInfo {
    /// Describes a connection from `peer`, accepted on `local`.
    pub const fn new(peer: SocketAddr, local: SocketAddr) -> Self {
        ConnectionInfo { peer, local }
    }
}
