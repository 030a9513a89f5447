//! A model of strata-proto's pipelined dispatcher, shared by the
//! `pipeline_model` property test and the `pipeline` fuzz target (which
//! includes this file by path).
//!
//! A line protocol: `hello` answers `world`; a line starting with a digit
//! `d` answers `done` after its future was polled `d` more times (so
//! answers complete out of order); a line starting with `fail` fails, and
//! the case picks what the protocol does then (answer and carry on,
//! answer and close, or close); anything else answers `idk`. A line that
//! cannot be decoded (too long, not UTF-8) gets one error line, then the
//! connection closes. A request whose service panics (if the case allows
//! panics: a line starting with `panic`) closes it too, without an
//! answer. A case also picks the in-flight bound, the write high-water mark, the
//! line limit, an optional graceful stop, and the scripts of the
//! transport's reads and writes (pieces of any size, `Pending`,
//! `Interrupted`; see [`script`]).
//!
//! [`check`] serves a case with `serve_connection` and compares what the
//! connection wrote with [`model`]: one answer per request, in request
//! order, up to the first request or decode error that closes the
//! connection; after a graceful stop, those answers up to the end of one
//! of them.
#![allow(unreachable_pub)]

pub mod script;

use std::future::{Future, poll_fn};
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use script::{Reader, Writer};
use strata_codec::{Decoder, LinesCodec, LinesCodecError};
use strata_proto::ConnectionConfig;
use strata_proto::pipeline::{ErrorAction, ServerProto, serve_connection};
use strata_service::{BoxError, Service};

/// One run of a connection.
#[derive(Clone, Debug)]
pub struct Case {
    /// `ConnectionConfig::max_in_flight`.
    pub in_flight: usize,
    /// `ConnectionConfig::write_high_water_mark`.
    pub high_water_mark: usize,
    /// The longest line, in bytes.
    pub max_line: usize,
    /// What a failed request does.
    pub on_fail: OnFail,
    /// Whether lines starting with `panic` make the service panic
    /// (`panic!...` in `call`, `panic...` in its future); otherwise they
    /// are answered `idk`.
    pub panics: bool,
    /// A graceful stop at this poll of the stop future, or none.
    pub stop_at: Option<u8>,
    /// The reads' script: one byte per call (see [`script::step`]).
    pub reads: Vec<u8>,
    /// The writes' script.
    pub writes: Vec<u8>,
    /// What the peer sends, then it closes its side.
    pub input: Vec<u8>,
}

/// Serves `case` and compares with the model; `Err` says how they differ.
pub fn check(case: &Case) -> Result<(), String> {
    let written = serve(case).ok_or("the connection did not end")?;
    let expected = model(&proto(case), case.panics, &case.input);
    let written = &written;
    let fits = match case.stop_at {
        None => *written == expected,
        Some(_) => {
            expected.starts_with(written) && (written.is_empty() || written.ends_with(b"\n"))
        }
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "wrote {:?}, the model says {:?}",
            String::from_utf8_lossy(written),
            String::from_utf8_lossy(&expected)
        ))
    }
}

/// What the connection writes for `case`; `None` if it does not end.
pub fn serve(case: &Case) -> Option<Vec<u8>> {
    let config = ConnectionConfig::default()
        .max_in_flight(case.in_flight)
        .write_high_water_mark(case.high_water_mark);
    let mut io = Duplex {
        reader: Reader::new(&case.input, &case.reads),
        writer: Writer::new(&case.writes),
    };
    let ended = runtime().block_on(strata_rt::time::timeout(
        // Far longer than any case takes: a hang, not a slow run.
        Duration::from_secs(20),
        serve_connection(
            &mut io,
            &proto(case),
            Svc {
                panics: case.panics,
            },
            &config,
            stop(case.stop_at),
        ),
    ));
    ended.ok().map(|_| io.writer.written)
}

fn proto(case: &Case) -> Proto {
    Proto {
        max_line: case.max_line,
        on_fail: case.on_fail,
    }
}

/// What the protocol does when the service fails a request.
#[derive(Clone, Copy, Debug)]
pub enum OnFail {
    /// `ErrorAction::Respond`.
    Respond,
    /// `ErrorAction::RespondAndClose`.
    RespondAndClose,
    /// `ErrorAction::Close`.
    Close,
}

/// The protocol.
struct Proto {
    max_line: usize,
    on_fail: OnFail,
}

const FAILED: &str = "error: failed";
const TOO_LONG: &str = "error: line too long";
const NOT_UTF8: &str = "error: invalid UTF-8";

