use std::fmt;
use std::io;

/// A call was refused at once because the service is at capacity; see
/// [`LoadShed`](super::LoadShed).
///
/// Nothing was sent to the inner service, so the call is safe to retry
/// elsewhere or later.
///
/// It converts into an [`io::Error`] of kind
/// [`Other`](io::ErrorKind::Other) (as [`Elapsed`](crate::timeout::Elapsed)
/// does, of kind `TimedOut`), so a service failing with `io::Error` can
/// take this layer as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overloaded(());

impl Overloaded {
    pub(crate) const fn new() -> Self {
        Overloaded(())
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("service overloaded; request shed")
    }
}

impl std::error::Error for Overloaded {}

impl From<Overloaded> for io::Error {
    fn from(e: Overloaded) -> io::Error {
        io::Error::other(e)
    }
}
