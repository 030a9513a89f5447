//! The real `line-server` and `line-client` binaries, used the way an
//! operator or a newcomer uses them. Each test states the behaviour a user
//! should get (the first eight failed before their fixes).
//!
//! No test has a timing threshold: waits are watchdogs against hangs only
//! (the expected outcome happens in milliseconds; the watchdog is tens of
//! seconds, against shutdown timeouts of an hour).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod support;

use support::{CLIENT, SERVER, Server, output_within};

/// Runs `line-client` with a watchdog; returns (status, stdout, stderr).
fn run_client(
    addr: SocketAddr,
    args: &[&str],
    stdin: Stdio,
    stdout: Stdio,
) -> (ExitStatus, Vec<u8>, String) {
    let child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string()])
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-client starts");
    let out = output_within(child, 60);
    (
        out.status,
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// line-client
// ---------------------------------------------------------------------------

/// `line-client < somedir` (or any stdin that fails to read: EIO, a
/// directory, ...) says so and exits 1, as the README promises ("it exits
/// 1 if an answer is missing or an error"). It used to exit 0 in silence.
#[test]
fn line_client_fails_when_stdin_cannot_be_read() {
    let server = Server::start(&[]);
    let dir = std::fs::File::open(env!("CARGO_MANIFEST_DIR")).unwrap();
    let (status, out, err) = run_client(server.addr, &[], Stdio::from(dir), Stdio::piped());
    assert_eq!(out, b"");
    assert!(
        !status.success(),
        "stdin could not be read (EISDIR) yet line-client exited {status}, stderr {err:?}"
    );
}

/// A server that hangs up while the client still has input to send (here
/// the idle timeout; equally a SIGTERM of the server, or a restart): the
/// client prints the answers so far and exits 1, since the rest of the
/// input was never sent. It used to exit 0, so `producer | line-client &&
/// echo ok` said ok.
#[test]
fn line_client_fails_when_the_server_hangs_up_before_the_input_ends() {
    let server = Server::start(&["--idle-timeout", "200ms"]);
    let mut child = Command::new(CLIENT)
        .args(["--addr", &server.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"hello\n").unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first, "world\n");
    // The next request is not ready yet (a slow producer); the server idles
    // the connection out meanwhile. Wait (watchdog only) for the client to
    // exit, keeping stdin open.
    let pid = child.id() as libc::pid_t;
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(60)).is_err() {
            // SAFETY: kill(2) with the pid of our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let status = child.wait().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    // The rest of the input has nowhere to go.
    let lost = input.write_all(b"hello\n").and_then(|()| input.flush());
    assert!(lost.is_err(), "the client exited but still reads stdin?");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        !status.success(),
        "input was left unsent (the server closed first) yet line-client exited {status}, \
         stderr {err:?}"
    );
}

/// An answer cut off by the connection closing (a server killed mid-write,
/// or one whose shutdown timeout dropped the connection) is not an answer:
/// exit 1. It used to be printed like one, with exit 0.
#[test]
fn line_client_does_not_count_a_truncated_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut req = String::new();
        r.read_line(&mut req).unwrap();
        assert_eq!(req, "hello\n");
        // Half an answer, then the connection ends.
        (&s).write_all(b"wor").unwrap();
    });
    let (status, out, err) = run_client(addr, &["hello"], Stdio::null(), Stdio::piped());
    fake.join().unwrap();
    assert!(
        !status.success(),
        "a truncated answer passed for a complete one: exit {status}, printed {:?}, stderr {err:?}",
        String::from_utf8_lossy(&out)
    );
}

/// Failing to write its *own* stdout (a full disk here) is reported as
/// such, not as if the server connection had failed (it used to read
/// `line-client: 127.0.0.1:PORT: No space left on device`).
#[test]
fn line_client_does_not_blame_the_server_for_its_stdout() {
    let server = Server::start(&[]);
    let full = std::fs::File::create("/dev/full").unwrap();
    let (status, _, err) = run_client(server.addr, &["hello"], Stdio::null(), Stdio::from(full));
    assert!(!status.success());
    assert!(
        err.contains("stdout") || err.contains("output"),
        "the stdout error reads as a server error: {err:?}"
    );
}

// ---------------------------------------------------------------------------
// line-server
// ---------------------------------------------------------------------------

/// An operator whose graceful shutdown is stuck (a peer that does not read
/// its answers) presses Ctrl-C again, or systemd/a script sends SIGTERM
/// again: the remaining connections are dropped and the server exits 1.
/// It used to ignore the second signal and sit out the whole
/// --shutdown-timeout.
#[test]
fn a_second_ctrl_c_during_a_stuck_shutdown_is_not_ignored() {
    let mut server = Server::start(&["--shutdown-timeout", "1h", "--write-timeout", "0"]);
    let hog = server.stream();
    hog.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // Answers that fill every buffer on the way; never read.
    let batch = b"hello\n".repeat(100_000);
    while (&hog).write_all(&batch).is_ok() {}
    server.signal(libc::SIGINT);
    server.wait_log("shutting down connections=1");
    // A repeat within 250 ms of the first counts as the same signal
    // delivered twice; an operator's second press comes later.
    std::thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGINT);
    let status = server.wait_exit(30);
    let logs: Vec<String> = server.log.try_iter().collect();
    assert!(
        status.is_some(),
        "a second SIGINT was ignored: still waiting out a 1 h shutdown timeout; logs {logs:#?}"
    );
    assert!(!status.unwrap().success());
}

