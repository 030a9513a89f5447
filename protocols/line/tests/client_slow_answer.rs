//! `line-client`'s writer does not call a server stalled while its answers
//! keep arriving, however slowly. Child processes run under watchdogs; the
//! pauses set up a scenario, they are not performance bounds.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{CLIENT, output_within};

/// A live server that, after the first request, sends its first answer
/// slowly (a byte every 50 ms for 3 s, so the reader never waits a whole
/// timeout for a byte) and meanwhile does not read. The reader is moving
/// the whole time, so the writer does not call the server stalled (it
/// counted whole answers only, and gave up after one timeout of the slow
/// answer).
#[test]
fn a_server_sending_a_slow_answer_is_not_stalled() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = Vec::new();
        let mut first = true;
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if first {
                first = false;
                for _ in 0..60 {
                    if w.write_all(b"x").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                if w.write_all(b"\n").is_err() {
                    return;
                }
            } else if w.write_all(b"ok\n").is_err() {
                break;
            }
        }
    });
    // 16 MiB: far more than the socket buffers hold, so the writer blocks
    // while the server does not read.
    let big = "a".repeat(16 << 20);
    // (Fed through stdin: one argument may not be that long.)
    let mut child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string(), "--timeout", "1s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(b"first\n");
        let _ = stdin.write_all(big.as_bytes());
        let _ = stdin.write_all(b"\n");
    });
    let out = output_within(child, 60);
    feeder.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().count() == 2,
        "status {:?}; stdout {stdout:?}; stderr: {stderr}",
        out.status
    );
}
