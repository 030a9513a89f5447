//! A model of the pipelined client, shared by the `client_model` property
//! test and the `client` fuzz target (which includes this file by path).
//!
//! A case makes calls on one `Client` over a scripted transport (pieces of
//! any size, `Pending`, `Interrupted`: see `../model/script.rs`) whose
//! "server" answers with the case's bytes: line `j` of them becomes
//! readable once `j + 1` requests have been written, and everything once
//! the client closes its side. Calls are `r{i}` (some with an embedded
//! newline, which cannot be encoded) and some are given up after a few
//! polls. [`check`] runs a case and compares every call's outcome with
//! what the bytes written and the answers decoded say it must be: the
//! `k`th request written gets the `k`th answer, or the error that ended
//! the connection before it, never another call's answer.
#![allow(unreachable_pub, dead_code)]

#[path = "../model/script.rs"]
pub mod script;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use futures_io::{AsyncRead, AsyncWrite};
use strata_codec::{Decoder, LinesCodec};
use strata_proto::pipeline::{Client, ClientError, ClientErrorKind};
use strata_service::Service;

/// One run of a client.
#[derive(Clone, Debug)]
pub struct Case {
    /// `max_in_flight`.
    pub in_flight: usize,
    /// The longest answer line, in bytes.
    pub max_line: usize,
    /// The calls, in the order they are made (all at once).
    pub calls: Vec<CallSpec>,
    /// What the server sends.
    pub answers: Vec<u8>,
    /// The reads' script (see `script::step`).
    pub reads: Vec<u8>,
    /// The writes' script.
    pub writes: Vec<u8>,
}

/// One call.
#[derive(Clone, Copy, Debug)]
pub struct CallSpec {
    /// Its request has a newline inside: the codec refuses it.
    pub bad: bool,
    /// Given up (dropped) after this many polls, if not done by then.
    pub give_up: Option<u8>,
}

#[derive(Debug)]
enum Outcome {
    Done(Result<String, ClientError>),
    GaveUp,
}

/// Runs `case` and checks every outcome; `Err` says what is wrong.
pub fn check(case: &Case) -> Result<(), String> {
    let (outcomes, written) = run(case).ok_or("the client did not finish")?;
    let written = String::from_utf8(written).map_err(|_| "wrote bytes that are not UTF-8")?;
    let sent: Vec<&str> = written.split_terminator('\n').collect();
    let (answers, end) = decode(&case.answers, case.max_line);
    for (i, outcome) in outcomes.iter().enumerate() {
        let request = request(i, case.calls[i]);
        let at = sent.iter().position(|s| *s == request);
        let Outcome::Done(result) = outcome else {
            continue;
        };
        match (result, at) {
            (Ok(answer), _) if case.calls[i].bad => {
                return Err(format!(
                    "call {i}'s request cannot be encoded, yet it got {answer:?}"
                ));
            }
            (Ok(answer), Some(k)) => {
                if answers.get(k) != Some(answer) {
                    return Err(format!(
                        "call {i} (request {k} written) got {answer:?}; answer {k} is {:?}",
                        answers.get(k)
                    ));
                }
            }
            (Ok(answer), None) => {
                return Err(format!("call {i} got {answer:?} but was never written"));
            }
            // Refused by the codec; or the connection ended before it was
            // taken (then as any call not written, below).
            (Err(e), _) if case.calls[i].bad && e.kind() == ClientErrorKind::Encode => {
                if e.request_sent() || at.is_some() {
                    return Err(format!("call {i}'s request cannot be encoded, yet: {e:?}"));
                }
            }
            (Err(e), Some(k)) => {
                if k < answers.len() {
                    return Err(format!("call {i} failed ({e:?}) but answer {k} came"));
                }
                if !e.request_sent() {
                    return Err(format!(
                        "call {i} was written, but its error says not: {e:?}"
                    ));
                }
                if e.kind() != end {
                    return Err(format!("call {i}: {e:?}, the answers end with {end:?}"));
                }
            }
            // Not written whole: `request_sent` may say either (`true`
            // is "may have been seen": it was handed to the connection).
            (Err(e), None) => {
                if e.kind() != end {
                    return Err(format!("call {i}: {e:?}, the answers end with {end:?}"));
                }
            }
        }
    }
    Ok(())
}

fn request(i: usize, spec: CallSpec) -> String {
    if spec.bad {
        format!("r{i}\nx")
    } else {
        format!("r{i}")
    }
}