impl ServerProto for Proto {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(self.max_line)
    }

    fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
        Some(decode_error(err).to_string())
    }

    fn service_error(&self, _err: &BoxError) -> ErrorAction<String> {
        match self.on_fail {
            OnFail::Respond => ErrorAction::Respond(FAILED.to_string()),
            OnFail::RespondAndClose => ErrorAction::RespondAndClose(FAILED.to_string()),
            OnFail::Close => ErrorAction::Close,
        }
    }
}

fn decode_error(err: &LinesCodecError) -> &'static str {
    match err {
        LinesCodecError::LineTooLong { .. } => TOO_LONG,
        LinesCodecError::InvalidUtf8(_) => NOT_UTF8,
        _ => "error: bad request",
    }
}

/// The service; with `panics`, a line starting with `panic!` panics in
/// `call`, and one starting with `panic` when its future is polled.
struct Svc {
    panics: bool,
}

/// What the service does with a request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Reply(&'static str),
    Fail,
    PanicInCall,
    PanicInPoll,
}

/// The message of the service's panics.
pub const PANIC_MESSAGE: &str = "the model's service was asked to panic";

impl Service<String> for Svc {
    type Response = String;
    type Error = BoxError;

    fn call(&self, req: String) -> impl Future<Output = Result<String, BoxError>> {
        let answer = answer(&req, self.panics);
        assert!(answer != Answer::PanicInCall, "{PANIC_MESSAGE}");
        let mut polls_left = req
            .as_bytes()
            .first()
            .filter(|b| b.is_ascii_digit())
            .map_or(0, |b| b - b'0');
        poll_fn(move |cx| {
            if polls_left > 0 {
                polls_left -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match answer {
                Answer::Reply(r) => Poll::Ready(Ok(r.to_string())),
                Answer::Fail => Poll::Ready(Err("failed".into())),
                Answer::PanicInCall | Answer::PanicInPoll => panic!("{PANIC_MESSAGE}"),
            }
        })
    }
}

/// What the service does with `req`.
fn answer(req: &str, panics: bool) -> Answer {
    if req.starts_with("fail") {
        Answer::Fail
    } else if panics && req.starts_with("panic!") {
        Answer::PanicInCall
    } else if panics && req.starts_with("panic") {
        Answer::PanicInPoll
    } else if req == "hello" {
        Answer::Reply("world")
    } else if req.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        Answer::Reply("done")
    } else {
        Answer::Reply("idk")
    }
}

/// What the connection must write for `input`: the requests decoded from
/// the whole input at once, answered in order until one closes it.
fn model(proto: &Proto, panics: bool, input: &[u8]) -> Vec<u8> {
    let mut codec = proto.codec();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    let mut eof = false;
    loop {
        let next = if eof {
            codec.decode_eof(&mut buf)
        } else {
            codec.decode(&mut buf)
        };
        let line = match next {
            Ok(Some(line)) => line,
            Ok(None) if !eof => {
                eof = true;
                continue;
            }
            Ok(None) => return out,
            Err(e) => {
                out.extend_from_slice(decode_error(&e).as_bytes());
                out.push(b'\n');
                return out;
            }
        };
        // A panic closes the connection after the answers before it.
        let (reply, close) = match (answer(&line, panics), proto.on_fail) {
            (Answer::Reply(a), _) => (Some(a), false),
            (Answer::Fail, OnFail::Respond) => (Some(FAILED), false),
            (Answer::Fail, OnFail::RespondAndClose) => (Some(FAILED), true),
            (Answer::Fail, OnFail::Close) => (None, true),
            (Answer::PanicInCall | Answer::PanicInPoll, _) => (None, true),
        };
        if let Some(r) = reply {
            out.extend_from_slice(r.as_bytes());
            out.push(b'\n');
        }
        if close {
            return out;
        }
    }
}

/// One runtime for all cases: a worker for the timers.
fn runtime() -> &'static strata_rt::Runtime {
    static RT: OnceLock<strata_rt::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .expect("a runtime")
    })
}

/// A graceful stop, requested at its poll after the `at`th; never for
/// `None`.
fn stop(at: Option<u8>) -> impl Future<Output = ()> {
    let mut polls = 0u8;
    poll_fn(move |_| {
        let Some(n) = at else {
            return Poll::Pending;
        };
        polls = polls.saturating_add(1);
        if polls > n {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// A reader and a writer as one transport.
struct Duplex<'a> {
    reader: Reader<'a>,
    writer: Writer,
}

impl futures_io::AsyncRead for Duplex<'_> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for Duplex<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().writer).poll_close(cx)
    }
}
