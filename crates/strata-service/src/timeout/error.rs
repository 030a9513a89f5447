//! The error of a request that ran out of time.

use std::fmt;
use std::io;
use std::time::Duration;

/// A request did not finish within its [`Timeout`](super::Timeout).
///
/// It carries the deadline it missed. Convert it into your error type
/// with a `From` impl (see [the error scheme](crate#errors-one-type-per-stack));
/// it also converts into [`io::Error`] of kind
/// [`TimedOut`](io::ErrorKind::TimedOut) and into
/// [`BoxError`](crate::BoxError).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed {
    after: Duration,
}

impl Elapsed {
    pub(crate) const fn new(after: Duration) -> Self {
        Elapsed { after }
    }

    /// The timeout that elapsed.
    pub const fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request timed out after {:?}", self.after)
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(e: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}
