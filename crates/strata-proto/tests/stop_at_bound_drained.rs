//! The graceful stop at the in-flight bound, driven poll by poll over the
//! in-memory transport: once a read has found the transport drained, later
//! requests are not answered, and a read-ahead that reaches the bytes owed
//! still leaves a waker to see a reset. Assertions look at requests,
//! responses, wake-ups and results, never at time.

mod support;

use std::cell::RefCell;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use strata_proto::ConnectionConfig;
use strata_proto::pipeline::serve_connection;
use strata_service::Service;
use support::memory::{Memory, one_worker_runtime};
use support::{Flag, TestProto};

/// `STOP_READ_LIMIT`: what a transport that cannot tell what it holds owes
/// after a stop, on top of what was read.
const OWED: usize = 16 << 20;

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountWake(AtomicUsize);
impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Releases the `wait <n>` requests by hand: `release(n)` lets every
/// `wait <m>` with `m <= n` finish.
#[derive(Clone, Default)]
struct Gate(Rc<RefCell<(usize, Vec<Waker>)>>);

impl Gate {
    fn release(&self, n: usize) {
        let wakers = {
            let mut g = self.0.borrow_mut();
            g.0 = g.0.max(n);
            std::mem::take(&mut g.1)
        };
        for w in wakers {
            w.wake();
        }
    }
}

