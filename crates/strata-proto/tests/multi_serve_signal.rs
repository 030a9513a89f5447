//! One process, several servers, one signal: two `TcpServer::serve` calls
//! on two threads (a main and an admin server), and a `serve` beside a
//! `start`ed server. Each test runs itself as a child process (the signal
//! goes to the whole process); waits are hang guards only.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{ChildStdout, Stdio};
use std::time::Duration;

use strata_service::service_fn;
use support::child::{self, Watchdog};
use support::one_worker;

/// The child: two `serve`s on two threads; each request is answered after
/// `ms` milliseconds (each prints `STARTED<n>` when a request begins).
fn child_two_serves(ms: u64) {
    let serve = move |n: usize| {
        std::thread::spawn(move || {
            let result = one_worker()
                .shutdown_timeout(Duration::from_secs(60))
                .on_listening(move |addr| println!("ADDR{n} {addr}"))
                .serve(move || {
                    Ok(service_fn(move |req: String| async move {
                        println!("STARTED{n}");
                        strata_rt::time::sleep(Duration::from_millis(ms)).await;
                        Ok::<_, io::Error>(req)
                    }))
                });
            println!("RETURNED{n} {result:?}");
        })
    };
    let (a, b) = (serve(1), serve(2));
    a.join().unwrap();
    b.join().unwrap();
}

struct Lines(BufReader<ChildStdout>);

impl Lines {
    /// The rest of the first line that contains `want`, from `want` on.
    fn next(&mut self, want: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.0.read_line(&mut line).unwrap() > 0,
                "child ended before {want}"
            );
            if let Some(at) = line.find(want) {
                return line[at..].trim_end().to_string();
            }
        }
    }

    fn addr(&mut self, tag: &str) -> String {
        let l = self.next(tag);
        l[tag.len()..].trim().to_string()
    }
}

