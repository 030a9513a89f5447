//! The line-server benchmark: strata against tokio + tokio-util and a
//! hand-written mio server, same protocol, same load generator, one run.
//!
//! ```text
//! cargo run --release -p strata-bench --bin line -- [--secs 5] [--reps 4] [--conns 64]
//!       [--depths 1,16] [--modes pinned,shared] [--idle 10000] [--servers strata,tokio,tokio-batch,mio]
//! ```
//!
//! * pinned: each server runs one worker pinned to the first CPU the
//!   process may use (`sched_getaffinity`), the load generator runs on the
//!   last; with fewer than two such CPUs, or if pinning fails, the table
//!   header says `pinned requested, not possible: <why>` and the run is
//!   unpinned (one server worker);
//! * shared: servers use one worker per core and share the cores with the
//!   load generator.
//!
//! Servers are run interleaved, each round starting with the next one
//! (A B C, B C A, C A B ...; the cyclic order itself stays, so each server
//! follows the same one whenever it is not first). The table reports the
//! median requests/s, median p50/p99 latency, the server's own CPU time
//! per request (user, system, and the two together, from
//! `/proc/<pid>/stat`: the kernel measures a process's run time exactly
//! but splits it into user and system by sampling at clock ticks, so the
//! sum is the column to compare, the split a rough guide), and how busy the
//! server and the load generator were (CPU time over wall time; the side
//! near 100 % is the bottleneck; in pinned mode each has one core).
//! Under each table, the first server's rate over each other server's is
//! also given round by round (median, range, rounds ahead), which cancels
//! the machine's drift between rounds.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use strata_bench::args::{ArgError, Args};
use strata_bench::loadgen::{self, LoadSpec, Progress};
use strata_bench::report;
use strata_bench::server_proc::{self, ServerProc};

const USAGE: &str = "\
line server benchmark: strata against tokio and a hand-written mio server

usage:
  line [--secs 5] [--reps 4] [--conns 64] [--depths 1,16] [--modes pinned,shared]
       [--idle 10000] [--servers strata,tokio,tokio-batch,mio] [--progress|--quiet]
      run the side-by-side benchmark and print the tables
  line serve strata|tokio|tokio-batch|mio [--workers 1]
      run one server on a free port of 127.0.0.1 and print its address
  line load ADDR [--conns 64] [--depth 16] [--secs 5] [--progress|--quiet]
      drive a server started separately (for profiling)

--secs takes fractions (0.5). A progress line (seconds, requests/s over
the last second, responses) shows on standard error while the load runs,
when that is a terminal; --progress prints it anyway, --quiet never.
Unknown flags and values that do not parse are errors (exit status 2).";

/// The live progress line: on a terminal unless `--quiet`, always with
/// `--progress` (a line per second when not on a terminal).
fn progress(args: &mut Args) -> Result<Progress, ArgError> {
    let (on, off) = (args.flag("--progress")?, args.flag("--quiet")?);
    Ok(if on {
        Progress::Live
    } else if off {
        Progress::Off
    } else {
        Progress::on_terminal()
    })
}

const SERVERS: [&str; 4] = ["strata", "tokio", "tokio-batch", "mio"];

fn main() {
    let mut args = Args::from_env(USAGE);
    let result = match args.positional().as_deref() {
        Some("serve") => serve(args),
        Some("load") => load(args),
        Some(other) => Err(ArgError::new(format!(
            "unknown command {other:?}: `serve`, `load`, or flags only"
        ))),
        None => bench(args),
    };
    if let Err(e) = result {
        e.exit(USAGE);
    }
}

