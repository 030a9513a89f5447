//! Timers, strata against tokio in one run.
//!
//! ```text
//! cargo run --release -p strata-bench --bin timers [NAME-PREFIX [strata|tokio]]
//! ```
//!
//! With a side named, only that side runs (a warm-up, then the usual
//! repetitions) and prints its median: for profiling one runtime, e.g.
//! under `perf record` or `valgrind --tool=callgrind`. A prefix that names
//! no benchmark, another side, or any flag is an error (exit status 2).
//!
//! Three workloads, each run on a 2-worker runtime of both kinds,
//! interleaved, each repetition starting with the other side (strata
//! tokio, tokio strata, ...), so that machine noise hits both alike and
//! neither always runs first; the table shows medians and their ratio.
//!
//! * `cancel-each`: 1,000,000 times: create a 60 s sleep, poll it once (so
//!   it registers with the timer wheel), drop it. The request-timeout
//!   pattern, where the request almost always wins.
//! * `insert-all`: create and poll 1,000,000 sleeps of random 1..600 s
//!   deadlines, all alive at once, then drop them all. tokio's `Sleep` is
//!   `!Unpin` and must be boxed to be kept in a `Vec`; strata's is `Unpin`
//!   and is stored inline: that difference is part of what is measured.
//! * `fire-100k`: spawn 100,000 tasks that each sleep 1..50 ms, and wait for
//!   all. Wall time is bounded below by the sleeps, so the CPU time the
//!   process spends is the number to compare.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use strata_bench::args::{ArgError, Args};
use strata_bench::report::{Sample, measure};

const USAGE: &str = "\
timers: strata against tokio

usage:
  timers [NAME-PREFIX [strata|tokio]]
      the benchmarks whose name starts with NAME-PREFIX (cancel-each,
      insert-all, fire-100k; all by default); with a side, only that side";

const NAMES: [&str; 3] = ["cancel-each 1M", "insert-all 1M", "fire-100k"];

/// The name prefix and the side, checked.
fn options(mut args: Args) -> Result<(String, Option<String>), ArgError> {
    let only = args.positional().unwrap_or_default();
    let side = args.positional();
    args.finish()?;
    if !NAMES.iter().any(|n| n.starts_with(&only)) {
        return Err(ArgError::new(format!(
            "no benchmark name starts with {only:?}"
        )));
    }
    if let Some(side) = side.as_deref()
        && side != "strata"
        && side != "tokio"
    {
        return Err(ArgError::new(format!(
            "unknown side {side:?}: use `strata` or `tokio`"
        )));
    }
    Ok((only, side))
}

/// Rounds per case: even, so that each side runs first in half of them.
const REPS: usize = 8;
const CANCEL_N: u64 = 1_000_000;
const FIRE_N: u64 = 100_000;

/// Polls `f` once in the current task's context and reports whether it was
/// pending.
async fn poll_once<F: Future + ?Sized>(mut f: Pin<&mut F>) -> bool {
    poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx).is_pending())).await
}

/// A cheap deterministic sequence of deadlines (xorshift).
fn deadlines(n: u64) -> impl Iterator<Item = Duration> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Duration::from_millis(1_000 + x % 599_000)
    })
}

