//! Lifecycle soak (from a review): repeatedly starts a `TcpServer`, drives
//! it with a random mix of clients, shuts it down at a random moment in a
//! random way, and checks: every request fully sent before shutdown began
//! was answered (client-side count), shutdown returned (hang guard), no
//! thread / fd leak, no panic, no error logged. Plus `Runtime` create/drop
//! cycles. (The review's finding, a shutdown from a blocking closure a
//! handler awaits, is tested in `handle_on_worker.rs`.)
//!
//! Env: LIFECYCLE_SEED (u64), LIFECYCLE_CYCLES (count; small by default
//! so CI stays short: the review ran 3 × 300 server and 3 × 400 runtime
//! cycles).
#![allow(missing_docs, unreachable_pub)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use strata_codec::{LinesCodec, LinesCodecError};
use strata_proto::pipeline::{ErrorAction, ServerProto};
use strata_proto::{ConnectionConfig, ServerHandle, TcpServer};
use strata_service::{BoxError, Service};

// ---------------------------------------------------------------- rng

#[derive(Clone)]
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

// ------------------------------------------------- log + panic capture

static LOG: Mutex<Vec<(tracing::Level, String)>> = Mutex::new(Vec::new());
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SERIAL: Mutex<()> = Mutex::new(());
/// The thread ids of this binary's test threads. The harness starts a
/// test's thread whenever another test ends, at any moment of a cycle of
/// the test holding `SERIAL`; that thread (waiting on `SERIAL`) is no leak
/// of the cycle's, so the thread count leaves these out.
static TEST_THREADS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// This thread's id (from `/proc/thread-self`, a link to `<pid>/task/<tid>`).
fn tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    link.file_name().unwrap().to_str().unwrap().parse().unwrap()
}

/// Leaves this test's thread out of the thread count (see `TEST_THREADS`).
fn note_test_thread() {
    TEST_THREADS.lock().unwrap().push(tid());
}
/// owed, answered, handler shutdowns, exempted misses, unadmitted misses,
/// owed-after-stop-in-flight (owed but connection ended by stop), rejected
static STATS: [AtomicUsize; 7] = [const { AtomicUsize::new(0) }; 7];

struct Capture;
struct Fields(String);
impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}
impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.target().starts_with("strata")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut f = Fields(String::new());
        e.record(&mut f);
        LOG.lock().unwrap().push((*e.metadata().level(), f.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn init() -> std::sync::MutexGuard<'static, ()> {
    note_test_thread();
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(Capture).unwrap();
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS
                .lock()
                .unwrap()
                .push(format!("{:?}: {info}", std::thread::current().name()));
            prev(info);
        }));
    });
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn take_log() -> Vec<(tracing::Level, String)> {
    std::mem::take(&mut *LOG.lock().unwrap())
}

// ------------------------------------------------------ proc counters

fn count_dir(p: &str) -> usize {
    std::fs::read_dir(p).unwrap().count()
}
/// Threads of the process, the harness's test threads left out.
fn threads() -> usize {
    let tests = TEST_THREADS.lock().unwrap().clone();
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|e| {
            let tid = e.as_ref().unwrap().file_name();
            tid.to_str()
                .and_then(|t| t.parse::<u32>().ok())
                .is_none_or(|t| !tests.contains(&t))
        })
        .count()
}
fn fds() -> usize {
    count_dir("/proc/self/fd")
}

/// Waits (hang guard) until threads and fds are back to `base`.
fn settle(base: (usize, usize), secs: u64) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = (threads(), fds());
        if now.0 <= base.0 && now.1 <= base.1 {
            return Ok(());
        }
        if Instant::now() > end {
            let names: Vec<String> = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|e| {
                    std::fs::read_to_string(e.ok()?.path().join("comm"))
                        .ok()
                        .map(|s| s.trim().to_string())
                })
                .collect();
            let fdl: Vec<String> = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| {
                    std::fs::read_link(e.ok()?.path())
                        .ok()
                        .map(|p| p.display().to_string())
                })
                .collect();
            return Err(format!(
                "leak: threads {} -> {} {names:?}; fds {} -> {} {fdl:?}",
                base.0, now.0, base.1, now.1
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ------------------------------------------------------ protocol

struct Proto;
impl ServerProto for Proto {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(256)
    }
    fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
        Some(format!("error: {err}"))
    }
    fn service_error(&self, err: &BoxError) -> ErrorAction<String> {
        ErrorAction::Respond(format!("failed: {err}"))
    }
}

