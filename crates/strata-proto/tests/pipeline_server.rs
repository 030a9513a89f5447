//! TcpServer with a pipelined test protocol, over real TCP on 127.0.0.1.
//!
//! The protocol is LinesCodec framing; the service understands
//! `echo <text>`, `sleep <ms> <text>` (answers after a delay), `gate <text>`
//! (waits until the test opens a gate), `fail` (service error) and `panic`.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use strata_codec::{LinesCodec, LinesCodecError};
use strata_proto::pipeline::{ErrorAction, ServerProto};
use strata_proto::{ConnectionConfig, ServerHandle, TcpServer};
use strata_service::{BoxError, Service};

struct TestProto;

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

    fn service_error(&self, err: BoxError) -> ErrorAction<String> {
        ErrorAction::Respond(format!("failed: {err}"))
    }
}

#[derive(Default)]
struct Stats {
    started: AtomicUsize,
    running: AtomicUsize,
    peak: AtomicUsize,
}

#[derive(Clone)]
struct TestService {
    stats: Arc<Stats>,
    gate: Arc<event_gate::Gate>,
}

mod event_gate {
    //! A gate many tasks wait on until the test opens it.
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Waker;

    #[derive(Default)]
    pub(crate) struct Gate {
        open: AtomicBool,
        waiters: Mutex<Vec<Waker>>,
    }

    impl Gate {
        pub(crate) fn open(&self) {
            self.open.store(true, Ordering::SeqCst);
            for w in self.waiters.lock().unwrap().drain(..) {
                w.wake();
            }
        }

        pub(crate) async fn wait(&self) {
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

struct Dec<'a>(&'a AtomicUsize);
impl Drop for Dec<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Fixture {
    server: Option<ServerHandle>,
    stats: Arc<Stats>,
    gate: Arc<event_gate::Gate>,
}

impl Fixture {
    fn start(threads: usize, max_conns: usize, cfg: ConnectionConfig) -> Fixture {
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

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr())
    }
}

struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, lines: &[&str]) {
        let mut batch = String::new();
        for l in lines {
            batch.push_str(l);
            batch.push('\n');
        }
        self.writer.write_all(batch.as_bytes()).unwrap();
    }

    /// The next line, or `None` at EOF / reset.
    fn recv(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_string()),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    fn round_trip(&mut self, line: &str) -> Option<String> {
        self.send(&[line]);
        self.recv()
    }
}

/// Runs `f` on a thread and fails the test after `secs` (a deadlock
/// detector, not a performance bound).
fn deadline<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
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

/// Resident memory of this process (the server runs in it).
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn cfg() -> ConnectionConfig {
    ConnectionConfig::default()
}

#[test]
fn pipelined_responses_keep_request_order_when_later_ones_finish_first() {
    deadline(60, || {
        let fx = Fixture::start(2, 100, cfg());
        let mut c = fx.connect();
        // Earlier requests sleep longer: they finish last but answer first.
        let reqs: Vec<String> = (0..40)
            .map(|i| format!("sleep {} r{i}", (40 - i) * 3))
            .collect();
        let refs: Vec<&str> = reqs.iter().map(String::as_str).collect();
        c.send(&refs);
        for i in 0..40 {
            assert_eq!(c.recv().as_deref(), Some(format!("r{i}").as_str()));
        }
        // They ran concurrently: more than one was in flight at once.
        assert!(fx.stats.peak.load(Ordering::SeqCst) > 1);
    });
}

