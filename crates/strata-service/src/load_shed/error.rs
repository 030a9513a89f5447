use std::fmt;

/// A call was refused at once because the service is at capacity; see
/// [`LoadShed`](super::LoadShed).
///
/// Nothing was sent to the inner service, so the call is safe to retry
/// elsewhere or later.
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
