//! The pipelined server dispatcher: one connection, start to finish.
//!
//! # States of the read side
//!
//! ```text
//!            request decoded                     peer half-closed (EOF)
//!   ┌──────┐ ─────────────► dispatch ┌──────┐  ─────────────────────────► Eof
//!   │ Open │                         │ Full │  in flight = max: stop reading
//!   └──────┘ ◄───────────── response └──────┘  until a response is taken
//!      │  decode error ─────────────────────────────────────────────────► Failed
//!      │  stop signal (after the requests received so far) ───────────────► Stopped
//!      └  service error with Close / RespondAndClose ───────────────────► Closing
//! ```
//!
//! Every state other than `Open` stops reading requests for good; the
//! connection then finishes the requests in flight, writes their responses
//! (and the final error response, if any), flushes, shuts down its write
//! side and ends. While requests still run it keeps reading, and dropping,
//! what the peer sends (up to a bound; not after an end of stream) to see a
//! reset, which ends the connection at once.

use std::future::{Future, poll_fn};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use strata_codec::{Decoder as _, Framed};
use strata_service::{BoxError, Service};

use super::error::{ConnectionError, PeerGone, find_io, reset};
use super::in_flight::{InFlight, Outcome, Panicked};
use super::linger::{LINGER_BYTES, LINGER_PATIENCE, LINGER_TIME, MAX_INTERRUPTED, linger};
use super::stop::StopRead;
use super::written::Counted;
use super::{DecodeError, ErrorAction, ServerProto};
use crate::config::ConnectionConfig;
use crate::deadline::{ConnTimer, Output, TimerEvent, TimerState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Open,
    Eof,
    Failed,
    Stopped,
    Closing,
}

/// Serves one connection with a pipelined protocol until the peer closes,
/// an error ends it, or `stop` completes (graceful shutdown: requests
/// already received are answered, then the connection closes).
///
/// `TcpServer` calls this for each accepted socket; call it directly to
/// serve a protocol over any other `AsyncRead + AsyncWrite` transport.
///
/// # Errors
///
/// [`ConnectionError`] says why the connection ended abnormally. A peer that
/// goes away (a reset, a broken pipe, out of reach) is nobody's failure:
/// the connection ends with `Ok(())` when a write finds it gone, and with
/// an error for which [`ConnectionError::is_disconnect`] is `true` when a
/// read does. A read that `io` itself fails otherwise ends reading with
/// [`ConnectionError::Io`] and no error response (the requests in flight
/// are still answered); only the decoder's own errors are
/// [`ConnectionError::Decode`], answered with the protocol's
/// [`decode_error`](ServerProto::decode_error). Both are told by what `io`
/// reported, whatever the codec's error type makes of it.
///
/// The write timeout counts the bytes `io` accepts. Over a strata
/// [`TcpStream`](strata_rt::net::TcpStream), `TcpServer` also asks the
/// kernel whether the peer is taking bytes (see
/// [`ConnectionConfig::write_timeout`]); here no such question is asked.
///
/// Likewise, after `stop`, `TcpServer` asks the kernel how much had
/// arrived and reads at least that much more; here, with no one to ask, a
/// connection reads on while `io` has data, but at most 16 MiB more (a
/// bound against a peer that never stops sending), before it stops
/// reading requests. (While requests still run, it goes on reading and
/// dropping what the peer sends after that, up to 256 KiB, to notice a
/// reset: see [`ConnectionConfig::max_in_flight`].) Without the kernel's count, "everything that had
/// arrived" is judged by a read that finds nothing after the worker's
/// next look at I/O. That look may not cover this transport: under
/// `Runtime::block_on` there is none, and a look that returns as many
/// events as the runtime's `event_capacity` may leave this one for the
/// next. A request that arrived just before the stop can then go
/// unanswered. `TcpServer` has the count and is not affected.
///
/// # Cancel safety
///
/// The future is the connection: dropping it ends the connection at once.
/// The calls in flight are dropped (cancelled), responses not yet written
/// are lost, and `io` is dropped without a `poll_close`. To end it
/// gracefully, complete `stop` and let the future finish.
pub fn serve_connection<P, S, T, F>(
    io: T,
    proto: &P,
    service: S,
    config: &ConnectionConfig,
    stop: F,
) -> impl Future<Output = Result<(), ConnectionError>>
where
    P: ServerProto,
    S: Service<P::Request, Response = P::Response>,
    S::Error: Into<BoxError>,
    T: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
{
    serve(io, Queues::UNKNOWN, proto, service, config, stop, || {
        Some(())
    })
}