/// Load only, against a server started separately (for profiling):
/// `line load ADDR [--conns 64] [--depth 16] [--secs 5]`.
fn load(mut args: Args) -> Result<(), ArgError> {
    let addr: SocketAddr = args
        .positional()
        .ok_or_else(|| ArgError::new("`load` needs a server address, like 127.0.0.1:12345"))?
        .parse()
        .map_err(|e| ArgError::new(format!("`load`: bad server address: {e}")))?;
    if !addr.ip().is_loopback() {
        return Err(ArgError::new("`load` only targets loopback addresses"));
    }
    let spec = LoadSpec {
        addr,
        conns: args.at_least("--conns", 64, 1)?,
        depth: args.at_least("--depth", 16, 1)?,
        request: b"hello\n".to_vec(),
        response: b"world\n".to_vec(),
        duration: args.secs("--secs", 5.0)?,
        progress: progress(&mut args)?,
    };
    args.finish()?;
    let r = loadgen::run(&spec).expect("load run");
    println!(
        "{} responses, {:.0} req/s, p50 {} us, p99 {} us",
        r.responses,
        r.responses as f64 / r.elapsed.as_secs_f64(),
        r.latency_us.value_at_quantile(0.5),
        r.latency_us.value_at_quantile(0.99)
    );
    Ok(())
}

fn bench(mut args: Args) -> Result<(), ArgError> {
    let duration = args.secs("--secs", 5.0)?;
    let reps: usize = args.at_least("--reps", 4, 1)?;
    let conns: usize = args.at_least("--conns", 64, 1)?;
    let idle: usize = args.value("--idle", 10_000)?;
    let depths: Vec<usize> = args.list("--depths", "1,16")?;
    if depths.contains(&0) {
        return Err(ArgError::new("--depths: a depth must be at least 1"));
    }
    let modes = args.choices("--modes", "pinned,shared", &["pinned", "shared"])?;
    let servers = args.choices("--servers", &SERVERS.join(","), &SERVERS)?;
    let progress = progress(&mut args)?;
    args.finish()?;
    let secs = duration.as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    raise_fd_limit((idle as u64) * 2 + 1000);

    println!("# line server benchmark");
    println!("machine: {cores} cores, {}", cpu_model());
    println!(
        "load: {conns} connections, `hello\\n` -> `world\\n`, every response checked, \
         {secs} s per run, {reps} runs per server (interleaved), medians shown\n"
    );
    // The process's own CPUs, read before any pinning.
    let allowed = server_proc::allowed_cpus().expect("sched_getaffinity");
    // The same count of rounds and servers in every table: one note.
    report::warn_unbalanced(reps, servers.len());
    for mode in &modes {
        let layout = (mode == "pinned").then(|| server_proc::pin_layout(&allowed));
        if !matches!(layout, Some(Ok(_))) {
            unpin(&allowed);
        }
        let workers = if mode == "pinned" { 1 } else { cores };
        let server_pin = match layout {
            Some(Ok((server, _))) => Some(server),
            _ => None,
        };
        let label = match &layout {
            Some(Ok((server, client))) => {
                format!("pinned (1 server worker on CPU {server}, load generator on CPU {client})")
            }
            Some(Err(why)) => {
                format!("pinned requested, not possible: {why}; unpinned, 1 server worker")
            }
            None => format!(
                "{mode} ({workers} server worker{})",
                if workers == 1 { "" } else { "s" }
            ),
        };
        for &depth in &depths {
            let mut rows: Vec<Row> = servers.iter().map(|s| Row::new(s)).collect();
            let n = rows.len();
            for rep in 0..reps {
                // Each round starts with the next server, so that none is
                // always the first run (or always follows the same one).
                for k in 0..n {
                    let row = &mut rows[report::rotated(rep, k, n)];
                    let server = start(&row.name, workers, server_pin);
                    let spec = LoadSpec {
                        addr: server.addr,
                        conns,
                        depth,
                        request: b"hello\n".to_vec(),
                        response: b"world\n".to_vec(),
                        duration,
                        progress,
                    };
                    let (u0, s0) = server.cpu();
                    let r = loadgen::run(&spec).expect("load run");
                    let (u1, s1) = server.cpu();
                    let n = r.responses as f64;
                    row.rate.push(n / r.elapsed.as_secs_f64());
                    row.p50.push(r.latency_us.value_at_quantile(0.5) as f64);
                    row.p99.push(r.latency_us.value_at_quantile(0.99) as f64);
                    row.user.push(u1.saturating_sub(u0).as_secs_f64() * 1e6 / n);
                    row.sys.push(s1.saturating_sub(s0).as_secs_f64() * 1e6 / n);
                    row.cpu
                        .push((u1 + s1).saturating_sub(u0 + s0).as_secs_f64() * 1e6 / n);
                    row.client
                        .push(r.client_cpu.as_secs_f64() / r.elapsed.as_secs_f64());
                    let server_cpu = (u1 + s1).saturating_sub(u0 + s0);
                    row.server
                        .push(server_cpu.as_secs_f64() / r.elapsed.as_secs_f64());
                }
            }
            println!("## {label}, C={conns}, D={depth}");
            print!("{}", table(&rows));
            if let Some((first, others)) = rows.split_first() {
                let others: Vec<(&str, &[f64])> = others
                    .iter()
                    .map(|r| (r.name.as_str(), &r.rate[..]))
                    .collect();
                if let Some(line) = report::per_round((&first.name, &first.rate), &others) {
                    println!("\n{line}");
                }
            }
            println!();
        }
    }
    if idle > 0 {
        unpin(&allowed);
        println!("## memory: {idle} idle connections after one round trip each");
        println!("| server | RSS before | RSS after | per connection |");
        println!("|---|---:|---:|---:|");
        for name in &servers {
            let server = start(name, 1, None);
            match idle_memory(&server, idle) {
                Ok((before, after)) => println!(
                    "| {name} | {:.1} MiB | {:.1} MiB | {:.2} KiB |",
                    before as f64 / 1048576.0,
                    after as f64 / 1048576.0,
                    after.saturating_sub(before) as f64 / idle as f64 / 1024.0
                ),
                Err(e) => println!("| {name} | failed: {e} | | |"),
            }
        }
    }
    Ok(())
}

