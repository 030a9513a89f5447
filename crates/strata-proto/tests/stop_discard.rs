//! After a stop, at the in-flight bound: reading ahead stops at the bytes
//! owed; past them the connection reads only to see a reset, drops what
//! it reads, takes no other error for bad input, and stops after a bound;
//! over TCP a flood there neither blocks other connections nor the
//! shutdown timeout. Waits are hang guards only; assertions look at
//! requests, responses and results, never at time.

mod support;

use std::io::{Read as _, Write as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use strata_proto::TcpServer;
use strata_proto::pipeline::serve_connection;
use strata_service::Service;
use support::firehose::Firehose;
use support::{Client, TestProto, cfg, deadline, line, not_instant};

/// `STOP_READ_LIMIT`: with a transport that cannot tell what it holds and
/// a stop that fires at once, the bytes owed are exactly this.
const OWED: usize = 16 << 20;

/// A peer that has sent `data` (always ready, reads filled as far as
/// asked); after it, `end`: end of stream (`None`) or this error.
struct Script {
    data: Arc<Vec<u8>>,
    pos: usize,
    end: Option<std::io::ErrorKind>,
    /// Set once the read position has reached `mark`.
    mark: usize,
    reached: Arc<AtomicBool>,
    /// Whenever possible, leave at least this much for the last read
    /// before `mark` (so that it is a big one).
    last_read: usize,
    written: Arc<Mutex<Vec<u8>>>,
}

impl futures_io::AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let left = self.data.len() - self.pos;
        if left == 0 {
            return Poll::Ready(match self.end {
                None => Ok(0),
                Some(kind) => Err(kind.into()),
            });
        }
        let mut n = left.min(buf.len());
        if self.pos < self.mark {
            let to_mark = self.mark - self.pos;
            n = n.min(to_mark);
            if to_mark > n && to_mark - n < self.last_read && to_mark > self.last_read {
                n = to_mark - self.last_read;
            }
        }
        let pos = self.pos;
        buf[..n].copy_from_slice(&self.data[pos..pos + n]);
        self.pos += n;
        if self.pos >= self.mark {
            self.reached.store(true, Ordering::SeqCst);
        }
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for Script {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Echo that is never instant; records empty requests.
#[derive(Clone)]
struct SlowEcho {
    empty: Arc<AtomicUsize>,
}

impl Service<String> for SlowEcho {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        not_instant().await;
        if req.is_empty() {
            self.empty.fetch_add(1, Ordering::SeqCst);
        }
        Ok(req)
    }
}

/// Echo that is instant, except for the first request called after the
/// transport has read everything owed (`reached`), which is not.
#[derive(Clone)]
struct SlowOnceReached {
    reached: Arc<AtomicBool>,
    slowed: Arc<AtomicBool>,
}

impl Service<String> for SlowOnceReached {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        if self.reached.load(Ordering::SeqCst) && !self.slowed.swap(true, Ordering::SeqCst) {
            not_instant().await;
        }
        Ok(req)
    }
}

macro_rules! run {
    ($io:expr, $svc:expr) => {{
        let (io, svc) = ($io, $svc);
        deadline(600, move || {
            let rt = support::memory::one_worker_runtime();
            let task = rt.handle().spawn(async move {
                serve_connection(
                    io,
                    &TestProto,
                    svc,
                    &cfg().max_in_flight(1),
                    std::future::ready(()),
                )
                .await
                .map_err(|e| e.to_string())
            });
            rt.block_on(task).expect("the connection task completes")
        })
    }};
}

