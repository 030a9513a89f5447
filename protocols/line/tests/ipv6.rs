//! `line-server` and `line-client` over IPv6 loopback (a review): the
//! printed address keeps its brackets (so it can be pasted into
//! `--addr`), the client reaches a `[::1]` server, and a `[::]` server
//! (dual-stack by the OS default) serves a v4 client too; `--v6-only`
//! sets it either way, refuses values other than on and off, and changes
//! nothing for an IPv4 address.
//!
//! Returns early (passing) on a machine without IPv6 loopback. Waits are
//! watchdogs against hangs only.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod support;

use support::{CLIENT, SERVER, Server, output_within};

fn has_v6() -> bool {
    let ok = std::net::TcpListener::bind("[::1]:0").is_ok();
    if !ok {
        eprintln!("no IPv6 loopback here; skipped");
    }
    ok
}

/// A `line-server --addr <addr> <extra>`, and the line it printed on
/// stdout.
fn start(addr: &str, extra: &[&str]) -> (Server, String) {
    let mut child = Command::new(SERVER)
        .args(["--addr", addr, "--threads", "2"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-server starts");
    let stdout = child.stdout.take().unwrap();
    let server = Server::from_child(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let printed = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("line-server prints where it listens");
    (server, printed.trim_end().to_owned())
}

fn ask(addr: SocketAddr) -> std::process::Output {
    let child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string(), "--timeout", "20s", "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-client starts");
    output_within(child, 60)
}

/// `line-client` asks `server` (at `addr`, or where it listens) `hello`
/// and gets `world`; then the server stops cleanly.
fn answers_then_stops(server: Server, addr: Option<SocketAddr>) {
    let out = ask(addr.unwrap_or(server.addr));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "world\n");
    let (status, _) = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_v6_server_prints_a_bracketed_address_the_client_can_use() {
    if !has_v6() {
        return;
    }
    let (server, printed) = start("[::1]:0", &[]);
    let port = server.addr.port();
    assert_eq!(printed, format!("line-server: listening on [::1]:{port}"));
    assert_eq!(
        server.addr,
        SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port))
    );
    answers_then_stops(server, None);
}

#[test]
fn a_dual_stack_server_answers_a_v4_client() {
    if !has_v6() {
        return;
    }
    let (server, printed) = start("[::]:0", &[]);
    let port = server.addr.port();
    assert_eq!(printed, format!("line-server: listening on [::]:{port}"));
    if std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        eprintln!("the OS default here is v6-only; skipped");
        return;
    }
    answers_then_stops(server, Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
}

#[test]
fn v6_only_on_leaves_the_v4_port_free_and_still_serves_v6() {
    if !has_v6() {
        return;
    }
    let (server, _) = start("[::]:0", &["--v6-only", "on"]);
    let port = server.addr.port();
    // Dual-stack, the server would hold 127.0.0.1's port too (and this
    // bind would fail with "address in use").
    let v4 = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port));
    assert!(v4.is_ok(), "{v4:?}");
    answers_then_stops(
        server,
        Some(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port))),
    );
}

#[test]
fn v6_only_off_serves_a_v4_client() {
    if !has_v6() {
        return;
    }
    let (server, _) = start("[::]:0", &["--v6-only", "off"]);
    let port = server.addr.port();
    answers_then_stops(server, Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
}

/// A value that is neither on nor off is refused before the server
/// starts (a usage error, exit status 2), naming the flag.
#[test]
fn a_bad_value_is_a_usage_error() {
    for bad in ["maybe", ""] {
        let child = Command::new(SERVER)
            .args(["--addr", "127.0.0.1:0", "--v6-only", bad])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("line-server starts");
        let out = output_within(child, 60);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--v6-only"), "{bad:?}: {err}");
    }
}

/// With an IPv4 address the flag changes nothing: the server starts and
/// answers.
#[test]
fn an_ipv4_address_with_the_flag_serves() {
    for v in ["on", "off"] {
        let (server, printed) = start("127.0.0.1:0", &["--v6-only", v]);
        assert!(
            printed.starts_with("line-server: listening on 127.0.0.1:"),
            "{printed}"
        );
        answers_then_stops(server, None);
    }
}
