//! A flood of pipelined requests that the client never reads: the server
//! must stay within its in-flight bound and its memory must not grow. In a
//! file of its own so that no other test shares the process whose memory
//! is measured.

mod support;

use std::io::{BufRead, ErrorKind, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::*;

/// Resident memory of this process (the server runs in it).
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn a_flood_of_unread_requests_is_bounded_by_max_in_flight() {
    deadline(120, || {
        let max_in_flight = 8;
        let fx = Fixture::start(1, 100, cfg().max_in_flight(max_in_flight));
        let c = fx.connect();
        let mut w = c.writer.try_clone().unwrap();
        w.set_nonblocking(true).unwrap();
        // 100,000 pipelined requests (about 5 MB), written without reading
        // any response; requests wait on the gate, so nothing completes.
        let one = format!("gate {}\n", "x".repeat(44));
        let total = 100_000usize;
        let payload: Vec<u8> = one
            .as_bytes()
            .iter()
            .copied()
            .cycle()
            .take(one.len() * total)
            .collect();
        let rss_before = rss_bytes();
        let mut written = 0usize;
        let mut last_progress = Instant::now();
        while written < payload.len() && last_progress.elapsed() < Duration::from_secs(1) {
            match w.write(&payload[written..]) {
                Ok(n) => {
                    written += n;
                    last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
            }
        }
        // Whatever the kernel buffered, the server dispatched no more than
        // its bound and kept the rest out of its own memory: an unbounded
        // server would hold every request (tens of MB) by now.
        assert!(fx.stats.started.load(Ordering::SeqCst) <= max_in_flight);
        assert_eq!(fx.stats.peak.load(Ordering::SeqCst), max_in_flight);
        let grown = rss_bytes().saturating_sub(rss_before);
        assert!(
            grown < 8 << 20,
            "server memory grew by {grown} bytes under the flood"
        );
        // Open the gate: everything is answered, in order, none lost.
        fx.gate.open();
        w.set_nonblocking(false).unwrap();
        let rest = payload[written..].to_vec();
        let feeder = std::thread::spawn(move || w.write_all(&rest).unwrap());
        let mut reader = c.reader;
        let mut line = String::new();
        for _ in 0..total {
            line.clear();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line.len(), 45, "{line:?}");
        }
        feeder.join().unwrap();
        assert!(fx.stats.peak.load(Ordering::SeqCst) <= max_in_flight);
    });
}