fn strata_rt() -> strata_rt::Runtime {
    strata_rt::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

fn strata_cancel_each(rt: &strata_rt::Runtime) -> u64 {
    rt.block_on(rt.handle().spawn(async {
        for _ in 0..CANCEL_N {
            let mut s = strata_rt::time::sleep(Duration::from_secs(60));
            assert!(poll_once(Pin::new(&mut s)).await);
        }
        CANCEL_N
    }))
    .unwrap()
}

fn tokio_cancel_each(rt: &tokio::runtime::Runtime) -> u64 {
    rt.block_on(rt.spawn(async {
        for _ in 0..CANCEL_N {
            let s = std::pin::pin!(tokio::time::sleep(Duration::from_secs(60)));
            assert!(poll_once(s).await);
        }
        CANCEL_N
    }))
    .unwrap()
}

fn strata_insert_all(rt: &strata_rt::Runtime) -> u64 {
    rt.block_on(rt.handle().spawn(async {
        let mut all = Vec::with_capacity(CANCEL_N as usize);
        for d in deadlines(CANCEL_N) {
            let mut s = strata_rt::time::sleep(d);
            assert!(poll_once(Pin::new(&mut s)).await);
            all.push(s);
        }
        drop(all);
        CANCEL_N
    }))
    .unwrap()
}

fn tokio_insert_all(rt: &tokio::runtime::Runtime) -> u64 {
    rt.block_on(rt.spawn(async {
        let mut all = Vec::with_capacity(CANCEL_N as usize);
        for d in deadlines(CANCEL_N) {
            let mut s = Box::pin(tokio::time::sleep(d));
            assert!(poll_once(s.as_mut()).await);
            all.push(s);
        }
        drop(all);
        CANCEL_N
    }))
    .unwrap()
}

fn strata_fire(rt: &strata_rt::Runtime) -> u64 {
    rt.block_on(async {
        let hs: Vec<_> = (0..FIRE_N)
            .map(|i| strata_rt::spawn(strata_rt::time::sleep(Duration::from_millis(1 + i % 50))))
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        FIRE_N
    })
}

fn tokio_fire(rt: &tokio::runtime::Runtime) -> u64 {
    rt.block_on(async {
        let hs: Vec<_> = (0..FIRE_N)
            .map(|i| tokio::spawn(tokio::time::sleep(Duration::from_millis(1 + i % 50))))
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        FIRE_N
    })
}

fn median(v: Vec<f64>) -> f64 {
    strata_bench::report::median(v)
}

/// (median, min/median, max/median) of `f` over the samples.
fn stats(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> (f64, f64, f64) {
    let v: Vec<f64> = samples.iter().map(f).collect();
    let m = median(v.clone());
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    (m, lo / m, hi / m)
}

/// One column of the table, computed from a sample.
type Metric<'a> = &'a dyn Fn(&Sample) -> f64;

fn cpu_ms(s: &Sample) -> f64 {
    (s.user + s.sys).as_secs_f64() * 1e3
}

fn main() {
    // An optional argument picks benchmarks by name prefix, a second one a
    // single side (for profiling).
    let (only, side) = options(Args::from_env(USAGE)).unwrap_or_else(|e| e.exit(USAGE));
    let srt = strata_rt();
    let trt = tokio_rt();
    type Bench<'a> = (
        &'a str,
        Box<dyn Fn() -> u64 + 'a>,
        Box<dyn Fn() -> u64 + 'a>,
    );
    let benches: Vec<Bench<'_>> = vec![
        (
            NAMES[0],
            Box::new(|| strata_cancel_each(&srt)),
            Box::new(|| tokio_cancel_each(&trt)),
        ),
        (
            NAMES[1],
            Box::new(|| strata_insert_all(&srt)),
            Box::new(|| tokio_insert_all(&trt)),
        ),
        (
            NAMES[2],
            Box::new(|| strata_fire(&srt)),
            Box::new(|| tokio_fire(&trt)),
        ),
    ];
    if side.is_none() {
        println!("timers: strata vs tokio, 2 workers each, {REPS} interleaved repetitions");
        println!();
        println!(
            "| benchmark | metric | strata | tokio | strata/tokio | spread strata | spread tokio |"
        );
        println!("|---|---|---:|---:|---:|---|---|");
    }
    for (name, s, t) in benches.iter().filter(|b| b.0.starts_with(&only)) {
        if let Some(side) = &side {
            let f = if side == "strata" { s } else { t };
            f();
            let xs: Vec<Sample> = (0..REPS).map(|_| measure(f)).collect();
            let wall = stats(&xs, |x| x.wall.as_secs_f64() * 1e3);
            let cpu = stats(&xs, cpu_ms);
            println!(
                "{name} {side}: median {:.2} ms wall ({:.2}–{:.2}), {:.2} ms CPU ({:.2}–{:.2})",
                wall.0, wall.1, wall.2, cpu.0, cpu.1, cpu.2
            );
            continue;
        }
        // One warm-up each, not measured.
        s();
        t();
        let (mut ss, mut ts) = (Vec::new(), Vec::new());
        for rep in 0..REPS {
            for k in 0..2 {
                if strata_bench::report::rotated(rep, k, 2) == 0 {
                    ss.push(measure(s));
                } else {
                    ts.push(measure(t));
                }
            }
        }
        let rate = |x: &Sample| x.rate() / 1e6;
        let wall_ms = |x: &Sample| x.wall.as_secs_f64() * 1e3;
        let rows: [(&str, Metric); 2] = if name.starts_with("fire") {
            [("CPU ms (lower is better)", &cpu_ms), ("wall ms", &wall_ms)]
        } else {
            [
                ("M timers/s (higher is better)", &rate),
                ("CPU ms", &cpu_ms),
            ]
        };
        for (metric, f) in rows {
            let (sm, slo, shi) = stats(&ss, f);
            let (tm, tlo, thi) = stats(&ts, f);
            println!(
                "| {name} | {metric} | {sm:.2} | {tm:.2} | {:.2} | {slo:.2}–{shi:.2} | {tlo:.2}–{thi:.2} |",
                sm / tm
            );
        }
    }
}
