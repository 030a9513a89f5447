//! The shutdown deadline: with a zero timeout and only idle connections
//! (nothing owed) the shutdown reports the same every time, nothing
//! dropped (whether the idle connection had closed when the deadline was
//! looked at decided it); and the count at the deadline does not wait on a
//! worker a handler blocks. Real TCP on 127.0.0.1.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_service::Service;
use support::*;

#[test]
fn a_zero_timeout_drops_no_idle_connection() {
    deadline(120, || {
        for run in 0..60 {
            let server = one_worker()
                .connection_config(cfg().idle_timeout(None))
                .shutdown_timeout(Duration::ZERO)
                .start(|| Ok(Echo))
                .unwrap();
            let mut c = TcpStream::connect(server.local_addr()).unwrap();
            c.write_all(b"hi\n").unwrap();
            let mut answer = String::new();
            BufReader::new(&c).read_line(&mut answer).unwrap();
            assert_eq!(answer, "hi\n");
            // Idle now: its one request is answered.
            assert!(
                server.shutdown(),
                "run {run}: the idle connection counted as dropped"
            );
        }
    });
}

/// A service that blocks its worker thread (synchronously) for 15 s on
/// the request `block`.
#[derive(Clone)]
struct Blocker(Arc<AtomicBool>);

impl Service<String> for Blocker {
    type Response = String;
    type Error = std::io::Error;
    fn call(&self, req: String) -> impl Future<Output = Result<String, std::io::Error>> {
        if req == "block" {
            self.0.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(15));
        }
        std::future::ready(Ok(req))
    }
}

/// A handler blocks the only worker at the deadline: the shutdown ends
/// after its timeout and its grace for the workers (1 s), not when the
/// handler returns. The count at the deadline waited on a timer of that
/// worker, which never fired (15 s here). The bound below is a hang
/// guard between the two, not a performance bound.
#[test]
fn the_count_at_the_deadline_does_not_wait_on_a_blocked_worker() {
    deadline(60, || {
        let started = Arc::new(AtomicBool::new(false));
        let blocking = started.clone();
        let server = one_worker()
            .shutdown_timeout(Duration::from_millis(300))
            .start(move || Ok(Blocker(blocking.clone())))
            .unwrap();
        let mut c = TcpStream::connect(server.local_addr()).unwrap();
        c.write_all(b"block\n").unwrap();
        let t = Instant::now();
        while !started.load(Ordering::SeqCst) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the handler never ran"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let t = Instant::now();
        let done = server.shutdown();
        let took = t.elapsed();
        assert!(!done, "the blocked connection was not counted as dropped");
        assert!(
            took < Duration::from_secs(8),
            "the shutdown (timeout 300 ms, grace 1 s) took {took:?}"
        );
    });
}
