//! The metrics layer through a recording `metrics` recorder, and the
//! trace layer through a recording `tracing` subscriber.

mod recorder;
mod scripted;

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_executor::block_on;
use recorder::TestRecorder;
use scripted::{Scripted, Step, poll_once};
use strata_service::clock::ManualClock;
use strata_service::metrics::{DURATION, ERRORS, IN_FLIGHT, Metrics, REQUESTS};
use strata_service::trace::Trace;
use strata_service::{Service, ServiceBuilder};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[test]
fn metrics_count_requests_errors_in_flight_and_latency() {
    let recorder = TestRecorder::default();
    let clock = ManualClock::new();
    let svc = metrics::with_local_recorder(&recorder, || {
        Metrics::new(Scripted::new(clock.clone()), "api")
    });
    assert!(format!("{svc:?}").starts_with("Metrics { inner: Scripted"));
    assert_eq!(block_on(svc.call(Step::Ok(1))).unwrap(), 1);
    assert!(block_on(svc.call(Step::Fail("no"))).is_err());

    let mut slow = pin!(svc.call(Step::Delay(Duration::from_secs(1), 2)));
    assert!(poll_once(slow.as_mut()).is_pending());
    assert_eq!(recorder.get(IN_FLIGHT, "api").gauge(), 1.0);
    let mut dropped = Box::pin(svc.call(Step::Pending));
    assert!(poll_once(dropped.as_mut()).is_pending());
    assert_eq!(recorder.get(IN_FLIGHT, "api").gauge(), 2.0);
    drop(dropped);
    assert_eq!(
        recorder.get(IN_FLIGHT, "api").gauge(),
        1.0,
        "a cancelled call leaves the gauge"
    );
    clock.advance(Duration::from_secs(1));
    assert!(poll_once(slow.as_mut()).is_ready());

    assert_eq!(recorder.get(REQUESTS, "api").count(), 4);
    assert_eq!(recorder.get(ERRORS, "api").count(), 1);
    assert_eq!(recorder.get(IN_FLIGHT, "api").gauge(), 0.0);
    assert_eq!(
        recorder.get(DURATION, "api").samples().len(),
        3,
        "no duration for the cancelled call"
    );
}

/// Records the `outcome` of each `request` span and counts events in them.
#[derive(Default, Clone)]
struct Spans {
    next: Arc<AtomicU64>,
    outcomes: Arc<Mutex<Vec<String>>>,
    latencies: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
}

struct Outcome<'a>(&'a Spans);

impl Visit for Outcome<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "outcome" {
            self.0.outcomes.lock().unwrap().push(format!("{value:?}"));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "outcome" {
            self.0.outcomes.lock().unwrap().push(value.to_owned());
        }
    }
    fn record_u64(&mut self, field: &Field, _: u64) {
        if field.name() == "latency_us" {
            self.0.latencies.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        assert_eq!(span.metadata().name(), "request");
        Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Outcome(self));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {
        self.events.fetch_add(1, Ordering::SeqCst);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Held by the tests that use `Trace`'s span and event callsites. tracing
/// caches each callsite's interest process-wide: registered first on a
/// thread with no subscriber while another thread's scoped subscriber was
/// being set up, the span's interest could be cached as "never", and the
/// test with the subscriber then saw no span at all (seen about once in
/// 400 runs).
static CALLSITES: Mutex<()> = Mutex::new(());

#[test]
fn trace_opens_a_span_per_request_with_its_outcome() {
    let _serial = CALLSITES.lock().unwrap_or_else(|e| e.into_inner());
    let spans = Spans::default();
    let clock = ManualClock::new();
    tracing::subscriber::with_default(spans.clone(), || {
        let svc = ServiceBuilder::new()
            .trace("api")
            .service(Scripted::new(clock.clone()));
        assert_eq!(block_on(svc.call(Step::Ok(1))).unwrap(), 1);
        assert!(block_on(svc.call(Step::Fail("no"))).is_err());
        let mut cancelled = Box::pin(svc.call(Step::Pending));
        assert!(poll_once(cancelled.as_mut()).is_pending());
        drop(cancelled);
        let _ = Trace::new(Scripted::new(clock.clone()), "other").get_ref();
    });
    assert_eq!(spans.next.load(Ordering::SeqCst), 3);
    assert_eq!(
        *spans.outcomes.lock().unwrap(),
        ["ok", "error", "cancelled"]
    );
    assert_eq!(spans.latencies.load(Ordering::SeqCst), 3);
    assert_eq!(spans.events.load(Ordering::SeqCst), 3);
}

#[test]
fn without_a_subscriber_trace_just_calls_through() {
    let _serial = CALLSITES.lock().unwrap_or_else(|e| e.into_inner());
    let svc = Trace::new(Scripted::new(ManualClock::new()), "quiet");
    assert_eq!(block_on(svc.call(Step::Ok(9))).unwrap(), 9);
}
