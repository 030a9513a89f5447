//! The test protocol, service, server fixture and client shared by the
//! proto tests: LinesCodec framing; the service understands `echo <text>`,
//! `sleep <ms> <text>`, `gate <text>` (waits until the test opens a gate),
//! `fail` (service error) and `panic`.
#![allow(dead_code, unreachable_pub)]

pub mod child;
pub mod client;
pub mod failing;
pub mod firehose;
pub mod memory;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use strata_codec::{LinesCodec, LinesCodecError};
use strata_proto::pipeline::{ErrorAction, ServerProto};
use strata_proto::{ConnectionConfig, ServerHandle, TcpServer};
use strata_service::{BoxError, Service};

pub struct TestProto;

impl ServerProto for TestProto {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(64)
    }

    fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
        Some(format!("error: {err}"))
    }

    fn service_error(&self, err: &BoxError) -> ErrorAction<String> {
        ErrorAction::Respond(format!("failed: {err}"))
    }
}

#[derive(Default)]
pub struct Stats {
    pub started: AtomicUsize,
    pub running: AtomicUsize,
    pub peak: AtomicUsize,
}

#[derive(Clone)]
pub struct TestService {
    stats: Arc<Stats>,
    gate: Arc<event_gate::Gate>,
}

pub mod event_gate {
    //! A gate many tasks wait on until the test opens it.
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Waker;

    #[derive(Default)]
    pub struct Gate {
        open: AtomicBool,
        waiters: Mutex<Vec<Waker>>,
    }

    impl Gate {
        pub fn open(&self) {
            self.open.store(true, Ordering::SeqCst);
            for w in self.waiters.lock().unwrap().drain(..) {
                w.wake();
            }
        }

        pub async fn wait(&self) {
            std::future::poll_fn(|cx| {
                if self.open.load(Ordering::SeqCst) {
                    return std::task::Poll::Ready(());
                }
                self.waiters.lock().unwrap().push(cx.waker().clone());
                if self.open.load(Ordering::SeqCst) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await
        }
    }
}

impl Service<String> for TestService {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        let s = &self.stats;
        s.started.fetch_add(1, Ordering::SeqCst);
        let now = s.running.fetch_add(1, Ordering::SeqCst) + 1;
        s.peak.fetch_max(now, Ordering::SeqCst);
        let _done = Dec(&s.running);
        let mut words = req.splitn(3, ' ');
        match words.next().unwrap_or("") {
            "echo" => Ok(words.collect::<Vec<_>>().join(" ")),
            "sleep" => {
                let ms: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                strata_rt::time::sleep(Duration::from_millis(ms)).await;
                Ok(words.next().unwrap_or("").to_string())
            }
            "gate" => {
                self.gate.wait().await;
                Ok(words.next().unwrap_or("").to_string())
            }
            "fail" => Err(std::io::Error::other("asked to fail")),
            "panic" => panic!("handler asked to panic"),
            other => Ok(format!("unknown {other}")),
        }
    }
}

pub struct Dec<'a>(&'a AtomicUsize);
impl Drop for Dec<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Fixture {
    pub server: Option<ServerHandle>,
    pub stats: Arc<Stats>,
    pub gate: Arc<event_gate::Gate>,
}

impl Fixture {
    pub fn start(threads: usize, max_conns: usize, cfg: ConnectionConfig) -> Fixture {
        let stats = Arc::new(Stats::default());
        let gate = Arc::new(event_gate::Gate::default());
        let svc = TestService {
            stats: stats.clone(),
            gate: gate.clone(),
        };
        let server = TcpServer::new(TestProto, "127.0.0.1:0".parse().unwrap())
            .threads(threads)
            .max_connections(max_conns)
            .connection_config(cfg)
            .shutdown_timeout(Duration::from_secs(10))
            .start(move || Ok::<_, std::io::Error>(svc.clone()))
            .expect("server starts");
        Fixture {
            server: Some(server),
            stats,
            gate,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr())
    }
}

pub struct Client {
    pub writer: TcpStream,
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    pub fn send(&mut self, lines: &[&str]) {
        let mut batch = String::new();
        for l in lines {
            batch.push_str(l);
            batch.push('\n');
        }
        self.writer.write_all(batch.as_bytes()).unwrap();
    }

    /// The next line, or `None` at EOF / reset.
    pub fn recv(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_string()),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    pub fn round_trip(&mut self, line: &str) -> Option<String> {
        self.send(&[line]);
        self.recv()
    }
}

/// Runs `f` on a thread and fails the test after `secs` (a deadlock
/// detector, not a performance bound).
pub fn deadline<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(t.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {secs} s"),
    }
}

pub fn cfg() -> ConnectionConfig {
    ConnectionConfig::default()
}

/// A service that answers each request with the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Echo;

impl Service<String> for Echo {
    type Response = String;
    type Error = std::io::Error;

    fn call(&self, req: String) -> impl Future<Output = Result<String, std::io::Error>> {
        std::future::ready(Ok(req))
    }
}

/// A server of [`TestProto`] on a free loopback port, with one worker.
pub fn one_worker() -> TcpServer<TestProto> {
    TcpServer::new(TestProto, "127.0.0.1:0".parse().unwrap()).threads(1)
}

/// A server-side stream and its std client, connected over loopback (for
/// tests that drive `serve_connection` themselves).
pub fn connected_pair() -> (std::net::TcpStream, strata_rt::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    accepted.set_nonblocking(true).unwrap();
    (
        client,
        strata_rt::net::TcpStream::from_std(accepted).unwrap(),
    )
}

/// A one-shot signal the test fires by hand (a stop, a gate).
#[derive(Default)]
pub struct Flag {
    fired: std::sync::atomic::AtomicBool,
    waker: std::sync::Mutex<Option<std::task::Waker>>,
}

impl Flag {
    /// Fires it, waking the task waiting on it.
    pub fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Completes once it has fired.
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.fired.load(Ordering::SeqCst) {
                return std::task::Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.fired.load(Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    }
}

/// Pending three times (waking itself) before it is done: a service that
/// awaits it is never instant, so that with `max_in_flight(1)` a
/// connection sits at its in-flight bound after each request.
pub async fn not_instant() {
    let mut pendings = 0;
    std::future::poll_fn(|cx| {
        if pendings == 3 {
            std::task::Poll::Ready(())
        } else {
            pendings += 1;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// A request line of `len` bytes with its newline: `prefix`, then `fill`.
pub fn line(prefix: &str, fill: u8, len: usize) -> Vec<u8> {
    let mut l = prefix.as_bytes().to_vec();
    l.resize(len - 1, fill);
    l.push(b'\n');
    l
}

/// A client socket with a tiny receive buffer, so that the server's
/// answers back up into the server's kernel send queue.
pub fn small_window_client(addr: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(1).unwrap();
    s.connect(&addr.into()).unwrap();
    s.into()
}

/// `lines` echo requests of 51 bytes, then, if `bad`, one line over the
/// test protocol's 64-byte limit (a decode error that closes the
/// connection after the answers before it).
pub fn echo_batch(lines: usize, bad: bool) -> String {
    let mut batch = format!("{}\n", "x".repeat(50)).repeat(lines);
    if bad {
        batch.push_str(&"y".repeat(100));
        batch.push('\n');
    }
    batch
}

/// Polls `f` every 20 ms until it holds; fails after `secs` (hang guard).
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(secs), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `fut` as a task on a one-worker runtime (so that `spawn_local`
/// inside it shares that worker) and returns its output.
pub fn on_a_worker<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let rt = strata_rt::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap();
    rt.block_on(async { strata_rt::spawn(fut).await.unwrap() })
}
