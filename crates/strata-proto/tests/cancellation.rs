//! Cancellation and drop safety of the pipelined dispatcher and
//! TcpServer, and peers that reset while their requests run. Manual-poll harness over an in-memory transport, plus a few
//! loopback-socket tests.

mod support;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use strata_proto::ConnectionConfig;
use strata_proto::pipeline::serve_connection;
use strata_service::Service;
use support::TestProto;
use support::memory::{Memory as Mock, one_worker_runtime};

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

/// A service whose calls never finish; counts live call futures.
#[derive(Clone, Default)]
struct Stuck(Rc<RefCell<(usize, usize)>>); // (started, live)

struct Live(Rc<RefCell<(usize, usize)>>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.borrow_mut().1 -= 1;
    }
}

impl Service<String> for Stuck {
    type Response = String;
    type Error = io::Error;
    async fn call(&self, _req: String) -> Result<String, io::Error> {
        {
            let mut c = self.0.borrow_mut();
            c.0 += 1;
            c.1 += 1;
        }
        let _live = Live(self.0.clone());
        std::future::pending::<()>().await;
        unreachable!()
    }
}

fn no_timeouts(max_in_flight: usize) -> ConnectionConfig {
    ConnectionConfig::default()
        .max_in_flight(max_in_flight)
        .idle_timeout(None)
        .read_timeout(None)
        .write_timeout(None)
}

/// The connection's outcome as seen by a poll.
type Polled = Poll<Result<(), strata_proto::pipeline::ConnectionError>>;

/// Serves `svc` to a fresh in-memory peer with `max_in_flight` and no
/// timeouts, inside a one-worker runtime; `f` gets the peer and a function
/// that polls the connection once (with a counting waker).
fn by_hand<S, R>(
    svc: S,
    max_in_flight: usize,
    f: impl FnOnce(&Mock, &mut dyn FnMut() -> Polled) -> R,
) -> R
where
    S: Service<String, Response = String, Error = io::Error>,
{
    let rt = one_worker_runtime();
    rt.block_on(async {
        let mock = Mock::default();
        let cfg = no_timeouts(max_in_flight);
        let conn = serve_connection(mock.clone(), &TestProto, svc, &cfg, std::future::pending());
        let mut conn = pin!(conn);
        let waker = Waker::from(Arc::new(CountWake::default()));
        let mut cx = Context::from_waker(&waker);
        f(&mock, &mut || conn.as_mut().poll(&mut cx))
    })
}

/// Sends `requests` to a service that never answers, then resets. Returns
/// the connection's outcome within 16 polls after the reset (`None`: still
/// pending; `Some(true)`: ended as a disconnect), the calls started and the
/// call futures still alive.
fn reset_while_in_flight(max_in_flight: usize, requests: &[u8]) -> (Option<bool>, usize, usize) {
    let stuck = Stuck::default();
    by_hand(stuck.clone(), max_in_flight, |mock, poll| {
        mock.send(requests);
        assert!(poll().is_pending());
        let started = stuck.0.borrow().0;
        // The peer resets the connection.
        mock.reset();
        let result = (0..16).find_map(|_| match poll() {
            Poll::Ready(r) => Some(r.map_or_else(|e| e.is_disconnect(), |()| true)),
            Poll::Pending => None,
        });
        let live = stuck.0.borrow().1;
        (result, started, live)
    })
}

/// Control: with room left in flight, a reset is seen and the stuck
/// request is dropped (`a_reset_peer_with_a_request_in_flight_frees_its_slot` in
/// pipeline_server.rs checks both cases over a socket).
#[test]
fn reset_with_room_in_flight_ends_the_connection() {
    let (result, started, live) = reset_while_in_flight(2, b"a\n");
    assert_eq!(started, 1);
    assert_eq!(result, Some(true), "the reset was not seen");
    assert_eq!(live, 0);
}

/// With `max_in_flight` requests stuck the dispatcher takes no more
/// requests, but still reads ahead (bounded) and so sees the peer's reset:
/// the connection ends and drops the stuck futures. (It used to stop
/// reading, and the connection, its slot and the futures lived forever.)
#[test]
fn reset_with_in_flight_full_ends_the_connection() {
    let (result, started, live) = reset_while_in_flight(1, b"a\n");
    assert_eq!(started, 1);
    assert_eq!(
        result,
        Some(true),
        "connection still pending after a reset with max_in_flight requests stuck; {live} call future(s) still live"
    );
    assert_eq!(live, 0);
}

/// A service whose calls wait until the test releases them all.
#[derive(Clone, Default)]
struct Held(Rc<RefCell<(bool, Vec<Waker>)>>);

impl Held {
    fn release(&self) {
        let mut s = self.0.borrow_mut();
        s.0 = true;
        for w in s.1.drain(..) {
            w.wake();
        }
    }
}

