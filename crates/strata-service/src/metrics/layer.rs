use super::Metrics;
use crate::Layer;

/// A layer that wraps services in [`Metrics`].
#[derive(Clone, Copy, Debug)]
pub struct MetricsLayer {
    name: &'static str,
}

impl MetricsLayer {
    /// Metrics carry the label `service = name`.
    pub const fn new(name: &'static str) -> Self {
        MetricsLayer { name }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics::new(inner, self.name)
    }
}
