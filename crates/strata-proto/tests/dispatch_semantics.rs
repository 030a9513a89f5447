//! Pipelined dispatch and TcpServer against what a user of
//! tokio-proto / hyper / Finagle expects from a request-response server.
//! Loopback and in-memory only; no assertion on wall-clock time (timeouts
//! are hang guards only).

mod support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use strata_proto::ConnectionConfig;
use strata_proto::pipeline::serve_connection;
use strata_service::service_fn;
use support::memory::{Memory as Mock, one_worker_runtime};
use support::{Client, Echo, Fixture, TestProto, deadline, one_worker};

fn no_timeouts() -> ConnectionConfig {
    ConnectionConfig::default()
        .idle_timeout(None)
        .read_timeout(None)
        .write_timeout(None)
}

/// Flushing docs: "A client that sends 16 requests in one packet gets 16
/// responses in one write(2)."
#[test]
fn sixteen_requests_in_one_packet_get_one_write() {
    deadline(30, || {
        one_worker_runtime().block_on(async {
            let mock = Mock::default();
            let mut batch = String::new();
            for i in 0..16 {
                batch.push_str(&format!("r{i}\n"));
            }
            mock.send(batch.as_bytes());
            let cfg = no_timeouts();
            let mut conn = pin!(serve_connection(
                mock.clone(),
                &TestProto,
                Echo,
                &cfg,
                std::future::pending()
            ));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(conn.as_mut().poll(&mut cx).is_pending());
            let p = mock.0.borrow();
            assert_eq!(p.written.iter().filter(|b| **b == b'\n').count(), 16);
            assert_eq!(p.writes, 1, "16 responses took {} writes", p.writes);
        })
    })
}

// ---------------------------------------------------------------------
// TcpServer / ServerHandle.

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    // Hang guard only: 20 s of 10 ms naps.
    for _ in 0..2000 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never happened: {what}");
}

/// The factory sees the connection's real peer and local addresses.
#[test]
fn connection_info_names_the_peer_and_the_local_end() {
    deadline(30, || {
        let seen: Arc<Mutex<Vec<strata_service::ConnectionInfo>>> = Arc::default();
        let seen2 = seen.clone();
        let server = one_worker()
            .start(strata_service::new_service_fn(
                move |info: &strata_service::ConnectionInfo| {
                    seen2.lock().unwrap().push(*info);
                    Ok::<_, io::Error>(Echo)
                },
            ))
            .unwrap();
        let mut c = Client::connect(server.local_addr());
        assert_eq!(c.round_trip("hi").as_deref(), Some("hi"));
        let info = seen.lock().unwrap()[0];
        assert_eq!(info.peer, c.writer.local_addr().unwrap());
        assert_eq!(info.local, c.writer.peer_addr().unwrap());
        assert!(server.shutdown());
    })
}

/// Rejections are counted exactly and rejected clients learn at once.
#[test]
fn rejected_and_live_counts_are_exact() {
    deadline(60, || {
        let fx = Fixture::start(1, 1, no_timeouts());
        let server = fx.server.as_ref().unwrap();
        let mut a = fx.connect();
        assert_eq!(a.round_trip("echo a").as_deref(), Some("a"));
        assert_eq!(server.connections(), 1);
        for _ in 0..3 {
            let mut b = fx.connect();
            b.send(&["echo b"]);
            assert_eq!(b.recv(), None);
        }
        assert_eq!(server.rejected_connections(), 3);
        assert_eq!(server.connections(), 1);
        drop(a);
        wait_until("a's slot freed", || server.connections() == 0);
        let mut c = fx.connect();
        assert_eq!(c.round_trip("echo c").as_deref(), Some("c"));
        assert_eq!(server.rejected_connections(), 3);
    })
}