/// Shared between the test thread and the handlers of one cycle.
#[derive(Default)]
struct Ctx {
    /// Set (SeqCst) right before anyone starts the shutdown.
    stop_began: AtomicBool,
    handle: Mutex<Option<ServerHandle>>,
    handler_shutdown_result: Mutex<Option<bool>>,
    detached_done: AtomicUsize,
}

#[derive(Clone)]
struct Svc(Arc<Ctx>);

impl Service<String> for Svc {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        let mut w = req.split(' ');
        let op = w.next().unwrap_or("");
        let arg: u64 = w.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let id = w.next().unwrap_or("?").to_string();
        match op {
            "e" => Ok(id),
            "t" => {
                strata_rt::time::sleep(Duration::from_millis(arg)).await;
                Ok(id)
            }
            "b" => {
                let v = strata_rt::spawn_blocking(move || {
                    std::thread::sleep(Duration::from_millis(arg));
                    7
                })
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
                assert_eq!(v, 7);
                Ok(id)
            }
            "j" => {
                // A Send task with a timer, awaited.
                strata_rt::spawn(async move {
                    strata_rt::time::sleep(Duration::from_millis(arg)).await;
                })
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok(id)
            }
            "d" => {
                // Detached work that may outlive the request (and the server).
                let ctx = self.0.clone();
                drop(strata_rt::spawn_local(async move {
                    strata_rt::time::sleep(Duration::from_millis(arg * 3)).await;
                    ctx.detached_done.fetch_add(1, SeqCst);
                }));
                drop(strata_rt::spawn_blocking(move || {
                    std::thread::sleep(Duration::from_millis(arg.min(30)));
                }));
                Ok(id)
            }
            "x" => {
                // Shutdown from inside a handler.
                self.0.stop_began.store(true, SeqCst);
                let h = self.0.handle.lock().unwrap().take();
                if let Some(h) = h {
                    STATS[2].fetch_add(1, SeqCst);
                    let r = h.shutdown();
                    *self.0.handler_shutdown_result.lock().unwrap() = Some(r);
                }
                Ok(id)
            }
            "y" | "z" => {
                // Shutdown from a blocking closure a handler started:
                // detached (`y`) or awaited by the handler (`z`).
                let ctx = self.0.clone();
                let jh = strata_rt::spawn_blocking(move || {
                    ctx.stop_began.store(true, SeqCst);
                    let h = ctx.handle.lock().unwrap().take();
                    if let Some(h) = h {
                        let r = h.shutdown();
                        *ctx.handler_shutdown_result.lock().unwrap() = Some(r);
                    }
                });
                if op == "z" {
                    let _ = jh.await;
                }
                Ok(id)
            }
            other => Ok(format!("unknown {other}")),
        }
    }
}

// ------------------------------------------------------ clients

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Pipeliner,
    HalfCloser,
    Resetter,
    NeverReader,
    Idle,
    Partial,
}

/// What a checked client reports.
#[derive(Debug, Default)]
struct Report {
    local: Option<SocketAddr>,
    /// Requests whose write completed before shutdown began.
    owed: usize,
    answered: usize,
    /// Admitted (first answer came back), so the limit cannot explain a miss.
    admitted: bool,
    problems: Vec<String>,
    sent_log: Vec<String>,
}

fn random_request(rng: &mut Rng, id: u64, allow_x: bool) -> String {
    if allow_x && rng.chance(8) {
        return format!("x 0 {id}");
    }
    match rng.below(99) {
        0..=49 => format!("e 0 {id}"),
        50..=64 => format!("t {} {id}", rng.below(40)),
        65..=76 => format!("b {} {id}", rng.below(30)),
        77..=86 => format!("j {} {id}", rng.below(30)),
        _ => format!("d {} {id}", rng.below(60)),
    }
}

