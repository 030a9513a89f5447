//! A server whose worker stalls (a handler blocks it) for longer than the
//! connection timeouts, while clients act: a request sent during the stall
//! must be answered, not cut by an idle/read timeout that only elapsed
//! because the server was not running; a peer that read during the stall
//! must not be cut by the write timeout. Durations are hang guards and
//! orderings, not performance thresholds.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use strata_codec::{LinesCodec, LinesCodecError};
use strata_proto::pipeline::{ErrorAction, ServerProto};
use strata_proto::{ConnectionConfig, TcpServer};
use strata_service::{BoxError, Service};

const STALL_MS: u64 = 3000;
const TIMEOUT: Duration = Duration::from_secs(1);
/// Into the stall when the clients act.
const PEER_AT: Duration = Duration::from_millis(300);

struct Proto;

impl ServerProto for Proto {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(1 << 20)
    }

    fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
        Some(format!("error: {err}"))
    }

    fn service_error(&self, err: &BoxError) -> ErrorAction<String> {
        ErrorAction::Respond(format!("failed: {err}"))
    }
}

/// `block <ms>` blocks the worker; `big <n>` answers `n` bytes of `x`;
/// anything else is echoed.
#[derive(Clone, Copy)]
struct Svc;

impl Service<String> for Svc {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        if let Some(ms) = req.strip_prefix("block ") {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap()));
            return Ok("unblocked".into());
        }
        if let Some(n) = req.strip_prefix("big ") {
            return Ok("x".repeat(n.parse().unwrap()));
        }
        Ok(req)
    }
}

fn server(cfg: ConnectionConfig) -> strata_proto::ServerHandle {
    TcpServer::new(Proto, "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .connection_config(cfg)
        .shutdown_timeout(Duration::from_secs(5))
        .start(|| Ok::<_, std::io::Error>(Svc))
        .unwrap()
}

fn connect(addr: std::net::SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (s.try_clone().unwrap(), BufReader::new(s))
}

fn recv(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_string()),
    }
}

/// Starts the stall: a client whose request blocks the worker.
fn stall(addr: std::net::SocketAddr) -> std::thread::JoinHandle<Option<String>> {
    let (mut w, mut r) = connect(addr);
    w.write_all(format!("block {STALL_MS}\n").as_bytes())
        .unwrap();
    std::thread::spawn(move || recv(&mut r))
}

#[test]
fn a_request_sent_during_a_stall_longer_than_the_idle_timeout_is_answered() {
    support::deadline(30, || {
        let srv = server(
            ConnectionConfig::default()
                .idle_timeout(Some(TIMEOUT))
                .read_timeout(None),
        );
        let (mut w, mut r) = connect(srv.local_addr());
        assert_eq!(
            {
                w.write_all(b"warm\n").unwrap();
                recv(&mut r)
            },
            Some("warm".into())
        );
        let blocker = stall(srv.local_addr());
        std::thread::sleep(PEER_AT);
        w.write_all(b"during the stall\n").unwrap();
        assert_eq!(recv(&mut r), Some("during the stall".into()));
        assert_eq!(blocker.join().unwrap(), Some("unblocked".into()));
        drop(srv);
    });
}

#[test]
fn a_request_completed_during_a_stall_longer_than_the_read_timeout_is_answered() {
    support::deadline(30, || {
        let srv = server(
            ConnectionConfig::default()
                .idle_timeout(None)
                .read_timeout(Some(TIMEOUT)),
        );
        let (mut w, mut r) = connect(srv.local_addr());
        w.write_all(b"half a ").unwrap();
        // The server has seen the partial request (its read timeout runs).
        std::thread::sleep(Duration::from_millis(200));
        let blocker = stall(srv.local_addr());
        std::thread::sleep(PEER_AT);
        w.write_all(b"request\n").unwrap();
        assert_eq!(recv(&mut r), Some("half a request".into()));
        assert_eq!(blocker.join().unwrap(), Some("unblocked".into()));
        drop(srv);
    });
}

#[test]
fn a_peer_that_reads_during_a_stall_longer_than_the_write_timeout_is_not_cut() {
    support::deadline(60, || {
        let srv = server(
            ConnectionConfig::default()
                .idle_timeout(None)
                .read_timeout(None)
                .write_timeout(Some(TIMEOUT)),
        );
        let addr = srv.local_addr();
        let s = support::small_window_client(addr);
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        // Far more than the socket buffers hold: the server's responses
        // wait for the socket, and its write timeout runs.
        const N: usize = 40;
        const SIZE: usize = 256 * 1024;
        for _ in 0..N {
            w.write_all(format!("big {SIZE}\n").as_bytes()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let blocker = stall(addr);
        std::thread::sleep(PEER_AT);
        // The peer reads everything now, during the stall, and well within
        // the write timeout of the server's last progress... as far as
        // the server can tell once it runs again.
        let mut total = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        let want = N * (SIZE + 1);
        while total < want {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        assert_eq!(total, want, "every response arrives");
        w.write_all(b"still here\n").unwrap();
        assert_eq!(recv(&mut r), Some("still here".into()));
        assert_eq!(blocker.join().unwrap(), Some("unblocked".into()));
        drop(srv);
    });
}
