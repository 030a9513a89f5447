//! `--write-timeout` on the real binary: a client that stops reading is
//! closed about one write timeout after it took its last answer (a soak
//! review found it took two, every time: the kernel's send queue was
//! compared with a sample that predated the stall).

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

mod support;

use support::Server;

/// Ordered against another timer of the same server rather than a clock
/// bound: a client that never reads is closed (write timeout 2 s, so
/// within 2.5 s of its last answer) before an idle client connected when
/// its answers stopped moving (idle timeout 3.5 s). With the old 2x it
/// was closed at 4 s, after the idle one.
#[test]
fn a_client_that_stops_reading_is_closed_within_about_one_write_timeout() {
    let server = Server::start(&["--write-timeout", "2s", "--idle-timeout", "3500ms"]);
    let mut hog = server.stream();
    hog.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let batch = b"hello\n".repeat(4096);
    // Fill both directions until the server stops taking requests (its
    // answers have nowhere to go).
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "writes never blocked"
        );
        match hog.write(&batch) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("closed before it stalled: {e}"),
        }
    }
    let mut idle = server.stream();
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Wait for the idle client's close (EOF), then look at the hog.
    let mut byte = [0u8; 1];
    assert_eq!(idle.read(&mut byte).unwrap(), 0, "the idle client got data");
    // The hog was closed first: the server reset it (closing with requests
    // unread), so a write fails with a reset or a broken pipe at once,
    // where a live but full connection would only time out.
    hog.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let closed = (0..3).any(|_| {
        matches!(
            hog.write(b"hello\n").map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
        )
    });
    assert!(
        closed,
        "the client that stopped reading outlived an idle client that came later"
    );
}