/// `wait <n>`: answers once the gate released `n`; `hang`: never answers;
/// anything else: echoed at once. Records every request called.
#[derive(Clone, Default)]
struct Svc {
    gate: Gate,
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
        if let Some(n) = req.strip_prefix("wait ") {
            let n: usize = n.parse().unwrap();
            let gate = self.gate.clone();
            std::future::poll_fn(|cx| {
                let mut g = gate.0.borrow_mut();
                if g.0 >= n {
                    Poll::Ready(())
                } else {
                    g.1.push(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
        }
        Ok(req)
    }
}

fn no_timeouts(max_in_flight: usize) -> ConnectionConfig {
    ConnectionConfig::default()
        .max_in_flight(max_in_flight)
        .idle_timeout(None)
        .read_timeout(None)
        .write_timeout(None)
}

type Polled = Poll<Result<(), strata_proto::pipeline::ConnectionError>>;

struct Hand<'a> {
    mock: &'a Memory,
    stop: &'a Flag,
    wakes: &'a CountWake,
    poll: &'a mut dyn FnMut() -> Polled,
}

/// Serves `svc` over a fresh in-memory peer, with `max_in_flight`, no
/// timeouts and a stop fired by hand (or at once), polled by hand.
fn by_hand<R>(
    svc: Svc,
    max_in_flight: usize,
    stop_at_once: bool,
    f: impl FnOnce(Hand<'_>) -> R,
) -> R {
    let rt = one_worker_runtime();
    rt.block_on(async {
        let mock = Memory::default();
        let stop = Arc::new(Flag::default());
        if stop_at_once {
            stop.fire();
        }
        let cfg = no_timeouts(max_in_flight);
        let waiting = stop.clone();
        let conn = serve_connection(mock.clone(), &TestProto, svc, &cfg, async move {
            waiting.wait().await
        });
        let mut conn = pin!(conn);
        let wakes = Arc::new(CountWake::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        f(Hand {
            mock: &mock,
            stop: &stop,
            wakes: &wakes,
            poll: &mut || conn.as_mut().poll(&mut cx),
        })
    })
}

/// `wait 1` runs, the stop fires, the connection sees the transport empty
/// over several polls; then the peer sends `wait 2`, `wait 3`, `wait 4`,
/// each while the one before runs (at the bound with `max_in_flight(1)`).
/// Returns the requests called, what was written and the outcome so far
/// (`None`: still lingering after its close).
fn late_requests(max_in_flight: usize) -> (Vec<String>, String, Option<bool>) {
    let svc = Svc::default();
    let (gate, called) = (svc.gate.clone(), svc.called.clone());
    by_hand(svc, max_in_flight, false, |h| {
        let Hand {
            mock, stop, poll, ..
        } = h;
        // Received (and running) before the stop; with max_in_flight(1)
        // the connection is at its bound.
        mock.send(b"wait 1\n");
        assert!(poll().is_pending());
        assert!(poll().is_pending());
        stop.fire();
        // The transport has nothing more: the connection sees it empty,
        // again and again (a fresh look at I/O each time).
        for _ in 0..8 {
            assert!(poll().is_pending());
        }
        // Three requests, each sent well after the stop, each while the
        // request before it runs at the bound.
        let mut result = None;
        for i in 2..=4 {
            mock.send(format!("wait {i}\n").as_bytes());
            for _ in 0..8 {
                if let Poll::Ready(r) = poll() {
                    result = Some(r.is_ok());
                }
            }
            gate.release(i - 1);
            for _ in 0..8 {
                if let Poll::Ready(r) = poll() {
                    result = Some(r.is_ok());
                }
            }
            if result.is_some() {
                break;
            }
        }
        gate.release(usize::MAX);
        for _ in 0..16 {
            if result.is_some() {
                break;
            }
            if let Poll::Ready(r) = poll() {
                result = Some(r.is_ok());
            }
        }
        let called = called.borrow().clone();
        (called, mock.written(), result)
    })
}

/// Control: with room in flight, the requests sent after the stop (and
/// after the connection saw the transport empty) are not answered.
#[test]
fn control_with_room_in_flight_requests_sent_after_the_stop_are_not_answered() {
    let (called, written, result) = late_requests(2);
    assert_eq!(
        called,
        ["wait 1"],
        "written: {written:?}, result {result:?}"
    );
    assert_eq!(written, "wait 1\n");
}

/// (1) At the in-flight bound after a stop, the read-ahead (step 3) must
/// not read on into the frame buffer, under the 16 MiB "owed" of a
/// transport that cannot tell what it holds, once the transport said it
/// had nothing (it did, and every request the peer sent later, while a
/// request ran at the bound, was answered).
#[test]
fn at_the_bound_requests_sent_after_the_stop_and_a_drained_transport_are_not_answered() {
    let (called, written, result) = late_requests(1);
    assert_eq!(
        called,
        ["wait 1"],
        "after the stop the transport was seen empty in 8 polls, yet requests the peer \
         sent later, while one ran at the in-flight bound, were called; written {written:?}, \
         result {result:?}"
    );
}

/// (2) After a stop, at the bound, a read-ahead that reads exactly up to
/// the bytes owed must still leave a waker with the transport (it left
/// none: the request at the bound never finishes, a reset that followed
/// woke nobody, and the connection hung with its running request).
#[test]
fn at_the_bound_a_read_ahead_that_reaches_what_is_owed_still_sees_a_reset() {
    let svc = Svc::default();
    by_hand(svc, 1, true, |h| {
        let Hand {
            mock, wakes, poll, ..
        } = h;
        // The stop fired at once: OWED bytes are owed. Everything but the
        // last 100 of them: requests answered at once, then one that hangs
        // at the bound.
        const TAIL: usize = 100;
        let mut req = b"echo ".to_vec();
        req.resize(63, b'x');
        req.push(b'\n');
        let req = &req[..];
        let mut data = Vec::with_capacity(OWED);
        let first = OWED - TAIL - 5;
        while data.len() + 64 <= first {
            data.extend_from_slice(req);
        }
        let mut pad = vec![b'y'; first - data.len() - 1];
        pad.push(b'\n');
        data.extend_from_slice(&pad);
        data.extend_from_slice(b"hang\n");
        assert_eq!(data.len(), OWED - TAIL);
        mock.send(&data);
        drop(data);
        // Polled while it wakes itself, as an executor would: it takes
        // the requests a bounded number a poll, yielding between, until
        // `hang` runs.
        for polls in 0.. {
            let before = wakes.0.load(Ordering::SeqCst);
            assert!(poll().is_pending(), "{}", mock.written().len());
            if wakes.0.load(Ordering::SeqCst) == before {
                break;
            }
            assert!(polls < 1000, "the connection keeps waking itself");
        }
        // The last 100 bytes owed (a request) arrive while `hang` runs.
        let mut tail = Vec::new();
        for _ in 0..2 {
            let mut l = b"echo tail ".to_vec();
            l.resize(TAIL / 2 - 1, b't');
            l.push(b'\n');
            tail.extend_from_slice(&l);
        }
        assert_eq!(tail.len(), TAIL);
        // Polled only when woken, as an executor would.
        let mut seen = wakes.0.load(Ordering::SeqCst);
        mock.send(&tail);
        let mut polls = 0;
        while wakes.0.load(Ordering::SeqCst) > seen && polls < 64 {
            seen = wakes.0.load(Ordering::SeqCst);
            assert!(poll().is_pending());
            polls += 1;
        }
        assert!(polls < 64, "the connection keeps waking itself");
        assert!(
            mock.0.borrow().incoming.is_empty(),
            "the bytes owed were read"
        );
        // The peer resets: the connection must be woken to see it.
        let before = wakes.0.load(Ordering::SeqCst);
        mock.reset();
        let after = wakes.0.load(Ordering::SeqCst);
        // (Had it been polled anyway, it would see the reset:)
        let polled = poll();
        assert!(
            after > before,
            "after the stop, at the in-flight bound, with the request there never finishing, \
             a reset woke nobody: no waker was registered once the read-ahead had read exactly \
             the bytes owed (had it been polled anyway: {polled:?})"
        );
    });
}
