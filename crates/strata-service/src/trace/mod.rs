//! A `tracing` span per request, with its latency and outcome.
//!
//! [`Trace`] opens a `debug`-level span named `request` for each call,
//! with the fields `service` (the name given to the layer), `latency_us`
//! and `outcome` (`ok`, `error`, `panicked` or `cancelled`), enters it for the inner
//! service's `call` and whenever the call's future is polled (so
//! everything the inner service logs is inside it), and ends it with one
//! event carrying the outcome, and the
//! error's `Display` text on failure. It neither waits nor sheds. A call
//! dropped before it ends gets `outcome = cancelled`; one dropped before
//! its first poll gets no span at all (the span opens in the poll).
//!
//! When no subscriber wants the span, the layer costs one cached check
//! per call: no clock reads, no allocation.

mod layer;

use std::fmt;
use std::time::Instant;

use tracing::Instrument;
use tracing::field::Empty;

pub use layer::TraceLayer;

use crate::Service;

/// Wraps each call in a `tracing` span; see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct Trace<S> {
    inner: S,
    name: &'static str,
}

impl<S> Trace<S> {
    /// Wraps `inner`; spans carry `service = name`.
    pub const fn new(inner: S, name: &'static str) -> Self {
        Trace { inner, name }
    }

    /// Returns the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns the inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Records `outcome = cancelled` if the call is dropped before it ends,
/// or `panicked` if the inner service panicked.
struct Finish {
    span: tracing::Span,
    start: Instant,
    done: bool,
    /// True while the inner service's code runs (see `inner_panic`).
    inner_running: bool,
}

impl Finish {
    fn record(&mut self, outcome: &'static str) {
        self.done = true;
        let latency_us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.span.record("latency_us", latency_us);
        self.span.record("outcome", outcome);
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if self.done {
        } else if crate::inner_panic::inner_panicked(self.inner_running) {
            self.record("panicked");
            self.span
                .in_scope(|| tracing::error!(target: "strata_service::trace", "panicked"));
        } else {
            self.record("cancelled");
            self.span
                .in_scope(|| tracing::debug!(target: "strata_service::trace", "cancelled"));
        }
    }
}

impl<S, Req> Service<Req> for Trace<S>
where
    S: Service<Req>,
    S::Error: fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
        let span = tracing::debug_span!(
            target: "strata_service::trace",
            "request",
            service = self.name,
            latency_us = Empty,
            outcome = Empty,
        );
        if span.is_disabled() {
            return self.inner.call(req).await;
        }
        let mut finish = Finish {
            span: span.clone(),
            start: Instant::now(),
            done: false,
            inner_running: false,
        };
        // The inner `call` runs inside the span too: what a service logs
        // before its future exists (a `service_fn` closure's body, a
        // `map_request`) belongs to the request as much as what it logs
        // while polled.
        let call = || span.in_scope(|| self.inner.call(req));
        let result = crate::inner_panic::run_inner(&mut finish.inner_running, call)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        match &result {
            Ok(_) => {
                finish.record("ok");
                tracing::debug!(target: "strata_service::trace", "ok");
            }
            Err(e) => {
                finish.record("error");
                tracing::debug!(target: "strata_service::trace", error = %e, "failed");
            }
        }
        result
    }
}