struct Row {
    name: String,
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    user: Vec<f64>,
    sys: Vec<f64>,
    /// User and system together, per request.
    cpu: Vec<f64>,
    client: Vec<f64>,
    server: Vec<f64>,
}

impl Row {
    fn new(name: &str) -> Row {
        Row {
            name: name.to_string(),
            rate: vec![],
            p50: vec![],
            p99: vec![],
            user: vec![],
            sys: vec![],
            cpu: vec![],
            client: vec![],
            server: vec![],
        }
    }
}

fn median(v: &[f64]) -> f64 {
    strata_bench::report::median(v.iter().copied())
}

/// The table of medians, one row per server, and the note under it.
fn table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let of = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| median(&r.rate))
    };
    let tokio = of("tokio");
    let batch = of("tokio-batch");
    let mio = of("mio");
    let mut out = String::new();
    out.push_str(
        "| server | req/s | vs tokio | vs tokio-batch | vs mio | p50 us | p99 us | user us/req | sys us/req | user+sys us/req | spread | server cpu | client cpu |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let m = median(&r.rate);
        let lo = r.rate.iter().cloned().fold(f64::INFINITY, f64::min) / m;
        let hi = r.rate.iter().cloned().fold(0.0, f64::max) / m;
        let ratio = |b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.2}x", m / b));
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.2}-{:.2} | {:.0}% | {:.0}% |",
            r.name,
            m,
            ratio(tokio),
            ratio(batch),
            ratio(mio),
            median(&r.p50),
            median(&r.p99),
            median(&r.user),
            median(&r.sys),
            median(&r.cpu),
            lo,
            hi,
            100.0 * median(&r.server),
            100.0 * median(&r.client)
        );
    }
    out.push_str(
        "\nCPU per request: user+sys is the server's measured run time; the kernel \
         splits it into user and sys by sampling at clock ticks, so compare servers \
         on user+sys and read the split as a rough guide.\n",
    );
    out
}

fn start(name: &str, workers: usize, cpu: Option<usize>) -> ServerProc {
    ServerProc::start(
        &[
            "serve".into(),
            name.to_string(),
            "--workers".into(),
            workers.to_string(),
        ],
        cpu,
    )
    .unwrap_or_else(|e| panic!("start {name}: {e}"))
}