#[test]
fn a_flood_of_unread_requests_is_bounded_by_max_in_flight() {
    deadline(120, || {
        let max_in_flight = 8;
        let fx = Fixture::start(1, 100, cfg().max_in_flight(max_in_flight));
        let c = fx.connect();
        let mut w = c.writer.try_clone().unwrap();
        w.set_nonblocking(true).unwrap();
        // 100,000 pipelined requests (about 5 MB), written without reading
        // any response; requests wait on the gate, so nothing completes.
        let one = format!("gate {}\n", "x".repeat(44));
        let total = 100_000usize;
        let payload: Vec<u8> = one
            .as_bytes()
            .iter()
            .copied()
            .cycle()
            .take(one.len() * total)
            .collect();
        let rss_before = rss_bytes();
        let mut written = 0usize;
        let mut last_progress = Instant::now();
        while written < payload.len() && last_progress.elapsed() < Duration::from_secs(1) {
            match w.write(&payload[written..]) {
                Ok(n) => {
                    written += n;
                    last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
            }
        }
        // Whatever the kernel buffered, the server dispatched no more than
        // its bound and kept the rest out of its own memory: an unbounded
        // server would hold every request (tens of MB) by now.
        assert!(fx.stats.started.load(Ordering::SeqCst) <= max_in_flight);
        assert_eq!(fx.stats.peak.load(Ordering::SeqCst), max_in_flight);
        let grown = rss_bytes().saturating_sub(rss_before);
        assert!(
            grown < 8 << 20,
            "server memory grew by {grown} bytes under the flood"
        );
        // Open the gate: everything is answered, in order, none lost.
        fx.gate.open();
        w.set_nonblocking(false).unwrap();
        let rest = payload[written..].to_vec();
        let feeder = std::thread::spawn(move || w.write_all(&rest).unwrap());
        let mut reader = c.reader;
        let mut line = String::new();
        for _ in 0..total {
            line.clear();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line.len(), 45, "{line:?}");
        }
        feeder.join().unwrap();
        assert!(fx.stats.peak.load(Ordering::SeqCst) <= max_in_flight);
    });
}

#[test]
fn idle_connections_are_closed_and_active_ones_kept() {
    deadline(60, || {
        let fx = Fixture::start(
            1,
            100,
            cfg()
                .idle_timeout(Some(Duration::from_millis(300)))
                .read_timeout(None),
        );
        let mut idle = fx.connect();
        let mut active = fx.connect();
        assert_eq!(idle.round_trip("echo a").as_deref(), Some("a"));
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(900) {
            assert_eq!(active.round_trip("echo b").as_deref(), Some("b"));
            std::thread::sleep(Duration::from_millis(50));
        }
        // The idle one was closed (EOF), not the active one.
        assert_eq!(idle.recv(), None);
        assert_eq!(active.round_trip("echo c").as_deref(), Some("c"));
    });
}

#[test]
fn a_stalled_partial_request_hits_the_read_timeout() {
    deadline(60, || {
        let fx = Fixture::start(
            1,
            100,
            cfg()
                .idle_timeout(Some(Duration::from_secs(30)))
                .read_timeout(Some(Duration::from_millis(300))),
        );
        let mut slow = fx.connect();
        slow.writer.write_all(b"ech").unwrap(); // ...and never the rest
        let mut healthy = fx.connect();
        let t = Instant::now();
        assert_eq!(slow.recv(), None, "slowloris connection should be closed");
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "closed too early"
        );
        assert_eq!(healthy.round_trip("echo ok").as_deref(), Some("ok"));
    });
}

