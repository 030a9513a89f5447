//! `ServerProto::last_request` with decode
//! errors, service errors, panics, `max_in_flight(1)`, a graceful stop,
//! `closes_after` and requests in flight ahead of it. In-memory transport
//! (the peer has sent everything and closed); orderings by flags, not
//! sleeps; `deadline` is a hang guard only.

mod support;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use strata_codec::{LinesCodec, LinesCodecError};
use strata_proto::ConnectionConfig;
use strata_proto::pipeline::{ConnectionError, ErrorAction, ServerProto, serve_connection};
use strata_service::{BoxError, service_fn};
use support::memory::{Memory, one_worker_runtime};
use support::{Flag, deadline};

#[derive(Clone, Copy)]
enum OnError {
    Respond,
    RespondAndClose,
    Close,
}

/// Lines of at most 16 bytes; a request starting with `quit` is the last;
/// the response `bye` closes too (`closes_after`).
struct Proto(OnError);

impl ServerProto for Proto {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(16)
    }
    fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
        Some(format!("bad: {err}"))
    }
    fn service_error(&self, _err: &BoxError) -> ErrorAction<String> {
        match self.0 {
            OnError::Respond => ErrorAction::Respond("failed".into()),
            OnError::RespondAndClose => ErrorAction::RespondAndClose("failed".into()),
            OnError::Close => ErrorAction::Close,
        }
    }
    fn closes_after(&self, response: &String) -> bool {
        response == "bye"
    }
    fn last_request(&self, request: &String) -> bool {
        request.starts_with("quit")
    }
}

fn cfg() -> ConnectionConfig {
    ConnectionConfig::default()
        .idle_timeout(None)
        .read_timeout(None)
        .write_timeout(None)
}

struct Run {
    written: String,
    ended: Result<(), ConnectionError>,
    calls: Vec<String>,
}

/// Serves `input` (then end of stream). Requests containing `gate` wait
/// for the gate; `fail` fails; `panic` panics; `bye` answers `bye`. Once
/// a request containing `stopme` has started, the stop fires, then the
/// gate opens.
fn serve(input: &str, on_error: OnError, cfg: ConnectionConfig) -> Run {
    let input = input.to_owned();
    deadline(30, move || {
        one_worker_runtime().block_on(async move {
            let mock = Memory::default();
            mock.send(input.as_bytes());
            mock.0.borrow_mut().eof = true;
            let calls = Rc::new(RefCell::new(Vec::new()));
            let gate = Arc::new(Flag::default());
            let stop = Arc::new(Flag::default());
            let started_stopme = Arc::new(Flag::default());
            let (seen, g, s) = (calls.clone(), gate.clone(), started_stopme.clone());
            let svc = service_fn(move |line: String| {
                seen.borrow_mut().push(line.clone());
                let (g, s) = (g.clone(), s.clone());
                async move {
                    if line.contains("stopme") {
                        s.fire();
                    }
                    if line.contains("gate") {
                        g.wait().await;
                    }
                    if line.contains("fail") {
                        return Err(io::Error::other("asked to fail"));
                    }
                    if line.contains("panic") {
                        panic!("asked to panic");
                    }
                    if line.contains("bye") {
                        return Ok("bye".to_string());
                    }
                    Ok(line)
                }
            });
            let proto = Proto(on_error);
            let st = stop.clone();
            let conn = serve_connection(
                mock.clone(),
                &proto,
                svc,
                &cfg,
                async move { st.wait().await },
            );
            let control = async {
                if input.contains("stopme") {
                    started_stopme.wait().await;
                    stop.fire();
                    // Let the connection see the stop before the gate opens.
                    strata_rt::yield_now().await;
                    strata_rt::yield_now().await;
                }
                gate.fire();
            };
            let (ended, ()) = futures_util::future::join(conn, control).await;
            let calls = calls.borrow().clone();
            Run {
                written: mock.written(),
                ended,
                calls,
            }
        })
    })
}

/// A line over the limit right after the last request, in the same
/// buffer: never decoded, so no error line and an `Ok` end.
#[test]
fn a_decode_error_after_the_last_request_is_not_seen() {
    let r = serve(
        "a\nquit\nxxxxxxxxxxxxxxxxxxxxxxxxx\nz\n",
        OnError::Respond,
        cfg(),
    );
    assert_eq!(r.written, "a\nquit\n");
    assert!(r.ended.is_ok(), "ended as {:?}", r.ended);
    assert_eq!(r.calls, ["a", "quit"]);
}

/// Same, with the last request still running when the bad line is
/// buffered behind it.
#[test]
fn a_decode_error_after_a_slow_last_request_is_not_seen() {
    let r = serve(
        "a\nquit gate\nxxxxxxxxxxxxxxxxxxxxxxxxx\nz\n",
        OnError::Respond,
        cfg(),
    );
    assert_eq!(r.written, "a\nquit gate\n");
    assert!(r.ended.is_ok(), "ended as {:?}", r.ended);
    assert_eq!(r.calls, ["a", "quit gate"]);
}

