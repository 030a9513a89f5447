//! Fairness between the connections of one worker: a client that always
//! has requests buffered must not hold the worker while a neighbour waits.
//!
//! Measured in requests, not time: the service counts the greedy client's
//! requests and answers the neighbour with that count, so the test sees how
//! many greedy requests were served while each neighbour request waited.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::{Client, deadline, one_worker};

/// Answers `g` with `g`, and anything else with the number of `g`
/// requests served so far.
#[derive(Clone)]
struct Counting(Arc<AtomicU64>);

impl strata_service::Service<String> for Counting {
    type Response = String;
    type Error = std::io::Error;

    fn call(&self, req: String) -> impl Future<Output = Result<String, std::io::Error>> {
        let answer = if req == "g" {
            self.0.fetch_add(1, Ordering::Relaxed);
            req
        } else {
            self.0.load(Ordering::Relaxed).to_string()
        };
        std::future::ready(Ok(answer))
    }
}

#[test]
fn a_greedy_pipelining_client_does_not_hold_its_worker() {
    deadline(120, || {
        let greedy_served = Arc::new(AtomicU64::new(0));
        let counter = greedy_served.clone();
        let server = one_worker()
            .start(move || Ok::<_, std::io::Error>(Counting(counter.clone())))
            .unwrap();
        let addr = server.local_addr();
        let stop = Arc::new(AtomicBool::new(false));

        // The greedy client writes 64 KiB batches of requests for as long as
        // the test runs, and reads (and discards) the answers on another
        // thread, so its connection always has requests buffered.
        let greedy = TcpStream::connect(addr).unwrap();
        let mut writer_half = greedy.try_clone().unwrap();
        let mut reader_half = greedy;
        let (stop_w, stop_r) = (stop.clone(), stop.clone());
        let writer = std::thread::spawn(move || {
            let batch = "g\n".repeat(32 * 1024);
            while !stop_w.load(Ordering::Relaxed) {
                if writer_half.write_all(batch.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let reader = std::thread::spawn(move || {
            reader_half
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = vec![0u8; 256 * 1024];
            while !stop_r.load(Ordering::Relaxed) {
                if let Ok(0) = reader_half.read(&mut buf) {
                    break;
                }
            }
        });
        while greedy_served.load(Ordering::Relaxed) < 100_000 {
            std::thread::sleep(Duration::from_millis(5));
        }

        // The neighbour: each of its requests waits at most for the rest of
        // the greedy connection's current turn and one more, a few thousand
        // requests. (Before the per-poll cap, one turn took every request
        // buffered, up to the I/O budget: hundreds of thousands.)
        let mut neighbour = Client::connect(addr);
        let mut worst = 0;
        for i in 0..50 {
            let before = greedy_served.load(Ordering::Relaxed);
            let answer = neighbour.round_trip(&format!("n{i}")).expect("an answer");
            let at_serve: u64 = answer.parse().unwrap();
            worst = worst.max(at_serve.saturating_sub(before));
        }
        stop.store(true, Ordering::Relaxed);
        drop(server);
        writer.join().unwrap();
        reader.join().unwrap();
        eprintln!("worst wait: {worst} greedy requests");
        assert!(
            worst < 64 * 1024,
            "a neighbour's request waited while {worst} greedy requests were served"
        );
    });
}

/// A connection that yields at the per-poll cap with whole requests still
/// buffered is busy, not partway through a request: a zero read timeout
/// ("fires at its first check" while part of a request is buffered) used to
/// close it there, leaving every request past the first 4,096 unanswered.
#[test]
fn yielding_at_the_per_poll_cap_does_not_start_the_read_timeout() {
    deadline(60, || {
        let config = strata_proto::ConnectionConfig::default()
            .idle_timeout(None)
            .read_timeout(Some(Duration::ZERO))
            .write_timeout(None);
        let server = one_worker()
            .connection_config(config)
            .start(|| Ok::<_, std::io::Error>(support::Echo))
            .unwrap();
        let mut c = Client::connect(server.local_addr());
        const N: usize = 6000;
        c.writer.write_all("e\n".repeat(N).as_bytes()).unwrap();
        let mut got = 0;
        while got < N {
            match c.recv() {
                Some(line) => assert_eq!(line, "e"),
                None => break,
            }
            got += 1;
        }
        assert_eq!(got, N, "the connection closed with requests unanswered");
        drop(server);
    })
}