fn stream(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    Some(s)
}

fn read_line(r: &mut BufReader<TcpStream>) -> Result<Option<String>, std::io::Error> {
    let mut l = String::new();
    match r.read_line(&mut l) {
        Ok(0) => Ok(None),
        Ok(_) if !l.ends_with('\n') => Ok(None),
        Ok(_) => Ok(Some(l.trim_end().to_string())),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A checked client: pipelines batches (or one batch then half-closes, or
/// sends and only reads after `release`), checking answers in order.
fn checked_client(
    kind: Kind,
    addr: SocketAddr,
    ctx: Arc<Ctx>,
    mut rng: Rng,
    allow_x: bool,
    release: Arc<AtomicBool>,
) -> Report {
    let mut rep = Report::default();
    let Some(s) = stream(addr) else {
        return rep;
    };
    rep.local = s.local_addr().ok();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    // Expected ids, in order; and whether each was owed.
    let mut expect: std::collections::VecDeque<(u64, bool)> = Default::default();
    let mut next_id = 1u64;
    let batches = match kind {
        Kind::Pipeliner => rng.range(1, 12),
        _ => 1,
    };
    let mut ended = false;
    'outer: for b in 0..batches {
        let k = rng.range(1, 24);
        let mut buf = String::new();
        let mut ids = vec![];
        for _ in 0..k {
            let id = next_id;
            next_id += 1;
            let req = random_request(&mut rng, id, allow_x && b > 0);
            buf.push_str(&req);
            buf.push('\n');
            ids.push(id);
            rep.sent_log.push(req);
        }
        if w.write_all(buf.as_bytes()).is_err() {
            break;
        }
        let before_stop = !ctx.stop_began.load(SeqCst);
        for id in ids {
            expect.push_back((id, before_stop));
            if before_stop {
                rep.owed += 1;
            }
        }
        match kind {
            Kind::HalfCloser => {
                let _ = w.shutdown(Shutdown::Write);
            }
            Kind::NeverReader => {
                // Read only once the test says the server is gone (or the
                // cycle ends).
                while !release.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            _ => {}
        }
        // Read this batch's answers (the half-closer and never-reader:
        // everything until EOF).
        let want = if kind == Kind::Pipeliner {
            expect.len()
        } else {
            usize::MAX
        };
        let mut got = 0;
        while got < want {
            match read_line(&mut r) {
                Ok(Some(line)) => {
                    let Some((id, _)) = expect.pop_front() else {
                        rep.problems
                            .push(format!("unexpected extra answer {line:?}"));
                        break 'outer;
                    };
                    if line != id.to_string() {
                        rep.problems
                            .push(format!("answer {line:?} where id {id} was expected"));
                        break 'outer;
                    }
                    rep.answered += 1;
                    rep.admitted = true;
                    got += 1;
                }
                Ok(None) => {
                    ended = true;
                    break 'outer;
                }
                Err(e) => {
                    rep.problems.push(format!("read error {e}"));
                    break 'outer;
                }
            }
        }
        if kind == Kind::Pipeliner && rng.chance(20) {
            std::thread::sleep(Duration::from_millis(rng.below(20)));
        }
    }
    if !ended && kind == Kind::Pipeliner && rng.chance(50) {
        let _ = w.shutdown(Shutdown::Write);
        while let Ok(Some(line)) = read_line(&mut r) {
            rep.problems
                .push(format!("answer {line:?} after all were read"));
        }
    }
    let missing: Vec<u64> = expect.iter().filter(|(_, o)| *o).map(|(i, _)| *i).collect();
    if !missing.is_empty() {
        rep.problems.push(format!(
            "{} owed answers missing (ids {missing:?})",
            missing.len()
        ));
    }
    rep
}

/// Unchecked clients: resetters, idlers, partial-line senders.
fn unchecked_client(kind: Kind, addr: SocketAddr, mut rng: Rng, release: Arc<AtomicBool>) {
    let Some(s) = stream(addr) else { return };
    match kind {
        Kind::Resetter => {
            let mut buf = String::new();
            for id in 0..rng.range(1, 40) {
                buf.push_str(&random_request(&mut rng, id, false));
                buf.push('\n');
            }
            let _ = (&s).write_all(buf.as_bytes());
            if rng.chance(50) {
                let mut b = [0u8; 64];
                let _ = (&s).read(&mut b);
            }
            std::thread::sleep(Duration::from_millis(rng.below(30)));
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            drop(s);
        }
        Kind::Idle | Kind::Partial => {
            if kind == Kind::Partial {
                let _ = (&s).write_all(b"e 0 partial-with-no-newli");
            }
            // Hold it until the server closes it (or the cycle ends).
            let mut b = [0u8; 256];
            loop {
                if release.load(SeqCst) {
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                } else {
                    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                }
                match (&s).read(&mut b) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut =>
                    {
                        if release.load(SeqCst) {
                            // Released and still nothing after 30 s: the
                            // server is gone, so the socket should be closed.
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        _ => unreachable!(),
    }
}

fn flood_client(addr: SocketAddr, stop: Arc<AtomicBool>, mut rng: Rng) {
    while !stop.load(SeqCst) {
        if let Ok(s) = TcpStream::connect(addr) {
            if rng.chance(60) {
                let _ = (&s).write_all(b"e 0 flood\n");
            }
            if rng.chance(30) {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
        }
    }
}

// ------------------------------------------------------ the server soak

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    Handle,
    Drop,
    InHandler,
    Flood,
    AtOnce,
}

fn seed() -> u64 {
    std::env::var("LIFECYCLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

fn cycles(default: u64) -> u64 {
    std::env::var("LIFECYCLE_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn server_cycle(rng: &mut Rng) -> Result<String, String> {
    let base = (threads(), fds());
    let _ = take_log();
    let ctx = Arc::new(Ctx::default());
    let nthreads = rng.range(1, 2) as usize;
    let unlimited = rng.chance(50);
    let max_conns = if unlimited {
        1000
    } else {
        rng.range(2, 48) as usize
    };
    let pick_timeout = |rng: &mut Rng| match rng.below(4) {
        0 => None,
        1 => Some(Duration::from_millis(rng.range(20, 200))),
        2 => Some(Duration::from_millis(rng.range(200, 1000))),
        _ => Some(Duration::from_secs(5)),
    };
    let cfg = ConnectionConfig::default()
        .max_in_flight(rng.range(1, 8) as usize)
        .write_high_water_mark(rng.range(16, 4096) as usize)
        .idle_timeout(pick_timeout(rng))
        .read_timeout(pick_timeout(rng))
        .write_timeout(pick_timeout(rng));
    let shutdown_timeout = Duration::from_secs(10);
    let mode = match rng.below(5) {
        0 => Stop::Handle,
        1 => Stop::Drop,
        2 => Stop::InHandler,
        3 => Stop::Flood,
        _ => Stop::AtOnce,
    };
    let desc = format!("threads={nthreads} max_conns={max_conns} cfg={cfg:?} mode={mode:?}");
    let svc = Svc(ctx.clone());
    let handle = TcpServer::new(Proto, "127.0.0.1:0".parse().unwrap())
        .threads(nthreads)
        .max_connections(max_conns)
        .backlog(rng.range(1, 64) as u32)
        .connection_config(cfg)
        .shutdown_timeout(shutdown_timeout)
        .start(move || Ok::<_, std::io::Error>(svc.clone()))
        .map_err(|e| format!("start: {e}"))?;
    let addr = handle.local_addr();
    *ctx.handle.lock().unwrap() = Some(handle);

    let release = Arc::new(AtomicBool::new(false));
    let flood_stop = Arc::new(AtomicBool::new(false));
    let nclients = rng.range(1, 10);
    let mut checked = vec![];
    let mut unchecked = vec![];
    let mut x_given = false;
    for _ in 0..nclients {
        let kind = match rng.below(10) {
            0..=3 => Kind::Pipeliner,
            4 | 5 => Kind::HalfCloser,
            6 => Kind::Resetter,
            7 => Kind::NeverReader,
            8 => Kind::Idle,
            _ => Kind::Partial,
        };
        let crng = Rng(rng.next());
        let (ctx2, rel) = (ctx.clone(), release.clone());
        match kind {
            Kind::Pipeliner | Kind::HalfCloser | Kind::NeverReader => {
                let allow_x = mode == Stop::InHandler && kind == Kind::Pipeliner && !x_given;
                x_given |= allow_x;
                checked.push((
                    kind,
                    std::thread::spawn(move || {
                        checked_client(kind, addr, ctx2, crng, allow_x, rel)
                    }),
                ));
            }
            _ => unchecked.push(std::thread::spawn(move || {
                unchecked_client(kind, addr, crng, rel)
            })),
        }
    }
    let mut floods = vec![];
    if mode == Stop::Flood {
        for _ in 0..rng.range(1, 4) {
            let (st, crng) = (flood_stop.clone(), Rng(rng.next()));
            floods.push(std::thread::spawn(move || flood_client(addr, st, crng)));
        }
    }

    // Shut down.
    let delay = Duration::from_millis(match mode {
        Stop::AtOnce => 0,
        Stop::Flood => rng.below(30),
        _ => rng.below(150),
    });
    let mut shutdown_result = None;
    let mut elapsed = Duration::ZERO;
    match mode {
        Stop::InHandler => {
            // Wait for the clients; a handler shuts down (if an `x` was
            // sent), else fall back to the handle after the clients end.
            let end = Instant::now() + Duration::from_secs(60);
            while checked
                .iter()
                .filter(|(k, _)| *k == Kind::Pipeliner)
                .any(|(_, t)| !t.is_finished())
                && Instant::now() < end
                && ctx.handle.lock().unwrap().is_some()
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        _ => std::thread::sleep(delay),
    }
    let h = ctx.handle.lock().unwrap().take();
    if let Some(h) = h {
        ctx.stop_began.store(true, SeqCst);
        let t0 = Instant::now();
        if mode == Stop::Drop {
            drop(h);
        } else {
            shutdown_result = Some(h.shutdown());
        }
        elapsed = t0.elapsed();
    }
    flood_stop.store(true, SeqCst);
    release.store(true, SeqCst);

    let mut problems = vec![];
    if elapsed > shutdown_timeout + Duration::from_secs(10) {
        problems.push(format!("shutdown took {elapsed:?}"));
    }
    if shutdown_result == Some(false) {
        problems.push(format!("shutdown returned false after {elapsed:?}"));
    }
    if *ctx.handler_shutdown_result.lock().unwrap() == Some(false) {
        problems.push("in-handler shutdown returned false".into());
    }
    // Join clients (hang guard: their sockets time out at 30 s).
    let log_snapshot = |log: &[(tracing::Level, String)]| -> Vec<String> {
        log.iter().map(|(l, m)| format!("{l} {m}")).collect()
    };
    let mut reports = vec![];
    for (kind, t) in checked {
        match t.join() {
            Ok(r) => reports.push((kind, r)),
            Err(_) => problems.push("client thread panicked".into()),
        }
    }
    for t in unchecked.into_iter().chain(floods) {
        if t.join().is_err() {
            problems.push("unchecked client panicked".into());
        }
    }
    // The in-handler shutdown's helper thread finishes on its own: settle.
    if let Err(e) = settle(base, 30) {
        problems.push(e);
    }
    let log = take_log();
    let timed_out: HashSet<String> = log
        .iter()
        .filter(|(_, m)| m.contains("timeout") || m.contains("the peer took no"))
        .filter_map(|(_, m)| {
            let i = m.find("peer=")?;
            Some(m[i + 5..].split(' ').next()?.to_string())
        })
        .collect();
    for (kind, r) in &reports {
        let peer = r.local.map(|a| a.to_string()).unwrap_or_default();
        let exempt = timed_out.contains(&peer);
        let opened = log
            .iter()
            .any(|(_, m)| m.contains("connection opened") && m.contains(&format!("peer={peer} ")));
        STATS[0].fetch_add(r.owed, SeqCst);
        STATS[5].fetch_add(usize::from(opened), SeqCst);
        STATS[6].fetch_add(1, SeqCst);
        STATS[1].fetch_add(r.answered, SeqCst);
        for p in &r.problems {
            if p.contains("owed answers missing")
                && (exempt || !(r.admitted || opened || (unlimited && mode != Stop::Flood)))
            {
                STATS[if exempt { 3 } else { 4 }].fetch_add(1, SeqCst);
                continue;
            }
            let plog: Vec<&String> = log
                .iter()
                .map(|(_, m)| m)
                .filter(|m| m.contains(&format!("peer={peer} ")))
                .collect();
            problems.push(format!(
                "{kind:?} {peer} (admitted={}, opened={opened}, owed={}, answered={}): {p}; sent {:?}; server log for peer: {plog:?}",
                r.admitted, r.owed, r.answered, r.sent_log
            ));
        }
    }
    for (level, m) in &log {
        if *level == tracing::Level::ERROR
            || (*level == tracing::Level::WARN && !m.contains("connection limit reached"))
        {
            problems.push(format!("logged {level}: {m}"));
        }
    }
    let panics = std::mem::take(&mut *PANICS.lock().unwrap());
    if !panics.is_empty() {
        problems.push(format!("panics: {panics:?}"));
    }
    if problems.is_empty() {
        Ok(desc)
    } else {
        let _ = log_snapshot;
        Err(format!("{desc}\n  {}", problems.join("\n  ")))
    }
}

#[test]
fn server_lifecycle_soak() {
    let _serial = init();
    let seed = seed();
    let n = cycles(15);
    let mut rng = Rng(seed);
    let t0 = Instant::now();
    let mut failures = vec![];
    // Warm the process (first-use allocations, lazily opened fds).
    let _ = server_cycle(&mut Rng(1));
    for cycle in 0..n {
        let mut crng = Rng(rng.next());
        let cseed = crng.0;
        match server_cycle(&mut crng) {
            Ok(_) => {}
            Err(e) => {
                eprintln!("FAIL seed={seed} cycle={cycle} cycle_seed={cseed}: {e}");
                failures.push((cycle, cseed));
            }
        }
    }
    eprintln!(
        "server soak: seed={seed} cycles={n} failures={} in {:?}; stats owed/answered/handler-stops/exempt/unadmitted = {:?}",
        failures.len(),
        t0.elapsed(),
        STATS.iter().map(|a| a.load(SeqCst)).collect::<Vec<_>>()
    );
    assert!(
        failures.is_empty(),
        "seed={seed}: failing cycles {failures:?}"
    );
}

/// Re-runs one cycle by its cycle seed (LIFECYCLE_CYCLE_SEED).
#[test]
fn server_lifecycle_one() {
    note_test_thread();
    let Some(cs) = std::env::var("LIFECYCLE_CYCLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    else {
        return;
    };
    let _serial = init();
    let _ = server_cycle(&mut Rng(1));
    let r = server_cycle(&mut Rng(cs));
    if let Err(e) = r {
        panic!("cycle_seed={cs}: {e}");
    }
}

// ------------------------------------------------------ runtime cycles

fn runtime_cycle(rng: &mut Rng) -> Result<(), String> {
    let base = (threads(), fds());
    let _ = take_log();
    let rt = strata_rt::Runtime::builder()
        .worker_threads(rng.range(1, 2) as usize)
        .max_blocking_threads(rng.range(1, 6) as usize)
        .blocking_keep_alive(Duration::from_millis(rng.range(1, 500)))
        .build()
        .map_err(|e| e.to_string())?;
    let h = rt.handle().clone();
    let late_spawns = Arc::new(AtomicUsize::new(0));
    let nsock = rng.range(0, 6);
    let nblock = rng.range(0, 8);
    let ntimers = rng.range(0, 6);
    let block_ms: Vec<u64> = (0..nblock).map(|_| rng.below(40)).collect();
    let late: Vec<bool> = (0..nblock).map(|_| rng.chance(40)).collect();
    rt.block_on(async {
        let l = strata_rt::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let l = Arc::new(l);
        for _ in 0..nsock {
            let c = strata_rt::net::TcpStream::connect(addr).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            // Tasks holding sockets, waiting forever.
            drop(h.spawn(async move {
                let _ = s.readable().await;
                let _ = c.readable().await;
                std::future::pending::<()>().await;
            }));
        }
        let l2 = l.clone();
        drop(h.spawn(async move {
            let _ = l2.accept().await;
        }));
        for _ in 0..ntimers {
            drop(h.spawn(async {
                strata_rt::time::sleep(Duration::from_secs(3600)).await;
            }));
        }
        for (ms, late) in block_ms.iter().copied().zip(late.iter().copied()) {
            let ls = late_spawns.clone();
            drop(h.spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(ms));
                if late {
                    // Use the runtime from a blocking closure, possibly
                    // while it is being dropped.
                    let hh = strata_rt::Handle::current();
                    let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    let c = std::net::TcpStream::connect(std_l.local_addr().unwrap()).unwrap();
                    c.set_nonblocking(true).unwrap();
                    let jh = hh.spawn(async move {
                        let s = strata_rt::net::TcpStream::from_std(c);
                        if let Ok(s) = s {
                            let _ = s.readable().await;
                        }
                        std::future::pending::<()>().await;
                    });
                    drop(jh);
                    // Register a socket directly from this thread, maybe
                    // after the workers (and reactors) stopped.
                    let c2 = std::net::TcpStream::connect(std_l.local_addr().unwrap()).unwrap();
                    c2.set_nonblocking(true).unwrap();
                    let s2 = strata_rt::net::TcpStream::from_std(c2);
                    std::thread::sleep(Duration::from_millis(ms / 2));
                    drop(s2);
                    let sl = strata_rt::net::TcpListener::bind("127.0.0.1:0");
                    drop(sl);
                    ls.fetch_add(1, SeqCst);
                    drop(std_l);
                }
            }));
        }
        strata_rt::time::sleep(Duration::from_millis(rng_ms(nsock))).await;
    });
    let how = rng.below(4);
    let t0 = Instant::now();
    match how {
        0 => drop(rt),
        1 => {
            rt.shutdown_timeout(Duration::from_millis(rng.below(30)));
        }
        2 => rt.shutdown_background(),
        _ => {
            // Dropped on another thread while the handle is used here.
            let t = std::thread::spawn(move || drop(rt));
            drop(h.spawn(async {}));
            t.join().map_err(|_| "drop thread panicked".to_string())?;
        }
    }
    drop(h);
    let elapsed = t0.elapsed();
    let mut problems = vec![];
    if elapsed > Duration::from_secs(20) {
        problems.push(format!("runtime stop took {elapsed:?}"));
    }
    if let Err(e) = settle(base, 20) {
        problems.push(e);
    }
    let log = take_log();
    for (level, m) in &log {
        if *level == tracing::Level::ERROR {
            problems.push(format!("logged {level}: {m}"));
        }
    }
    let panics = std::mem::take(&mut *PANICS.lock().unwrap());
    if !panics.is_empty() {
        problems.push(format!("panics: {panics:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "how={how} nsock={nsock} blocks={block_ms:?} late={late:?} timers={ntimers}\n  {}",
            problems.join("\n  ")
        ))
    }
}

fn rng_ms(n: u64) -> u64 {
    n * 3
}

#[test]
fn runtime_lifecycle_soak() {
    let _serial = init();
    let seed = seed();
    let n = cycles(20);
    let mut rng = Rng(seed);
    let t0 = Instant::now();
    let _ = runtime_cycle(&mut Rng(1));
    let mut failures = vec![];
    for cycle in 0..n {
        let mut crng = Rng(rng.next());
        let cseed = crng.0;
        if let Err(e) = runtime_cycle(&mut crng) {
            eprintln!("FAIL seed={seed} cycle={cycle} cycle_seed={cseed}: {e}");
            failures.push((cycle, cseed));
        }
    }
    eprintln!(
        "runtime soak: seed={seed} cycles={n} failures={} in {:?}",
        failures.len(),
        t0.elapsed()
    );
    assert!(
        failures.is_empty(),
        "seed={seed}: failing cycles {failures:?}"
    );
}
