//! Runtime benchmarks, strata against tokio in one run:
//!
//! * `spawn`: spawn-and-join throughput (tasks spawned from a task, then
//!   awaited), both runtimes with the same worker count;
//! * `echo`: a TCP echo server in a child process, driven by the shared
//!   load generator over loopback with 64 connections.
//!
//! Runs alternate, each round starting with the other side (strata tokio,
//! tokio strata, ...), so drift on a noisy machine hits both alike and
//! neither always runs first. Under each table, strata's rate over tokio's
//! is also given round by round (median, range, rounds ahead), which
//! cancels the machine's drift between rounds.
//!
//! ```text
//! cargo run --release -p strata-bench --bin rt -- spawn [--reps 8] [--tasks 100000] [--workers 2]
//! cargo run --release -p strata-bench --bin rt -- echo  [--reps 4] [--secs 10] [--conns 64] [--workers 1] [--no-pin]
//! ```
//!
//! Unknown flags and values that do not parse are errors (exit status 2).

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_bench::args::{ArgError, Args};
use strata_bench::loadgen::{self, LoadSpec, Progress};
use strata_bench::report::{self, Sample};
use strata_bench::server_proc::{self, ServerProc};

const USAGE: &str = "\
runtime benchmarks: strata against tokio

usage:
  rt spawn [--reps 8] [--tasks 100000] [--workers 2]
      spawn-and-join throughput, both runtimes in this process
  rt echo [--reps 4] [--secs 10] [--conns 64] [--workers 1] [--no-pin]
      a TCP echo server in a child process, driven over loopback
  rt serve echo-strata|echo-tokio [--workers 1]
      run one echo server on a free port of 127.0.0.1 and print its address

--secs takes fractions (0.5). Unknown flags and values that do not parse
are errors (exit status 2).";

fn main() {
    let mut args = Args::from_env(USAGE);
    let result = match args.positional().as_deref() {
        Some("spawn") => spawn_bench(args),
        Some("echo") => echo_bench(args),
        Some("serve") => serve(args),
        Some(other) => Err(ArgError::new(format!(
            "unknown command {other:?}; use spawn, echo or serve"
        ))),
        None => Err(ArgError::new("a command is needed: spawn, echo or serve")),
    };
    if let Err(e) = result {
        e.exit(USAGE);
    }
}

// ---------------------------------------------------------------- spawn

fn spawn_strata(rt: &strata_rt::Runtime, tasks: u64) -> u64 {
    rt.block_on(async move {
        strata_rt::spawn(async move {
            let hs: Vec<_> = (0..tasks)
                .map(|i| strata_rt::spawn(async move { i }))
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await.unwrap();
            }
            assert_eq!(sum, tasks * (tasks - 1) / 2);
            tasks
        })
        .await
        .unwrap()
    })
}

fn spawn_tokio(rt: &tokio::runtime::Runtime, tasks: u64) -> u64 {
    rt.block_on(async move {
        tokio::spawn(async move {
            let hs: Vec<_> = (0..tasks).map(|i| tokio::spawn(async move { i })).collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await.unwrap();
            }
            assert_eq!(sum, tasks * (tasks - 1) / 2);
            tasks
        })
        .await
        .unwrap()
    })
}

fn spawn_bench(mut args: Args) -> Result<(), ArgError> {
    let reps: usize = args.at_least("--reps", 8, 1)?;
    let tasks: u64 = args.at_least("--tasks", 100_000, 1)?;
    let workers: usize = args.at_least("--workers", 2, 1)?;
    args.finish()?;
    let srt = strata_rt::Runtime::builder()
        .worker_threads(workers)
        .build()
        .unwrap();
    let trt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .unwrap();
    // Warm-up: allocators, thread start, page faults.
    spawn_strata(&srt, tasks);
    spawn_tokio(&trt, tasks);
    let (mut s, mut t) = (Vec::new(), Vec::new());
    report::warn_unbalanced(reps, 2);
    for rep in 0..reps {
        for k in 0..2 {
            if report::rotated(rep, k, 2) == 0 {
                s.push(report::measure(|| spawn_strata(&srt, tasks)));
            } else {
                t.push(report::measure(|| spawn_tokio(&trt, tasks)));
            }
        }
    }
    println!("spawn-and-join: {tasks} tasks per run, {workers} workers, {reps} runs each (median)");
    print_table(&[("strata", &s), ("tokio", &t)], "tasks/s");
    Ok(())
}

// ---------------------------------------------------------------- echo

fn serve(mut args: Args) -> Result<(), ArgError> {
    let which = args.positional().unwrap_or_default();
    let workers: usize = args.at_least("--workers", 1, 1)?;
    args.finish()?;
    let serve = match which.as_str() {
        "echo-strata" => serve_strata,
        "echo-tokio" => serve_tokio,
        _ => {
            return Err(ArgError::new(format!(
                "unknown server {which:?}; use echo-strata or echo-tokio"
            )));
        }
    };
    if let Err(e) = server_proc::pin_from_env() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    serve(workers);
    Ok(())
}

fn serve_strata(workers: usize) {
    let rt = strata_rt::Runtime::builder()
        .worker_threads(workers)
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    rt.block_on(async move {
        // One SO_REUSEPORT listener per worker: accepted connections stay
        // on the worker that accepted them.
        let first = strata_rt::net::TcpListener::builder("127.0.0.1:0".parse().unwrap())
            .reuse_port(true)
            .bind()
            .unwrap();
        let addr = first.local_addr().unwrap();
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(
                strata_rt::net::TcpListener::builder(addr)
                    .reuse_port(true)
                    .bind()
                    .unwrap(),
            );
        }
        for (w, l) in listeners.into_iter().enumerate() {
            handle.spawn_on(w, async move {
                loop {
                    let Ok((mut s, _)) = l.accept().await else {
                        continue;
                    };
                    s.set_nodelay(true).unwrap();
                    strata_rt::spawn(async move {
                        let mut buf = vec![0u8; 4096];
                        loop {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if s.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    });
                }
            });
        }
        println!("listening {addr}");
        std::future::pending::<()>().await
    })
}

