//! How a connection ends badly: [`ConnectionError`], and which transport
//! errors mean the peer went away rather than the server failing.

use std::fmt;
use std::io;
use std::time::Duration;

use strata_service::BoxError;

/// Why a connection ended other than by a clean close.
///
/// `Display` says what happened at this layer and
/// [`source()`](std::error::Error::source) gives the error behind it, so
/// a reporter that walks the chain prints each cause once (to log one, pass
/// it as `&dyn Error`: `tracing::warn!(error = &e as &dyn std::error::Error)`
/// logs its sources too). The codec's or the service's error is in that
/// chain, for a `downcast_ref`.
///
/// ```
/// use std::error::Error;
/// use strata_proto::pipeline::ConnectionError;
///
/// let e = ConnectionError::Service("no such key".into());
/// assert_eq!(e.to_string(), "service error");
/// assert_eq!(e.source().unwrap().to_string(), "no such key");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Reading or writing the socket failed (as reported by the codec).
    Io(BoxError),
    /// A request could not be decoded; the connection was closed (after the
    /// protocol's final error response, if it has one).
    Decode(BoxError),
    /// A response could not be encoded.
    Encode(BoxError),
    /// The service failed a request and the protocol chose to close.
    Service(BoxError),
    /// The service panicked on a request (in `call` or while its future
    /// ran), or the protocol's own code did (its codec, its hooks, a
    /// response's `Drop`). For a handler's panic, the responses before its
    /// request were sent; for the protocol's, those already encoded (any
    /// still in flight, even finished, were dropped). Then the connection
    /// closed. Holds the panic's message.
    Panicked(String),
    /// The connection sat idle past the idle timeout.
    IdleTimeout {
        /// The idle timeout that passed.
        timeout: Duration,
    },
    /// A request started arriving but was not complete within the read
    /// timeout (a slow or stalled peer).
    ReadTimeout {
        /// The read timeout that passed.
        timeout: Duration,
    },
    /// Responses waited to be written and the peer took none of their
    /// bytes within the write timeout (it stopped reading).
    WriteTimeout {
        /// The write timeout that passed.
        timeout: Duration,
    },
}

impl ConnectionError {
    /// Whether this is the peer going away (reset, broken pipe, out of
    /// reach: the kernel gave up on it), which a server should not treat
    /// as its own failure.
    pub fn is_disconnect(&self) -> bool {
        match self {
            ConnectionError::Io(e) => e.is::<PeerGone>() || find_io(&**e).is_some_and(peer_gone),
            _ => false,
        }
    }
}

/// A codec error that the transport's own failure showed to be the peer
/// going away (the codec's error type may hide the `io::Error` inside it).
/// Reads as the error it wraps, and forwards its `source()`;
/// `ConnectionError::source` skips it, to the codec's error.
#[derive(Debug)]
pub(super) struct PeerGone(pub(super) BoxError);

impl fmt::Display for PeerGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for PeerGone {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Whether an I/O error of this kind means the peer went away.
fn peer_gone(e: &io::Error) -> bool {
    reset(e) || e.kind() == io::ErrorKind::UnexpectedEof
}

/// Whether an I/O error means the connection was torn down: reset, or
/// given up by the kernel (keepalive probes or retransmissions unanswered,
/// an ICMP error: the peer is out of reach). A timeout counts only as the
/// kernel's own error (`ETIMEDOUT`): strata's timeout errors convert to
/// the same kind, and a transport that enforces a deadline of the
/// server's with them reports the server's decision, not a lost peer.
/// (Not `UnexpectedEof`: a decoder reports a truncated last frame with it,
/// which is bad input from a peer that may still read the error line.)
pub(super) fn reset(e: &io::Error) -> bool {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::NotConnected
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::NetworkDown => true,
        io::ErrorKind::TimedOut => kernel_timed_out(e),
        _ => false,
    }
}

/// Whether `e` is, or wraps, the kernel's `ETIMEDOUT`: a transport may
/// wrap the kernel's error in an `io::Error` of its own (whose `source()`
/// skips the error inside), or in an error type of its own that gives it
/// as its `source()`.
fn kernel_timed_out(e: &io::Error) -> bool {
    let mut io = Some(e);
    let mut cur: Option<&(dyn std::error::Error + 'static)> = None;
    // A bound, against a chain that loops.
    for _ in 0..16 {
        cur = match io {
            Some(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) => return true,
            Some(e) => e.get_ref().map(|inner| inner as _),
            None => cur.and_then(std::error::Error::source),
        };
        let Some(c) = cur else { return false };
        io = as_io(c);
    }
    false
}

/// `e` as an `io::Error`, also behind an `Arc` or a `Box` (whose
/// `source()` is the `io::Error`'s own, which skips it).
fn as_io<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    e.downcast_ref::<io::Error>()
        .or_else(|| e.downcast_ref::<std::sync::Arc<io::Error>>().map(|a| &**a))
        .or_else(|| e.downcast_ref::<Box<io::Error>>().map(|b| &**b))
}

/// The `io::Error` at the root of `err`, if there is one.
pub(super) fn find_io<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = as_io(e) {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Io(_) => f.write_str("transport failed"),
            ConnectionError::Decode(_) => f.write_str("bad request"),
            ConnectionError::Encode(_) => f.write_str("cannot encode response"),
            ConnectionError::Service(_) => f.write_str("service error"),
            ConnectionError::Panicked(msg) => write!(f, "panicked while serving: {msg}"),
            ConnectionError::IdleTimeout { timeout } => {
                write!(f, "idle timeout: no request for {timeout:?}")
            }
            ConnectionError::ReadTimeout { timeout } => write!(
                f,
                "request not completed within the read timeout of {timeout:?}"
            ),
            ConnectionError::WriteTimeout { timeout } => write!(
                f,
                "the peer took no response bytes within the write timeout of {timeout:?}"
            ),
        }
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Past the private marker, to the codec's error itself.
            ConnectionError::Io(e) if e.is::<PeerGone>() => {
                e.downcast_ref::<PeerGone>().map(|p| &*p.0 as _)
            }
            ConnectionError::Io(e)
            | ConnectionError::Decode(e)
            | ConnectionError::Encode(e)
            | ConnectionError::Service(e) => Some(&**e),
            _ => None,
        }
    }
}
