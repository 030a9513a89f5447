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
use strata_proto::pipeline::{ErrorAction, ServerProto, serve_connection};
use strata_proto::{ConnectionConfig, ServerHandle, TcpServer};
use strata_service::{BoxError, service_fn};
use support::memory::{Memory, one_worker_runtime};
use support::{Flag, deadline};

/// Lines of at most 16 bytes; `quit` is the last request; a failed
/// request is answered `failed` and closes; the last answer gets `!`.
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
    let written = deadline(30, || {
        one_worker_runtime().block_on(async {
            let mock = Memory::default();
            mock.send(b"a\nb\ngate c\n");
            mock.0.borrow_mut().eof = true;
            let gate = Arc::new(Flag::default());
            let g = gate.clone();
            let svc = service_fn(move |line: String| {
                let g = g.clone();
                async move {
                    if let Some(x) = line.strip_prefix("gate ") {
                        g.wait().await;
                        return Ok::<_, std::io::Error>(x.to_string());
                    }
                    Ok(line)
                }
            });
            let cfg = ConnectionConfig::default()
                .idle_timeout(None)
                .read_timeout(None)
                .write_timeout(None);
            let conn = serve_connection(mock.clone(), &Proto, svc, &cfg, std::future::pending());
            let control = async {
                strata_rt::yield_now().await;
                gate.fire();
            };
            let (ended, ()) = futures_util::future::join(conn, control).await;
            ended.unwrap();
            mock.written()
        })
    });
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
    let written = deadline(30, || {
        one_worker_runtime().block_on(async {
            let mock = Memory::default();
            mock.send(b"a\ngate b\n");
            let (gate, stop, started) = (
                Arc::new(Flag::default()),
                Arc::new(Flag::default()),
                Arc::new(Flag::default()),
            );
            let (g, st) = (gate.clone(), started.clone());
            let svc = service_fn(move |line: String| {
                let (g, st) = (g.clone(), st.clone());
                async move {
                    if let Some(x) = line.strip_prefix("gate ") {
                        st.fire();
                        g.wait().await;
                        return Ok::<_, std::io::Error>(x.to_string());
                    }
                    Ok(line)
                }
            });
            let cfg = ConnectionConfig::default()
                .idle_timeout(None)
                .read_timeout(None)
                .write_timeout(None);
            let s = stop.clone();
            let conn = serve_connection(
                mock.clone(),
                &Proto,
                svc,
                &cfg,
                async move { s.wait().await },
            );
            let control = async {
                started.wait().await;
                stop.fire();
                // Let the connection see the stop before the gate opens.
                strata_rt::yield_now().await;
                strata_rt::yield_now().await;
                gate.fire();
            };
            let (ended, ()) = futures_util::future::join(conn, control).await;
            ended.unwrap();
            mock.written()
        })
    });
    assert_eq!(written, "a\nb!\n");
}
