//! Middleware overhead, strata-service against tower, in one run.
//!
//! The same stack on both sides, around a trivial service (`n -> n + 1`):
//!
//! ```text
//! metrics -> timeout (1 s) -> concurrency limit (4096) -> rate limit (not binding) -> service
//! ```
//!
//! strata: `strata_service` on a 1-worker strata runtime. tower: `tower`'s
//! `Timeout`, `ConcurrencyLimit` and `RateLimit` on a current-thread tokio
//! runtime, plus a metrics layer written here (tower has none) that records
//! exactly what strata's `Metrics` records. Both record into the same cheap
//! atomic `metrics` recorder, installed once for the process.
//!
//! Two patterns, each also run on the bare service so the middleware's own
//! cost can be read off as `stack - bare`:
//!
//! * `sequential`: N calls, one after the other (tower: `ready().await` then
//!   `call`).
//! * `concurrent`: N calls in batches of 256 started together and joined
//!   with the same `join_all` on both sides.
//!
//! Each repetition runs the four (strata bare, tower bare, strata stack,
//! tower stack) back to back, starting with the next one each time (A B C
//! D, B C D A, ...), after a warm-up of each side; medians of 8 by default.
//!
//! ```text
//! cargo run --release -p strata-bench --bin middleware [-- --reps 8 --calls 1000000]
//! ```
//!
//! Unknown flags and values that do not parse are errors (exit status 2).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName};
use strata_bench::args::{ArgError, Args};
use strata_bench::report::{self, Sample};
use strata_service::limit::Rate;
use strata_service::{BoxError, ServiceBuilder, service_fn};
use tower::ServiceExt as _;

const BATCH: usize = 256;
const TIMEOUT: Duration = Duration::from_secs(1);
const LIMIT: usize = 4096;

const USAGE: &str = "\
middleware overhead: strata-service against tower

usage:
  middleware [--reps 8] [--calls 1000000]

Unknown flags and values that do not parse are errors (exit status 2).";

/// `--reps` and `--calls`, checked.
fn options(mut args: Args) -> Result<(usize, u64), ArgError> {
    let reps = args.at_least("--reps", 8, 1)?;
    let calls = args.at_least("--calls", 1_000_000, 1)?;
    args.finish()?;
    Ok((reps, calls))
}

// ------------------------------------------------------------ recorder

/// One atomic cell per metric: counters add, gauges add f64 bits with a
/// CAS loop, histograms count and sum. Cheap, and the same for both sides.
#[derive(Default)]
struct Cell {
    value: AtomicU64,
}

impl CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.value.fetch_add(v, Ordering::Relaxed);
    }
    fn absolute(&self, v: u64) {
        self.value.store(v, Ordering::Relaxed);
    }
}

impl Cell {
    fn add_f64(&self, v: f64) {
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }
}

impl GaugeFn for Cell {
    fn increment(&self, v: f64) {
        self.add_f64(v);
    }
    fn decrement(&self, v: f64) {
        self.add_f64(-v);
    }
    fn set(&self, v: f64) {
        self.value.store(v.to_bits(), Ordering::Relaxed);
    }
}

impl HistogramFn for Cell {
    fn record(&self, v: f64) {
        self.add_f64(v);
    }
}

struct CheapRecorder;

impl metrics::Recorder for CheapRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, _: &Key, _: &metrics::Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Cell::default()))
    }
    fn register_gauge(&self, _: &Key, _: &metrics::Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Cell::default()))
    }
    fn register_histogram(&self, _: &Key, _: &metrics::Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Cell::default()))
    }
}

// ------------------------------------------------------ tower metrics

/// The tower twin of `strata_service::metrics::Metrics`: requests, errors,
/// in-flight gauge and a duration histogram, same names and label.
#[derive(Clone)]
struct TowerMetrics<S> {
    inner: S,
    handles: Arc<Handles>,
}

struct Handles {
    requests: Counter,
    errors: Counter,
    in_flight: Gauge,
    duration: Histogram,
}

impl<S> TowerMetrics<S> {
    fn new(inner: S, name: &'static str) -> Self {
        let labels = [("service", name)];
        TowerMetrics {
            inner,
            handles: Arc::new(Handles {
                requests: metrics::counter!(strata_service::metrics::REQUESTS, &labels),
                errors: metrics::counter!(strata_service::metrics::ERRORS, &labels),
                in_flight: metrics::gauge!(strata_service::metrics::IN_FLIGHT, &labels),
                duration: metrics::histogram!(strata_service::metrics::DURATION, &labels),
            }),
        }
    }
}

struct TowerMetricsLayer;

impl<S> tower::Layer<S> for TowerMetricsLayer {
    type Service = TowerMetrics<S>;
    fn layer(&self, inner: S) -> TowerMetrics<S> {
        TowerMetrics::new(inner, "bench")
    }
}

struct InFlight(Arc<Handles>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}

pin_project_lite::pin_project! {
    struct MetricsFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        guard: InFlight,
    }
}

impl<F, T, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        let handles = &this.guard.0;
        handles.duration.record(this.start.elapsed().as_secs_f64());
        if out.is_err() {
            handles.errors.increment(1);
        }
        Poll::Ready(out)
    }
}

impl<S, Req> tower::Service<Req> for TowerMetrics<S>
where
    S: tower::Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> MetricsFuture<S::Future> {
        self.handles.requests.increment(1);
        self.handles.in_flight.increment(1.0);
        let guard = InFlight(Arc::clone(&self.handles));
        MetricsFuture {
            inner: self.inner.call(req),
            start: Instant::now(),
            guard,
        }
    }
}

