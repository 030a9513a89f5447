//! The real `line-server` stopped (SIGSTOP) for longer than all its
//! connection timeouts while clients send requests, then continued: every
//! request sent during the stop is answered. The monotonic clock runs on
//! meanwhile, so on resume every idle/read deadline has passed, and the
//! requests that would have met them are already in the sockets. (Linux
//! fails the workers' interrupted `epoll_wait` with `EINTR` on the
//! continue; the workers used to fire the due timers before looking at
//! I/O again, and the connection partway through a line was cut.)
//! Waits are watchdogs, not performance bounds.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

mod support;

use support::Server;

#[test]
fn requests_sent_while_the_server_is_stopped_longer_than_its_timeouts_are_answered() {
    let server = Server::start(&[
        "--idle-timeout",
        "2s",
        "--read-timeout",
        "2s",
        "--write-timeout",
        "2s",
    ]);
    // An idle connection (one request answered already).
    let idle = server.stream();
    let mut idle_r = BufReader::new(idle.try_clone().unwrap());
    (&idle).write_all(b"hello\n").unwrap();
    let mut line = String::new();
    idle_r.read_line(&mut line).unwrap();
    assert_eq!(line, "world\n");
    // A connection partway through a line (its read timeout runs).
    let partial = server.stream();
    let mut partial_r = BufReader::new(partial.try_clone().unwrap());
    (&partial).write_all(b"hel").unwrap();
    std::thread::sleep(Duration::from_millis(200));

    server.stop();
    (&idle).write_all(b"hello\n").unwrap();
    (&partial).write_all(b"lo\n").unwrap();
    // A connection made during the stop (the kernel completes it).
    let fresh = server.stream();
    (&fresh).write_all(b"hello\n").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    server.signal(libc::SIGCONT);

    let mut got = Vec::new();
    for (name, r) in [
        ("idle", &mut idle_r),
        ("partial", &mut partial_r),
        ("fresh", &mut BufReader::new(fresh.try_clone().unwrap())),
    ] {
        let mut line = String::new();
        let answer = r.read_line(&mut line).ok().map(|_| line);
        got.push((name, answer));
    }
    let (status, log) = server.terminate();
    let want: Vec<_> = ["idle", "partial", "fresh"]
        .into_iter()
        .map(|n| (n, Some("world\n".to_string())))
        .collect();
    assert_eq!(got, want, "server log:\n{}", log.join("\n"));
    assert!(status.success());
}
