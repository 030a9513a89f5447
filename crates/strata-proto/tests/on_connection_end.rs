//! `TcpServer::on_connection_end`: the hook hears of every connection's
//! end, with its peer and why it ended, over real TCP on 127.0.0.1; a hook
//! that panics costs nothing but its own report.
//!
//! Waits are hang guards, never performance bounds.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_proto::pipeline::ConnectionError;
use strata_proto::{ConnectionConfig, ServerHandle, TcpServer};
use support::{Echo, TestProto, deadline};

#[derive(Debug, Clone, PartialEq)]
enum Ended {
    Clean,
    Decode,
    Idle,
    Other(String),
}

type Log = Arc<Mutex<Vec<(SocketAddr, Ended)>>>;

fn server(log: Log, panic_for_port: Option<u16>) -> ServerHandle {
    TcpServer::new(TestProto, "127.0.0.1:0".parse().unwrap())
        .threads(2)
        .connection_config(
            ConnectionConfig::default()
                .idle_timeout(Some(Duration::from_millis(200)))
                .read_timeout(None),
        )
        .on_connection_end(move |end| {
            if Some(end.info.peer.port()) == panic_for_port {
                panic!("the hook panics for this one");
            }
            let ended = match end.outcome {
                Ok(()) => Ended::Clean,
                Err(ConnectionError::Decode(_)) => Ended::Decode,
                Err(ConnectionError::IdleTimeout { .. }) => Ended::Idle,
                Err(e) => Ended::Other(e.to_string()),
            };
            log.lock().unwrap().push((end.info.peer, ended));
        })
        .start(|| Ok(Echo))
        .unwrap()
}

/// Waits (a hang guard) until the log holds an entry for `peer`.
fn ended(log: &Log, peer: SocketAddr) -> Ended {
    let start = Instant::now();
    loop {
        if let Some((_, e)) = log.lock().unwrap().iter().find(|(p, _)| *p == peer) {
            return e.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no report for {peer}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn round_trip(s: &TcpStream, line: &str) -> String {
    (&*s).write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    answer.trim_end().to_string()
}

#[test]
fn every_end_is_reported_with_its_peer_and_its_reason() {
    deadline(60, || {
        let log = Log::default();
        let server = server(log.clone(), None);
        let addr = server.local_addr();

        let clean = TcpStream::connect(addr).unwrap();
        assert_eq!(round_trip(&clean, "hi"), "hi");
        let clean_peer = clean.local_addr().unwrap();
        drop(clean);

        let bad = TcpStream::connect(addr).unwrap();
        let answer = round_trip(&bad, &"x".repeat(100));
        assert!(answer.starts_with("error:"), "{answer}");
        let bad_peer = bad.local_addr().unwrap();

        let idle = TcpStream::connect(addr).unwrap();
        let idle_peer = idle.local_addr().unwrap();

        assert_eq!(ended(&log, clean_peer), Ended::Clean);
        assert_eq!(ended(&log, bad_peer), Ended::Decode);
        assert_eq!(ended(&log, idle_peer), Ended::Idle);
        drop((bad, idle));
        assert!(server.shutdown());
    });
}

#[test]
fn a_hook_that_panics_loses_only_its_own_report() {
    deadline(60, || {
        let log = Log::default();
        // Bind the client's port first, to tell the hook which to fail.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let doomed_port = socket.local_addr().unwrap().as_socket().unwrap().port();
        let server = server(log.clone(), Some(doomed_port));
        let addr = server.local_addr();

        socket.connect(&addr.into()).unwrap();
        let doomed: TcpStream = socket.into();
        assert_eq!(round_trip(&doomed, "a"), "a");
        drop(doomed);

        // The server, and the hook, carry on for the next connections.
        for _ in 0..4 {
            let s = TcpStream::connect(addr).unwrap();
            assert_eq!(round_trip(&s, "b"), "b");
            let peer = s.local_addr().unwrap();
            drop(s);
            assert_eq!(ended(&log, peer), Ended::Clean);
        }
        assert!(
            log.lock()
                .unwrap()
                .iter()
                .all(|(p, _)| p.port() != doomed_port)
        );
        assert!(server.shutdown());
    });
}
