//! The four servers of the `line` benchmark, each started the way the
//! benchmark starts it (`line serve NAME --workers 1`), answer the protocol
//! correctly: a pipelined batch in order, a short run of the load
//! generator, and a bad line answered with one error line, then closed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use strata_bench::loadgen::{self, LoadSpec, Progress};

struct Server(Child, SocketAddr);

impl Server {
    fn start(name: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_line"))
            .args(["serve", name, "--workers", "1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn line serve");
        let mut banner = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut banner)
            .expect("banner");
        let addr = banner
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bad banner {banner:?}"));
        Server(child, addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn check(name: &str) {
    let server = Server::start(name);
    let mut s = TcpStream::connect(server.1).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // One write of 16 requests, answered in order.
    let batch: String = (0..16)
        .map(|i| if i % 3 == 0 { "x\n" } else { "hello\n" })
        .collect();
    let want: String = (0..16)
        .map(|i| if i % 3 == 0 { "idk\n" } else { "world\n" })
        .collect();
    s.write_all(batch.as_bytes()).unwrap();
    let mut got = vec![0; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want, "{name}");
    // Invalid UTF-8: one error line, then the server closes.
    s.write_all(b"\xff\xfe\n").unwrap();
    let mut rest = String::new();
    BufReader::new(&s).read_to_string(&mut rest).unwrap();
    assert!(
        rest.starts_with("error") && rest.ends_with('\n') && rest.lines().count() == 1,
        "{name}: {rest:?}"
    );
    let r = loadgen::run(&LoadSpec {
        addr: server.1,
        conns: 2,
        depth: 16,
        request: b"hello\n".to_vec(),
        response: b"world\n".to_vec(),
        duration: Duration::from_millis(300),
        progress: Progress::Off,
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(r.responses > 0, "{name}");
}

#[test]
fn strata_answers() {
    check("strata");
}

#[test]
fn tokio_answers() {
    check("tokio");
}

#[test]
fn tokio_batch_answers() {
    check("tokio-batch");
}

#[test]
fn mio_answers() {
    check("mio");
}
