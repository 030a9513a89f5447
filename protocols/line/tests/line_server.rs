//! End-to-end: the real `line-server` binary as a subprocess, over TCP.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod support;

use support::{Server, output_within};

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn to(server: &Server) -> Conn {
        let s = server.stream();
        Conn {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(0) => None,
            Ok(_) => Some(l),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn hello_gets_world_and_anything_else_idk() {
    let server = Server::start(&[]);
    let mut c = Conn::to(&server);
    c.send(b"hello\n");
    assert_eq!(c.line().as_deref(), Some("world\n"));
    c.send(b"hi\n");
    assert_eq!(c.line().as_deref(), Some("idk\n"));
    c.send(b"\n");
    assert_eq!(c.line().as_deref(), Some("idk\n"));
    // \r\n is a line ending too.
    c.send(b"hello\r\nHELLO\r\n");
    assert_eq!(c.line().as_deref(), Some("world\n"));
    assert_eq!(c.line().as_deref(), Some("idk\n"));
}

#[test]
fn ten_thousand_pipelined_requests_come_back_in_order() {
    let server = Server::start(&[]);
    let mut c = Conn::to(&server);
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend_from_slice(if i % 3 == 0 { b"hello\n" } else { b"nope\n" });
    }
    let mut w = c.w.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&batch).unwrap());
    for i in 0..10_000 {
        let want = if i % 3 == 0 { "world\n" } else { "idk\n" };
        assert_eq!(c.line().as_deref(), Some(want), "response {i}");
    }
    writer.join().unwrap();
}

#[test]
fn an_over_long_line_gets_an_error_and_only_that_connection_closes() {
    let server = Server::start(&["--max-line-length", "100"]);
    let mut bystander = Conn::to(&server);
    let mut c = Conn::to(&server);
    // One write: the server may close as soon as it has seen too much.
    let mut batch = b"hello\n".to_vec();
    batch.extend_from_slice(&[b'a'; 5000]);
    batch.extend_from_slice(b"\nhello\n");
    c.send(&batch);
    assert_eq!(c.line().as_deref(), Some("world\n"));
    assert_eq!(c.line().as_deref(), Some("error: line too long\n"));
    assert_eq!(c.line(), None);
    bystander.send(b"hello\n");
    assert_eq!(bystander.line().as_deref(), Some("world\n"));
}

#[test]
fn invalid_utf8_gets_an_error_and_the_connection_closes() {
    let server = Server::start(&[]);
    let mut c = Conn::to(&server);
    c.send(b"hel\xc3\x28lo\n");
    assert_eq!(c.line().as_deref(), Some("error: invalid UTF-8\n"));
    assert_eq!(c.line(), None);
    let mut d = Conn::to(&server);
    d.send(b"hello\n");
    assert_eq!(d.line().as_deref(), Some("world\n"));
}

