//! Request counts, errors, in-flight calls and latency, through the
//! [`metrics`](https://docs.rs/metrics) facade.
//!
//! [`Metrics`] records, for every call, with the label `service` set to
//! the name given to the layer:
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | [`REQUESTS`] `strata_service_requests_total` | counter | calls started |
//! | [`ERRORS`] `strata_service_errors_total` | counter | calls that ended in `Err` |
//! | [`IN_FLIGHT`] `strata_service_in_flight` | gauge | calls started and not yet finished or dropped |
//! | [`DURATION`] `strata_service_duration_seconds` | histogram | time to an outcome, in seconds |
//!
//! A call dropped before it finishes leaves the in-flight gauge (a guard
//! sees to that) but records no duration; one whose inner service
//! panicked also counts as an error (the panic goes on unwinding). A call
//! dropped before its first poll records nothing: the counting starts
//! there. The layer neither waits nor sheds.
//!
//! The facade sends the numbers to whichever recorder the application
//! installed (Prometheus, StatsD, a test's own); with none installed they
//! go nowhere. Handles are registered when the service is built, so
//! **install the recorder before building the stack**; a server builds
//! one stack per connection, so that is usually the case anyway.

mod layer;

use std::time::Instant;

use ::metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

pub use layer::MetricsLayer;

use crate::Service;

/// Counter of calls started.
pub const REQUESTS: &str = "strata_service_requests_total";
/// Counter of calls that ended in an error.
pub const ERRORS: &str = "strata_service_errors_total";
/// Gauge of calls in flight.
pub const IN_FLIGHT: &str = "strata_service_in_flight";
/// Histogram of call durations, in seconds.
pub const DURATION: &str = "strata_service_duration_seconds";

/// Records each call through the `metrics` facade; see the
/// [module docs](self).
#[derive(Clone)]
pub struct Metrics<S> {
    inner: S,
    requests: Counter,
    errors: Counter,
    in_flight: Gauge,
    duration: Histogram,
}

impl<S> Metrics<S> {
    /// Wraps `inner`, registering its metrics with the label
    /// `service = name` on the recorder installed now.
    pub fn new(inner: S, name: &'static str) -> Self {
        let labels = [("service", name)];
        Metrics {
            inner,
            requests: counter!(REQUESTS, &labels),
            errors: counter!(ERRORS, &labels),
            in_flight: gauge!(IN_FLIGHT, &labels),
            duration: histogram!(DURATION, &labels),
        }
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

/// Lowers the in-flight gauge when the call ends or is dropped, and
/// counts an error if the inner service panicked.
struct InFlight<'a> {
    gauge: &'a Gauge,
    errors: &'a Counter,
    /// True while the inner service's code runs (see `inner_panic`).
    inner_running: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
        if crate::inner_panic::inner_panicked(self.inner_running) {
            self.errors.increment(1);
        }
    }
}

impl<S, Req> Service<Req> for Metrics<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, req: Req) -> Result<S::Response, S::Error> {
        self.requests.increment(1);
        self.in_flight.increment(1.0);
        let mut in_flight = InFlight {
            gauge: &self.in_flight,
            errors: &self.errors,
            inner_running: false,
        };
        let start = Instant::now();
        let result =
            crate::inner_panic::run_inner(&mut in_flight.inner_running, || self.inner.call(req))
                .await;
        self.duration.record(start.elapsed().as_secs_f64());
        if result.is_err() {
            self.errors.increment(1);
        }
        result
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Metrics<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
