//! `ServerProto::last_response`: the answer after which the connection
//! closes is handed to the protocol to mark, whatever closes it (the
//! peer's end of stream, a graceful stop, a last request, a failed
//! request that closes), and no other answer is; a decode error's own
//! final answer is not passed. Real TCP on 127.0.0.1, and an in-memory
//! transport where the order of events must not depend on timing;
//! `deadline` is a hang guard only.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strata_codec::{LinesCodec, LinesCodecError};
use strata_proto::pipeline::{ConnectionError, ErrorAction, ServerProto, serve_connection};
use strata_proto::{ConnectionConfig, ServerHandle, TcpServer};
use strata_service::{BoxError, service_fn};
use support::memory::{Memory, one_worker_runtime};
use support::{Flag, deadline};

/// Lines of at most 16 bytes; a bad line is answered `bad`; a failed
/// request is answered `failed` and closes; `quit` is the last request;
/// an answer starting `bye` closes (`closes_after`); the last answer gets
/// `!`.
struct Proto;

impl ServerProto for Proto {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(16)
    }
    fn decode_error(&self, _: &LinesCodecError) -> Option<String> {
        Some("bad".into())
    }
    fn service_error(&self, _: &BoxError) -> ErrorAction<String> {
        ErrorAction::RespondAndClose("failed".into())
    }
    fn closes_after(&self, response: &String) -> bool {
        response.starts_with("bye")
    }
    fn last_request(&self, request: &String) -> bool {
        request == "quit"
    }
    fn last_response(&self, response: &mut String) {
        response.push('!');
    }
}

