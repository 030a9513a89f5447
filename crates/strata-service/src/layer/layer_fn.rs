//! A layer made from a closure.

use std::fmt;

use super::Layer;

/// Returns a [`Layer`] that wraps each service by calling `f` with it.
///
/// Handy for a one-off middleware, or to use a wrapper's constructor as a
/// layer without writing a layer type.
///
/// # Example
///
/// ```
/// use strata_service::{Layer, MapRequest, Service, layer_fn, service_fn};
///
/// let add_one = layer_fn(|inner| MapRequest::new(inner, |n: u32| n + 1));
/// let double = service_fn(|n: u32| async move { Ok::<_, ()>(n * 2) });
///
/// let svc = add_one.layer(double);
/// assert_eq!(futures_executor::block_on(svc.call(1)), Ok(4));
/// ```
pub fn layer_fn<F>(f: F) -> LayerFn<F> {
    LayerFn { f }
}

/// A [`Layer`] backed by a closure; made by [`layer_fn`].
#[derive(Clone, Copy)]
pub struct LayerFn<F> {
    f: F,
}

impl<F, S, Out> Layer<S> for LayerFn<F>
where
    F: Fn(S) -> Out,
{
    type Service = Out;

    fn layer(&self, inner: S) -> Out {
        (self.f)(inner)
    }
}

impl<F> fmt::Debug for LayerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerFn")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}
