//! The load generator against fake line servers on 127.0.0.1: an honest
//! one, and ones that send responses nobody asked for.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use strata_bench::loadgen::{self, LoadSpec, Progress};

/// How a fake server strays from one `world\n` per request line.
#[derive(Clone, Copy)]
enum Fake {
    Honest,
    /// This many unsolicited responses at accept, in one write.
    AtAccept(usize),
    /// After the answer to the 10th request, 5 ms later, one more.
    MidRun,
    /// One more once no request has come for 10 ms: after the client's
    /// last expected response, so only the final drain can see it.
    WhenIdle,
}

fn fake_server(fake: Fake) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || {
                let _ = serve(stream, fake);
            });
        }
    });
    addr
}

fn serve(stream: TcpStream, fake: Fake) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    if let Fake::AtAccept(n) = fake {
        out.write_all(&b"world\n".repeat(n))?;
    }
    if let Fake::WhenIdle = fake {
        stream.set_read_timeout(Some(Duration::from_millis(10)))?;
    }
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    let mut n = 0;
    let mut extra_sent = false;
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !extra_sent && n > 0 => {
                out.write_all(b"world\n")?;
                extra_sent = true;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
        n += 1;
        out.write_all(b"world\n")?;
        if let Fake::MidRun = fake
            && n == 10
        {
            thread::sleep(Duration::from_millis(5));
            out.write_all(b"world\n")?;
        }
    }
}

fn spec(addr: SocketAddr, conns: usize, depth: usize) -> LoadSpec {
    LoadSpec {
        addr,
        conns,
        depth,
        request: b"hello\n".to_vec(),
        response: b"world\n".to_vec(),
        duration: Duration::from_millis(300),
        progress: Progress::Off,
    }
}

fn invalid_data(fake: Fake, conns: usize, depth: usize) {
    let addr = fake_server(fake);
    let err = loadgen::run(&spec(addr, conns, depth)).expect_err("responses nobody asked for");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
}

#[test]
fn an_honest_server_passes() {
    let addr = fake_server(Fake::Honest);
    let r = loadgen::run(&spec(addr, 1, 1)).expect("honest run");
    assert!(r.responses > 0);
    let r = loadgen::run(&spec(addr, 2, 4)).expect("honest pipelined run");
    assert!(r.responses > 0);
}

#[test]
fn unsolicited_responses_at_accept_fail_the_run() {
    invalid_data(Fake::AtAccept(50), 1, 1);
}

#[test]
fn one_extra_response_mid_run_fails_the_run() {
    // At D=1 the extra arrives after the next request went out, so it may
    // be taken for that request's answer; then the answers run one behind
    // and the surplus shows when two arrive together, or at the end.
    invalid_data(Fake::MidRun, 1, 1);
    invalid_data(Fake::MidRun, 1, 4);
}

#[test]
fn an_extra_response_after_the_last_answer_fails_the_run() {
    invalid_data(Fake::WhenIdle, 1, 1);
    invalid_data(Fake::WhenIdle, 3, 2);
}
