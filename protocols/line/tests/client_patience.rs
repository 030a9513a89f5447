//! `line-client`'s write timeout blames only a server that stopped
//! reading, not one held up by our own paused stdout; `parse_addr` calls a
//! port out of range only when it is. Child processes run under watchdogs;
//! the pauses below set up a scenario, they are not performance bounds.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use strata_line::parse_addr;
use support::{CLIENT, output_within};

/// `::1:8080` is a valid IPv6 address with no port (IPv6 with a port
/// needs brackets); the message must not say the port 8080 is out of
/// range.
#[test]
fn parse_addr_does_not_call_an_in_range_port_out_of_range() {
    for s in ["::1:8080", "::ffff:127.0.0.1:80", "fe80::1:443"] {
        let e = parse_addr(s).unwrap_err();
        assert!(
            !e.contains("out of range"),
            "parse_addr({s:?}) said {e:?}: the port is within 0..=65535; the address is \
             an IPv6 one without brackets"
        );
    }
}

/// A malformed bracketed address is not "wrong in its port only".
#[test]
fn parse_addr_does_not_blame_the_port_of_a_malformed_bracketed_address() {
    for s in [
        "[::1:70000",
        "::1]:70000",
        "[[::1]]:70000",
        "[127.0.0.1]:70000",
    ] {
        let e = parse_addr(s).unwrap_err();
        assert!(
            !e.contains("out of range"),
            "parse_addr({s:?}) said {e:?}, but fixing the port would not make it valid"
        );
    }
}

/// A live server that answers every request, with the client's own
/// stdout paused for a while (`line-client < file | less`, the pager
/// waiting): the server stops reading only because the client stopped
/// reading its answers. The write timeout does not blame the server while
/// the reader is held by stdout (it gave up after one timeout, dropping
/// answers that had come), and the run completes.
#[test]
fn a_paused_stdout_does_not_make_the_writer_give_up_on_a_live_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Echo server: reads a line, writes it back (blocking write), so it
    // stops reading while its answers are not taken.
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if w.write_all(&line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string(), "--timeout", "1s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 48 MiB of requests, 64 KiB each: far more than the socket buffers
    // both ways and the stdout pipe hold.
    const N: usize = 768;
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut req = vec![b'a'; 65_535];
        req.push(b'\n');
        for _ in 0..N {
            if stdin.write_all(&req).is_err() {
                break;
            }
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    // The pager is paused: stdout is not read for a while.
    std::thread::sleep(Duration::from_secs(4));
    let reader = std::thread::spawn(move || {
        let mut n = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += buf[..k].iter().filter(|&&b| b == b'\n').count(),
            }
        }
        n
    });
    let out = output_within(child, 60);
    let lines = reader.join().unwrap();
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && lines == N,
        "status {:?}, {lines} of {N} answers; stderr: {stderr}",
        out.status
    );
}