fn serve(mut args: Args) -> Result<(), ArgError> {
    let name = args.positional();
    let workers: usize = args.at_least("--workers", 1, 1)?;
    args.finish()?;
    let serve = match name.as_deref() {
        Some("strata") => serve_strata,
        Some("tokio") => strata_bench::tokio_line::serve,
        Some("tokio-batch") => strata_bench::tokio_line::serve_batched,
        Some("mio") => strata_bench::mio_line::serve,
        other => {
            return Err(ArgError::new(format!(
                "unknown server {:?}; use {}",
                other.unwrap_or(""),
                SERVERS.join(", ")
            )));
        }
    };
    if let Err(e) = server_proc::pin_from_env() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    serve(workers).expect("server");
    Ok(())
}

fn serve_strata(workers: usize) -> std::io::Result<()> {
    use strata_line::{HelloWorld, LineProto};
    use strata_proto::TcpServer;
    let server = TcpServer::new(LineProto::new(), "127.0.0.1:0".parse().unwrap())
        .threads(workers)
        .max_connections(100_000)
        .start(|| Ok(HelloWorld))?;
    println!("listening {}", server.local_addr());
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}

/// Opens `n` connections, one round trip each, and returns the server's
/// RSS before and after (connections still open).
fn idle_memory(server: &ServerProc, n: usize) -> std::io::Result<(u64, u64)> {
    // Warm up: a few round trips so lazy one-time allocations are done.
    let mut warm = Vec::new();
    for _ in 0..16 {
        warm.push(round_trip(server)?);
    }
    drop(warm);
    std::thread::sleep(Duration::from_millis(200));
    let before = server.rss_bytes().unwrap_or(0);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(round_trip(server)?);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss_bytes().unwrap_or(0);
    drop(conns);
    Ok((before, after))
}

fn round_trip(server: &ServerProc) -> std::io::Result<BufReader<TcpStream>> {
    let mut s = TcpStream::connect(server.addr)?;
    s.write_all(b"hello\n")?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    if line != "world\n" {
        return Err(std::io::Error::other(format!("bad answer {line:?}")));
    }
    Ok(r)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Lets this thread run on all the process's CPUs again.
fn unpin(allowed: &[usize]) {
    server_proc::set_affinity(allowed)
        .unwrap_or_else(|e| panic!("restore the CPU mask for an unpinned run: {e}"));
}

// `rlim_t` is `u64` on some targets and not on others.
#[allow(clippy::unnecessary_cast)]
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let target = (want as libc::rlim_t).min(lim.rlim_max);
    if lim.rlim_cur < target {
        lim.rlim_cur = target;
        // SAFETY: raising the soft limit up to the hard limit is allowed.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, rate: f64, user: f64, sys: f64) -> Row {
        let mut r = Row::new(name);
        r.rate = vec![rate, rate];
        r.p50 = vec![100.0, 100.0];
        r.p99 = vec![200.0, 200.0];
        // The sum is taken per run, then its median: not the sum of the
        // medians of the two parts.
        r.user = vec![user, user + 0.5];
        r.sys = vec![sys + 0.5, sys];
        r.cpu = vec![user + sys + 0.5, user + sys + 0.5];
        r.server = vec![0.5, 0.5];
        r.client = vec![0.25, 0.25];
        r
    }

    #[test]
    fn the_table_has_the_user_plus_sys_column_and_the_note() {
        let t = table(&[
            row("strata", 2000.0, 1.0, 0.25),
            row("tokio", 1000.0, 2.0, 1.0),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        let cells = |l: &str| l.matches('|').count();
        assert!(lines[0].contains("| user us/req | sys us/req | user+sys us/req | spread |"));
        assert_eq!(cells(lines[0]), cells(lines[1]));
        assert_eq!(cells(lines[0]), cells(lines[2]));
        assert_eq!(
            lines[2],
            "| strata | 2000 | 2.00x | - | - | 100 | 200 | 1.250 | 0.500 | 1.750 | 1.00-1.00 | 50% | 25% |"
        );
        assert!(lines[3].contains("| 2.250 | 1.250 | 3.500 |"));
        assert!(t.contains("sampling at clock ticks") && t.contains("compare servers on user+sys"));
    }
}
