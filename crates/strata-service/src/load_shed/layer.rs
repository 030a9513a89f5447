use super::LoadShed;
use crate::Layer;
use crate::limit::PermitPool;

/// A layer that wraps services in [`LoadShed`], all watching one pool.
#[derive(Clone, Debug)]
pub struct LoadShedLayer {
    pool: PermitPool,
    max_waiting: usize,
}

impl LoadShedLayer {
    /// Sheds whenever `pool` has no free permit.
    pub const fn new(pool: PermitPool) -> Self {
        LoadShedLayer {
            pool,
            max_waiting: 0,
        }
    }

    /// Lets up to `n` callers queue for a permit before shedding.
    pub const fn max_waiting(mut self, n: usize) -> Self {
        self.max_waiting = n;
        self
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> LoadShed<S> {
        LoadShed::new(inner, self.pool.clone()).max_waiting(self.max_waiting)
    }
}
