//! `line-client` against silent servers and unfinished input, and
//! `parse_duration` at its limits.
//!
//! No timing thresholds: waits are watchdogs against hangs (tens of
//! seconds, where the expected outcome takes milliseconds).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod support;

use support::{CLIENT, Server, output_within};

/// `line-client` against a server that accepts the connection and then
/// never answers (a hung or stopped process) gives up after `--timeout`
/// and exits 1 (it used to wait forever, with no option to stop it).
#[test]
fn line_client_gives_up_on_a_server_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts, holds the connection open, never reads or writes.
    let (stop, stopped) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let _ = stopped.recv();
        drop(conn);
    });
    let child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string(), "--timeout", "300ms", "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-client starts");
    // Watchdog: killed (status without a code) if still waiting after 60 s.
    let out = output_within(child, 60);
    drop(stop);
    holder.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "line-client did not give up on a silent server (killed by the watchdog: {:?})",
        out.status
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no answer within 300ms"), "{err}");
}

/// The timeout counts only while answers are owed: a user who has not
/// typed anything yet is not given up on.
#[test]
fn line_client_waits_for_input_past_the_timeout() {
    let server = Server::start(&[]);
    let mut child = Command::new(CLIENT)
        .args(["--addr", &server.addr.to_string(), "--timeout", "200ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-client starts");
    let mut input = child.stdin.take().unwrap();
    // Several timeouts' worth of nothing, then a request.
    std::thread::sleep(Duration::from_millis(800));
    input.write_all(b"hello\n").unwrap();
    drop(input);
    let out = output_within(child, 60);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "world\n");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `line-client` sends stdin as it comes: a long line that has not ended
/// yet (a binary file, `< /dev/zero`, a producer still writing) reaches the
/// server, which refuses it after 8 KiB with `error: line too long`. (It
/// used to buffer each line whole first: nothing was sent, and the
/// client's memory grew with the line.)
#[test]
fn line_client_streams_a_long_unfinished_line() {
    let server = Server::start(&[]);
    let mut child = Command::new(CLIENT)
        .args(["--addr", &server.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("line-client starts");
    let mut input = child.stdin.take().unwrap();
    let (release, released) = mpsc::channel::<()>();
    // 1 MiB of one line, no newline; stdin stays open.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&vec![b'x'; 1 << 20]);
        let _ = released.recv();
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Watchdog: the answer comes in milliseconds once the bytes are sent.
    let first = lines.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    drop(release);
    feeder.join().unwrap();
    assert_eq!(
        first.ok().as_deref(),
        Some("error: line too long"),
        "the unfinished 1 MiB line was never sent to the server"
    );
}

/// `parse_duration` calls `18446744073709551616` "too large a duration",
/// and so `18446744073709551615h`, which is larger still (it used to be
/// capped at u64::MAX seconds, a value other than the one written).
#[test]
fn parse_duration_refuses_a_unit_overflow_instead_of_capping_it() {
    for s in ["18446744073709551615h", "307445734561825861m"] {
        let got = strata_line::parse_duration(s);
        assert!(
            got.as_ref().is_err_and(|e| e.contains("too large")),
            "parse_duration({s:?}) = {got:?}, not a `too large` error"
        );
    }
}

/// A server that reads one request, sends the start of an answer, and
/// then hangs (keeps the connection open, sends nothing more).
fn half_answering_server() -> (
    std::net::SocketAddr,
    mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (&conn).write_all(b"wor").unwrap();
        let _ = stopped.recv();
    });
    (addr, stop, t)
}

/// The part of an answer that came before the server went silent is
/// shown when the client gives up (it used to be dropped).
#[test]
fn a_partial_answer_is_shown_when_the_client_gives_up() {
    let (addr, stop, server) = half_answering_server();
    let child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string(), "--timeout", "300ms", "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-client starts");
    // Watchdog only.
    let out = output_within(child, 60);
    drop(stop);
    server.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no answer within"), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "wor\n",
        "the part of the answer the server sent before going silent was dropped"
    );
}
