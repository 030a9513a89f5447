//! TcpServer out of descriptors: the accept loop backs off instead of
//! spinning, connections already open keep being served, and the clients
//! that queued meanwhile are accepted and served once descriptors are free,
//! during a graceful stop too.
//! Also: every descriptor a running server holds is close-on-exec.
//!
//! Each test runs in a child process: `RLIMIT_NOFILE` is process-wide.
#![cfg(target_os = "linux")]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{Echo, Fixture, cfg, child, deadline, eventually};

#[path = "../../strata-rt/tests/support/fds.rs"]
#[allow(dead_code, unreachable_pub)]
mod fds;
use fds::{Exhausted, open_fds};

/// CPU time (user + system) of the whole process so far.
fn cpu_time() -> Duration {
    // SAFETY: zeroed is a valid `rusage`, filled in by the call.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn round_trip(s: &TcpStream, line: &str) -> String {
    (&*s).write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut got = String::new();
    r.read_line(&mut got).unwrap();
    got.trim_end().to_string()
}

fn prepared_socket() -> socket2::Socket {
    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap()
}

fn connect_prepared(s: socket2::Socket, addr: SocketAddr) -> TcpStream {
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// While out of descriptors the accept loop pauses (its CPU use stays far
/// below a spinning core's; a generous bound), an open connection is still
/// served, and the clients that queued are served once descriptors are
/// back.
#[test]
fn server_backs_off_and_resumes_after_exhaustion() {
    if !child::is_child() {
        return child::passes("server_backs_off_and_resumes_after_exhaustion");
    }
    deadline(90, || {
        let server = support::one_worker()
            .shutdown_timeout(Duration::from_secs(5))
            .start(|| Ok::<_, std::io::Error>(Echo))
            .unwrap();
        let addr = server.local_addr();
        let a = TcpStream::connect(addr).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(round_trip(&a, "echo a"), "echo a");
        let (pb, pc) = (prepared_socket(), prepared_socket());

        let ex = Exhausted::now();
        let b = connect_prepared(pb, addr);
        (&b).write_all(b"echo b\n").unwrap();
        // Let the loop meet EMFILE and settle into its pauses, then measure.
        std::thread::sleep(Duration::from_millis(300));
        let cpu0 = cpu_time();
        let wall0 = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(1500));
        let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
        // The open connection is unaffected.
        assert_eq!(round_trip(&a, "echo a2"), "echo a2");
        drop(ex);

        let mut got = String::new();
        BufReader::new(&b).read_line(&mut got).unwrap();
        assert_eq!(
            got.trim_end(),
            "echo b",
            "the client queued while out of fds"
        );
        let c = connect_prepared(pc, addr);
        assert_eq!(round_trip(&c, "echo c"), "echo c");
        assert!(
            cpu < wall / 2,
            "the accept loop used {cpu:?} of CPU in {wall:?} while out of descriptors"
        );
        drop((a, b, c));
        assert!(server.shutdown());
    });
}

/// What a running server holds (its workers' epolls and wakers, its
/// listener, an accepted connection) is close-on-exec.
#[test]
fn server_descriptors_are_close_on_exec() {
    if !child::is_child() {
        return child::passes("server_descriptors_are_close_on_exec");
    }
    deadline(60, || {
        let before = open_fds();
        let server = support::one_worker()
            .threads(2)
            .start(|| Ok::<_, std::io::Error>(Echo))
            .unwrap();
        let a = TcpStream::connect(server.local_addr()).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(round_trip(&a, "echo a"), "echo a");
        let client_fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        let bad: Vec<i32> = open_fds()
            .difference(&before)
            .copied()
            .filter(|&fd| fd != client_fd)
            .filter(|&fd| {
                // SAFETY: F_GETFD only reads a flag.
                let f = unsafe { libc::fcntl(fd, libc::F_GETFD) };
                f >= 0 && f & libc::FD_CLOEXEC == 0
            })
            .collect();
        assert!(
            bad.is_empty(),
            "server descriptors without FD_CLOEXEC: {bad:?}"
        );
        drop(a);
        assert!(server.shutdown());
    });
}

