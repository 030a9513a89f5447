use std::fmt;
use std::io;
use std::time::Duration;

/// A call was refused by a [`RateLimit`](super::RateLimit) that rejects
/// instead of waiting.
///
/// It says how long until a token is free, which a protocol can pass on
/// (an HTTP `Retry-After`, say).
///
/// It converts into an [`io::Error`] of kind
/// [`Other`](io::ErrorKind::Other) (as [`Elapsed`](crate::timeout::Elapsed)
/// does, of kind `TimedOut`), so a service failing with `io::Error` can
/// take this layer as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    retry_after: Duration,
}

impl RateLimited {
    pub(crate) const fn new(retry_after: Duration) -> Self {
        RateLimited { retry_after }
    }

    /// How long until the bucket has a token for this caller.
    pub const fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited; retry after {:?}", self.retry_after)
    }
}

impl std::error::Error for RateLimited {}

impl From<RateLimited> for io::Error {
    fn from(e: RateLimited) -> io::Error {
        io::Error::other(e)
    }
}