/// (1) After a stop, at the in-flight bound, the read-ahead that is still
/// reading the bytes owed must not read past them into the frame buffer
/// (it did, and requests sent after the 16 MiB were answered). Here every
/// line owed is non-empty and the peer then sends only empty lines
/// ("\n"): an empty request answered is one sent after what is owed.
#[test]
fn at_the_bound_the_read_ahead_stops_at_what_is_owed() {
    // 56 + 64 * k + 8 = OWED: the reads at the bound (topping the buffer up
    // to 4 KiB after each 64-byte request) then cross OWED mid-read.
    let mut data = Vec::with_capacity(OWED + (64 << 10));
    data.extend_from_slice(&line("echo first", b'a', 56));
    let req = line("echo ", b'x', 64);
    while data.len() + 64 <= OWED - 8 {
        data.extend_from_slice(&req);
    }
    data.extend_from_slice(&line("echo z", b'z', 8));
    assert_eq!(data.len(), OWED);
    data.resize(OWED + (64 << 10), b'\n');
    let empty = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(Mutex::new(Vec::new()));
    let io = Script {
        data: Arc::new(data),
        pos: 0,
        end: None,
        mark: OWED,
        reached: Arc::default(),
        last_read: 0,
        written: written.clone(),
    };
    let result = run!(
        io,
        SlowEcho {
            empty: empty.clone(),
        }
    );
    let empty = empty.load(Ordering::SeqCst);
    assert_eq!(
        empty, 0,
        "after the stop, at the in-flight bound, the connection answered {empty} request(s) \
         the peer sent after the 16 MiB owed (result {result:?})"
    );
}

/// (2) A non-reset read error past what is owed (here `UnexpectedEof`, as
/// a TLS stream reports a peer that closed without close_notify) is not
/// bad input: every request owed is still answered and the connection
/// ends cleanly (a first version took it for a decode error and dropped
/// the owed requests still buffered).
#[test]
fn a_non_reset_error_after_what_is_owed_keeps_the_requests_received_before_the_stop() {
    let req = line("echo ", b'x', 64);
    let mut data = Vec::with_capacity(OWED);
    while data.len() < OWED {
        data.extend_from_slice(&req);
    }
    assert_eq!(data.len(), OWED);
    let lines = OWED / 64;
    let reached = Arc::new(AtomicBool::new(false));
    let written = Arc::new(Mutex::new(Vec::new()));
    let io = Script {
        data: Arc::new(data),
        pos: 0,
        end: Some(std::io::ErrorKind::UnexpectedEof),
        mark: OWED,
        reached: reached.clone(),
        // The last read of what is owed is 16 KiB, so the request that sits
        // at the bound has more than READ_AHEAD_LIMIT buffered behind it.
        last_read: 16 << 10,
        written: written.clone(),
    };
    let result = run!(
        io,
        SlowOnceReached {
            reached,
            slowed: Arc::default(),
        }
    );
    let out = written.lock().unwrap().clone();
    let answered = out
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"echo "))
        .count();
    let errors: Vec<String> = out
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"error"))
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(
        answered == lines && result.is_ok(),
        "every one of the {lines} requests was received before the stop, yet only {answered} \
         were answered; the connection ended with {result:?}, error lines {errors:?}"
    );
}

/// A service for the TCP test: `hang` never finishes (counted in
/// `started`), `sleep <ms> <text>`, anything else echoes.
#[derive(Clone)]
struct TcpSvc {
    started: Arc<AtomicUsize>,
}

impl Service<String> for TcpSvc {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut words = req.splitn(3, ' ');
        match words.next().unwrap_or("") {
            "hang" => std::future::pending().await,
            "sleep" => {
                let ms: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                strata_rt::time::sleep(Duration::from_millis(ms)).await;
                Ok(words.next().unwrap_or("").to_string())
            }
            _ => Ok(req),
        }
    }
}