/// A server that cannot start for lack of descriptors says so, and leaves
/// none behind.
#[test]
fn start_out_of_descriptors_errs_and_leaks_nothing() {
    if !child::is_child() {
        return child::passes("start_out_of_descriptors_errs_and_leaks_nothing");
    }
    deadline(60, || {
        let baseline = open_fds();
        for spare in 0..8 {
            let mut ex = Exhausted::now();
            ex.free(spare);
            let r = support::one_worker()
                .threads(2)
                .start(|| Ok::<_, std::io::Error>(Echo));
            let err = match r {
                Ok(_) => panic!("started with {spare} spare fds"),
                Err(e) => e,
            };
            assert!(
                err.raw_os_error() == Some(libc::EMFILE) || err.to_string().contains("os error 24"),
                "spare {spare}: {err:?}"
            );
            drop(ex);
            assert_eq!(open_fds(), baseline, "spare {spare}: descriptors left open");
        }
    });
}

/// At the stop, the accept loop serves the connections the kernel had
/// completed (see `drain_backlog`): their clients saw `connect` succeed and
/// sent requests. When the stop finds the process out of descriptors, the
/// drain pauses and tries again while the server's own connections are
/// open: here the live connection that held the server at capacity
/// finishes and descriptors come back, well within the shutdown timeout,
/// and the queued client is served. (The drain used to take the first
/// `EMFILE` for a failed listener and close it, resetting the client.)
#[test]
fn stop_while_out_of_descriptors_still_serves_the_backlog() {
    if !child::is_child() {
        return child::passes("stop_while_out_of_descriptors_still_serves_the_backlog");
    }
    deadline(90, || {
        let mut fx = Fixture::start(1, 100, cfg());
        let addr = fx.addr();
        let mut a = fx.connect();
        a.send(&["gate held"]);
        let stats = fx.stats.clone();
        eventually(10, "the gated request runs", || {
            stats.running.load(std::sync::atomic::Ordering::SeqCst) == 1
        });
        let pb = prepared_socket();

        let ex = Exhausted::now();
        let b = connect_prepared(pb, addr);
        (&b).write_all(b"echo b\n").unwrap();
        // The accept loop meets EMFILE and pauses.
        std::thread::sleep(Duration::from_millis(300));
        let server = fx.server.take().unwrap();
        let stopping = std::thread::spawn(move || server.shutdown());
        std::thread::sleep(Duration::from_millis(200));
        // Descriptors are back long before the 10 s shutdown timeout, and
        // the live connection then finishes.
        drop(ex);
        std::thread::sleep(Duration::from_millis(100));
        fx.gate.open();
        assert_eq!(a.recv().as_deref(), Some("held"));

        let mut got = String::new();
        let r = BufReader::new(&b).read_line(&mut got);
        assert!(
            matches!(r, Ok(n) if n > 0) && got.trim_end() == "b",
            "the client queued before the stop was not served: {r:?} {got:?}"
        );
        assert!(stopping.join().unwrap());
    });
}

/// A stop out of descriptors with no connection of the server's own left
/// to give any back does not wait for them: the drain gives up, the
/// queued client is reset, and the shutdown returns long before its
/// timeout (60 s, beyond the hang guard).
#[test]
fn stop_out_of_descriptors_with_no_connection_left_ends_at_once() {
    if !child::is_child() {
        return child::passes("stop_out_of_descriptors_with_no_connection_left_ends_at_once");
    }
    deadline(30, || {
        let server = support::one_worker()
            .shutdown_timeout(Duration::from_secs(60))
            .start(|| Ok::<_, std::io::Error>(Echo))
            .unwrap();
        let addr = server.local_addr();
        let pb = prepared_socket();
        let ex = Exhausted::now();
        let b = connect_prepared(pb, addr);
        (&b).write_all(b"echo b\n").unwrap();
        // The accept loop meets EMFILE and pauses.
        std::thread::sleep(Duration::from_millis(300));
        assert!(server.shutdown());
        drop(ex);
        let mut got = String::new();
        let r = BufReader::new(&b).read_line(&mut got);
        assert!(
            matches!(&r, Ok(0))
                || matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "the client queued with no descriptor to take it: {r:?} {got:?}"
        );
    });
}
