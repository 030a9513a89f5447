//! `line-client` gives up on a server that misbehaves: one that stops
//! taking input (after one `--timeout`, as its help says), one that sends
//! an endless answer line (after 1 MiB of it). Child processes run under
//! watchdogs. The two timeout tests bound the time to give up by two
//! timeouts and a second, against four or five before their fix: a count
//! of timeouts, with room for a slow machine, not a performance bound.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

use support::{CLIENT, output_within};

/// The `--timeout` of the two tests below, in seconds.
const TIMEOUT_S: u64 = 2;

/// `line-client --timeout 2s` to `addr`, reading its stdin; with its stdin.
fn client(addr: std::net::SocketAddr) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = Command::new(CLIENT)
        .args([
            "--addr",
            &addr.to_string(),
            "--timeout",
            &format!("{TIMEOUT_S}s"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-client starts");
    let input = child.stdin.take().unwrap();
    (child, input)
}

/// Feeds the client one line far beyond the loopback buffers (its writer
/// blocks within milliseconds) until it gives up; how long that took, and
/// its output.
fn feed_until_given_up(
    child: std::process::Child,
    mut input: std::process::ChildStdin,
) -> (Duration, std::process::Output) {
    let start = Instant::now();
    let feeder = std::thread::spawn(move || {
        let line = vec![b'x'; 64 << 20];
        let _ = input.write_all(&line);
    });
    let out = output_within(child, 30);
    let took = start.elapsed();
    feeder.join().unwrap();
    (took, out)
}

/// The client exited 1 within two timeouts and a second (`what`: the
/// server's behaviour, for the message).
fn assert_gave_up_in_time(took: Duration, out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        took < Duration::from_millis(TIMEOUT_S * 1000 * 2 + 1000),
        "the client gave up only after {took:?} with --timeout {TIMEOUT_S}s ({what}); \
         stderr: {stderr}"
    );
}

/// `--timeout`: "Give up when the server ... takes no input, for this
/// long". A server that answered one request and then stops reading is
/// given up on after one timeout. It took two or more: the reader's read
/// of the answer before the stall counted as "the reader moved
/// meanwhile" at the first write timeout.
#[test]
fn client_gives_up_on_a_stalled_server_after_one_timeout_even_after_an_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = mpsc::channel::<()>();
    let (stalled_tx, stalled_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (&conn).write_all(b"world\n").unwrap();
        // From here on: never read again (a stalled process).
        let _ = stalled_tx.send(());
        let _ = stopped.recv();
        drop(conn);
    });
    let (child, mut input) = client(addr);
    input.write_all(b"hello\n").unwrap();
    input.flush().unwrap();
    stalled_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    // Let the answer reach the client before the big line goes out.
    std::thread::sleep(Duration::from_millis(300));
    let (took, out) = feed_until_given_up(child, input);
    drop(stop);
    server.join().unwrap();
    assert_gave_up_in_time(took, &out, "the server stopped taking input at once");
}

/// The same without any answer (the server accepts and never reads, as in
/// `client_edges::line_client_gives_up_on_a_server_that_stops_reading`).
/// With `--timeout 2s` the client took about four timeouts to give up: a
/// blocked `send` that copied a few bytes into our own send buffer before
/// waiting out the timeout returns `Ok(n)`, and that wait did not count;
/// and once the writer had decided "stalled", the reader (nothing owed)
/// saw its verdict only at its own next read timeout.
#[test]
fn client_gives_up_on_a_server_that_never_reads_after_one_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let _ = stopped.recv();
        drop(conn);
    });
    let (child, input) = client(addr);
    let (took, out) = feed_until_given_up(child, input);
    drop(stop);
    server.join().unwrap();
    assert_gave_up_in_time(took, &out, "the server never read anything");
}

/// Peak resident set size of a running process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

/// A misbehaving (or hostile) server that answers with one endless line:
/// `line-client` gives up after 1 MiB of it, with a message and status 1.
/// It buffered the whole answer (`read_until` into a `Vec` with no bound):
/// its memory grew with whatever the server sent.
#[test]
fn client_memory_is_bounded_against_an_endless_answer_line() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let chunk = vec![b'x'; 1 << 20];
        // 256 MiB, no newline.
        for _ in 0..256 {
            if conn.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = stopped.recv_timeout(Duration::from_secs(20));
    });
    let child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string(), "--timeout", "2s", "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-client starts");
    let pid = child.id();
    let mut peak = 0;
    let watch = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            match rss_kib(pid) {
                Some(k) => peak = peak.max(k),
                None => break,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    });
    let out = output_within(child, 30);
    let peak = watch.join().unwrap();
    drop(stop);
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("longer than"), "stderr: {stderr}");
    assert!(
        peak < 64 * 1024,
        "line-client's peak RSS reached {peak} KiB on one endless answer line (exit {:?})",
        out.status
    );
}