/// A stop signal repeated at once (coreutils `timeout` signals the process
/// and its group) is one signal: the graceful shutdown goes on, and only a
/// later one cuts it short. (Such a pair sometimes cut it short.)
///
/// Two `kill`s sent back to back merge in the kernel before the server
/// sees them, so the repeat is sent once the server has taken the first;
/// it must then land within the server's 250 ms window, which a stalled
/// test thread can miss: up to three attempts.
#[test]
fn a_signal_repeated_at_once_is_one_signal() {
    let mut failures = Vec::new();
    for _ in 0..3 {
        match signal_repeated_at_once() {
            Ok(()) => return,
            Err(why) => failures.push(why),
        }
    }
    panic!("in three attempts: {failures:#?}");
}

fn signal_repeated_at_once() -> Result<(), String> {
    let mut server = Server::start(&["--shutdown-timeout", "1h", "--write-timeout", "0"]);
    let hog = server.stream();
    hog.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let batch = b"hello\n".repeat(100_000);
    while (&hog).write_all(&batch).is_ok() {}
    server.signal(libc::SIGTERM);
    server.wait_log("shutting down connections=1");
    server.signal(libc::SIGTERM);
    let ignored = loop {
        match server.log.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.contains("signal repeated at once; ignored") => break true,
            Ok(l) if l.contains("second signal") => break false,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    if !ignored {
        return Err("the repeat was taken for a second signal".into());
    }
    if server.child.try_wait().unwrap().is_some() {
        return Err("the server exited after the repeat".into());
    }
    // A later signal still stops it at once.
    std::thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(30).expect("a later signal stops it");
    assert!(!status.success());
    Ok(())
}

/// A connection the server closed before the stop (error line, then EOF)
/// whose peer keeps its socket open only drains; a shutdown timeout that
/// passes with nothing else open is a clean exit, not "connections
/// dropped" (it used to exit 1).
#[test]
fn sockets_that_only_drain_are_not_connections_dropped() {
    stop_with_only_a_draining_socket(&["--shutdown-timeout", "300ms"], false);
}

/// The same with a second signal instead of the timeout: with only a
/// socket left that the server had closed, the operator's second Ctrl-C
/// stops it at once, and nothing was dropped (it used to exit 1 with "a
/// second signal cut the graceful shutdown short; 0 connections
/// dropped").
#[test]
fn a_second_signal_with_only_draining_sockets_is_a_clean_exit() {
    stop_with_only_a_draining_socket(&["--shutdown-timeout", "20s"], true);
}

/// Starts a server with `args`, has it close a connection over a too-long
/// line while the peer keeps its socket open (so it drains for 1 s), then
/// sends SIGTERM (and, with `again`, a second one past the repeat window)
/// and checks for a clean exit.
fn stop_with_only_a_draining_socket(args: &[&str], again: bool) {
    let mut server = Server::start(&[&["--max-line-length", "8"], args].concat());
    let mut s = server.stream();
    s.write_all(b"this line is too long\nmore").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap(); // the error line, then EOF
    assert!(
        got.starts_with(b"error:"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    server.signal(libc::SIGTERM);
    if again {
        // Past the window in which a repeat counts as the same signal.
        std::thread::sleep(Duration::from_millis(400));
        server.signal(libc::SIGTERM);
    }
    let status = server.wait_exit(30).expect("line-server exits");
    drop(s);
    assert!(
        status.success(),
        "exit {status} with no connection left to drop"
    );
}

/// `RUST_LOG=info,strata_proto=debug` (the syntax every tracing/env_logger
/// program accepts) works; it used to be replaced by `info` in silence. So
/// do a trailing comma (`debug,`, as left by scripts that join directives)
/// and a space after a comma: empty directives are skipped and the rest
/// trimmed, as env_logger does (the empty one used to mean "errors only",
/// silencing even the `listening` line, and ` strata_proto` matched no
/// target). Span filters (`strata_proto[conn]=debug`) are not supported,
/// and a warning says so (they used to be taken for target names that
/// matched nothing, in silence).
#[test]
fn a_rust_log_directive_is_not_silently_ignored() {
    for rust_log in [
        "info,strata_proto=debug",
        "debug,",
        "info, strata_proto=debug",
        // Span filters, not supported: a warning says so. The same for a
        // field filter `Targets` would not apply as written: a list of
        // fields (split at its comma), one without a level.
        "strata_proto[conn]=debug",
        "info,[conn]=debug",
        "strata_proto[{peer,connections}]=debug",
        "strata_proto[{peer}]",
        // Read as `error`, or as a name that matches nothing (a space, a
        // dash, a number that is no level): left out, with a word.
        "info,strata_proto=",
        "info,strata_proto =debug",
        "info,strata-proto=debug",
        "10",
    ] {
        let logs = logs_of_a_run_with(rust_log);
        // The first three must apply (a warning about them would be wrong).
        let applies = [
            "info,strata_proto=debug",
            "debug,",
            "info, strata_proto=debug",
        ]
        .contains(&rust_log);
        assert!(
            logs.iter()
                .any(|l| l.contains("connection opened") || (!applies && l.contains("RUST_LOG"))),
            "RUST_LOG={rust_log:?}: neither debug lines nor a warning: {logs:#?}"
        );
    }
}

/// Starting a second instance on a port in use: exit 1, and the message
/// names the address (it used to be only `Address already in use`).
#[test]
fn a_port_in_use_error_names_the_address() {
    // Another program (or a forgotten instance) holds the port.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(SERVER)
        .args(["--addr", &addr, "--threads", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr {err:?}");
    assert!(
        err.contains(&addr),
        "the bind error does not say which address: {err:?}"
    );
}

/// Counts are bounded above as well as below: `--max-line-length
/// 18446744073709551615` used to start a server that buffered a peer's
/// line however long it grew.
#[test]
fn counts_over_their_ceiling_are_refused() {
    let huge = usize::MAX.to_string();
    for (flag, value) in [
        ("--max-line-length", "16777217"),
        ("--max-line-length", huge.as_str()),
        ("--max-connections", "1048577"),
        ("--threads", "1025"),
        ("--threads", "0"),
    ] {
        let out = Command::new(SERVER)
            .args(["--addr", "127.0.0.1:0", flag, value])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: stderr {err:?}");
        assert!(
            err.contains(flag) && err.contains("must be from 1 to"),
            "{flag} {value}: the refusal does not name the option and its range: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Sound: kept as regression checks (these pass).
// ---------------------------------------------------------------------------

/// A client that sends a large pipelined batch and half-closes gets every
/// answer, then EOF.
#[test]
fn half_close_after_a_big_batch_gets_every_answer() {
    let server = Server::start(&[]);
    let s = server.stream();
    let mut w = s.try_clone().unwrap();
    let n = 200_000;
    let writer = std::thread::spawn(move || {
        w.write_all(&b"hello\r\n".repeat(n)).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut all = Vec::new();
    (&s).read_to_end(&mut all).unwrap();
    writer.join().unwrap();
    assert_eq!(all.len(), n * 6);
    assert!(all.chunks(6).all(|a| a == b"world\n"));
}

/// SIGTERM with an idle connection and one holding half a line: both are
/// closed (the answered request first), the exit is clean.
#[test]
fn sigterm_closes_idle_and_partial_connections() {
    let mut server = Server::start(&[]);
    let idle = server.stream();
    let partial = server.stream();
    (&partial).write_all(b"hello\nhel").unwrap();
    let mut r = BufReader::new(partial.try_clone().unwrap());
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    assert_eq!(l, "world\n");
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(30).expect("exits");
    assert!(status.success());
    let mut rest = Vec::new();
    (&idle).read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    rest.clear();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

/// One round trip, then SIGTERM; every log line of the run.
fn logs_of_a_run_with(rust_log: &str) -> Vec<String> {
    let server = Server::start_env(&[], &[("RUST_LOG", rust_log)]);
    let mut c = server.stream();
    c.write_all(b"hello\n").unwrap();
    let mut answer = String::new();
    BufReader::new(c.try_clone().unwrap())
        .read_line(&mut answer)
        .unwrap();
    assert_eq!(answer, "world\n");
    drop(c);
    let startup = server.startup.clone();
    let (status, logs) = server.terminate();
    assert!(status.success(), "exit {status}");
    startup.into_iter().chain(logs).collect()
}

/// `target[{field}]=level` is a field-name filter that tracing's `Targets`
/// applies (an event of `target` at `level` is enabled if it has every
/// named field): it is not taken for a span filter and left out. (The
/// first version of the span-filter warning did that; found by a review.)
#[test]
fn a_field_name_directive_that_targets_applies_is_not_left_out() {
    let logs = logs_of_a_run_with("strata_proto[{peer}]=debug");
    assert!(
        logs.iter().any(|l| l.contains("connection opened")),
        "RUST_LOG=strata_proto[{{peer}}]=debug: no `connection opened` line: {logs:#?}"
    );
}

/// The warning that a span filter was left out is not subject to the
/// filter it warns about: with a default level of `error` (the
/// `strata_proto=info` keeps the `listening` line the harness needs), a
/// `warn` event would be filtered out and the operator told nothing.
#[test]
fn the_warning_about_a_left_out_span_filter_is_not_filtered_out() {
    let logs = logs_of_a_run_with("error,strata_proto=info,strata_proto[conn]=debug");
    assert!(
        logs.iter().any(|l| l.contains("span filters")),
        "RUST_LOG=error,strata_proto=info,strata_proto[conn]=debug: the span filter was \
         left out in silence: {logs:#?}"
    );
}