/// `slow X` answers X after 100 ms, `fail` fails, anything else is
/// echoed at once. `started` counts the calls.
fn server(started: Arc<AtomicUsize>) -> ServerHandle {
    let svc = service_fn(move |req: String| {
        started.fetch_add(1, Ordering::SeqCst);
        async move {
            if let Some(x) = req.strip_prefix("slow ") {
                strata_rt::time::sleep(Duration::from_millis(100)).await;
                return Ok(x.to_string());
            }
            if req == "fail" {
                return Err::<String, BoxError>("asked to fail".into());
            }
            Ok(req)
        }
    });
    TcpServer::new(Proto, "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .shutdown_timeout(Duration::from_secs(10))
        .start(move || Ok(svc.clone()))
        .unwrap()
}

/// Sends `input` (then closes the sending side if `half_close`) and reads
/// every answer until the server closes.
fn exchange(server: &ServerHandle, input: &str, half_close: bool) -> Vec<String> {
    let s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (&s).write_all(input.as_bytes()).unwrap();
    if half_close {
        s.shutdown(Shutdown::Write).unwrap();
    }
    BufReader::new(s).lines().map(Result::unwrap).collect()
}

#[test]
fn the_answer_before_the_peers_end_of_stream_is_marked() {
    // In memory: the peer has sent everything and closed, so the end of
    // stream is seen in the first poll, before the gated answer is ready.
    let (written, ended) = serve_memory("a\nb\ngate c\n", true, false);
    ended.unwrap();
    assert_eq!(written, "a\nb\nc!\n");
}

#[test]
fn a_last_request_and_a_failed_request_that_closes_are_marked() {
    deadline(60, || {
        let server = server(Arc::default());
        assert_eq!(
            exchange(&server, "a\nquit\nnot read\n", false),
            ["a", "quit!"]
        );
        assert_eq!(
            exchange(&server, "slow a\nfail\nnot run\n", false),
            ["a", "failed!"]
        );
        assert!(server.shutdown());
    });
}

#[test]
fn a_decode_errors_own_answer_is_last_and_not_passed() {
    deadline(60, || {
        let server = server(Arc::default());
        let got = exchange(&server, "slow a\nthis line is far too long\n", false);
        assert_eq!(got, ["a", "bad"]);
        assert!(server.shutdown());
    });
}

#[test]
fn the_answer_before_a_graceful_stops_close_is_marked() {
    // In memory, the peer still connected: the stop comes while `b` runs,
    // and `b` is let finish only after the connection has seen it.
    let (written, ended) = serve_memory("a\ngate b\n", false, true);
    ended.unwrap();
    assert_eq!(written, "a\nb!\n");
}

fn cfg() -> ConnectionConfig {
    ConnectionConfig::default()
        .idle_timeout(None)
        .read_timeout(None)
        .write_timeout(None)
}

/// Serves `input` in memory (then end of stream if `eof`). A request
/// containing `gate` fires `started`, then waits for the gate; one
/// containing `fail` then fails; one with `bye` answers itself (closing).
/// With `stop`, a graceful stop comes once the gated request has started,
/// and the gate opens after the connection has seen it. Returns what was
/// written and how the connection ended.
fn serve_memory(input: &str, eof: bool, stop: bool) -> (String, Result<(), ConnectionError>) {
    let input = input.to_owned();
    deadline(30, move || {
        one_worker_runtime().block_on(async move {
            let mock = Memory::default();
            mock.send(input.as_bytes());
            mock.0.borrow_mut().eof = eof;
            let gate = Arc::new(Flag::default());
            let started = Arc::new(Flag::default());
            let (g, st) = (gate.clone(), started.clone());
            let svc = service_fn(move |line: String| {
                let (g, st) = (g.clone(), st.clone());
                async move {
                    if line.contains("gate") {
                        st.fire();
                        g.wait().await;
                    }
                    if line.contains("fail") {
                        return Err::<String, BoxError>("asked to fail".into());
                    }
                    Ok(line.replace("gate ", ""))
                }
            });
            let cfg = cfg();
            let stopping = Arc::new(Flag::default());
            let s = stopping.clone();
            let conn = serve_connection(
                mock.clone(),
                &Proto,
                svc,
                &cfg,
                async move { s.wait().await },
            );
            let ctl = async {
                started.wait().await;
                if stop {
                    stopping.fire();
                    // Let the connection see the stop before the gate opens.
                    strata_rt::yield_now().await;
                    strata_rt::yield_now().await;
                }
                gate.fire();
            };
            let (ended, ()) = futures_util::future::join(conn, ctl).await;
            (mock.written(), ended)
        })
    })
}

/// A request fails (RespondAndClose) while a decode error's answer waits
/// behind it: the decode error's `bad` is then dropped (a service error
/// closed the connection since), so `failed` is the last answer, and is
/// marked. (It was judged with the decode error's answer still pending,
/// and went out unmarked.)
#[test]
fn a_respond_and_close_answer_that_displaces_a_decode_errors_answer_is_marked() {
    let (written, ended) = serve_memory("gate fail\nthis line is far too long\n", false, false);
    assert!(
        matches!(ended, Err(ConnectionError::Service(_))),
        "ended as {ended:?}"
    );
    assert_eq!(written, "failed!\n");
}

/// A `closes_after` answer with requests pipelined behind it: they are
/// dropped, it is the last answer, and it is marked (`closes_after` is
/// asked first, of the unmarked answer). (It was never marked.)
#[test]
fn a_closes_after_answer_with_requests_behind_it_is_marked() {
    let (written, ended) = serve_memory("gate bye\nx\ny\n", false, false);
    ended.unwrap();
    assert_eq!(written, "bye!\n");
}

/// RespondAndClose with requests pipelined behind it:
/// they are dropped and the failed request's answer is marked.
#[test]
fn a_respond_and_close_answer_with_requests_behind_it_is_marked() {
    let (written, ended) = serve_memory("a\ngate fail\nx\ny\n", false, false);
    assert!(matches!(ended, Err(ConnectionError::Service(_))));
    assert_eq!(written, "a\nfailed!\n");
}

/// a last request behind a slow one, with more requests
/// behind it: only the last request's answer is marked.
#[test]
fn only_the_last_requests_answer_is_marked_when_a_slow_one_precedes_it() {
    let (written, ended) = serve_memory("gate a\nquit\nnot read\n", false, false);
    ended.unwrap();
    assert_eq!(written, "a\nquit!\n");
}

/// a decode error's answer is last and not passed;
/// the answer before it is not marked.
#[test]
fn nothing_before_a_decode_errors_answer_is_marked() {
    let (written, ended) = serve_memory("gate a\nthis line is far too long\n", true, false);
    assert!(matches!(ended, Err(ConnectionError::Decode(_))));
    assert_eq!(written, "a\nbad\n");
}

/// Over TCP, a stop and the last answer's completion seen in the same
/// wake-up: the answer is marked, for the connection can count what is
/// left unread (nothing) and stops reading before it writes the answers.
/// (It wrote the answer first, with reading still open, unmarked.) The
/// server's one worker is held by a handler that blocks until both the
/// gate and the stop are set, so that the connection's next poll finds
/// both.
#[test]
fn the_answer_finishing_as_the_stop_is_seen_is_marked() {
    deadline(60, || {
        let gate = Arc::new(Flag::default());
        let gated = Arc::new(Flag::default());
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let hold_rx = Arc::new(std::sync::Mutex::new(hold_rx));
        let holding = Arc::new(Flag::default());
        let (g, gd, hr, hd) = (gate.clone(), gated.clone(), hold_rx, holding.clone());
        let svc = service_fn(move |line: String| {
            let (g, gd, hr, hd) = (g.clone(), gd.clone(), hr.clone(), hd.clone());
            async move {
                if line == "hold" {
                    // Blocks the worker on purpose (a test's tool).
                    hd.fire();
                    let _ = hr.lock().unwrap().recv_timeout(Duration::from_secs(20));
                } else if let Some(x) = line.strip_prefix("gate ") {
                    gd.fire();
                    g.wait().await;
                    return Ok::<_, std::io::Error>(x.to_string());
                }
                Ok(line)
            }
        });
        let server = TcpServer::new(Proto, "127.0.0.1:0".parse().unwrap())
            .threads(1)
            .shutdown_timeout(Duration::from_secs(20))
            .start(move || Ok(svc.clone()))
            .unwrap();
        let addr = server.local_addr();

        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        (&s).write_all(b"a\ngate b\n").unwrap();
        let mut lines = BufReader::new(&s).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "a");
        wait_for(&gated);

        let holder = TcpStream::connect(addr).unwrap();
        (&holder).write_all(b"hold\n").unwrap();
        wait_for(&holding);
        // The worker is held: set both, then let it go.
        gate.fire();
        // (Begins the stop at once; the future only waits for the drain.)
        let finished = server.shutdown_async();
        hold_tx.send(()).unwrap();

        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        assert_eq!(rest, ["b!"]);
        drop(holder);
        assert!(strata_rt::run(finished));
    });
}

/// Waits (a hang guard) until `flag` has fired, from a plain thread.
fn wait_for(flag: &Flag) {
    let start = std::time::Instant::now();
    while !flag.is_fired() {
        assert!(start.elapsed() < Duration::from_secs(20), "never fired");
        std::thread::sleep(Duration::from_millis(2));
    }
}