/// [`serve_connection`] for a strata TCP stream: the write timeout also
/// sees the peer draining the kernel's send queue. `closed` is called when
/// the connection has written its last byte and shut down its write side
/// (not when the peer closed first); it returns a guard to hold while the
/// socket drains what the peer still sends, or `None` to skip that.
pub(crate) fn serve_tcp_connection<P, S, F, G>(
    io: strata_rt::net::TcpStream,
    proto: &P,
    service: S,
    config: &ConnectionConfig,
    stop: F,
    closed: impl FnOnce() -> Option<G>,
) -> impl Future<Output = Result<(), ConnectionError>>
where
    P: ServerProto,
    S: Service<P::Request, Response = P::Response>,
    S::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    let queues = Queues {
        unsent: |s: &strata_rt::net::TcpStream| s.unsent_bytes().ok().map(|n| n as u64),
        unread: |s: &strata_rt::net::TcpStream| s.unread_bytes().ok().map(|n| n as u64),
    };
    serve(io, queues, proto, service, config, stop, closed)
}

/// What a transport can tell of its kernel queues, in bytes: what it has
/// sent that the peer has not taken (for the write timeout) and what the
/// peer sent that was not read yet (for what a graceful stop must still
/// read); `None` where it cannot tell.
struct Queues<T> {
    unsent: fn(&T) -> Option<u64>,
    unread: fn(&T) -> Option<u64>,
}

impl<T> Queues<T> {
    /// A transport that can tell neither.
    const UNKNOWN: Queues<T> = Queues {
        unsent: |_| None,
        unread: |_| None,
    };
}

/// After a graceful stop, how much a connection whose transport cannot
/// tell what it holds (`Queues::unread` gives `None`) reads on through `Pending`s
/// that only say its I/O budget is spent: more than a kernel's receive
/// queue holds by default, but a bound against a peer that never stops
/// sending.
const STOP_READ_LIMIT: u64 = 16 << 20;