fn wait_for(n: &AtomicUsize, at_least: usize) {
    let since = Instant::now();
    while n.load(Ordering::SeqCst) < at_least {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "requests not started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// (c) Over TCP, one worker: a request hangs at the in-flight bound, the
/// server shuts down, then that peer floods (so the connection reads and
/// drops, 4 KiB a poll, up to its bound). Another connection on the same
/// worker, with a timed request in flight and one more owed, is answered;
/// the shutdown ends at its timeout and says so.
#[test]
fn over_tcp_a_flood_at_the_bound_after_the_stop_neither_blocks_others_nor_the_shutdown_timeout() {
    deadline(120, || {
        let started = Arc::new(AtomicUsize::new(0));
        let svc = TcpSvc {
            started: started.clone(),
        };
        let server = TcpServer::new(TestProto, "127.0.0.1:0".parse().unwrap())
            .threads(1)
            .connection_config(cfg().max_in_flight(1))
            .shutdown_timeout(Duration::from_secs(3))
            .start(move || Ok::<_, std::io::Error>(svc.clone()))
            .expect("server starts");
        let addr = server.local_addr();
        let mut a = std::net::TcpStream::connect(addr).unwrap();
        a.write_all(b"hang a\n").unwrap();
        wait_for(&started, 1);
        let mut b = Client::connect(addr);
        b.send(&["sleep 1500 b1", "echo b2"]);
        wait_for(&started, 2);
        let stopping = std::thread::spawn(move || server.shutdown());
        // Ordering aid only: let the connections see the stop first.
        std::thread::sleep(Duration::from_millis(300));
        let flooded = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let flood = {
            let (flooded, done) = (flooded.clone(), done.clone());
            let mut a2 = a.try_clone().unwrap();
            a2.set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            std::thread::spawn(move || {
                let chunk = vec![b'y'; 64 << 10];
                while !done.load(Ordering::SeqCst) {
                    match a2.write(&chunk) {
                        Ok(n) => {
                            flooded.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return,
                    }
                }
            })
        };
        let got = [b.recv(), b.recv(), b.recv()];
        let finished = stopping.join().unwrap();
        done.store(true, Ordering::SeqCst);
        flood.join().unwrap();
        let flooded = flooded.load(Ordering::SeqCst);
        eprintln!("flooded {} MiB after the stop", flooded >> 20);
        // A is dropped at the timeout: it reads an end of stream or a reset.
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        let _ = a.read_to_end(&mut rest);
        assert_eq!(
            got,
            [Some("b1".to_string()), Some("echo b2".to_string()), None],
            "the other connection was not answered while the flooded one read and dropped"
        );
        assert!(
            !finished,
            "shutdown reported that every connection finished, but one still had a request \
             that never finishes"
        );
        assert!(rest.is_empty(), "the hung request was answered: {rest:?}");
    });
}

/// Echoes at once, but never finishes a request called once everything
/// owed has been read.
#[derive(Clone)]
struct HangAfterOwed(Arc<AtomicU64>);

impl Service<String> for HangAfterOwed {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        if self.0.load(Ordering::Relaxed) >= OWED as u64 {
            std::future::pending::<()>().await;
        }
        Ok(req)
    }
}

/// (3) `serve_connection` after a stop, a request that never finishes at
/// the in-flight bound, a peer that never stops sending: the connection
/// reads and drops up to a bound, then parks (a first version read 4 KiB
/// a poll without end; `serve_connection` has no shutdown timeout of its
/// own). The assertion is that it stops reading on its own (before the
/// hang guard's end of stream at 256 MiB).
const LINE_OF_X: &[u8] = b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";

#[test]
fn serve_connection_after_a_stop_at_the_bound_stops_reading_an_endless_peer() {
    const CAP: u64 = 256 << 20;
    // 64-byte lines: 63 `x` and a newline.
    let (io, read) = Firehose::new(LINE_OF_X, CAP);
    let svc = HangAfterOwed(read.clone());
    let result = deadline(120, move || {
        let rt = support::memory::one_worker_runtime();
        let task = rt.handle().spawn(async move {
            let config = cfg().max_in_flight(1);
            let serve = serve_connection(io, &TestProto, svc, &config, std::future::ready(()));
            // Hang guard only.
            strata_rt::time::timeout(Duration::from_secs(5), serve)
                .await
                .map(|r| r.map_err(|e| e.to_string()))
                .map_err(|_| "still waiting at the hang guard")
        });
        rt.block_on(task).expect("the connection task completes")
    });
    let total = read.load(Ordering::Relaxed);
    assert!(
        total < CAP,
        "after the stop, with its one request hung at the in-flight bound, the connection \
         read {} MiB from a peer that never stops sending (it stopped only at the test's end \
         of stream at {} MiB; result {result:?})",
        total >> 20,
        CAP >> 20
    );
}
