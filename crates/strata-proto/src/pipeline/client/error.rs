//! [`ClientError`]: why a call on a pipelined client failed, and whether
//! its request left the client.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use strata_service::timeout::Elapsed;

/// What kind of failure a [`ClientError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientErrorKind {
    /// The connection ended before the call was answered: the server
    /// closed it, or the client's connection task stopped (its runtime
    /// shut down). Calls made after that fail with this kind at once.
    Closed,
    /// Reading from or writing to the connection failed (a reset, say).
    /// The connection is closed.
    Io,
    /// A response could not be decoded, or arrived when no request was
    /// waiting for one. The connection is closed: with no request ids,
    /// nothing after a bad response can be matched to its request.
    Decode,
    /// This call's request could not be encoded. Nothing of it was sent
    /// and the connection carries on.
    Encode,
    /// A [`ClientPool`](crate::ClientPool) could not connect (the source
    /// is the OS's error), or is waiting before it tries again after such
    /// a failure. Nothing was sent.
    Connect,
    /// A [`Timeout`](strata_service::timeout::Timeout) around the client
    /// gave up on the call (made from its
    /// [`Elapsed`](strata_service::timeout::Elapsed), the source). The
    /// connection carries on; the answer, if it comes, is dropped.
    TimedOut,
}

/// Why a call on a pipelined [`Client`](super::Client) failed.
///
/// A failure of the connection reaches every call waiting on it, so the
/// error is cheap to clone: its cause is shared. `Display` says what
/// happened; [`source()`](Error::source) gives the cause, if there is one
/// (the I/O error, the codec's error).
///
/// [`request_sent`](Self::request_sent) says whether the server may have
/// seen the request, which decides whether a request that is not
/// idempotent may be retried.
///
/// ```
/// use strata_proto::pipeline::{ClientError, ClientErrorKind};
///
/// let e = ClientError::closed();
/// assert_eq!(e.kind(), ClientErrorKind::Closed);
/// assert!(!e.request_sent());
/// assert_eq!(e.to_string(), "connection closed; the request was not sent");
/// ```
#[derive(Clone)]
pub struct ClientError {
    kind: ClientErrorKind,
    sent: bool,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl ClientError {
    pub(crate) fn new(kind: ClientErrorKind, source: Option<Arc<dyn Error + Send + Sync>>) -> Self {
        ClientError {
            kind,
            sent: false,
            source,
        }
    }

    /// A connection that is closed, with no cause to report: what a call
    /// on a client whose connection ended cleanly gets.
    pub fn closed() -> Self {
        Self::new(ClientErrorKind::Closed, None)
    }

    /// The same failure, for a request that was (`true`) or was not
    /// written to the connection.
    pub(crate) fn with_sent(&self, sent: bool) -> Self {
        ClientError {
            sent,
            ..self.clone()
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ClientErrorKind {
        self.kind
    }

    /// Whether the request was handed to the connection before the call
    /// failed. `false` means the server cannot have seen it, so retrying
    /// it elsewhere is safe even when it is not idempotent; `true` means
    /// the server may or may not have acted on it.
    pub fn request_sent(&self) -> bool {
        self.sent
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ClientErrorKind::Closed => "connection closed",
            ClientErrorKind::Io => "connection failed",
            ClientErrorKind::Decode => "bad response; connection closed",
            ClientErrorKind::Encode => "request could not be encoded",
            ClientErrorKind::TimedOut => "call timed out",
            ClientErrorKind::Connect => "could not connect",
        };
        f.write_str(what)?;
        match (self.kind, self.sent) {
            (ClientErrorKind::Encode | ClientErrorKind::TimedOut, _) => Ok(()),
            (_, true) => f.write_str(" before the response arrived"),
            (_, false) => f.write_str("; the request was not sent"),
        }
    }
}

impl fmt::Debug for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientError")
            .field("kind", &self.kind)
            .field("request_sent", &self.sent)
            .field("source", &self.source)
            .finish()
    }
}

impl Error for ClientError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// What a [`Timeout`](strata_service::timeout::Timeout) around a client
/// fails a call with: kind [`TimedOut`](ClientErrorKind::TimedOut), and
/// the request counted as sent (it may have been).
impl From<Elapsed> for ClientError {
    fn from(e: Elapsed) -> Self {
        ClientError {
            kind: ClientErrorKind::TimedOut,
            sent: true,
            source: Some(Arc::new(e)),
        }
    }
}

/// A response that arrived with no request waiting for it.
#[derive(Debug)]
pub(crate) struct Unsolicited;

impl fmt::Display for Unsolicited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a response arrived with no request waiting for it")
    }
}

impl Error for Unsolicited {}

/// The reason a connection task that was dropped gives its calls.
#[derive(Debug)]
pub(crate) struct TaskDropped;

impl fmt::Display for TaskDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the client's connection task was dropped (its runtime shut down?)")
    }
}

impl Error for TaskDropped {}