// ------------------------------------------------------------- strata

fn strata_run(rt: &strata_rt::Runtime, calls: u64, stack: bool, concurrent: bool) -> u64 {
    rt.block_on(rt.handle().spawn_local_on(0, move || async move {
        let bare = service_fn(|n: u64| async move { Ok::<u64, BoxError>(n + 1) });
        if stack {
            let svc = ServiceBuilder::new()
                .metrics("bench")
                .timeout(TIMEOUT)
                .concurrency_limit(LIMIT)
                .rate_limit(Rate::per_second(1_000_000_000), u32::MAX)
                .service(bare);
            drive_strata(&svc, calls, concurrent).await
        } else {
            drive_strata(&bare, calls, concurrent).await
        }
    }))
    .unwrap()
}

async fn drive_strata<S>(svc: &S, calls: u64, concurrent: bool) -> u64
where
    S: strata_service::Service<u64, Response = u64, Error = BoxError>,
{
    let mut sum = 0;
    if concurrent {
        let mut done = 0;
        while done < calls {
            let n = (calls - done).min(BATCH as u64);
            let outs = join_all((0..n).map(|i| svc.call(i))).await;
            sum += outs.into_iter().map(|r| r.unwrap()).sum::<u64>();
            done += n;
        }
    } else {
        for i in 0..calls {
            sum += svc.call(i).await.unwrap();
        }
    }
    std::hint::black_box(sum);
    calls
}

// -------------------------------------------------------------- tower

fn tower_run(rt: &tokio::runtime::Runtime, calls: u64, stack: bool, concurrent: bool) -> u64 {
    rt.block_on(async move {
        let bare = tower::service_fn(|n: u64| async move { Ok::<u64, BoxError>(n + 1) });
        if stack {
            let svc = tower::ServiceBuilder::new()
                .layer(TowerMetricsLayer)
                .timeout(TIMEOUT)
                .concurrency_limit(LIMIT)
                .rate_limit(u64::MAX, Duration::from_secs(1))
                .service(bare);
            drive_tower(svc, calls, concurrent).await
        } else {
            drive_tower(bare, calls, concurrent).await
        }
    })
}

async fn drive_tower<S>(mut svc: S, calls: u64, concurrent: bool) -> u64
where
    S: tower::Service<u64, Response = u64, Error = BoxError>,
{
    let mut sum = 0;
    if concurrent {
        let mut done = 0;
        while done < calls {
            let n = (calls - done).min(BATCH as u64);
            let mut futs = Vec::with_capacity(n as usize);
            for i in 0..n {
                futs.push(svc.ready().await.unwrap().call(i));
            }
            let outs = join_all(futs).await;
            sum += outs.into_iter().map(|r| r.unwrap()).sum::<u64>();
            done += n;
        }
    } else {
        for i in 0..calls {
            sum += svc.ready().await.unwrap().call(i).await.unwrap();
        }
    }
    std::hint::black_box(sum);
    calls
}

// --------------------------------------------------------------- main

fn ns_per_call(samples: &[Sample]) -> f64 {
    1e9 / report::median_rate(samples)
}

fn main() {
    let (reps, calls) = options(Args::from_env(USAGE)).unwrap_or_else(|e| e.exit(USAGE));

    metrics::set_global_recorder(CheapRecorder).expect("no recorder yet");
    let strata = strata_rt::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();

    println!("middleware overhead: {calls} calls per run, {reps} interleaved runs, medians");
    report::warn_unbalanced(reps, 4);
    println!(
        "| pattern | bare strata ns | bare tower ns | stack strata ns | stack tower ns | overhead strata ns | overhead tower ns | overhead strata/tower | spread strata | spread tower |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for (name, concurrent) in [("sequential", false), ("concurrent (256)", true)] {
        // Warm-up: one of each, not recorded.
        strata_run(&strata, calls / 10, true, concurrent);
        tower_run(&tokio, calls / 10, true, concurrent);

        let (mut sb, mut tb, mut ss, mut ts) = (vec![], vec![], vec![], vec![]);
        for rep in 0..reps {
            for k in 0..4 {
                match report::rotated(rep, k, 4) {
                    0 => sb.push(report::measure(|| {
                        strata_run(&strata, calls, false, concurrent)
                    })),
                    1 => tb.push(report::measure(|| {
                        tower_run(&tokio, calls, false, concurrent)
                    })),
                    2 => ss.push(report::measure(|| {
                        strata_run(&strata, calls, true, concurrent)
                    })),
                    _ => ts.push(report::measure(|| {
                        tower_run(&tokio, calls, true, concurrent)
                    })),
                }
            }
        }
        let (sb_ns, tb_ns, ss_ns, ts_ns) = (
            ns_per_call(&sb),
            ns_per_call(&tb),
            ns_per_call(&ss),
            ns_per_call(&ts),
        );
        let (so, to) = (ss_ns - sb_ns, ts_ns - tb_ns);
        let (s_lo, s_hi) = report::spread(&ss);
        let (t_lo, t_hi) = report::spread(&ts);
        println!(
            "| {name} | {sb_ns:.1} | {tb_ns:.1} | {ss_ns:.1} | {ts_ns:.1} | {so:.1} | {to:.1} | {:.2} | {s_lo:.2}–{s_hi:.2} | {t_lo:.2}–{t_hi:.2} |",
            so / to
        );
    }
}
