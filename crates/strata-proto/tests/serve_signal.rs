//! `TcpServer::serve` on SIGTERM: a graceful shutdown that answers the
//! requests in flight before it returns. Runs itself as a child process
//! (the signal goes to the whole process); waits are hang guards only.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::Duration;

use strata_service::service_fn;
use support::child::{self, Watchdog};
use support::one_worker;

/// The child: serves until a signal; each request is answered after a
/// second (it prints STARTED when it begins).
fn child_serve_until_signalled() {
    let result = one_worker()
        .shutdown_timeout(Duration::from_secs(30))
        .on_listening(|addr| println!("ADDR {addr}"))
        .serve(|| {
            Ok(service_fn(|req: String| async move {
                println!("STARTED");
                strata_rt::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, io::Error>(req)
            }))
        });
    println!("SERVE-RETURNED {result:?}");
}

/// SIGTERM with a request in flight: `serve` waits for it (within the
/// shutdown timeout, 30 s), so the client gets its answer, then the end of
/// the stream, and `serve` returns `Ok`.
#[test]
fn sigterm_answers_the_request_in_flight_before_serve_returns() {
    if child::is_child() {
        child_serve_until_signalled();
        return;
    }
    let mut child = child::spawn_self(
        "sigterm_answers_the_request_in_flight_before_serve_returns",
        Stdio::null(),
    );
    let pid = child.id() as libc::pid_t;
    let watchdog = Watchdog::new(&child, Duration::from_secs(60));
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut next_line = |want: &str| -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "child ended before {want}"
            );
            // (The first may follow the harness's "test ... " on its line.)
            if let Some(at) = line.find(want) {
                return line[at..].trim_end().to_string();
            }
        }
    };
    let addr = next_line("ADDR ")["ADDR ".len()..].to_string();
    let mut c = std::net::TcpStream::connect(addr.as_str()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"late\n").unwrap();
    next_line("STARTED");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut got = Vec::new();
    let read = c.read_to_end(&mut got);
    let returned = next_line("SERVE-RETURNED");
    let status = child.wait().unwrap();
    watchdog.done();
    assert_eq!(
        String::from_utf8_lossy(&got),
        "late\n",
        "read ended with {read:?}"
    );
    assert_eq!(returned, "SERVE-RETURNED Ok(())");
    assert!(status.success(), "{status:?}");
}