impl Service<String> for Held {
    type Response = String;
    type Error = io::Error;
    async fn call(&self, req: String) -> Result<String, io::Error> {
        std::future::poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            if s.0 {
                Poll::Ready(())
            } else {
                s.1.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        Ok(req)
    }
}

/// Reading ahead at the in-flight bound is bounded: a peer that keeps
/// sending while its request is stuck gets at most a few KiB read.
#[test]
fn reading_ahead_at_the_in_flight_bound_is_bounded() {
    by_hand(Stuck::default(), 1, |mock, poll| {
        mock.send(b"a\n");
        assert!(poll().is_pending());
        let more = b"x\n".repeat(50_000);
        mock.send(&more);
        for _ in 0..20 {
            assert!(poll().is_pending());
        }
        let left = mock.0.borrow().incoming.len();
        assert!(
            more.len() - left <= 4096,
            "read {} bytes ahead at the in-flight bound",
            more.len() - left
        );
        assert!(left < more.len(), "nothing was read ahead");
    });
}

/// An end of stream seen while reading ahead is remembered: once the stuck
/// request finishes, the requests read ahead are answered, then the
/// connection ends cleanly.
#[test]
fn an_end_of_stream_read_ahead_still_answers_the_buffered_requests() {
    let held = Held::default();
    by_hand(held.clone(), 1, |mock, poll| {
        mock.send(b"a\n");
        assert!(poll().is_pending());
        mock.send(b"b\nc\n");
        mock.0.borrow_mut().eof = true;
        assert!(poll().is_pending());
        let reads = mock.0.borrow().reads;
        assert!(mock.0.borrow().incoming.is_empty(), "nothing read ahead");
        // Further polls read no more: the end of stream is remembered.
        assert!(poll().is_pending());
        assert_eq!(mock.0.borrow().reads, reads);
        held.release();
        let done = (0..16).find_map(|_| match poll() {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        });
        assert!(
            matches!(done, Some(Ok(()))),
            "connection did not end cleanly: {done:?}"
        );
        assert_eq!(mock.0.borrow().written, b"a\nb\nc\n");
    });
}

// ---------------------------------------------------------------------
// Real sockets on 127.0.0.1.

use std::io::Write as _;
use std::time::Instant;

use support::deadline;

/// A thread-safe service whose calls never finish; counts started and live.
#[derive(Clone, Default)]
struct StuckSync(Arc<(AtomicUsize, AtomicUsize)>);

struct LiveSync(Arc<(AtomicUsize, AtomicUsize)>);
impl Drop for LiveSync {
    fn drop(&mut self) {
        self.0.1.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Service<String> for StuckSync {
    type Response = String;
    type Error = io::Error;
    async fn call(&self, _req: String) -> Result<String, io::Error> {
        self.0.0.fetch_add(1, Ordering::SeqCst);
        self.0.1.fetch_add(1, Ordering::SeqCst);
        let _live = LiveSync(self.0.clone());
        std::future::pending::<()>().await;
        unreachable!()
    }
}

/// Graceful shutdown with a request that never finishes: shutdown gives up
/// after its timeout, reports it, and the stuck call future is dropped.
#[test]
fn shutdown_timeout_drops_stuck_calls() {
    deadline(60, || {
        let svc = StuckSync::default();
        let stats = svc.0.clone();
        let server = support::one_worker()
            .shutdown_timeout(Duration::from_millis(200))
            .start(move || Ok::<_, io::Error>(svc.clone()))
            .unwrap();
        let mut c = support::Client::connect(server.local_addr());
        c.send(&["gate never"]);
        let since = Instant::now();
        while stats.0.load(Ordering::SeqCst) < 1 {
            assert!(since.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!server.shutdown(), "shutdown cannot drain a stuck call");
        assert_eq!(
            stats.1.load(Ordering::SeqCst),
            0,
            "stuck call future not dropped"
        );
        assert_eq!(c.recv(), None);
    });
}

/// Dropping the connection future (manual poll) with several requests
/// stuck drops every call future; spurious polls start nothing twice.
#[test]
fn dropping_the_connection_future_drops_every_call() {
    let rt = one_worker_runtime();
    rt.block_on(async {
        let mock = Mock::default();
        let stuck = Stuck::default();
        let cfg = no_timeouts(8);
        let conn = Box::pin(serve_connection(
            mock.clone(),
            &TestProto,
            stuck.clone(),
            &cfg,
            std::future::pending(),
        ));
        let mut conn = conn;
        let (_c, waker) = {
            let c = Arc::new(CountWake::default());
            (c.clone(), Waker::from(c))
        };
        let mut cx = Context::from_waker(&waker);
        mock.send(b"a\nb\nc\n");
        for _ in 0..10 {
            assert!(conn.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(*stuck.0.borrow(), (3, 3));
        drop(conn);
        assert_eq!(stuck.0.borrow().1, 0);
    });
}

/// Aborting a connection task (real socket) drops its stuck calls and
/// closes the socket.
#[test]
fn aborting_a_connection_task_drops_its_calls() {
    deadline(60, || {
        let rt = one_worker_runtime();
        let live = rt.block_on(async {
            strata_rt::spawn(async {
                let (mut client, server) = support::connected_pair();
                let svc = StuckSync::default();
                let stats = svc.0.clone();
                let cfg = support::cfg();
                let conn = strata_rt::spawn_local(async move {
                    serve_connection(server, &TestProto, svc, &cfg, std::future::pending()).await
                });
                client.write_all(b"a\nb\n").unwrap();
                while stats.0.load(Ordering::SeqCst) < 2 {
                    strata_rt::yield_now().await;
                }
                conn.abort();
                let _ = conn.await;
                client
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut b = [0u8; 8];
                let n = std::io::Read::read(&mut client, &mut b).unwrap_or(0);
                assert_eq!(n, 0, "socket still open after abort");
                stats.1.load(Ordering::SeqCst)
            })
            .await
            .unwrap()
        });
        assert_eq!(live, 0);
    });
}
