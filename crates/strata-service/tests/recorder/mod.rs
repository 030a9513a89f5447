//! A `metrics` recorder that keeps every value, for assertions.

#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

#[derive(Default, Debug)]
pub(crate) struct Slot {
    count: AtomicU64,
    gauge: Mutex<f64>,
    samples: Mutex<Vec<f64>>,
}

impl Slot {
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
    pub(crate) fn gauge(&self) -> f64 {
        *self.gauge.lock().unwrap()
    }
    pub(crate) fn samples(&self) -> Vec<f64> {
        self.samples.lock().unwrap().clone()
    }
}

impl CounterFn for Slot {
    fn increment(&self, value: u64) {
        self.count.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.count.store(value, Ordering::SeqCst);
    }
}

impl GaugeFn for Slot {
    fn increment(&self, value: f64) {
        *self.gauge.lock().unwrap() += value;
    }
    fn decrement(&self, value: f64) {
        *self.gauge.lock().unwrap() -= value;
    }
    fn set(&self, value: f64) {
        *self.gauge.lock().unwrap() = value;
    }
}

impl HistogramFn for Slot {
    fn record(&self, value: f64) {
        self.samples.lock().unwrap().push(value);
    }
}

/// Keeps one [`Slot`] per metric name and label set.
#[derive(Default, Debug, Clone)]
pub(crate) struct TestRecorder {
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

impl TestRecorder {
    /// The slot of `name` with the label `service = service`.
    pub(crate) fn get(&self, name: &str, service: &str) -> Arc<Slot> {
        let key = format!("{name}{{service={service}}}");
        Arc::clone(self.slots.lock().unwrap().entry(key).or_default())
    }

    fn slot(&self, key: &Key) -> Arc<Slot> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.slots.lock().unwrap().entry(name).or_default())
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.slot(key))
    }
}