fn sigterm(pid: libc::pid_t) {
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

fn request(addr: &str, line: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    c
}

/// Waits (a hang guard bounds it) until `addr` refuses connections: its
/// server has seen the signal and closed its listener.
fn wait_refused(addr: &str) {
    loop {
        match TcpStream::connect(addr) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One SIGTERM: both `serve`s stop gracefully, each answering its request
/// in flight, and both return `Ok`.
#[test]
fn one_sigterm_stops_two_serves_gracefully() {
    if child::is_child() {
        child_two_serves(1000);
        return;
    }
    let mut child = child::spawn_self("one_sigterm_stops_two_serves_gracefully", Stdio::null());
    let pid = child.id() as libc::pid_t;
    let watchdog = Watchdog::new(&child, Duration::from_secs(60));
    let mut out = Lines(BufReader::new(child.stdout.take().unwrap()));
    // (The two lines come in either order.)
    let mut addrs = [String::new(), String::new()];
    for _ in 0..2 {
        let l = out.next("ADDR");
        let n: usize = l[4..5].parse().unwrap();
        addrs[n - 1] = l[5..].trim().to_string();
    }
    let mut c1 = request(&addrs[0], "one");
    let mut c2 = request(&addrs[1], "two");
    let mut started = 0;
    while started < 2 {
        out.next("STARTED");
        started += 1;
    }
    sigterm(pid);
    let (mut g1, mut g2) = (Vec::new(), Vec::new());
    let r1 = c1.read_to_end(&mut g1);
    let r2 = c2.read_to_end(&mut g2);
    let mut returned = vec![out.next("RETURNED"), out.next("RETURNED")];
    returned.sort();
    let status = child.wait().unwrap();
    watchdog.done();
    assert_eq!(String::from_utf8_lossy(&g1), "one\n", "{r1:?}");
    assert_eq!(String::from_utf8_lossy(&g2), "two\n", "{r2:?}");
    assert_eq!(returned, ["RETURNED1 Ok(())", "RETURNED2 Ok(())"]);
    assert!(status.success(), "{status:?}");
}

/// A second SIGTERM, well after the first (past the 250 ms in which a
/// repeat is taken for the same signal), cuts both graceful shutdowns
/// short: both `serve`s return `Interrupted`, their clients see the end.
#[test]
fn a_second_sigterm_cuts_both_serves_short() {
    if child::is_child() {
        child_two_serves(600_000);
        return;
    }
    let mut child = child::spawn_self("a_second_sigterm_cuts_both_serves_short", Stdio::null());
    let pid = child.id() as libc::pid_t;
    let watchdog = Watchdog::new(&child, Duration::from_secs(60));
    let mut out = Lines(BufReader::new(child.stdout.take().unwrap()));
    let mut addrs = [String::new(), String::new()];
    for _ in 0..2 {
        let l = out.next("ADDR");
        let n: usize = l[4..5].parse().unwrap();
        addrs[n - 1] = l[5..].trim().to_string();
    }
    let mut c1 = request(&addrs[0], "one");
    let mut c2 = request(&addrs[1], "two");
    out.next("STARTED");
    out.next("STARTED");
    sigterm(pid);
    wait_refused(&addrs[0]);
    wait_refused(&addrs[1]);
    // Past the repeat gap (a semantic wait, not a speed bound).
    std::thread::sleep(Duration::from_millis(600));
    sigterm(pid);
    let (mut g1, mut g2) = (Vec::new(), Vec::new());
    let _ = c1.read_to_end(&mut g1);
    let _ = c2.read_to_end(&mut g2);
    let mut returned = vec![out.next("RETURNED"), out.next("RETURNED")];
    returned.sort();
    let status = child.wait().unwrap();
    watchdog.done();
    assert!(g1.is_empty() && g2.is_empty(), "{g1:?} {g2:?}");
    assert!(
        returned[0].starts_with("RETURNED1 Err(Custom { kind: Interrupted")
            && returned[1].starts_with("RETURNED2 Err(Custom { kind: Interrupted"),
        "{returned:?}"
    );
    assert!(status.success(), "{status:?}");
}

/// A `serve` beside a `start`ed server: the signal stops the `serve`, and
/// the started server goes on answering (it is not tied to signals), also
/// after `serve` returned.
#[test]
fn a_started_server_beside_serve_is_not_stopped_by_the_signal() {
    if child::is_child() {
        let started = one_worker()
            .start(|| {
                Ok(service_fn(
                    |req: String| async move { Ok::<_, io::Error>(req) },
                ))
            })
            .unwrap();
        println!("STARTEDADDR {}", started.local_addr());
        let result = one_worker()
            .on_listening(|addr| println!("SERVEADDR {addr}"))
            .serve(|| {
                Ok(service_fn(
                    |req: String| async move { Ok::<_, io::Error>(req) },
                ))
            });
        println!("RETURNED {result:?}");
        // The parent talks to the started server now, then closes stdin.
        let mut buf = String::new();
        let _ = std::io::stdin().read_line(&mut buf);
        println!("CONNECTIONS {}", started.connections());
        assert!(started.shutdown());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "a_started_server_beside_serve_is_not_stopped_by_the_signal",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STRATA_TEST_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let watchdog = Watchdog::new(&child, Duration::from_secs(60));
    let mut out = Lines(BufReader::new(child.stdout.take().unwrap()));
    let started = out.addr("STARTEDADDR ");
    let _serve = out.addr("SERVEADDR ");
    let mut before = request(&started, "before");
    let mut line = String::new();
    BufReader::new(before.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "before\n");
    sigterm(pid);
    assert_eq!(out.next("RETURNED"), "RETURNED Ok(())");
    // The connection opened before the signal still works, and a new one.
    before.write_all(b"again\n").unwrap();
    line.clear();
    BufReader::new(before.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "again\n");
    let after = request(&started, "after");
    line.clear();
    BufReader::new(after.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "after\n");
    drop((before, after));
    drop(child.stdin.take());
    out.next("CONNECTIONS");
    let status = child.wait().unwrap();
    watchdog.done();
    assert!(status.success(), "{status:?}");
}
