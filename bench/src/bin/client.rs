//! The pipelined client, strata's `TcpClient` against the same client
//! written on tokio + tokio-util, calling one server, in one run.
//!
//! The server is strata's line server (`hello` -> `world`), one worker,
//! in a child process pinned to the first allowed CPU; the clients run in
//! this process, pinned to the last (unpinned if fewer than two CPUs are
//! allowed). Each client opens `--conns` connections and runs `--callers`
//! tasks per connection, each calling `hello` in a loop for `--secs`:
//! many calls in flight per connection, matched to their answers in
//! order.
//!
//! The tokio side is the design a tokio user writes for a pipelined
//! client (there is none in tokio or tower): a task per connection over
//! tokio-util's `Framed` and `LinesCodec`, fed by an unbounded channel of
//! (request, oneshot sender, semaphore permit), the permits bounding the
//! calls in flight as strata's do, on a current-thread runtime. strata's
//! side runs on a one-worker runtime.
//!
//! Runs alternate (strata, tokio, then tokio, strata, ...) over `--reps`
//! rounds; medians and per-round ratios are printed.
//!
//! ```text
//! cargo run --release -p strata-bench --bin client [-- --reps 6 --secs 3 --conns 4 --callers 16 --max-in-flight 64]
//! ```

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{Sink, Stream};
use hdrhistogram::Histogram;
use strata_bench::args::{ArgError, Args};
use strata_bench::report;
use strata_bench::server_proc::{self, ServerProc};
use strata_proto::TcpClient;
use strata_proto::pipeline::ClientProto;
use strata_service::Service;

const USAGE: &str = "\
pipelined client: strata's TcpClient against a tokio + tokio-util client

usage:
  client [--reps 6] [--secs 3] [--conns 4] [--callers 16] [--max-in-flight 64]
         [--sides strata,tokio]
  client serve
      run the strata line server (one worker) and print its address

Unknown flags and values that do not parse are errors (exit status 2).";

struct Options {
    reps: usize,
    secs: Duration,
    conns: usize,
    callers: usize,
    max_in_flight: usize,
    sides: Vec<String>,
}

fn main() {
    let mut args = Args::from_env(USAGE);
    if args.positional().as_deref() == Some("serve") {
        if let Err(e) = args.finish() {
            e.exit(USAGE);
        }
        serve();
    }
    let opts = options(args).unwrap_or_else(|e| e.exit(USAGE));
    run(&opts);
}

fn options(mut args: Args) -> Result<Options, ArgError> {
    let opts = Options {
        reps: args.at_least("--reps", 6, 1)?,
        secs: args.secs("--secs", 3.0)?,
        conns: args.at_least("--conns", 4, 1)?,
        callers: args.at_least("--callers", 16, 1)?,
        max_in_flight: args.at_least("--max-in-flight", 64, 1)?,
        sides: args.choices("--sides", "strata,tokio", &["strata", "tokio"])?,
    };
    args.finish()?;
    Ok(opts)
}