#[test]
fn max_connections_is_enforced() {
    deadline(60, || {
        let fx = Fixture::start(2, 3, cfg());
        let mut open: Vec<Client> = (0..3).map(|_| fx.connect()).collect();
        for c in &mut open {
            assert_eq!(c.round_trip("echo in").as_deref(), Some("in"));
        }
        let mut extra = fx.connect();
        // Accepted and closed at once: EOF (or reset) instead of an answer.
        extra.send(&["echo over"]);
        assert_eq!(extra.recv(), None);
        assert!(fx.server.as_ref().unwrap().rejected_connections() >= 1);
        // Closing one makes room again.
        drop(open.pop());
        let start = Instant::now();
        loop {
            let mut again = fx.connect();
            if again.round_trip("echo again").as_deref() == Some("again") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "room never freed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

#[test]
fn a_panicking_handler_closes_only_its_connection() {
    deadline(60, || {
        let fx = Fixture::start(1, 100, cfg());
        let mut bystander = fx.connect();
        assert_eq!(
            bystander.round_trip("echo before").as_deref(),
            Some("before")
        );
        let mut victim = fx.connect();
        assert_eq!(victim.round_trip("panic"), None);
        assert_eq!(bystander.round_trip("echo after").as_deref(), Some("after"));
        let mut newcomer = fx.connect();
        assert_eq!(newcomer.round_trip("echo new").as_deref(), Some("new"));
        assert_eq!(fx.server.as_ref().unwrap().connections(), 2);
    });
}

#[test]
fn bad_input_gets_an_error_line_and_closes_only_that_connection() {
    deadline(60, || {
        let fx = Fixture::start(1, 100, cfg());
        let mut other = fx.connect();
        let mut long = fx.connect();
        long.send(&["echo ok", &"x".repeat(1000)]);
        assert_eq!(long.recv().as_deref(), Some("ok"));
        let err = long.recv().unwrap();
        assert!(err.starts_with("error: line too long"), "{err}");
        assert_eq!(long.recv(), None);
        let mut bad = fx.connect();
        bad.writer.write_all(b"echo \xff\xfe\n").unwrap();
        let err = bad.recv().unwrap();
        assert!(err.to_lowercase().contains("utf-8"), "{err}");
        assert_eq!(bad.recv(), None);
        assert_eq!(other.round_trip("echo fine").as_deref(), Some("fine"));
    });
}

#[test]
fn service_errors_become_error_responses_and_the_connection_carries_on() {
    deadline(30, || {
        let fx = Fixture::start(1, 100, cfg());
        let mut c = fx.connect();
        c.send(&["echo 1", "fail", "echo 3"]);
        assert_eq!(c.recv().as_deref(), Some("1"));
        assert_eq!(c.recv().as_deref(), Some("failed: asked to fail"));
        assert_eq!(c.recv().as_deref(), Some("3"));
    });
}

#[test]
fn half_close_gets_every_response_then_eof() {
    deadline(30, || {
        let fx = Fixture::start(1, 100, cfg());
        let mut c = fx.connect();
        c.send(&["sleep 50 a", "echo b", "sleep 20 c"]);
        c.writer.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(c.recv().as_deref(), Some("a"));
        assert_eq!(c.recv().as_deref(), Some("b"));
        assert_eq!(c.recv().as_deref(), Some("c"));
        assert_eq!(c.recv(), None);
    });
}

#[test]
fn graceful_shutdown_answers_everything_in_flight_then_refuses_connections() {
    deadline(60, || {
        let mut fx = Fixture::start(2, 100, cfg());
        let addr = fx.addr();
        let mut busy = fx.connect();
        let mut idle = fx.connect();
        assert_eq!(idle.round_trip("echo hi").as_deref(), Some("hi"));
        let reqs: Vec<String> = (0..10).map(|i| format!("sleep 300 r{i}")).collect();
        let refs: Vec<&str> = reqs.iter().map(String::as_str).collect();
        busy.send(&refs);
        // Wait until all ten were received and started.
        let t = Instant::now();
        while fx.stats.started.load(Ordering::SeqCst) < 11 {
            assert!(t.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        let server = fx.server.take().unwrap();
        let shut = std::thread::spawn(move || server.shutdown());
        for i in 0..10 {
            assert_eq!(busy.recv().as_deref(), Some(format!("r{i}").as_str()));
        }
        assert_eq!(busy.recv(), None);
        assert_eq!(idle.recv(), None);
        assert!(shut.join().unwrap(), "shutdown did not drain in time");
        // The listeners are gone.
        let err = TcpStream::connect(addr).map(|mut s| {
            // A connect that raced the close still gets no answer.
            s.write_all(b"echo late\n").ok();
            let mut b = [0u8; 1];
            s.read(&mut b).unwrap_or(0)
        });
        assert!(matches!(err, Err(_) | Ok(0)), "server still answering");
    });
}
