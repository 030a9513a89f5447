//! Checks of claims made in strata-proto's public documentation, over
//! real sockets on 127.0.0.1. Timeouts here are hang guards only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use strata_codec::LinesCodec;
use strata_proto::pipeline::ServerProto;
use strata_proto::{ConnectionConfig, TcpServer};
use strata_service::service_fn;

struct Lines;

impl ServerProto for Lines {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(16)
    }
}

const GUARD: Duration = Duration::from_secs(20);

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(GUARD)).unwrap();
    s
}

/// `ConnectionConfig::max_in_flight`: "(at least 1)".
#[test]
fn max_in_flight_zero_is_one() {
    assert_eq!(
        ConnectionConfig::default()
            .max_in_flight(0)
            .get_max_in_flight(),
        1
    );
    assert_eq!(ConnectionConfig::default().get_max_in_flight(), 64);
}

/// `TcpServer`: "over it [max_connections], a new connection is accepted
/// and closed at once", counted by `rejected_connections`.
#[test]
fn over_the_connection_limit_a_connection_is_closed_at_once() {
    let server = TcpServer::new(Lines, "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .max_connections(1)
        .start(|| {
            Ok::<_, std::io::Error>(service_fn(
                |l: String| async move { Ok::<_, std::io::Error>(l) },
            ))
        })
        .unwrap();
    let mut first = connect(server.local_addr());
    first.write_all(b"a\n").unwrap();
    let mut line = String::new();
    BufReader::new(&first).read_line(&mut line).unwrap();
    assert_eq!(line, "a\n");
    let mut second = connect(server.local_addr());
    let mut buf = [0u8; 8];
    // EOF or a reset, but not a hang (the guard) and no data.
    match second.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("got {n} bytes"),
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "hung: {e}"),
    }
    assert_eq!(server.rejected_connections(), 1);
    assert_eq!(server.connections(), 1);
    drop(first);
    assert!(server.shutdown());
}

/// Pipelining: "responses in request order", a slow first request
/// holding back a fast second one.
#[test]
fn responses_come_in_request_order() {
    let server = TcpServer::new(Lines, "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .start(|| {
            Ok::<_, std::io::Error>(service_fn(|l: String| async move {
                if l == "slow" {
                    strata_rt::time::sleep(Duration::from_millis(100)).await;
                }
                Ok::<_, std::io::Error>(l)
            }))
        })
        .unwrap();
    let mut c = connect(server.local_addr());
    c.write_all(b"slow\nfast\n").unwrap();
    let mut r = BufReader::new(&c);
    let (mut a, mut b) = (String::new(), String::new());
    r.read_line(&mut a).unwrap();
    r.read_line(&mut b).unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("slow\n", "fast\n"));
    drop(r);
    drop(c);
    assert!(server.shutdown());
}

/// `ServerProto::decode_error`: "Default: close without one [a final
/// response]" — an over-long line closes the connection, answers before it
/// still sent.
#[test]
fn bad_input_with_the_default_decode_error_closes_without_a_word() {
    let server = TcpServer::new(Lines, "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .start(|| {
            Ok::<_, std::io::Error>(service_fn(
                |l: String| async move { Ok::<_, std::io::Error>(l) },
            ))
        })
        .unwrap();
    let mut c = connect(server.local_addr());
    c.write_all(b"ok\nthis line is far too long for sixteen\n")
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"ok\n");
    assert!(server.shutdown());
}

/// Graceful shutdown: "idle connections close at once", and `shutdown`
/// returns `true` when every connection finished in time.
#[test]
fn shutdown_closes_idle_connections_and_reports_success() {
    let server = TcpServer::new(Lines, "127.0.0.1:0".parse().unwrap())
        .threads(2)
        .shutdown_timeout(Duration::from_secs(30))
        .start(|| {
            Ok::<_, std::io::Error>(service_fn(
                |l: String| async move { Ok::<_, std::io::Error>(l) },
            ))
        })
        .unwrap();
    let mut c = connect(server.local_addr());
    c.write_all(b"x\n").unwrap();
    let mut line = String::new();
    let mut r = BufReader::new(c.try_clone().unwrap());
    r.read_line(&mut line).unwrap();
    let waiter = std::thread::spawn(move || server.shutdown());
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(waiter.join().unwrap());
}
