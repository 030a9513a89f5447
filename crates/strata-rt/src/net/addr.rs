//! Resolving `ToSocketAddrs` and trying each address in turn.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Calls `f` with each address `addr` resolves to until one succeeds;
/// returns the last error otherwise.
///
/// Resolution uses the blocking system resolver; pass literal addresses
/// (the usual case for servers) to avoid it.
pub(crate) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}