#[test]
fn a_service_error_on_the_last_request_answered_with_respond_ends_ok() {
    for input in ["a\nquit fail\nz\n", "a\nquit fail gate\nz\n"] {
        let r = serve(input, OnError::Respond, cfg());
        assert_eq!(r.written, "a\nfailed\n", "{input:?}");
        assert!(r.ended.is_ok(), "{input:?} ended as {:?}", r.ended);
        assert_eq!(r.calls.len(), 2, "{input:?}: {:?}", r.calls);
    }
}

#[test]
fn a_service_error_on_the_last_request_that_closes_is_the_outcome() {
    for (action, answer) in [
        (OnError::RespondAndClose, "a\nfailed\n"),
        (OnError::Close, "a\n"),
    ] {
        for input in ["a\nquit fail\nz\n", "a\nquit fail gate\nz\n"] {
            let r = serve(input, action, cfg());
            assert_eq!(r.written, answer, "{input:?}");
            assert!(
                matches!(r.ended, Err(ConnectionError::Service(_))),
                "{input:?} ended as {:?}",
                r.ended
            );
            assert_eq!(r.calls.len(), 2, "{input:?}: {:?}", r.calls);
        }
    }
}

#[test]
fn a_panic_on_the_last_request_ends_as_a_panic_after_the_answers_before_it() {
    for input in ["a\nquit panic\nz\n", "a\nquit panic gate\nz\n"] {
        let r = serve(input, OnError::Respond, cfg());
        assert_eq!(r.written, "a\n", "{input:?}");
        assert!(
            matches!(r.ended, Err(ConnectionError::Panicked(_))),
            "{input:?} ended as {:?}",
            r.ended
        );
        assert_eq!(r.calls.len(), 2, "{input:?}: {:?}", r.calls);
    }
}

#[test]
fn the_last_request_at_an_in_flight_bound_of_one() {
    for input in [
        "gate a\nquit\nz\n",
        "gate a\nquit gate\nz\nbad bad bad bad bad\n",
    ] {
        let r = serve(input, OnError::Respond, cfg().max_in_flight(1));
        let want: String = input.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(r.written, want, "{input:?}");
        assert!(r.ended.is_ok(), "{input:?} ended as {:?}", r.ended);
        assert_eq!(r.calls.len(), 2, "{input:?}: {:?}", r.calls);
    }
}

/// The stop fires while the last request runs: it is still answered, and
/// the connection ends `Ok`.
#[test]
fn a_stop_while_the_last_request_runs() {
    for input in ["a\nquit stopme gate\nz\n", "gate stopme\nquit\nz\n"] {
        let r = serve(input, OnError::Respond, cfg());
        let want: String = input.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(r.written, want, "{input:?}");
        assert!(r.ended.is_ok(), "{input:?} ended as {:?}", r.ended);
        assert_eq!(r.calls.len(), 2, "{input:?}: {:?}", r.calls);
    }
}

#[test]
fn a_last_request_whose_response_also_closes() {
    for input in ["a\nquit bye\nz\n", "a\nquit bye gate\nz\n"] {
        let r = serve(input, OnError::Respond, cfg());
        assert_eq!(r.written, "a\nbye\n", "{input:?}");
        assert!(r.ended.is_ok(), "{input:?} ended as {:?}", r.ended);
        assert_eq!(r.calls.len(), 2, "{input:?}: {:?}", r.calls);
    }
}

/// Requests in flight ahead of the last one are answered, in order.
#[test]
fn requests_ahead_of_the_last_are_answered_in_order() {
    let r = serve("gate a\nb\nquit\nc\n", OnError::Respond, cfg());
    assert_eq!(r.written, "gate a\nb\nquit\n");
    assert!(r.ended.is_ok(), "ended as {:?}", r.ended);
    assert_eq!(r.calls, ["gate a", "b", "quit"]);
}

/// A request ahead of the last one that closes the connection drops it.
#[test]
fn a_closing_answer_ahead_of_the_last_drops_it() {
    let r = serve("gate bye\nquit\nc\n", OnError::Respond, cfg());
    assert_eq!(r.written, "bye\n");
    assert!(r.ended.is_ok(), "ended as {:?}", r.ended);
}

/// The stop fires while a request ahead runs and the last one is still
/// buffered (in-flight bound of one): the last is answered, what follows
/// it is not run.
#[test]
fn a_stop_before_the_last_request_is_read() {
    let r = serve(
        "gate stopme\nquit\nz\n",
        OnError::Respond,
        cfg().max_in_flight(1),
    );
    assert_eq!(r.written, "gate stopme\nquit\n");
    assert!(r.ended.is_ok(), "ended as {:?}", r.ended);
    assert_eq!(r.calls, ["gate stopme", "quit"]);
}