/// The connection loop; `queues` reads the transport's kernel queues, if
/// it can; `closed` as in [`serve_tcp_connection`].
async fn serve<P, S, T, F, G>(
    io: T,
    queues: Queues<T>,
    proto: &P,
    service: S,
    config: &ConnectionConfig,
    stop: F,
    closed: impl FnOnce() -> Option<G>,
) -> Result<(), ConnectionError>
where
    P: ServerProto,
    S: Service<P::Request, Response = P::Response>,
    S::Error: Into<BoxError>,
    T: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
{
    // Counting the bytes written lets the write timeout tell a slow
    // reader from a peer that stopped reading.
    let mut framed = Framed::new(Counted::new(io), proto.codec());
    framed.set_high_water_mark(config.write_high_water_mark);
    // Buffers are freed by the idle timer below, not after every batch.
    framed.set_release_idle_buffers(false);
    let mut stop = std::pin::pin!(stop);
    // After the stop: what is owed, and when reading is done.
    let mut stopped: Option<StopRead> = None;
    // Polls of this connection so far.
    let mut polls: u64 = 0;
    let max_in_flight = config.max_in_flight.max(1);
    let high_water_mark = framed.high_water_mark();
    let service = &service;
    let mut in_flight = InFlight::new();
    let mut read = Read::Open;
    let mut final_response: Option<P::Response> = None;
    let mut outcome: Result<(), ConnectionError> = Ok(());
    let mut timer = ConnTimer::new(config);
    let mut watch = Watch::default();

    // A panic in the protocol's own code (its codec, its hooks, a
    // response's drop; a handler's is caught with its request) ends the
    // connection as a handler's does: the next poll closes it after the
    // responses already encoded, which would otherwise be lost with it.
    let mut body = |cx: &mut Context<'_>, panicked: Option<String>| {
        if let Some(msg) = panicked {
            close_after(
                &mut read,
                &mut in_flight,
                &mut outcome,
                Some(ConnectionError::Panicked(msg)),
            );
        }
        polls += 1;
        // Requests taken in this poll: at `MAX_REQUESTS_PER_POLL` the task
        // yields (woken at once), so that a peer whose requests are always
        // buffered cannot hold the worker (the runtime's I/O budget counts
        // reads of up to 64 KiB, i.e. thousands of small requests each).
        let mut taken = 0usize;
        let mut yielded = false;
        // Graceful stop: answer every complete request received so far, in
        // our buffer or the kernel's, then read no more. Checked once per
        // wake-up; its waker stays registered.
        if read == Read::Open && stopped.is_none() && stop.as_mut().poll(cx).is_ready() {
            let io = framed.get_ref();
            let unread = (queues.unread)(io.get_ref());
            stopped = Some(StopRead::new(io.read(), unread, STOP_READ_LIMIT));
        }
        loop {
            let mut progress = false;

            // After a stop, with every byte owed read and none buffered, no
            // request will come: stop reading now, so that the answers
            // finishing in this poll know which is the last.
            if read == Read::Open
                && framed.read_buffer().is_empty()
                && stopped
                    .as_ref()
                    .is_some_and(|s| framed.get_ref().read() >= s.owed())
            {
                read = Read::Stopped;
            }

            // 1. Move finished responses, in order, into the write buffer.
            while !in_flight.is_empty() {
                match Pin::new(&mut framed).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(write_failed(e, framed.get_ref().gone()));
                    }
                    // Over the high-water mark and the socket is full: no
                    // output can be taken, but the requests still run
                    // (one may hold what other connections wait for).
                    Poll::Pending => {
                        in_flight.poll_unfinished(cx);
                        break;
                    }
                }
                let out: Outcome<Result<P::Response, S::Error>> = match in_flight.poll_next(cx) {
                    Poll::Ready(Some(out)) => out,
                    Poll::Ready(None) | Poll::Pending => break,
                };
                progress = true;
                let final_pending = final_response.is_some();
                deliver(
                    proto,
                    &mut framed,
                    out,
                    &mut read,
                    &mut in_flight,
                    &mut outcome,
                    final_pending,
                );
            }

            // 2. Read and dispatch requests while there is room, and while
            //    the write buffer is under its high-water mark (at or over
            //    it, `poll_ready` writes first; `Pending` means the socket
            //    is full and reading more would only pile up responses).
            if read == Read::Open
                && in_flight.len() < max_in_flight
                && match Pin::new(&mut framed).poll_ready(cx) {
                    Poll::Ready(Ok(())) => true,
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(write_failed(e, framed.get_ref().gone()));
                    }
                    // Over the mark and the socket is full: no reading now
                    // (the write timeout below still runs).
                    Poll::Pending => false,
                }
            {
                // Enough requests for one poll: yield (woken at once), as a
                // spent I/O budget would. After a stop too: the backlog
                // owed then can be the kernel's whole receive queue.
                let capped = taken >= MAX_REQUESTS_PER_POLL;
                let next = if capped {
                    if !yielded {
                        yielded = true;
                        cx.waker().wake_by_ref();
                    }
                    Poll::Pending
                } else if stopped
                    .as_ref()
                    .is_some_and(|s| framed.get_ref().read() >= s.owed())
                {
                    // Everything owed since the stop is read: answer what
                    // is buffered, read no more. (Only a `Pending` read
                    // would stop reading otherwise, and a transport that
                    // is always ready never gives one.)
                    match next_buffered(&mut framed) {
                        Ok(None) => {
                            read = Read::Stopped;
                            progress = true;
                            Poll::Ready(None)
                        }
                        item => Poll::Ready(item.transpose()),
                    }
                } else {
                    Pin::new(&mut framed).poll_next(cx)
                };
                if read == Read::Stopped || capped {
                    // Just stopped, above; or a yield at the cap, which
                    // says nothing of the transport: read on in the next
                    // poll.
                } else if let Some(s) = stopped.as_mut() {
                    // A `Pending` comes before the bytes owed (at them, the
                    // branch above reads no more).
                    if next.is_pending() {
                        if s.drained(polls, cx) {
                            read = Read::Stopped;
                            progress = true;
                        }
                    } else {
                        s.read_more(polls);
                    }
                }
                match next {
                    Poll::Ready(Some(first)) => {
                        progress = true;
                        let mut item = first;
                        loop {
                            let req = match item {
                                Ok(req) => req,
                                Err(e) => {
                                    let failed =
                                        read_failed(proto, e, &mut in_flight, framed.get_ref());
                                    match failed {
                                        ReadFailed::TornDown(end) => return Poll::Ready(Err(end)),
                                        ReadFailed::Bad(answer, why) => {
                                            (read, final_response) = (Read::Failed, answer);
                                            outcome = Err(why);
                                        }
                                    }
                                    break;
                                }
                            };
                            if proto.last_request(&req) && read == Read::Open {
                                // Read no more; close once it is answered.
                                read = Read::Closing;
                            }
                            // A response ready at once, with none queued
                            // ahead of it, goes straight to the write buffer.
                            if let Some(out) = in_flight.push(|| service.call(req), cx) {
                                deliver(
                                    proto,
                                    &mut framed,
                                    out,
                                    &mut read,
                                    &mut in_flight,
                                    &mut outcome,
                                    false,
                                );
                            }
                            timer.activity();
                            taken += 1;
                            // Burst: the requests already buffered are taken
                            // right here, while there is room for them and
                            // their responses, without another round of
                            // `poll_ready` and the read state machine.
                            if read != Read::Open
                                || taken >= MAX_REQUESTS_PER_POLL
                                || in_flight.len() >= max_in_flight
                                || framed.write_buffer().len() >= high_water_mark
                            {
                                break;
                            }
                            item = match framed.try_decode_buffered() {
                                Ok(Some(req)) => Ok(req),
                                Ok(None) => break,
                                Err(e) => Err(e),
                            };
                        }
                    }
                    Poll::Ready(None) if read == Read::Stopped => {}
                    Poll::Ready(None) => {
                        read = Read::Eof;
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            } else if read == Read::Open && in_flight.len() >= max_in_flight {
                // 3. Full: no more requests for now, but a peer that resets
                //    while its requests run (and never read the answers)
                //    must still free its connection. Keep reading, up to a
                //    small bound, to see it; the bytes wait in the buffer.
                //    After a stop, see `poll_read_ahead_stopped`.
                let ahead = match stopped.as_mut() {
                    None => framed.poll_read_ahead(cx, READ_AHEAD_LIMIT),
                    Some(s) => poll_read_ahead_stopped(&mut framed, s, &mut watch, polls, cx),
                };
                if let Poll::Ready(Err(e)) = ahead {
                    // As a read error from `poll_next` above.
                    match read_failed(proto, e.into(), &mut in_flight, framed.get_ref()) {
                        ReadFailed::TornDown(end) => return Poll::Ready(Err(end)),
                        ReadFailed::Bad(answer, why) => {
                            (read, final_response) = (Read::Failed, answer);
                            outcome = Err(why);
                        }
                    }
                    progress = true;
                }
            }
            if progress {
                continue;
            }

            // 4. Nothing more can happen right now: finish, or flush and wait.
            if read != Read::Open && in_flight.is_empty() {
                // The decode error's line, unless a service error closed the
                // connection since: its request's answer cannot be another
                // request's error.
                if read != Read::Failed {
                    final_response = None;
                }
                let mut closing = true;
                if let Some(resp) = final_response.take() {
                    match Pin::new(&mut framed).poll_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            if let Err(e) = Pin::new(&mut framed).start_send(resp) {
                                // Close with what is buffered, as below.
                                outcome = Err(ConnectionError::Encode(Box::new(e)));
                            }
                        }
                        Poll::Ready(Err(e)) => {
                            return Poll::Ready(write_failed(e, framed.get_ref().gone()));
                        }
                        Poll::Pending => {
                            final_response = Some(resp);
                            closing = false;
                        }
                    }
                }
                if closing && let Poll::Ready(closed) = Pin::new(&mut framed).poll_close(cx) {
                    return Poll::Ready(match closed {
                        Ok(()) => std::mem::replace(&mut outcome, Ok(())),
                        Err(e) => match write_failed(e, framed.get_ref().gone()) {
                            Ok(()) => std::mem::replace(&mut outcome, Ok(())),
                            err => err,
                        },
                    });
                }
            } else {
                match Pin::new(&mut framed).poll_flush(cx) {
                    Poll::Ready(Ok(())) | Poll::Pending => {}
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(write_failed(e, framed.get_ref().gone()));
                    }
                }
            }
            let output = Output {
                waiting: !framed.write_buffer().is_empty(),
                written: framed.get_ref().written(),
            };
            if read != Read::Open {
                // No more requests will be read (bad input, a stop), but
                // some still run: a peer that resets meanwhile must free
                // its connection at once, as in step 3, rather than when a
                // response is written (for a request that never finishes,
                // never). Not after an end of stream: nothing to read.
                if read != Read::Eof
                    && !in_flight.is_empty()
                    && let Poll::Ready(Err(e)) = watch.poll(framed.get_mut(), cx)
                {
                    in_flight.clear();
                    return Poll::Ready(Err(ConnectionError::Io(Box::new(e))));
                }
                // Waiting for requests in flight, or for the peer to take
                // the last responses: only the write timeout applies.
                return match timer.poll_expired(cx, TimerState::Busy, output, || {
                    (queues.unsent)(framed.get_ref().get_ref())
                }) {
                    Poll::Ready(TimerEvent::Expired(err)) => Poll::Ready(Err(err)),
                    Poll::Ready(TimerEvent::ReleaseBuffers) | Poll::Pending => Poll::Pending,
                };
            }

            // 5. Timeouts: idle (nothing in flight, nothing buffered), read
            //    (part of a request buffered, nothing in flight) and write
            //    (responses waiting, none of their bytes taken); and freeing
            //    the buffers of a connection that went idle.
            //    A connection that yielded at the per-poll cap has whole
            //    requests buffered, to be taken at its next poll (it is
            //    woken at once): busy, not partway through a request.
            //    Partway through a request is the codec's call: bytes
            //    buffered, or part of a frame it holds itself.
            let quiet = !yielded && in_flight.is_empty() && framed.write_buffer().is_empty();
            let state = match (quiet, framed.codec().in_frame(framed.read_buffer())) {
                (true, false) => TimerState::Idle,
                (true, true) => TimerState::Partial,
                (false, _) => TimerState::Busy,
            };
            match timer.poll_expired(cx, state, output, || {
                (queues.unsent)(framed.get_ref().get_ref())
            }) {
                Poll::Ready(TimerEvent::ReleaseBuffers) => {
                    in_flight.release_idle();
                    if framed.read_buffer().is_empty() {
                        *framed.read_buffer_mut() = BytesMut::new();
                    }
                    if framed.write_buffer().is_empty() {
                        *framed.write_buffer_mut() = BytesMut::new();
                    }
                }
                Poll::Ready(TimerEvent::Expired(err)) => {
                    match timed_out(proto, err) {
                        // The protocol's answer (HTTP's 408) goes out as a
                        // bad request's would, then the connection closes.
                        Ok((answer, why)) => {
                            (read, final_response, outcome) =
                                (Read::Failed, Some(answer), Err(why));
                        }
                        Err(err) => return Poll::Ready(Err(err)),
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    };
    let mut panics = Panics::None;
    let result = poll_fn(|cx| {
        let to_close = panics.take_to_close();
        match catch_unwind(AssertUnwindSafe(|| body(cx, to_close))) {
            Ok(poll) => poll,
            Err(payload) => panics.caught(payload, cx),
        }
    })
    .await;
    // We closed on a peer that may still be sending: drain what it sends
    // until it has taken our last responses, and a moment more, so that
    // the kernel does not answer its data with a reset, which destroys
    // what is still in our send queue. After a graceful stop the socket was
    // drained just before, so a short moment suffices and idle connections
    // do not hold up shutdown.
    let time = match read {
        Read::Failed | Read::Closing => LINGER_TIME,
        Read::Stopped => LINGER_TIME / 10,
        Read::Open | Read::Eof => return result,
    };
    // Not after the write timeout (the peer took nothing for that long
    // already, and the responses left are dropped anyway), nor after the
    // transport failed (no peer left to drain).
    if let Err(ConnectionError::WriteTimeout { .. } | ConnectionError::Io(_)) = result {
        return result;
    }
    if let Some(_lingering) = closed() {
        // A peer that keeps sending but takes nothing is let go after the
        // write timeout (without one, after LINGER_PATIENCE).
        let patience = config.write_timeout.unwrap_or(LINGER_PATIENCE);
        // Boxed: only a connection the server closes lingers, and inline
        // its state would enlarge every connection's future (by 88 bytes).
        Box::pin(linger(framed.get_mut(), queues.unsent, patience, time)).await;
    }
    result
}

/// The panics caught out of the connection's polls (see `serve`).
enum Panics {
    None,
    /// One was caught: the next poll closes the connection after the
    /// responses already encoded; the panic's text.
    ToClose(String),
    /// The connection is closing after one.
    Closing,
}

impl Panics {
    /// The text of a panic the coming poll is to close the connection
    /// for, once.
    #[inline]
    fn take_to_close(&mut self) -> Option<String> {
        let Panics::ToClose(msg) = self else {
            return None;
        };
        let msg = std::mem::take(msg);
        *self = Panics::Closing;
        Some(msg)
    }

    /// A panic out of a poll, logged: the first has the next poll close
    /// the connection (woken at once); one in the closing itself (a
    /// transport whose writes panic) ends it at once.
    #[cold]
    #[inline(never)]
    fn caught(
        &mut self,
        payload: Box<dyn std::any::Any + Send>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ConnectionError>> {
        let msg = crate::server::panic_message(&*payload);
        crate::server::drop_payload(payload);
        if matches!(self, Panics::None) {
            tracing::error!(panic = %msg, "the protocol's code panicked; the connection closes after the responses already encoded");
            *self = Panics::ToClose(msg);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        tracing::error!(panic = %msg, "panicked again while closing after a panic; the connection ends at once");
        Poll::Ready(Err(ConnectionError::Panicked(msg)))
    }
}

/// Requests one poll of a connection takes before it yields to the
/// worker's other tasks.
const MAX_REQUESTS_PER_POLL: usize = 4096;

/// Bytes a connection at its in-flight bound reads ahead (not decoding
/// them), to notice a peer that resets meanwhile. One read window: a peer
/// that has more than this buffered is noticed when reading resumes.
const READ_AHEAD_LIMIT: usize = 4096;

/// Encodes one finished request's outcome: its response, or what the
/// protocol makes of its error (which may end the connection).
///
/// A response the codec refuses ends the connection like a closing service
/// error: the requests after it are dropped, the responses before it are
/// still sent, and the connection ends with `ConnectionError::Encode`. A
/// request whose handler panicked ends it the same way, with
/// `ConnectionError::Panicked`.
// Inlined into its two callers (the panic case made it just big enough to
// be kept out of line, which cost a call and a move of every outcome).
#[inline(always)]
fn deliver<P, E, T, F>(
    proto: &P,
    framed: &mut Framed<T, P::Codec>,
    out: Outcome<Result<P::Response, E>>,
    read: &mut Read,
    in_flight: &mut InFlight<F>,
    outcome: &mut Result<(), ConnectionError>,
    final_pending: bool,
) where
    P: ServerProto,
    E: Into<BoxError>,
    T: AsyncWrite + Unpin,
    F: Future,
{
    let out = match out {
        Ok(out) => out,
        Err(Panicked(msg)) => {
            return close_after(
                read,
                in_flight,
                outcome,
                Some(ConnectionError::Panicked(msg)),
            );
        }
    };
    let mut response = match out {
        Ok(resp) => resp,
        Err(err) => {
            let err: BoxError = err.into();
            match proto.service_error(&err) {
                ErrorAction::Respond(r) => r,
                ErrorAction::RespondAndClose(r) => {
                    close_after(
                        read,
                        in_flight,
                        outcome,
                        Some(ConnectionError::Service(err)),
                    );
                    r
                }
                ErrorAction::Close => {
                    close_after(
                        read,
                        in_flight,
                        outcome,
                        Some(ConnectionError::Service(err)),
                    );
                    return;
                }
            }
        }
    };
    // The connection's last response: one the protocol closes with; or,
    // with no request left to answer and none to be read (a graceful stop,
    // the peer's end of stream, a last request, a failure that closes),
    // one that no final answer of the protocol's own follows (a decode
    // error's is dropped once a failure closed the connection).
    let last = proto.closes_after(&response);
    if last
        || (*read != Read::Open
            && in_flight.is_empty()
            && !(final_pending && *read == Read::Failed))
    {
        proto.last_response(&mut response);
    }
    if let Err(e) = Pin::new(framed).start_send(response) {
        close_after(
            read,
            in_flight,
            outcome,
            Some(ConnectionError::Encode(Box::new(e))),
        );
    } else if last {
        close_after(read, in_flight, outcome, None);
    }
}

/// Step 3's read-ahead after a stop: up to the bytes owed; past them, what
/// arrives was sent after it: read (up to a bound) only to see a reset,
/// and drop it.
#[cold]
#[inline(never)]
fn poll_read_ahead_stopped<T, C>(
    framed: &mut Framed<Counted<T>, C>,
    stopped: &mut StopRead,
    watch: &mut Watch,
    polls: u64,
    cx: &mut std::task::Context<'_>,
) -> Poll<io::Result<()>>
where
    T: AsyncRead + Unpin,
{
    let read = framed.get_ref().read();
    if read < stopped.owed() {
        let owed = usize::try_from(stopped.owed() - read).unwrap_or(usize::MAX);
        let limit = framed.read_buffer().len().saturating_add(owed);
        match framed.poll_read_ahead(cx, READ_AHEAD_LIMIT.min(limit)) {
            // Everything owed is read: go on to see a reset (stopping here
            // would leave no waker with the transport).
            Poll::Ready(Ok(())) if framed.get_ref().read() >= stopped.owed() => {}
            Poll::Pending => {
                // As in step 2; once drained, what comes was sent after
                // the stop, however much was owed.
                if stopped.drained(polls, cx) {
                    stopped.settle(framed.get_ref().read());
                }
                return Poll::Pending;
            }
            other => return other,
        }
    }
    // Past the bytes owed, the watch of any connection that reads no more
    // requests (one count of what it dropped, whichever path reads); once
    // done, wait for the requests still running.
    watch.poll(framed.get_mut(), cx)
}

/// Reads and drops what `io` has, up to `READ_AHEAD_LIMIT` bytes a call
/// (then it yields, woken at once). After a stop, at the in-flight bound,
/// past the bytes owed: only a reset matters (it is the one error
/// returned), and the bytes never reach the frame buffer, where a cut
/// request could pass for a whole one at the end of the stream. An end of
/// stream or another error is `Ok` and changes nothing: what comes after
/// the bytes owed is not a request, so it cannot be a bad one.
#[cold]
#[inline(never)]
fn poll_discard<T: AsyncRead + Unpin>(
    io: &mut T,
    cx: &mut std::task::Context<'_>,
) -> Poll<io::Result<()>> {
    let mut scratch = [0u8; 1024];
    let (mut taken, mut interrupted) = (0, 0);
    while taken < READ_AHEAD_LIMIT && interrupted < MAX_INTERRUPTED {
        let room = scratch.len().min(READ_AHEAD_LIMIT - taken);
        match Pin::new(&mut *io).poll_read(cx, &mut scratch[..room]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
            Poll::Ready(Ok(n)) => (taken, interrupted) = (taken + n, 0),
            // Again, but not without end (then it yields, as below).
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => interrupted += 1,
            Poll::Ready(Err(e)) if reset(&e) => return Poll::Ready(Err(e)),
            Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
        }
    }
    // No `Pending`, so no waker is registered with `io`: look again soon.
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// The watch for a reset on a connection that reads no more
/// requests while some still run: what arrives is dropped (it is not a
/// request: input after bad input, or sent after a stop), up to
/// [`WATCH_LIMIT`] bytes; after those, or an end of stream, a reset is
/// noticed when a response is written.
#[derive(Default)]
struct Watch {
    /// Bytes dropped so far; `u64::MAX` once done (the limit was reached
    /// or the peer closed). One word: it is part of every connection.
    dropped: u64,
}

/// Bytes a connection drops while it watches for a reset.
const WATCH_LIMIT: u64 = LINGER_BYTES as u64;

impl Watch {
    /// `Ready(Err)` for a reset (the only error returned); `Pending` with
    /// the transport's waker registered (or the task's woken, after a
    /// read window's worth), or `Ready(Ok)` once done.
    #[cold]
    #[inline(never)]
    fn poll<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut Counted<T>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.dropped == u64::MAX {
            return Poll::Ready(Ok(()));
        }
        let before = io.read();
        let polled = poll_discard(io, cx);
        self.dropped += io.read() - before;
        if polled.is_ready() || self.dropped >= WATCH_LIMIT {
            self.dropped = u64::MAX;
        }
        if matches!(polled, Poll::Ready(Ok(()))) {
            // An end of stream or an error that is no reset: nothing for
            // the requests still buffered (a decoder's error among them
            // is bad input, not this).
            io.forget_read_error();
        }
        polled
    }
}

/// After a stop, once everything owed is read: the next request already
/// buffered, if any. Out of line (and rare): a second inlined call of the
/// decoder in the request loop made the compiler keep both out of line,
/// about 30 instructions more per request at depth 16 (callgrind).
#[cold]
#[inline(never)]
fn next_buffered<T, C: strata_codec::Decoder>(
    framed: &mut Framed<T, C>,
) -> Result<Option<C::Item>, C::Error> {
    framed.try_decode_buffered()
}

/// After a request that ends the connection (a closing service error, a
/// response the codec refused, a panic; or a response the protocol marks
/// as the last, `why` then `None`): stop reading, drop the requests after
/// it, remember why. With no `why`, only bad input recorded before is
/// forgotten (it came after this request, and is dropped with it); a
/// transport's failure stays the connection's outcome. (Out of line: it
/// keeps `deliver` small.)
#[cold]
#[inline(never)]
fn close_after<F: Future>(
    read: &mut Read,
    in_flight: &mut InFlight<F>,
    outcome: &mut Result<(), ConnectionError>,
    why: Option<ConnectionError>,
) {
    *read = Read::Closing;
    in_flight.clear();
    match why {
        Some(why) => *outcome = Err(why),
        None => {
            if let Err(ConnectionError::Decode(_)) = outcome {
                *outcome = Ok(());
            }
        }
    }
}

/// A timeout that ends the connection: for the read timeout, the
/// protocol's final answer to it and the error, if it has one; otherwise
/// the error, to end with at once. (Out of line: rare.)
#[cold]
#[inline(never)]
fn timed_out<P: ServerProto>(
    proto: &P,
    err: ConnectionError,
) -> Result<(P::Response, ConnectionError), ConnectionError> {
    match err {
        ConnectionError::ReadTimeout { .. } => match proto.read_timeout_response() {
            Some(answer) => Ok((answer, err)),
            None => Err(err),
        },
        err => Err(err),
    }
}

/// What a read or decode error does to the connection.
enum ReadFailed<R> {
    /// The connection was torn down (a reset): it ends at once.
    TornDown(ConnectionError),
    /// Bad input: reading stops; the protocol's answer to it, if any, goes
    /// after the requests in flight, and this is why the connection ends.
    Bad(Option<R>, ConnectionError),
}

/// Sorts a read or decode error, by what the transport itself reported
/// (`io`) as much as by the error. A connection torn down mid-read (a
/// reset) comes through the codec too: no error line for it, and it ends
/// as the disconnect it is, not as bad input. Nobody is left to answer, so
/// the requests in flight are dropped at once: one that never finishes
/// must not hold the connection (and its slot) open. A read the transport
/// failed otherwise is no bad input either: reading stops, with no error
/// line, and the requests in flight are still answered. (Out of line:
/// rare.)
#[cold]
#[inline(never)]
fn read_failed<P: ServerProto, F: Future, T>(
    proto: &P,
    e: DecodeError<P>,
    in_flight: &mut InFlight<F>,
    io: &Counted<T>,
) -> ReadFailed<P::Response> {
    let seen = find_io(&e).is_some_and(reset);
    if seen || io.gone() {
        in_flight.clear();
        let e: BoxError = if seen {
            Box::new(e)
        } else {
            Box::new(PeerGone(Box::new(e)))
        };
        return ReadFailed::TornDown(ConnectionError::Io(e));
    }
    if io.read_failed() {
        return ReadFailed::Bad(None, ConnectionError::Io(Box::new(e)));
    }
    ReadFailed::Bad(proto.decode_error(&e), ConnectionError::Decode(Box::new(e)))
}

/// A write (flush/close) failed: a vanished peer (as the error says, or
/// as the transport reported it: `gone`) ends the connection normally,
/// anything else is an error.
fn write_failed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
    gone: bool,
) -> Result<(), ConnectionError> {
    let err = ConnectionError::Io(Box::new(e));
    if gone || err.is_disconnect() {
        Ok(())
    } else {
        Err(err)
    }
}
