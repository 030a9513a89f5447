use super::Trace;
use crate::Layer;

/// A layer that wraps services in [`Trace`].
#[derive(Clone, Copy, Debug)]
pub struct TraceLayer {
    name: &'static str,
}

impl TraceLayer {
    /// Spans carry `service = name`.
    pub const fn new(name: &'static str) -> Self {
        TraceLayer { name }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace::new(inner, self.name)
    }
}
