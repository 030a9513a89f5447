//! After a stop, a connection at its in-flight bound reads on only to see
//! a reset: requests sent after the stop are not queued, and reading
//! stays bounded: 256 KiB past what it owed, in all, whether it drops
//! them at the bound or after leaving it, and a reset within them is
//! seen. Waits are hang guards only; assertions count bytes, never time.

mod support;

use std::cell::RefCell;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use strata_proto::ConnectionConfig;
use strata_proto::pipeline::serve_connection;
use strata_service::Service;
use support::firehose::Firehose;
use support::memory::{Memory, one_worker_runtime};
use support::{Flag, TestProto, cfg, deadline, not_instant};

/// 64-byte requests (TestProto's line limit is 64).
const REQUEST: &[u8; 64] = b"echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";

/// Echoes, but not at once: each call is `Pending` three times (waking itself),
/// so that with `max_in_flight(1)` the connection sits at its in-flight
/// bound after every request.
#[derive(Clone)]
struct YieldingEcho {
    served: Arc<AtomicU64>,
}

impl Service<String> for YieldingEcho {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        not_instant().await;
        self.served.fetch_add(1, Ordering::Relaxed);
        Ok(req)
    }
}

/// `serve_connection`: after a stop, with no kernel to ask, it reads "at
/// most 16 MiB more". A connection at its in-flight bound reads ahead
/// (step 3, to see a reset); after the bytes owed, the new branch then
/// decodes and answers what that read-ahead buffered, the bound is reached
/// again, step 3 reads again... so a peer that keeps sending to a service
/// that is not instant is read (and answered) without end.
#[test]
fn after_stop_at_the_in_flight_bound_reads_stop_at_what_is_owed() {
    const LIMIT: u64 = 16 << 20;
    const GUARD: u64 = 20 << 20;
    let (io, read) = Firehose::new(REQUEST, GUARD);
    let served = Arc::new(AtomicU64::new(0));
    let svc = YieldingEcho {
        served: served.clone(),
    };
    let result = deadline(600, move || {
        let rt = support::memory::one_worker_runtime();
        let task = rt.handle().spawn(async move {
            serve_connection(
                io,
                &TestProto,
                svc,
                &cfg().max_in_flight(1),
                std::future::ready(()),
            )
            .await
            .map_err(|e| e.to_string())
        });
        rt.block_on(task).expect("the connection task completes")
    });
    let total = read.load(Ordering::Relaxed);
    let served = served.load(Ordering::Relaxed);
    assert!(
        total <= LIMIT + (1 << 20),
        "after the stop, at its in-flight bound, serve_connection read {total} bytes \
         ({} MiB) and answered {served} requests from a peer that never stops sending \
         (documented: at most 16 MiB more); it stopped only at the test's end of stream \
         at {} MiB (result: {result:?})",
        total >> 20,
        GUARD >> 20
    );
}

/// `wait`: answers once the test opens the gate; `hang`: never answers.
#[derive(Clone, Default)]
struct Svc {
    gate: Rc<RefCell<(bool, Vec<Waker>)>>,
    called: Rc<RefCell<Vec<String>>>,
}

