use super::{ConcurrencyLimit, PermitPool};
use crate::Layer;

/// A layer that wraps services in [`ConcurrencyLimit`].
///
/// [`new`](ConcurrencyLimitLayer::new) gives each wrapped service a pool
/// of its own (with a server, a limit per connection);
/// [`shared`](ConcurrencyLimitLayer::shared) makes them all draw on one
/// pool (one limit for the whole server, across workers).
#[derive(Clone, Debug)]
pub struct ConcurrencyLimitLayer {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Each(usize),
    Shared(PermitPool),
}

impl ConcurrencyLimitLayer {
    /// Each wrapped service gets its own limit of `max` calls.
    ///
    /// # Panics
    ///
    /// If `max` is 0: every call would wait forever.
    pub const fn new(max: usize) -> Self {
        assert!(
            max > 0,
            "ConcurrencyLimitLayer: a concurrency limit of 0 would make every call wait forever"
        );
        ConcurrencyLimitLayer {
            kind: Kind::Each(max),
        }
    }

    /// Every wrapped service draws on `pool`.
    pub const fn shared(pool: PermitPool) -> Self {
        ConcurrencyLimitLayer {
            kind: Kind::Shared(pool),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> ConcurrencyLimit<S> {
        match &self.kind {
            Kind::Each(max) => ConcurrencyLimit::new(inner, *max),
            Kind::Shared(pool) => ConcurrencyLimit::with_pool(inner, pool.clone()),
        }
    }
}
