//! Limits: how many calls at once, and how many per second.
//!
//! | middleware | bounds | when over the bound |
//! |---|---|---|
//! | [`ConcurrencyLimit`] | calls inside the inner service | waits, FIFO |
//! | [`RateLimit`] | calls per unit of time (token bucket) | waits, or rejects with [`RateLimited`] |
//! | [`LoadShed`](crate::load_shed::LoadShed) | calls admitted while a pool is exhausted | rejects with [`Overloaded`](crate::load_shed::Overloaded) |
//!
//! Each limit draws on a shareable budget ([`PermitPool`], [`TokenBucket`]):
//! build it once and hand clones to every service that should share it, or
//! let the layer do it (a [`RateLimitLayer`] shares one bucket among all
//! the services it wraps; a [`ConcurrencyLimitLayer`] shares a pool when
//! made with [`shared`](ConcurrencyLimitLayer::shared)). Budgets are
//! `Send + Sync`, so one budget can span every worker of a server.

mod concurrency;
mod rate;

pub use concurrency::{Acquire, ConcurrencyLimit, ConcurrencyLimitLayer, Permit, PermitPool};
pub use rate::{Rate, RateLimit, RateLimitLayer, RateLimited, TokenBucket};