fn serve() -> ! {
    use strata_line::{HelloWorld, LineProto};
    if let Err(e) = server_proc::pin_from_env() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    let server = strata_proto::TcpServer::new(LineProto::new(), "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .max_connections(100_000)
        .start(|| Ok(HelloWorld))
        .expect("server");
    println!("listening {}", server.local_addr());
    std::io::stdout().flush().expect("stdout");
    loop {
        std::thread::park();
    }
}

/// One client's run: calls made, wall time, latency of each call (µs).
struct RunResult {
    calls: u64,
    wall: Duration,
    latency: Histogram<u64>,
}

/// One side's run: connections, callers per connection, calls in flight
/// per connection, duration, server address.
type Side = fn(usize, usize, usize, Duration, SocketAddr) -> RunResult;

impl RunResult {
    /// The callers' counts and latencies together, timed from `start`.
    fn sum(start: Instant, each: Vec<(u64, Histogram<u64>)>) -> RunResult {
        let mut latency = histogram();
        let mut calls = 0;
        for (n, h) in each {
            calls += n;
            latency.add(h).expect("histogram");
        }
        RunResult {
            calls,
            wall: start.elapsed(),
            latency,
        }
    }
}

/// One caller, on either side: calls `hello` in a loop until `end`,
/// checking each answer and recording its latency.
async fn caller<F: Future<Output = String>>(
    mut call: impl FnMut() -> F,
    end: Instant,
) -> (u64, Histogram<u64>) {
    let mut latency = histogram();
    let mut calls = 0u64;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            return (calls, latency);
        }
        assert_eq!(call().await, "world");
        latency.saturating_record(t0.elapsed().as_micros() as u64);
        calls += 1;
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn run(opts: &Options) {
    let allowed = server_proc::allowed_cpus().expect("sched_getaffinity");
    let layout = server_proc::pin_layout(&allowed);
    let label = match &layout {
        Ok((s, c)) => format!("server (1 worker) on CPU {s}, client on CPU {c}"),
        Err(why) => format!("not pinned: {why}"),
    };
    let server_cpu = layout.as_ref().ok().map(|&(s, _)| s);
    let server = ServerProc::start(&["serve".to_string()], server_cpu).expect("server starts");
    println!("# pipelined client benchmark");
    println!(
        "{label}; {} connections x {} callers, at most {} calls in flight per connection, \
         {:?} per run, {} runs each (interleaved), medians shown\n",
        opts.conns, opts.callers, opts.max_in_flight, opts.secs, opts.reps
    );
    let all: [(&str, Side); 2] = [("strata", run_strata), ("tokio", run_tokio)];
    let sides: Vec<(&str, Side)> = all
        .into_iter()
        .filter(|(name, _)| opts.sides.iter().any(|s| s == name))
        .collect();
    // Warm-up: connections, allocators, the server's first requests.
    for (_, f) in &sides {
        f(
            opts.conns,
            opts.callers,
            opts.max_in_flight,
            Duration::from_millis(300),
            server.addr,
        );
    }
    let mut rates = vec![Vec::new(); sides.len()];
    let mut p50 = rates.clone();
    let mut p99 = rates.clone();
    let mut cpu = rates.clone();
    for rep in 0..opts.reps {
        for k in 0..sides.len() {
            let i = report::rotated(rep, k, sides.len());
            let (u0, s0) = report::process_cpu();
            let r = sides[i].1(
                opts.conns,
                opts.callers,
                opts.max_in_flight,
                opts.secs,
                server.addr,
            );
            let (u1, s1) = report::process_cpu();
            rates[i].push(r.calls as f64 / r.wall.as_secs_f64());
            p50[i].push(r.latency.value_at_quantile(0.5) as f64);
            p99[i].push(r.latency.value_at_quantile(0.99) as f64);
            let used = (u1 + s1).saturating_sub(u0 + s0);
            cpu[i].push(used.as_secs_f64() * 1e6 / r.calls as f64);
        }
    }
    println!("| client | calls/s | spread | p50 µs | p99 µs | client CPU µs/call |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, (name, _)) in sides.iter().enumerate() {
        let lo = rates[i].iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = rates[i].iter().cloned().fold(0.0, f64::max);
        println!(
            "| {name} | {:.0} | {lo:.0}-{hi:.0} | {:.0} | {:.0} | {:.2} |",
            report::median(rates[i].iter().copied()),
            report::median(p50[i].iter().copied()),
            report::median(p99[i].iter().copied()),
            report::median(cpu[i].iter().copied()),
        );
    }
    if sides.len() == 2 {
        let ratio =
            report::median(rates[0].iter().copied()) / report::median(rates[1].iter().copied());
        println!("\nstrata / tokio by medians: {ratio:.2}x");
        if let Some(line) = report::per_round(("strata", &rates[0]), &[("tokio", &rates[1])]) {
            println!("{line}");
        }
    }
}

// ---------------------------------------------------------------- strata

struct Lines;

impl ClientProto for Lines {
    type Request = String;
    type Response = String;
    type Codec = strata_codec::LinesCodec;

    fn codec(&self) -> strata_codec::LinesCodec {
        strata_codec::LinesCodec::new()
    }
}

fn run_strata(
    conns: usize,
    callers: usize,
    max: usize,
    secs: Duration,
    addr: SocketAddr,
) -> RunResult {
    let rt = strata_rt::Runtime::builder()
        .worker_threads(1)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut clients = Vec::new();
        for _ in 0..conns {
            let c = TcpClient::new(Lines).max_in_flight(max).connect(addr).await;
            clients.push(c.expect("connect"));
        }
        let start = Instant::now();
        let end = start + secs;
        let tasks: Vec<_> = clients
            .iter()
            .flat_map(|c| (0..callers).map(move |_| c.clone()))
            .map(|client| {
                strata_rt::spawn(async move {
                    let client = &client;
                    caller(
                        || async move { client.call("hello".to_string()).await.expect("call") },
                        end,
                    )
                    .await
                })
            })
            .collect();
        let mut each = Vec::new();
        for t in tasks {
            each.push(t.await.expect("caller"));
        }
        RunResult::sum(start, each)
    })
}