/// The answers the bytes hold, and how they end: `Closed` at a clean end
/// of stream, `Decode` at a line the codec refuses (too long, not UTF-8,
/// cut short at the end).
fn decode(bytes: &[u8], max_line: usize) -> (Vec<String>, ClientErrorKind) {
    let mut codec = LinesCodec::with_max_length(max_line);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(line)) => out.push(line),
            Ok(None) => return (out, ClientErrorKind::Closed),
            Err(_) => return (out, ClientErrorKind::Decode),
        }
    }
}

/// The outcomes, and what the client wrote; `None` on a hang.
fn run(case: &Case) -> Option<(Vec<Outcome>, Vec<u8>)> {
    let wire = Rc::new(RefCell::new(Wire {
        answers: case.answers.clone(),
        given: 0,
        written: Vec::new(),
        closed: false,
        reader: None,
    }));
    let io = Gated {
        wire: wire.clone(),
        reads: case.reads.iter().copied().collect(),
        writes: script::Writer::new(&case.writes),
    };
    let case = case.clone();
    let outcomes = runtime().block_on(strata_rt::time::timeout(
        // Far longer than any case takes: a hang, not a slow run.
        Duration::from_secs(5),
        async move {
            let (client, task) = Client::<String, String>::new(
                io,
                LinesCodec::with_max_length(case.max_line),
                case.in_flight,
            );
            let calls = async move {
                let calls = case
                    .calls
                    .iter()
                    .enumerate()
                    .map(|(i, &spec)| call(&client, request(i, spec), spec.give_up));
                let outcomes = futures_util::future::join_all(calls).await;
                drop(client);
                outcomes
            };
            let (outcomes, _) = futures_util::future::join(calls, task).await;
            outcomes
        },
    ));
    let written = std::mem::take(&mut wire.borrow_mut().written);
    outcomes.ok().map(|o| (o, written))
}

/// One call, given up (dropped) at once after its `give_up`th poll if
/// that did not finish it: with 1, it is queued and given up before the
/// connection's task runs again.
async fn call(client: &Client<String, String>, request: String, give_up: Option<u8>) -> Outcome {
    if give_up == Some(0) {
        return Outcome::GaveUp;
    }
    let mut fut = std::pin::pin!(client.call(request));
    let mut polls = 0u8;
    poll_fn(|cx| {
        polls = polls.saturating_add(1);
        match fut.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(Outcome::Done(r)),
            Poll::Pending if give_up.is_some_and(|n| polls >= n) => Poll::Ready(Outcome::GaveUp),
            Poll::Pending => {
                if give_up.is_some() {
                    // Count polls, not wake-ups that may never come.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    })
    .await
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

/// The server's side of the wire.
struct Wire {
    answers: Vec<u8>,
    /// Bytes of `answers` already read.
    given: usize,
    written: Vec<u8>,
    /// The client closed its side: everything may be read.
    closed: bool,
    /// The reader, when it waits for a request to be written.
    reader: Option<Waker>,
}

impl Wire {
    /// Where the readable answers end: after line `j` once `j + 1`
    /// requests are written; all of them once more requests are written
    /// than there are whole lines, or once the client closed its side.
    fn readable_end(&self) -> usize {
        let requests = self.written.iter().filter(|&&b| b == b'\n').count();
        if self.closed {
            return self.answers.len();
        }
        if requests == 0 {
            return 0;
        }
        self.answers
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(requests - 1)
            .map_or(self.answers.len(), |(at, _)| at + 1)
    }
}

/// The client's transport: the scripts shape each call, the wire gates
/// what can be read.
struct Gated {
    wire: Rc<RefCell<Wire>>,
    reads: VecDeque<u8>,
    writes: script::Writer,
}

impl AsyncRead for Gated {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let most = match this.reads.pop_front().map(script::step) {
            Some(script::Step::Pending) => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Some(script::Step::Interrupted) => {
                buf.fill(b'\n');
                return Poll::Ready(Err(io::ErrorKind::Interrupted.into()));
            }
            Some(script::Step::Take(most)) => most,
            None => usize::MAX,
        };
        let mut wire = this.wire.borrow_mut();
        let end = wire.readable_end();
        if wire.given == wire.answers.len() && end == wire.answers.len() {
            // All was read: the server's end of stream.
            return Poll::Ready(Ok(0));
        }
        if wire.given >= end {
            wire.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = most.min(buf.len()).min(end - wire.given);
        buf[..n].copy_from_slice(&wire.answers[wire.given..wire.given + n]);
        wire.given += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = match Pin::new(&mut this.writes).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        let mut wire = this.wire.borrow_mut();
        wire.written.extend_from_slice(&buf[..n]);
        if let Some(w) = wire.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writes).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut wire = this.wire.borrow_mut();
        wire.closed = true;
        if let Some(w) = wire.reader.take() {
            w.wake();
        }
        drop(wire);
        Pin::new(&mut this.writes).poll_close(cx)
    }
}