fn serve_tokio(workers: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening {}", l.local_addr().unwrap());
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    })
}

fn echo_bench(mut args: Args) -> Result<(), ArgError> {
    let reps: usize = args.at_least("--reps", 4, 1)?;
    let duration = args.secs("--secs", 10.0)?;
    let conns: usize = args.at_least("--conns", 64, 1)?;
    let workers: usize = args.at_least("--workers", 1, 1)?;
    let pin = !args.flag("--no-pin")?;
    args.finish()?;
    let secs = duration.as_secs_f64();
    // Servers on the first CPU the process may use, the load generator on
    // the last, if there are two and pinning works.
    let layout = pin.then(|| {
        server_proc::allowed_cpus()
            .map_err(|e| format!("sched_getaffinity: {e}"))
            .and_then(|allowed| server_proc::pin_layout(&allowed))
    });
    let server_pin = match layout {
        Some(Ok((server, _))) => Some(server),
        _ => None,
    };
    let msg: Vec<u8> = (0..64u8).collect();
    let mut results: Vec<(&str, Vec<Sample>, Vec<u64>)> = vec![
        ("strata", Vec::new(), Vec::new()),
        ("tokio", Vec::new(), Vec::new()),
    ];
    let n = results.len();
    report::warn_unbalanced(reps, n);
    for rep in 0..reps {
        // Each round starts with the next server.
        for k in 0..n {
            let (name, samples, p99s) = &mut results[report::rotated(rep, k, n)];
            let server = ServerProc::start(
                &[
                    "serve".into(),
                    format!("echo-{name}"),
                    "--workers".into(),
                    workers.to_string(),
                ],
                server_pin,
            )
            .expect("start server");
            let spec = LoadSpec {
                addr: server.addr,
                conns,
                depth: 1,
                request: msg.clone(),
                response: msg.clone(),
                duration,
                progress: Progress::on_terminal(),
            };
            let (u0, s0) = server.cpu();
            let r = loadgen::run(&spec).expect("load run");
            let (u1, s1) = server.cpu();
            eprintln!(
                "  run {rep} {name}: {:.0} req/s, p99 {} us, client cpu {:.0}%",
                r.responses as f64 / r.elapsed.as_secs_f64(),
                r.latency_us.value_at_quantile(0.99),
                100.0 * r.client_cpu.as_secs_f64() / r.elapsed.as_secs_f64()
            );
            samples.push(Sample {
                ops: r.responses,
                wall: r.elapsed,
                user: u1.saturating_sub(u0),
                sys: s1.saturating_sub(s0),
            });
            p99s.push(r.latency_us.value_at_quantile(0.99));
        }
    }
    println!(
        "tcp echo: {conns} connections, 64-byte messages, one in flight each, {secs} s runs, \
         server {workers} worker(s), {}",
        match &layout {
            Some(Ok((server, client))) =>
                format!("pinned (server cpu {server}, client cpu {client})"),
            Some(Err(why)) => format!("pinned requested, not possible: {why}; unpinned"),
            None => "unpinned".to_string(),
        }
    );
    let rows: Vec<(&str, &Vec<Sample>)> = results.iter().map(|(n, s, _)| (*n, s)).collect();
    print_table(&rows, "round trips/s");
    for (name, _, p99s) in &results {
        println!(
            "{name:>8} p99 latency (median of runs): {:.0} us",
            strata_bench::report::median(p99s.iter().map(|&p| p as f64))
        );
    }
    Ok(())
}

/// The table of medians (the last row is the base of `vs tokio`), then the
/// first row's rate over the others' round by round.
fn print_table(rows: &[(&str, &Vec<Sample>)], unit: &str) {
    let base = report::median_rate(rows.last().expect("rows").1);
    println!(
        "{:>8} | {:>14} | {:>9} | {:>13} | {:>13} | {:>11}",
        "", unit, "vs tokio", "user us/op", "sys us/op", "spread"
    );
    for (name, samples) in rows {
        let rate = report::median_rate(samples);
        let ops: u64 = samples.iter().map(|s| s.ops).sum();
        let user: f64 = samples.iter().map(|s| s.user.as_secs_f64()).sum();
        let sys: f64 = samples.iter().map(|s| s.sys.as_secs_f64()).sum();
        let (lo, hi) = report::spread(samples);
        println!(
            "{:>8} | {:>14.0} | {:>8.2}x | {:>13.3} | {:>13.3} | {:>4.2}-{:.2}",
            name,
            rate,
            rate / base,
            user * 1e6 / ops as f64,
            sys * 1e6 / ops as f64,
            lo,
            hi
        );
    }
    let rates: Vec<(&str, Vec<f64>)> = rows
        .iter()
        .map(|(name, samples)| (*name, samples.iter().map(Sample::rate).collect()))
        .collect();
    if let Some(((first, theirs), others)) = rates.split_first() {
        let others: Vec<(&str, &[f64])> = others.iter().map(|(n, r)| (*n, &r[..])).collect();
        if let Some(line) = report::per_round((first, theirs), &others) {
            println!("{line}");
        }
    }
}
