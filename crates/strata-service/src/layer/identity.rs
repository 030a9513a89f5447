//! The layer that does nothing.

use super::Layer;

/// A layer that returns the inner service unchanged.
///
/// It is the empty stack a [`ServiceBuilder`](crate::ServiceBuilder)
/// starts from, and the "off" branch of
/// [`option_layer`](crate::option_layer).
#[derive(Debug, Default, Clone, Copy)]
pub struct Identity {
    _private: (),
}

impl Identity {
    /// Returns the identity layer.
    pub const fn new() -> Self {
        Identity { _private: () }
    }
}

impl<S> Layer<S> for Identity {
    type Service = S;

    fn layer(&self, inner: S) -> S {
        inner
    }
}