#[test]
fn many_concurrent_clients() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let clients: Vec<_> = (0..64)
        .map(|t| {
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut line = String::new();
                for i in 0..50 {
                    let hello = (t + i) % 2 == 0;
                    w.write_all(if hello { b"hello\n" } else { b"what\n" })
                        .unwrap();
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    assert_eq!(line, if hello { "world\n" } else { "idk\n" });
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn sigterm_answers_requests_in_flight_and_exits_cleanly() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let mut conns: Vec<Conn> = (0..8).map(|_| Conn::to(&server)).collect();
    // Each connection sends a pipelined batch; once the first answer of
    // each arrived, the batch was received, so all of it must be answered.
    let n = 2000;
    for c in &mut conns {
        c.send(&b"hello\n".repeat(n));
    }
    for c in &mut conns {
        assert_eq!(c.line().as_deref(), Some("world\n"));
    }
    let (status, logs) = server.terminate();
    for (k, c) in conns.iter_mut().enumerate() {
        for i in 1..n {
            assert_eq!(
                c.line().as_deref(),
                Some("world\n"),
                "conn {k} response {i}"
            );
        }
        assert_eq!(
            c.line(),
            None,
            "conn {k} should be closed after its answers"
        );
    }
    assert!(status.success(), "exit status {status}; logs: {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("SIGTERM")),
        "no shutdown log: {logs:?}"
    );
    // Nothing listens any more.
    match TcpStream::connect(addr) {
        Err(_) => {}
        Ok(mut s) => {
            let mut b = [0u8; 1];
            assert_eq!(s.read(&mut b).unwrap_or(0), 0);
        }
    }
}

#[test]
fn help_reads_well() {
    let out = Command::new(env!("CARGO_BIN_EXE_line-server"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--addr",
        "--threads",
        "--max-connections",
        "--max-line-length",
        "--idle-timeout",
        "--read-timeout",
        "--write-timeout",
        "--shutdown-timeout",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_line-server"))
        .args(["--idle-timeout", "soon"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a duration"));
    // Zero threads, connections or bytes per line would serve nothing.
    for flag in ["--threads", "--max-connections", "--max-line-length"] {
        let zero = Command::new(env!("CARGO_BIN_EXE_line-server"))
            .args([flag, "0"])
            .output()
            .unwrap();
        assert_eq!(zero.status.code(), Some(2), "{flag} 0 was accepted");
        assert!(String::from_utf8_lossy(&zero.stderr).contains("must be from 1 to"));
    }
}

#[test]
fn an_unfinished_line_is_closed_after_the_read_timeout() {
    let server = Server::start(&["--read-timeout", "200ms", "--idle-timeout", "1m"]);
    let mut c = Conn::to(&server);
    c.send(b"hello\nhel");
    assert_eq!(c.line().as_deref(), Some("world\n"));
    // The rest of the line never comes: the connection is closed.
    assert_eq!(c.line(), None);
}

#[test]
fn a_connection_flood_past_the_fd_limit_is_survived() {
    use std::os::unix::process::CommandExt;
    // Start the server with a tiny open-files limit, so a flood of
    // connections makes accept(2) fail with EMFILE.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_line-server"));
    cmd.args(["--addr", "127.0.0.1:0", "--threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 48,
                rlim_max: 48,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let mut server = Server::from_child(child);
    let addr = server.addr;
    // 100 connections: far more than the server can hold open.
    let mut flood = Vec::new();
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(addr) {
            flood.push(s);
        }
    }
    // The server must keep running (and say what happened) ...
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.child.try_wait().unwrap().is_none(), "server died");
    drop(flood);
    // ... and serve again once the flood is gone.
    let start = std::time::Instant::now();
    loop {
        let mut c = Conn::to(&server);
        c.send(b"hello\n");
        if c.line().as_deref() == Some("world\n") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server never recovered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs: Vec<String> = server.log.try_iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("accept failed")),
        "no accept error logged: {logs:?}"
    );
    server.child.kill().unwrap();
}

#[test]
fn clients_that_vanish_mid_request_do_not_disturb_others() {
    let server = Server::start(&[]);
    let mut steady = Conn::to(&server);
    for round in 0..50 {
        // Send a pipelined batch and vanish without reading (the kernel
        // resets the connection because answers arrive unread).
        let mut c = Conn::to(&server);
        c.send(&b"hello\n".repeat(200));
        if round % 2 == 0 {
            c.send(b"hel");
        }
        drop(c);
        steady.send(b"hello\n");
        assert_eq!(steady.line().as_deref(), Some("world\n"), "round {round}");
    }
}

/// Runs `line-client` against `server` with `args`, feeding `stdin` from
/// a thread; returns whether it succeeded and what it printed.
fn client(server: &Server, args: &[&str], stdin: Vec<u8>) -> (bool, Vec<u8>) {
    client_with(server, args, stdin, false)
}

/// `client`, with stdin optionally held open (not closed after `stdin`)
/// until the client has exited.
fn client_with(server: &Server, args: &[&str], stdin: Vec<u8>, hold: bool) -> (bool, Vec<u8>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_line-client"))
        .args(["--addr", &server.addr.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("line-client starts");
    let mut input = child.stdin.take().unwrap();
    let (release, released) = mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
        if hold {
            let _ = released.recv();
        }
    });
    // A client that hangs is killed after a minute (and then fails).
    let out = output_within(child, 60);
    drop(release);
    feeder.join().unwrap();
    (out.status.success(), out.stdout)
}

#[test]
fn line_client_sends_its_arguments() {
    let server = Server::start(&[]);
    let (ok, out) = client(&server, &["hello", "hi"], Vec::new());
    assert!(ok);
    assert_eq!(out, b"world\nidk\n");
    // An argument with a line break is two requests.
    let (ok, out) = client(&server, &["hello\nhi"], Vec::new());
    assert!(ok);
    assert_eq!(out, b"world\nidk\n");
}

/// A request the server never answered (it turned the connection away)
/// fails the client, error line or not.
#[test]
fn line_client_fails_on_a_missing_answer() {
    let server = Server::start(&["--max-connections", "1"]);
    let mut kept = Conn::to(&server);
    kept.send(b"hello\n");
    assert_eq!(kept.line().as_deref(), Some("world\n"));
    let (ok, out) = client(&server, &["hello"], Vec::new());
    assert!(!ok);
    assert_eq!(out, b"");
}

/// The server closes after an error line while stdin stays open (a
/// terminal, say): the client prints the answers and exits at once rather
/// than wait for more input.
#[test]
fn line_client_exits_when_the_server_closes_with_stdin_still_open() {
    let server = Server::start(&[]);
    let started = std::time::Instant::now();
    let (ok, out) = client_with(&server, &[], b"hello\nb\xffd\n".to_vec(), true);
    assert!(!ok);
    assert_eq!(out, b"world\nerror: invalid UTF-8\n");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the client waited for its stdin"
    );
}

/// More input than every socket buffer on the way holds, against a server
/// that never gives up on a client that does not read: the client writes
/// and reads at once, so it finishes (it stalled with both sides full).
#[test]
fn line_client_streams_any_amount_of_stdin() {
    let server = Server::start(&["--write-timeout", "0"]);
    let n = 2_000_000;
    let (ok, out) = client(&server, &[], b"hello\n".repeat(n));
    assert!(ok);
    assert_eq!(out.len(), n * 6);
    assert!(out.chunks(6).all(|a| a == b"world\n"));
}

/// Bad input goes to the server as it is; its error line is printed, the
/// answers before it too, and the exit code says not all went well.
#[test]
fn line_client_reports_error_answers_and_missing_ones() {
    let server = Server::start(&["--max-line-length", "16"]);
    let (ok, out) = client(&server, &[], b"hello\nb\xffd\nhello\n".to_vec());
    assert!(!ok);
    assert_eq!(out, b"world\nerror: invalid UTF-8\n");
    let (ok, out) = client(
        &server,
        &[],
        format!("hello\n{}\n", "x".repeat(100)).into_bytes(),
    );
    assert!(!ok);
    assert_eq!(out, b"world\nerror: line too long\n");
}

/// The listening address is printed on stdout whatever the log level.
#[test]
fn the_address_is_printed_even_with_quiet_logs() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_line-server"))
        .args(["--addr", "127.0.0.1:0", "--threads", "1"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("line-server starts");
    // Killed after 30 s if it prints nothing (the read then ends).
    let pid = child.id() as libc::pid_t;
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let _ = finished.recv_timeout(Duration::from_secs(30));
        // SAFETY: kill(2) with the pid of our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    let _ = child.wait();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("line-server: listening on ")
        .unwrap_or_else(|| panic!("printed {first:?}"))
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
}

/// A graceful shutdown that has to drop a connection (its peer never
/// reads, so its answers never drain) says so in the exit code, and in
/// words that fit the timeout (a zero one was "the shutdown timeout (0ns)
/// passed").
#[test]
fn a_shutdown_that_drops_connections_exits_non_zero() {
    for (timeout, says) in [
        ("300ms", "shutdown timeout (300ms) passed"),
        ("0", "shutdown timeout is zero"),
    ] {
        shutdown_drops_a_connection(timeout, says);
    }
}

fn shutdown_drops_a_connection(timeout: &str, says: &str) {
    let server = Server::start(&["--shutdown-timeout", timeout, "--write-timeout", "0"]);
    let mut hog = Conn::to(&server);
    hog.w
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Answers that fill every buffer on the way; never read.
    let batch = b"hello\n".repeat(100_000);
    while hog.w.write_all(&batch).is_ok() {}
    let (status, logs) = server.terminate();
    assert_eq!(status.code(), Some(1), "logs {logs:#?}");
    assert!(logs.iter().any(|l| l.contains(says)), "{logs:#?}");
    // The log's warning fits a zero timeout too (it said "passed").
    assert!(
        logs.iter()
            .any(|l| l.contains("shutdown timeout reached; dropping")),
        "{logs:#?}"
    );
}

/// A stdout that cannot be written (the address line fails) does not stop
/// the server.
#[test]
fn the_server_serves_with_an_unwritable_stdout() {
    let child = Command::new(env!("CARGO_BIN_EXE_line-server"))
        .args(["--addr", "127.0.0.1:0", "--threads", "1"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-server starts");
    let mut server = Server::from_child(child);
    // Still running a moment after the address line was attempted (it
    // used to panic there, and a graceful shutdown could still answer a
    // connection made at once).
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
    let mut c = Conn::to(&server);
    c.send(b"hello\n");
    assert_eq!(c.line().as_deref(), Some("world\n"));
}

/// The first connection over the limit is logged (then the 2nd, 4th ...).
#[test]
fn the_first_rejected_connection_is_logged() {
    let server = Server::start(&["--max-connections", "1"]);
    let mut kept = Conn::to(&server);
    kept.send(b"hello\n");
    assert_eq!(kept.line().as_deref(), Some("world\n"));
    let mut turned_away = Conn::to(&server);
    assert_eq!(turned_away.line(), None);
    let (_, logs) = server.terminate();
    assert!(
        logs.iter().any(|l| l.contains("connection limit reached")),
        "{logs:#?}"
    );
}