impl Service<String> for Svc {
    type Response = String;
    type Error = io::Error;
    async fn call(&self, req: String) -> Result<String, io::Error> {
        self.called.borrow_mut().push(req.clone());
        if req == "hang" {
            std::future::pending::<()>().await;
        }
        let gate = self.gate.clone();
        std::future::poll_fn(|cx| {
            let mut g = gate.borrow_mut();
            if g.0 {
                Poll::Ready(())
            } else {
                g.1.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        Ok(req)
    }
}

/// `max_in_flight(2)`: `wait` and `hang` run, at the bound, when the stop
/// fires; the connection sees the transport drained. The peer then floods
/// (bytes sent after the stop, never requests to answer). The read-ahead
/// at the bound drops up to 256 KiB past what was owed; then `wait`
/// finishes, the connection leaves the bound, stops reading requests, and
/// its reset watch (with `hang` still running) goes on from the same count
/// (it counted from zero again: 512 KiB in all).
#[test]
fn after_a_stop_at_the_bound_a_connection_drops_at_most_256_kib_in_all() {
    const FLOOD: usize = 4 << 20;
    let svc = Svc::default();
    let (gate, called) = (svc.gate.clone(), svc.called.clone());
    let rt = one_worker_runtime();
    let seen = called.clone();
    let (dropped, result) = rt.block_on(async move {
        let mock = Memory::default();
        let stop = Arc::new(Flag::default());
        let cfg = ConnectionConfig::default()
            .max_in_flight(2)
            .idle_timeout(None)
            .read_timeout(None)
            .write_timeout(None);
        let waiting = stop.clone();
        let conn = serve_connection(mock.clone(), &TestProto, svc, &cfg, async move {
            waiting.wait().await
        });
        let mut conn = pin!(conn);
        let mut cx = Context::from_waker(Waker::noop());
        let mut result = None;
        let mut poll = |n: usize| {
            for _ in 0..n {
                if result.is_none()
                    && let Poll::Ready(r) = conn.as_mut().poll(&mut cx)
                {
                    result = Some(r.map_err(|e| e.to_string()));
                }
            }
        };
        mock.send(b"wait\nhang\n");
        poll(4);
        assert_eq!(*seen.borrow(), ["wait", "hang"], "both run, at the bound");
        stop.fire();
        // The transport has nothing: the connection sees it drained.
        poll(8);
        // The peer floods after the stop.
        mock.send(&vec![b'z'; FLOOD]);
        poll(400);
        let at_bound = FLOOD - mock.0.borrow().incoming.len();
        // `wait` finishes: below the bound, no more requests are read,
        // `hang` still runs.
        {
            let mut g = gate.borrow_mut();
            g.0 = true;
            for w in g.1.drain(..) {
                w.wake();
            }
        }
        poll(400);
        let dropped = FLOOD - mock.0.borrow().incoming.len();
        eprintln!(
            "dropped at the bound: {} KiB, in all: {} KiB",
            at_bound >> 10,
            dropped >> 10
        );
        (dropped, result)
    });
    assert_eq!(*called.borrow(), ["wait", "hang"]);
    assert!(result.is_none(), "hang still runs: {result:?}");
    assert!(
        dropped <= (256 << 10) + (4 << 10),
        "after a stop at the in-flight bound, the connection read and dropped {} KiB sent \
         after the stop to see a reset (documented: up to 256 KiB)",
        dropped >> 10
    );
}

/// After a stop at the in-flight bound, the connection reads and drops
/// what the peer sends, up to 256 KiB, to notice a reset. `hang` runs at
/// the bound (`max_in_flight(1)`), the stop fires, the transport is seen
/// drained, the peer sends 128 KiB more and then resets (what was not read
/// goes with the reset: the next read fails).
#[test]
fn after_a_stop_at_the_bound_a_reset_within_256_kib_is_seen() {
    const MORE: usize = 128 << 10;
    let svc = Svc::default();
    let called = svc.called.clone();
    let rt = one_worker_runtime();
    let (result, left) = rt.block_on(async move {
        let mock = Memory::default();
        let stop = Arc::new(Flag::default());
        let cfg = ConnectionConfig::default()
            .max_in_flight(1)
            .idle_timeout(None)
            .read_timeout(None)
            .write_timeout(None);
        let waiting = stop.clone();
        let conn = serve_connection(mock.clone(), &TestProto, svc, &cfg, async move {
            waiting.wait().await
        });
        let mut conn = pin!(conn);
        let mut cx = Context::from_waker(Waker::noop());
        let mut result = None;
        let mut poll = |n: usize| {
            for _ in 0..n {
                if result.is_none()
                    && let Poll::Ready(r) = conn.as_mut().poll(&mut cx)
                {
                    result = Some(r.map_err(|e| e.is_disconnect()));
                }
            }
        };
        mock.send(b"hang\n");
        poll(4);
        stop.fire();
        poll(8);
        mock.send(&vec![b'z'; MORE]);
        poll(400);
        let left = mock.0.borrow().incoming.len();
        // The reset: what was not read yet goes with it, so the very next
        // read fails.
        mock.0.borrow_mut().incoming.clear();
        mock.reset();
        poll(64);
        (result, left)
    });
    assert_eq!(*called.borrow(), ["hang"]);
    assert_eq!(
        result,
        Some(Err(true)),
        "after a stop at the in-flight bound, the peer sent {} KiB and reset; the connection \
         had stopped reading with {} KiB unread and never saw the reset",
        MORE >> 10,
        left >> 10
    );
}
