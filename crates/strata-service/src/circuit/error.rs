use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// A call was refused because the circuit is open; see
/// [`CircuitBreaker`](super::CircuitBreaker).
///
/// Nothing was sent to the inner service. It says how long until the
/// breaker lets a probe through (zero while a probe is already out), and
/// names the breaker if it was given a [`name`](super::Breaker::name).
///
/// It converts into an [`io::Error`] of kind
/// [`Other`](io::ErrorKind::Other) (as [`Elapsed`](crate::timeout::Elapsed)
/// does, of kind `TimedOut`), so a service failing with `io::Error` can
/// take this layer as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitOpen {
    retry_after: Duration,
    name: Arc<str>,
}

/// The name of a breaker that was given none.
pub(crate) const UNNAMED: &str = "circuit";

impl CircuitOpen {
    pub(crate) const fn new(retry_after: Duration, name: Arc<str>) -> Self {
        CircuitOpen { retry_after, name }
    }

    /// How long until the breaker half-opens.
    pub const fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The name of the breaker that refused the call (`"circuit"` if it
    /// was given none).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("circuit")?;
        if &*self.name != UNNAMED {
            write!(f, " {}", self.name)?;
        }
        if self.retry_after.is_zero() {
            // Half-open: the next call may go through once the probe is back.
            f.write_str(" half-open; a probe call is in flight")
        } else {
            write!(f, " open; retry after {:?}", self.retry_after)
        }
    }
}

impl std::error::Error for CircuitOpen {}

impl From<CircuitOpen> for io::Error {
    fn from(e: CircuitOpen) -> io::Error {
        io::Error::other(e)
    }
}