// ---------------------------------------------------------------- tokio

type TokioCall = (
    String,
    tokio::sync::oneshot::Sender<String>,
    tokio::sync::OwnedSemaphorePermit,
);

/// The tokio client: a handle that queues calls for its connection task.
#[derive(Clone)]
struct TokioClient {
    calls: tokio::sync::mpsc::UnboundedSender<TokioCall>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl TokioClient {
    async fn connect(addr: SocketAddr, max_in_flight: usize) -> std::io::Result<TokioClient> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let framed = tokio_util::codec::Framed::new(stream, tokio_util::codec::LinesCodec::new());
        let (calls, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(drive(framed, queue, max_in_flight));
        Ok(TokioClient {
            calls,
            permits: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
        })
    }

    async fn call(&self, request: String) -> Option<String> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.calls.send((request, reply, permit)).ok()?;
        answer.await.ok()
    }
}

type TokioFramed = tokio_util::codec::Framed<tokio::net::TcpStream, tokio_util::codec::LinesCodec>;

/// The connection task: reads answers and hands each to the oldest
/// waiting call, takes queued calls while there is room, flushes.
async fn drive(
    mut framed: TokioFramed,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<TokioCall>,
    max_in_flight: usize,
) {
    let mut waiting: VecDeque<(
        tokio::sync::oneshot::Sender<String>,
        tokio::sync::OwnedSemaphorePermit,
    )> = VecDeque::new();
    let mut open = true;
    poll_fn(|cx: &mut Context<'_>| {
        loop {
            let mut progress = false;
            loop {
                match Pin::new(&mut framed).poll_next(cx) {
                    Poll::Ready(Some(Ok(line))) => {
                        let Some((reply, _permit)) = waiting.pop_front() else {
                            return Poll::Ready(());
                        };
                        let _ = reply.send(line);
                        progress = true;
                    }
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            while open && waiting.len() < max_in_flight {
                match Sink::<String>::poll_ready(Pin::new(&mut framed), cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
                match queue.poll_recv(cx) {
                    Poll::Ready(Some((request, reply, permit))) => {
                        progress = true;
                        if reply.is_closed() {
                            continue;
                        }
                        if Pin::new(&mut framed).start_send(request).is_err() {
                            return Poll::Ready(());
                        }
                        waiting.push_back((reply, permit));
                    }
                    Poll::Ready(None) => open = false,
                    Poll::Pending => break,
                }
            }
            if let Poll::Ready(Err(_)) = Sink::<String>::poll_flush(Pin::new(&mut framed), cx) {
                return Poll::Ready(());
            }
            if !open && waiting.is_empty() {
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
    })
    .await
}

fn run_tokio(
    conns: usize,
    callers: usize,
    max: usize,
    secs: Duration,
    addr: SocketAddr,
) -> RunResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut clients = Vec::new();
        for _ in 0..conns {
            clients.push(TokioClient::connect(addr, max).await.expect("connect"));
        }
        let start = Instant::now();
        let end = start + secs;
        let tasks: Vec<_> = clients
            .iter()
            .flat_map(|c| (0..callers).map(move |_| c.clone()))
            .map(|client| {
                tokio::spawn(async move {
                    let client = &client;
                    caller(
                        || async move { client.call("hello".to_string()).await.expect("call") },
                        end,
                    )
                    .await
                })
            })
            .collect();
        let mut each = Vec::new();
        for t in tasks {
            each.push(t.await.expect("caller"));
        }
        RunResult::sum(start, each)
    })
}
