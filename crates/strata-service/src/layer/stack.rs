//! Two layers composed into one.

use super::Layer;

/// Two layers applied one after the other: `outer` wraps what `inner`
/// built.
///
/// `Stack::new(inner, outer).layer(svc)` is `outer.layer(inner.layer(svc))`,
/// so requests pass through `outer`'s service first. A
/// [`ServiceBuilder`](crate::ServiceBuilder) nests `Stack`s for you; the
/// type shows up mostly in error messages and in the builder's type.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stack<Inner, Outer> {
    inner: Inner,
    outer: Outer,
}

impl<Inner, Outer> Stack<Inner, Outer> {
    /// Composes two layers: `inner` wraps the service first, then `outer`
    /// wraps the result.
    pub const fn new(inner: Inner, outer: Outer) -> Self {
        Stack { inner, outer }
    }

    /// Returns the layer applied first (closest to the service).
    pub fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Returns the layer applied last (first to see a request).
    pub fn outer(&self) -> &Outer {
        &self.outer
    }
}

impl<S, Inner, Outer> Layer<S> for Stack<Inner, Outer>
where
    Inner: Layer<S>,
    Outer: Layer<Inner::Service>,
{
    type Service = Outer::Service;

    fn layer(&self, service: S) -> Outer::Service {
        self.outer.layer(self.inner.layer(service))
    }
}
