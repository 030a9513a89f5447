//! strata-proto's pipelined dispatcher (`serve_connection`) over a
//! scripted transport, against a model of the protocol.
//!
//! A line protocol: `hello` answers `world`; a line starting with a digit
//! `d` answers `done` after its future was polled `d` more times (so
//! answers complete out of order); a line starting with `fail` fails, and
//! the input picks what the protocol does then (answer and carry on,
//! answer and close, or close); anything else answers `idk`. A line that
//! cannot be decoded (too long, not UTF-8) gets one error line, then the
//! connection closes. The input also picks the in-flight bound, the write
//! high-water mark, the line limit, and the scripts of the reader and the
//! writer (pieces of any size, `Pending`, `Interrupted`).
//!
//! Checks: the connection ends, and what it wrote is exactly the model's
//! answers: one per request, in request order, up to the first request
//! or decode error that closes the connection. The input may also stop
//! the connection gracefully at some poll: then it writes the model's
//! answers up to the end of one of them, no more.
#![no_main]

#[path = "common/script.rs"]
mod script;

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use script::{Reader, Step, Writer, step};
use strata_codec::{Decoder, LinesCodec, LinesCodecError};
use strata_proto::ConnectionConfig;
use strata_proto::pipeline::{ErrorAction, ServerProto, serve_connection};
use strata_service::{BoxError, Service};

/// What the protocol does when the service fails a request.
#[derive(Clone, Copy, Debug)]
enum OnFail {
    Respond,
    RespondAndClose,
    Close,
}

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

struct Svc;

impl Service<String> for Svc {
    type Response = String;
    type Error = BoxError;

    fn call(&self, req: String) -> impl Future<Output = Result<String, BoxError>> {
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
            Poll::Ready(
                answer(&req)
                    .map(str::to_string)
                    .ok_or_else(|| "failed".into()),
            )
        })
    }
}

/// The service's answer to `req`; `None` for a failure.
fn answer(req: &str) -> Option<&'static str> {
    if req.starts_with("fail") {
        None
    } else if req == "hello" {
        Some("world")
    } else if req.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        Some("done")
    } else {
        Some("idk")
    }
}

/// What the connection must write for `input`: the requests decoded from
/// the whole input at once, answered in order until one closes it.
fn model(proto: &Proto, input: &[u8]) -> Vec<u8> {
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
        let (reply, close) = match (answer(&line), proto.on_fail) {
            (Some(a), _) => (Some(a), false),
            (None, OnFail::Respond) => (Some(FAILED), false),
            (None, OnFail::RespondAndClose) => (Some(FAILED), true),
            (None, OnFail::Close) => (None, true),
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

fn runtime() -> &'static strata_rt::Runtime {
    static RT: OnceLock<strata_rt::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<7>() else {
        return;
    };
    let [in_flight, hwm, max_line, on_fail, stop_at, n_read, n_write] = *head;
    let proto = Proto {
        max_line: usize::from(max_line % 64) + 1,
        on_fail: match on_fail % 3 {
            0 => OnFail::Respond,
            1 => OnFail::RespondAndClose,
            _ => OnFail::Close,
        },
    };
    let config = ConnectionConfig::default()
        .max_in_flight(usize::from(in_flight % 8) + 1)
        .write_high_water_mark(usize::from(hwm) * 4 + 1);
    let (read_script, rest) = rest.split_at(usize::from(n_read).min(rest.len()));
    let (write_script, input) = rest.split_at(usize::from(n_write).min(rest.len()));
    let writes: VecDeque<Step> = write_script.iter().map(|&b| step(b)).collect();
    // The transport: the scripted reader and writer as one stream.
    let mut io = Duplex {
        reader: Reader::new(input, read_script),
        writer: Writer::new(writes),
    };
    let ended = runtime().block_on(strata_rt::time::timeout(
        // Far longer than any input takes: a hang, not a slow run.
        Duration::from_secs(20),
        serve_connection(&mut io, &proto, Svc, &config, stop(stop_at)),
    ));
    assert!(ended.is_ok(), "the connection did not end");
    let expected = model(&proto, input);
    let written = &io.writer.written;
    // After a stop, the answers to the requests received before it: the
    // model's answers up to a line's end.
    let whole = if stop_at == u8::MAX {
        *written == expected
    } else {
        expected.starts_with(written) && (written.is_empty() || written.ends_with(b"\n"))
    };
    assert!(
        whole,
        "wrote {:?}, the model says {:?}",
        String::from_utf8_lossy(written),
        String::from_utf8_lossy(&expected)
    );
});

/// A graceful stop, requested at its `n`th poll; never for `u8::MAX`.
fn stop(n: u8) -> impl Future<Output = ()> {
    let mut polls = 0u8;
    poll_fn(move |_| {
        if n == u8::MAX {
            return Poll::Pending;
        }
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
