use std::fmt;
use std::io;
use std::time::Duration;

/// A call was refused because the circuit is open; see
/// [`CircuitBreaker`](super::CircuitBreaker).
///
/// Nothing was sent to the inner service. It says how long until the
/// breaker lets a probe through (zero while a probe is already out).
///
/// It converts into an [`io::Error`] of kind
/// [`Other`](io::ErrorKind::Other) (as [`Elapsed`](crate::timeout::Elapsed)
/// does, of kind `TimedOut`), so a service failing with `io::Error` can
/// take this layer as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitOpen {
    retry_after: Duration,
}

impl CircuitOpen {
    pub(crate) const fn new(retry_after: Duration) -> Self {
        CircuitOpen { retry_after }
    }

    /// How long until the breaker half-opens.
    pub const fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.retry_after.is_zero() {
            // Half-open: the next call may go through once the probe is back.
            f.write_str("circuit half-open; a probe call is in flight")
        } else {
            write!(f, "circuit open; retry after {:?}", self.retry_after)
        }
    }
}

impl std::error::Error for CircuitOpen {}

impl From<CircuitOpen> for io::Error {
    fn from(e: CircuitOpen) -> io::Error {
        io::Error::other(e)
    }
}
