//! Fairness on one worker: a task looping `Framed::next()` over a socket
//! whose peer never stops writing must yield back to its worker, so that a
//! timer and a neighbour task on that worker run while it reads.
//!
//! Measured in frames, not time: a neighbour that yields in a loop records
//! how many frames the reader took between two of its turns.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use strata_codec::{Framed, LinesCodec};
use strata_rt::net::TcpStream;

/// Runs `f` on its own thread; fails after `secs` (a hang guard).
fn deadline<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(t.join().unwrap_err())
        }
        Err(_) => panic!("test did not finish within {secs} s"),
    }
}

/// How long the reader runs at most before it gives up by itself.
const HOG_LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_framed_next_loop_over_a_firehose_yields_to_its_worker() {
    deadline(120, || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        // The peer writes short lines for as long as the socket is open.
        let hose = std::thread::spawn(move || {
            let batch = "g\n".repeat(32 * 1024);
            while peer.write_all(batch.as_bytes()).is_ok() {}
        });
        let rt = strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        let frames = Arc::new(AtomicU64::new(0));
        let gave_up = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f2, g2, s2) = (frames.clone(), gave_up.clone(), stop.clone());
        let reader = rt.handle().spawn(async move {
            let mut framed = Framed::new(TcpStream::from_std(ours).unwrap(), LinesCodec::new());
            let t = Instant::now();
            while let Some(line) = framed.next().await {
                assert_eq!(line.unwrap(), "g");
                f2.fetch_add(1, Ordering::Relaxed);
                if s2.load(Ordering::Relaxed) {
                    return;
                }
                if t.elapsed() > HOG_LIMIT {
                    g2.store(true, Ordering::SeqCst);
                    return;
                }
            }
        });
        while frames.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The neighbours: a timer, and a task that counts its turns and the
        // frames the reader took between two of them.
        let (f3, worst) = (frames.clone(), Arc::new(AtomicU64::new(0)));
        let w2 = worst.clone();
        let turns = rt.block_on(async move {
            strata_rt::time::sleep(Duration::from_millis(5)).await;
            strata_rt::spawn(async move {
                let mut last = f3.load(Ordering::Relaxed);
                for _ in 0..50 {
                    strata_rt::yield_now().await;
                    let now = f3.load(Ordering::Relaxed);
                    w2.fetch_max(now - last, Ordering::Relaxed);
                    last = now;
                }
                50
            })
            .await
            .unwrap()
        });
        assert_eq!(turns, 50);
        assert!(
            !gave_up.load(Ordering::SeqCst),
            "the neighbours ran only once the reader gave up"
        );
        stop.store(true, Ordering::Relaxed);
        rt.block_on(reader).unwrap();
        drop(rt);
        hose.join().unwrap();
        let worst = worst.load(Ordering::Relaxed);
        eprintln!("most frames the reader took between two turns of a neighbour: {worst}");
    });
}