/// A connection the server has closed (error line sent, then EOF) frees
/// its `max_connections` slot while it lingers, so the client's reconnect
/// is served (it used to be turned away for up to a second).
#[test]
fn a_connection_the_server_closed_frees_its_slot_for_the_next_client() {
    deadline(60, || {
        let fx = Fixture::start(1, 1, no_timeouts());
        let server = fx.server.as_ref().unwrap();
        let mut a = fx.connect();
        // Over TestProto's 64-byte line limit: error line, then EOF.
        let long = "x".repeat(100);
        a.send(&[&long]);
        let err = a.recv().unwrap();
        assert!(err.starts_with("error:"), "{err}");
        assert_eq!(a.recv(), None, "the server closed its side");
        // `a` keeps its socket open (as a client that has not noticed yet).
        let mut b = fx.connect();
        b.send(&["echo b"]);
        let got = b.recv();
        let (live, rejected) = (server.connections(), server.rejected_connections());
        drop(a);
        assert_eq!(
            got.as_deref(),
            Some("b"),
            "the next client was turned away (live {live}, rejected {rejected})"
        );
    })
}

/// A handler that shuts its own server down (an admin "quit" command):
/// the shutdown finishes promptly and gracefully. (`shutdown` used to
/// block the worker it ran on, so neither that connection nor that
/// worker's accept loop could finish: it waited the whole shutdown timeout
/// and reported `false` though nothing was stuck.)
#[test]
fn a_handler_can_shut_down_its_own_server() {
    deadline(60, || {
        let slot: Arc<Mutex<Option<strata_proto::ServerHandle>>> = Arc::default();
        let result: Arc<Mutex<Option<bool>>> = Arc::default();
        // Set when a task that runs until the runtime stops is dropped:
        // proof the shutdown went all the way.
        let stopped = Arc::new(AtomicUsize::new(0));
        let (slot2, result2, stopped2) = (slot.clone(), result.clone(), stopped.clone());
        let server = one_worker()
            .shutdown_timeout(Duration::from_secs(3))
            .start(move || {
                let (slot, result, stopped) = (slot2.clone(), result2.clone(), stopped2.clone());
                Ok(service_fn(move |req: String| {
                    let (slot, result, stopped) = (slot.clone(), result.clone(), stopped.clone());
                    async move {
                        if req == "quit"
                            && let Some(h) = slot.lock().unwrap().take()
                        {
                            struct OnDrop(Arc<AtomicUsize>);
                            impl Drop for OnDrop {
                                fn drop(&mut self) {
                                    self.0.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            let guard = OnDrop(stopped);
                            drop(strata_rt::spawn(async move {
                                let _guard = guard;
                                std::future::pending::<()>().await;
                            }));
                            *result.lock().unwrap() = Some(h.shutdown());
                        }
                        Ok::<_, io::Error>(format!("ok {req}"))
                    }
                }))
            })
            .unwrap();
        let addr = server.local_addr();
        *slot.lock().unwrap() = Some(server);
        let mut c = Client::connect(addr);
        c.send(&["quit"]);
        let got = c.recv();
        wait_until("shutdown returned", || result.lock().unwrap().is_some());
        let drained = result.lock().unwrap().unwrap();
        assert_eq!(
            got.as_deref(),
            Some("ok quit"),
            "the quit request got no answer"
        );
        assert!(drained, "shutdown from a handler reported a timeout");
        // (Panics, naming it, if the runtime never stops.)
        wait_until(
            "the runtime stopped after a shutdown from a handler",
            || stopped.load(Ordering::SeqCst) == 1,
        );
    })
}

/// The same from a blocking closure the handler awaits: the closure is on
/// one of the server's blocking-pool threads, and the connection waits for
/// it. `shutdown` used to block there, waiting for that connection, for
/// the whole shutdown timeout, then dropped it unanswered (found by a
/// lifecycle soak).
#[test]
fn a_blocking_closure_a_handler_awaits_can_shut_down_the_server() {
    deadline(60, || {
        let slot: Arc<Mutex<Option<strata_proto::ServerHandle>>> = Arc::default();
        let result: Arc<Mutex<Option<bool>>> = Arc::default();
        let (slot2, result2) = (slot.clone(), result.clone());
        let server = one_worker()
            .shutdown_timeout(Duration::from_secs(20))
            .start(move || {
                let (slot, result) = (slot2.clone(), result2.clone());
                Ok(service_fn(move |req: String| {
                    let (slot, result) = (slot.clone(), result.clone());
                    async move {
                        if req == "quit" {
                            strata_rt::spawn_blocking(move || {
                                if let Some(h) = slot.lock().unwrap().take() {
                                    *result.lock().unwrap() = Some(h.shutdown());
                                }
                            })
                            .await
                            .unwrap();
                        }
                        Ok::<_, io::Error>(format!("ok {req}"))
                    }
                }))
            })
            .unwrap();
        let addr = server.local_addr();
        *slot.lock().unwrap() = Some(server);
        let mut c = Client::connect(addr);
        c.send(&["quit"]);
        // Answered (not dropped at the end of a 20 s timeout), and the
        // shutdown reported a clean drain.
        assert_eq!(c.recv().as_deref(), Some("ok quit"));
        wait_until("shutdown returned", || result.lock().unwrap().is_some());
        assert!(
            result.lock().unwrap().unwrap(),
            "shutdown from a blocking closure reported a timeout"
        );
    })
}

// ---------------------------------------------------------------------
// Order and completeness.

/// A mixed pipelined batch with a decode error in the middle: every
/// answer before the bad line in order, the error line last, then EOF;
/// nothing after the bad line runs.
#[test]
fn a_mixed_batch_with_a_bad_line_in_the_middle() {
    deadline(60, || {
        let fx = Fixture::start(1, 10, no_timeouts());
        let mut c = fx.connect();
        let long = "x".repeat(100);
        c.send(&[
            "sleep 100 a",
            "fail",
            "gate g",
            "echo d",
            &long,
            "echo never",
        ]);
        // Nothing is written before the head finishes.
        fx.gate.open();
        let mut got = Vec::new();
        while let Some(l) = c.recv() {
            got.push(l);
        }
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(
            &got[..4],
            ["a", "failed: asked to fail", "g", "d"],
            "{got:?}"
        );
        assert!(got[4].starts_with("error:"), "{got:?}");
        assert_eq!(fx.stats.started.load(Ordering::SeqCst), 4);
    })
}

// ---------------------------------------------------------------------
// serve_connection over a Unix stream.

fn unix_serve(
    cfg: ConnectionConfig,
    client: impl FnOnce(std::os::unix::net::UnixStream) -> String + Send + 'static,
    stop_after: Option<Duration>,
) -> (String, String) {
    let (c, s) = std::os::unix::net::UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || client(c));
    let res = one_worker_runtime().block_on(async move {
        let s = strata_rt::net::UnixStream::from_std(s).unwrap();
        let stop = async move {
            match stop_after {
                Some(d) => strata_rt::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let svc = service_fn(|req: String| async move {
            if let Some(ms) = req.strip_prefix("sleep ") {
                strata_rt::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            }
            Ok::<_, io::Error>(req)
        });
        match serve_connection(s, &TestProto, svc, &cfg, stop).await {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("{e:?}"),
        }
    });
    (res, t.join().unwrap())
}

#[test]
fn unix_half_close_gets_every_answer_then_eof() {
    deadline(30, || {
        let (res, got) = unix_serve(
            no_timeouts(),
            |mut c| {
                c.write_all(b"a\nsleep 50\nb\n").unwrap();
                c.shutdown(std::net::Shutdown::Write).unwrap();
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                s
            },
            None,
        );
        assert_eq!(got, "a\nsleep 50\nb\n");
        assert_eq!(res, "ok");
    })
}

#[test]
fn unix_idle_timeout_and_graceful_stop() {
    deadline(30, || {
        let (res, got) = unix_serve(
            no_timeouts().idle_timeout(Some(Duration::from_millis(200))),
            |mut c| {
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                s
            },
            None,
        );
        assert_eq!(
            (res.as_str(), got.as_str()),
            ("IdleTimeout { timeout: 200ms }", "")
        );
        let (res, got) = unix_serve(
            no_timeouts(),
            |mut c| {
                c.write_all(b"sleep 300\n").unwrap();
                let mut s = String::new();
                c.read_to_string(&mut s).unwrap();
                s
            },
            Some(Duration::from_millis(100)),
        );
        assert_eq!((res.as_str(), got.as_str()), ("ok", "sleep 300\n"));
    })
}

/// `serve_connection`'s future is `Send` when its parts are (so it can be
/// handed to `strata_rt::spawn`, as a tokio user would).
#[allow(dead_code)]
fn serve_connection_is_send(s: strata_rt::net::UnixStream) {
    fn is_send<T: Send>(_: T) {}
    static CFG: std::sync::LazyLock<ConnectionConfig> =
        std::sync::LazyLock::new(ConnectionConfig::default);
    is_send(serve_connection(
        s,
        &TestProto,
        Echo,
        &CFG,
        std::future::pending::<()>(),
    ));
}

// ---------------------------------------------------------------------
// Quiescence: a connection waiting on something does not wake itself.

#[derive(Default)]
struct CountWake(AtomicUsize);
impl std::task::Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A service whose `gate` requests wait for a test-opened gate.
#[derive(Clone, Default)]
struct Gated(Rc<RefCell<(bool, Vec<Waker>, usize)>>); // (open, waiters, started)
impl strata_service::Service<String> for Gated {
    type Response = String;
    type Error = io::Error;
    async fn call(&self, req: String) -> Result<String, io::Error> {
        self.0.borrow_mut().2 += 1;
        if req.starts_with("gate") {
            std::future::poll_fn(|cx| {
                let mut g = self.0.borrow_mut();
                if g.0 {
                    Poll::Ready(())
                } else {
                    g.1.push(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
        }
        if req == "fail" {
            return Err(io::Error::other("asked to fail"));
        }
        Ok(req)
    }
}
impl Gated {
    fn open(&self) {
        let mut g = self.0.borrow_mut();
        g.0 = true;
        for w in g.1.drain(..) {
            w.wake();
        }
    }
    fn started(&self) -> usize {
        self.0.borrow().2
    }
}

fn quiet_after(cfg: ConnectionConfig, input: &[u8]) -> usize {
    one_worker_runtime().block_on(async {
        let mock = Mock::default();
        let svc = Gated::default();
        let mut conn = pin!(serve_connection(
            mock.clone(),
            &TestProto,
            svc.clone(),
            &cfg,
            std::future::pending()
        ));
        let wake = Arc::new(CountWake::default());
        let waker = Waker::from(wake.clone());
        let mut cx = Context::from_waker(&waker);
        mock.send(input);
        for _ in 0..3 {
            assert!(conn.as_mut().poll(&mut cx).is_pending());
        }
        wake.0.store(0, Ordering::SeqCst);
        assert!(conn.as_mut().poll(&mut cx).is_pending());
        wake.0.load(Ordering::SeqCst)
    })
}

#[test]
fn a_waiting_connection_does_not_wake_itself() {
    deadline(30, || {
        let many_gates: String = (0..600).map(|i| format!("gate {i}\n")).collect();
        for (name, cfg, input) in [
            ("idle", no_timeouts(), &b""[..]),
            ("partial", no_timeouts(), &b"echo"[..]),
            ("busy", no_timeouts(), &b"gate\n"[..]),
            (
                "full",
                no_timeouts().max_in_flight(1),
                &b"gate\necho a\n"[..],
            ),
            (
                "full+ahead",
                no_timeouts().max_in_flight(2),
                many_gates.as_bytes(),
            ),
            ("defaults idle", ConnectionConfig::default(), &b""[..]),
            (
                "defaults partial",
                ConnectionConfig::default(),
                &b"echo"[..],
            ),
        ] {
            assert_eq!(
                quiet_after(cfg, input),
                0,
                "{name}: the connection woke itself"
            );
        }
    })
}

/// A timer that fires before the connection's deadline, which moved
/// later meanwhile (it was armed for the idle timeout, then part of a
/// request came and the much longer read timeout runs), is re-armed for
/// that deadline: the connection does not keep waking itself until then.
#[test]
fn a_timer_fired_before_a_later_deadline_is_rearmed_without_waking_the_connection() {
    deadline(30, || {
        one_worker_runtime().block_on(async {
            let mock = Mock::default();
            let svc = Gated::default();
            let cfg = no_timeouts()
                .idle_timeout(Some(Duration::from_millis(100)))
                .read_timeout(Some(Duration::from_secs(3600)));
            let mut conn = pin!(serve_connection(
                mock.clone(),
                &TestProto,
                svc,
                &cfg,
                std::future::pending()
            ));
            let wake = Arc::new(CountWake::default());
            let waker = Waker::from(wake.clone());
            let mut cx = Context::from_waker(&waker);
            // Idle: the timer is armed for the idle timeout.
            assert!(conn.as_mut().poll(&mut cx).is_pending());
            // Part of a request: the read timeout, an hour away, runs.
            mock.send(b"ec");
            assert!(conn.as_mut().poll(&mut cx).is_pending());
            // Past the idle timeout (a lower bound, not a limit): the timer
            // armed for it has fired and woken the connection.
            strata_rt::time::sleep(Duration::from_millis(500)).await;
            assert!(wake.0.load(Ordering::SeqCst) > 0, "the timer never fired");
            wake.0.store(0, Ordering::SeqCst);
            assert!(conn.as_mut().poll(&mut cx).is_pending());
            assert_eq!(
                wake.0.load(Ordering::SeqCst),
                0,
                "the connection woke itself"
            );
        })
    })
}

// ---------------------------------------------------------------------
// Flush timing and strict request/response, counted in bytes the peer
// can see before it sends anything more.

#[test]
fn responses_are_visible_as_soon_as_they_are_in_order() {
    deadline(30, || {
        one_worker_runtime().block_on(async {
            for max in [1usize, 64] {
                let mock = Mock::default();
                let svc = Gated::default();
                let cfg = no_timeouts().max_in_flight(max).write_high_water_mark(1);
                let mut conn = pin!(serve_connection(
                    mock.clone(),
                    &TestProto,
                    svc.clone(),
                    &cfg,
                    std::future::pending()
                ));
                let mut cx = Context::from_waker(Waker::noop());
                mock.send(b"echo 0\ngate 1\necho 2\n");
                assert!(conn.as_mut().poll(&mut cx).is_pending());
                assert_eq!(mock.written(), "echo 0\n", "max {max}");
                // Strict request/response: nothing after the running one starts.
                assert_eq!(svc.started(), if max == 1 { 2 } else { 3 });
                svc.open();
                assert!(conn.as_mut().poll(&mut cx).is_pending());
                assert_eq!(mock.written(), "echo 0\ngate 1\necho 2\n", "max {max}");
            }
        })
    })
}

/// A graceful stop at the in-flight bound with more than the read-ahead
/// buffered answers every request received before the stop.
#[test]
fn a_stop_at_the_bound_answers_everything_received() {
    deadline(30, || {
        one_worker_runtime().block_on(async {
            let mock = Mock::default();
            let svc = Gated::default();
            let cfg = no_timeouts().max_in_flight(1);
            let stop = Rc::new(RefCell::new((false, None::<Waker>)));
            let stop2 = stop.clone();
            let stop_fut = std::future::poll_fn(move |cx| {
                let mut s = stop2.borrow_mut();
                if s.0 {
                    Poll::Ready(())
                } else {
                    s.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            });
            let mut conn = pin!(serve_connection(
                mock.clone(),
                &TestProto,
                svc.clone(),
                &cfg,
                stop_fut
            ));
            let mut cx = Context::from_waker(Waker::noop());
            let mut batch = String::from("gate\n");
            for i in 0..1000 {
                batch.push_str(&format!("e{i}\n"));
            }
            mock.send(batch.as_bytes());
            assert!(conn.as_mut().poll(&mut cx).is_pending());
            stop.borrow_mut().0 = true;
            assert!(conn.as_mut().poll(&mut cx).is_pending());
            svc.open();
            let mut done = None;
            for _ in 0..100 {
                if let Poll::Ready(r) = conn.as_mut().poll(&mut cx) {
                    done = Some(r);
                    break;
                }
            }
            // linger may keep it pending; the answers are what matter
            let _ = done;
            assert_eq!(mock.written(), batch);
            assert!(mock.0.borrow().closed);
        })
    })
}

/// Serves `send` (then 64 KiB more: a peer that goes on sending) with
/// `proto` and `svc` on a worker: how the connection ended, and all the
/// peer received.
fn quit_run<P, S>(
    proto: P,
    svc: S,
    send: impl AsRef<[u8]> + Send + 'static,
) -> (Result<(), strata_proto::pipeline::ConnectionError>, Vec<u8>)
where
    P: strata_proto::pipeline::ServerProto<Request = String, Response = String>,
    S: strata_service::Service<String, Response = String> + Send + 'static,
    S::Error: Into<strata_service::BoxError>,
{
    deadline(30, move || {
        support::on_a_worker(async move {
            let (mut client, server) = support::connected_pair();
            let conn = strata_rt::spawn_local(async move {
                serve_connection(server, &proto, svc, &no_timeouts(), std::future::pending()).await
            });
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let got = strata_rt::spawn_blocking(move || {
                client.write_all(send.as_ref()).unwrap();
                let _ = client.write_all(&vec![b'x'; 64 * 1024]);
                let mut got = Vec::new();
                let _ = client.read_to_end(&mut got);
                got
            })
            .await
            .unwrap();
            (conn.await.unwrap(), got)
        })
    })
}

/// Lines (at most 16 bytes), echoed; the response `bye` (to `quit`) is
/// the connection's last.
struct Quits;

impl strata_proto::pipeline::ServerProto for Quits {
    type Request = String;
    type Response = String;
    type Codec = strata_codec::LinesCodec;
    fn codec(&self) -> strata_codec::LinesCodec {
        strata_codec::LinesCodec::with_max_length(16)
    }
    fn closes_after(&self, response: &String) -> bool {
        response == "bye"
    }
}

/// A response the protocol marks as the last (`closes_after`, a "quit")
/// goes out after those before it; the requests after it get nothing, the
/// connection ends normally, and a peer that goes on sending still gets
/// every answer (the socket lingers, so no reset throws them away).
#[test]
fn a_response_the_protocol_marks_as_the_last_closes_the_connection_after_it() {
    let svc = service_fn(|line: String| async move {
        Ok::<_, io::Error>(if line == "quit" {
            "bye".to_string()
        } else {
            line
        })
    });
    let (ended, got) = quit_run(Quits, svc, b"a\nquit\nz\n");
    assert_eq!(String::from_utf8_lossy(&got), "a\nbye\n");
    assert!(ended.is_ok(), "ended as {ended:?}");
}

/// The quit is still running when the line after it, over-long, is read:
/// that line comes after the last response and is dropped with the rest,
/// and the connection ends `Ok`, as with any other request after a quit.
/// (It once ended with the decode error of a request nobody answers.)
#[test]
fn a_bad_request_after_the_last_response_does_not_fail_the_connection() {
    let svc = service_fn(|line: String| async move {
        if line == "quit" {
            strata_rt::time::sleep(Duration::from_millis(100)).await;
            return Ok::<_, io::Error>("bye".to_string());
        }
        Ok(line)
    });
    let mut bytes = b"a\nquit\n".to_vec();
    bytes.extend_from_slice(&[b'x'; 100]);
    bytes.push(b'\n');
    let (ended, got) = quit_run(Quits, svc, bytes);
    assert_eq!(String::from_utf8_lossy(&got), "a\nbye\n");
    assert!(ended.is_ok(), "ended as {ended:?}");
}

/// Lines (at most 16 bytes), echoed; the request `quit` is the
/// connection's last (`last_request`), judged as it is read.
struct LastQuit;

impl strata_proto::pipeline::ServerProto for LastQuit {
    type Request = String;
    type Response = String;
    type Codec = strata_codec::LinesCodec;
    fn codec(&self) -> strata_codec::LinesCodec {
        strata_codec::LinesCodec::with_max_length(16)
    }
    fn last_request(&self, request: &String) -> bool {
        request == "quit"
    }
}

/// A request the protocol marks as the last (`last_request`): the
/// requests before it and it are answered, the ones after it are never
/// run (the service is called for none of them, even while the quit is
/// still running, which `closes_after` cannot promise), the connection
/// ends `Ok`, and a peer that goes on sending still gets every answer.
/// Both ways a response can come: ready at once, or later.
#[test]
fn a_request_the_protocol_marks_as_the_last_is_the_last_run() {
    for slow_quit in [false, true] {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let svc = service_fn(move |line: String| {
            seen.lock().unwrap().push(line.clone());
            async move {
                if slow_quit && line == "quit" {
                    strata_rt::time::sleep(Duration::from_millis(50)).await;
                }
                Ok::<_, io::Error>(line)
            }
        });
        let (ended, got) = quit_run(LastQuit, svc, b"a\nquit\nz\ny\n");
        assert_eq!(
            String::from_utf8_lossy(&got),
            "a\nquit\n",
            "slow quit: {slow_quit}"
        );
        assert!(ended.is_ok(), "ended as {ended:?}");
        assert_eq!(
            *calls.lock().unwrap(),
            ["a", "quit"],
            "slow quit: {slow_quit}"
        );
    }
}
