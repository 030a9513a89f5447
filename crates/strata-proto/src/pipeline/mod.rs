//! Pipelined protocols: many requests in flight on one connection,
//! responses written in request order.
//!
//! The server side is [`ServerProto`] and [`serve_connection`] (or
//! [`TcpServer`](crate::TcpServer)); the client side is [`ClientProto`]
//! and [`Client`] (or [`TcpClient`](crate::TcpClient)).
//!
//! # Pipelining
//!
//! A client may send request 2 before response 1 arrived. The server reads
//! requests as they come, runs up to `max_in_flight` of them concurrently,
//! and writes each response only after all earlier ones, because the
//! protocol has no request ids: order is the only way to match them. A slow
//! request therefore holds back the responses behind it (head-of-line
//! blocking); protocols that cannot afford this tag frames with ids and
//! multiplex instead. Line protocols, HTTP/1.1 and Redis are pipelined.
//!
//! With `max_in_flight = 1` pipelining degenerates into plain
//! request/response.
//!
//! # Backpressure
//!
//! Nothing here is unbounded: when `max_in_flight` requests are running the
//! connection takes no more requests, reading ahead only up to 4 KiB
//! without decoding (to notice a peer that resets; then the kernel's buffer
//! fills and TCP slows the client down), and when the write buffer passes
//! its high-water mark the connection stops taking finished responses
//! until the socket drains (to half the mark, if the socket takes part of
//! the buffer at a time). The requests in flight still run meanwhile, and
//! the ones that finish keep their responses until their turn: a peer that
//! stops reading holds at most `max_in_flight` responses, and no request
//! of its connection stops halfway holding a lock or a permit that other
//! connections wait for. (Requests behind one whose handler panicked are
//! never answered: the connection closes at the panic's turn. They run
//! while a request ahead of the panic is unfinished, and are dropped as
//! soon as none is.)
//!
//! # Flushing
//!
//! Responses are encoded into the write buffer as they finish; the buffer is
//! written when no further complete request can be read right now (or when
//! it passes the high-water mark). A client that sends 16 requests in one
//! packet gets 16 responses in one `write(2)`.

mod client;
mod error;
mod in_flight;
mod linger;
mod server;
mod stop;
mod written;

pub use client::{Client, ClientError, ClientErrorKind, ClientProto, ClientTask};
pub use error::ConnectionError;
pub use server::serve_connection;
pub(crate) use server::serve_tcp_connection;

use strata_codec::{Decoder, Encoder};
use strata_service::BoxError;

/// What to do after a request failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorAction<R> {
    /// Send this response in the failed request's place and carry on.
    Respond(R),
    /// Send this response, then close the connection (after the responses
    /// before it).
    RespondAndClose(R),
    /// Close the connection after the responses before the failed one.
    Close,
}

/// A pipelined protocol: its frames, its codec, and how it reports errors.
///
/// One value serves the whole server, shared by every worker, so it must be
/// `Send + Sync`; it is asked for a fresh codec per connection.
///
/// # Examples
///
/// A line protocol, as in the classic example:
///
/// ```
/// use strata_codec::{LinesCodec, LinesCodecError};
/// use strata_proto::pipeline::{ErrorAction, ServerProto};
/// use strata_service::BoxError;
///
/// struct LineProto;
///
/// impl ServerProto for LineProto {
///     type Request = String;
///     type Response = String;
///     type Codec = LinesCodec;
///
///     fn codec(&self) -> LinesCodec {
///         LinesCodec::new()
///     }
///
///     // A bad line gets one error line, then the connection closes.
///     fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
///         Some(format!("error: {err}"))
///     }
///
///     // A failed request gets an error line and the connection carries on.
///     fn service_error(&self, err: &BoxError) -> ErrorAction<String> {
///         ErrorAction::Respond(format!("error: {err}"))
///     }
/// }
/// ```
pub trait ServerProto: Send + Sync + 'static {
    /// A decoded request.
    type Request: 'static;
    /// A response to encode.
    type Response: 'static;
    /// The codec for one connection.
    type Codec: Decoder<Item = Self::Request, Error: std::error::Error + Send + Sync + 'static>
        + Encoder<Self::Response, Error: std::error::Error + Send + Sync + 'static>
        + 'static;

    /// A fresh codec for a new connection.
    fn codec(&self) -> Self::Codec;

    /// The final response to write when a request cannot be decoded
    /// (over-long, malformed); the connection closes after it. Default:
    /// close without one.
    ///
    /// Called for the decoder's own errors only, never for a transport
    /// that fails (a reset, say: nobody is left to answer). That holds
    /// whatever the codec's error type makes of an `io::Error`, so a
    /// variant that wraps one can still reach here: at the end of the
    /// stream, a request cut short is what `decode_eof` reports, and the
    /// default `decode_eof` reports an `io::Error` of kind
    /// `UnexpectedEof`, converted with the error type's
    /// `From<io::Error>`. Answer that one too if the protocol has words
    /// for it.
    fn decode_error(&self, err: &DecodeError<Self>) -> Option<Self::Response> {
        let _ = err;
        None
    }

    /// The final response to write when a request has not arrived whole
    /// within the read timeout (HTTP's `408 Request Timeout`); the
    /// connection closes after it, ending with
    /// [`ConnectionError::ReadTimeout`] as without one. Default: close
    /// without one. (The idle and write timeouts close silently: nothing
    /// was asked, or the peer takes nothing.)
    fn read_timeout_response(&self) -> Option<Self::Response> {
        None
    }

    /// What to do when the service fails a request. Default: close the
    /// connection after the responses that precede the failed request.
    ///
    /// A connection closed for it ends with
    /// [`ConnectionError::Service`]
    /// holding `err` itself (its type and its own causes kept).
    fn service_error(&self, err: &BoxError) -> ErrorAction<Self::Response> {
        let _ = err;
        ErrorAction::Close
    }

    /// Whether the connection closes once `response` is written: a
    /// protocol's "quit", HTTP's `Connection: close`. If so, the responses
    /// before it and this one are sent, the requests after it are dropped
    /// (those read and running) or never read, and the connection ends
    /// normally (`Ok`), lingering as after a bad request so that a peer
    /// still sending does not reset the answers away. Default: never.
    fn closes_after(&self, response: &Self::Response) -> bool {
        let _ = response;
        false
    }

    /// Whether `request` is the connection's last, judged as it is
    /// decoded: HTTP's `Connection: close`, a `QUIT`. If so, no request
    /// after it is read or run (HTTP: the server "MUST NOT process any
    /// further requests"), the requests before it and this one are
    /// answered, and the connection ends normally (`Ok`), lingering as
    /// after [`closes_after`](Self::closes_after). `closes_after`, which
    /// sees only the response, is decided when the response is ready, by
    /// which time requests pipelined behind this one may have started to
    /// run. Default: never.
    fn last_request(&self, request: &Self::Request) -> bool {
        let _ = request;
        false
    }

    /// Called on the connection's last response: the one after which it
    /// closes because no request is left to answer and none will be read
    /// (a graceful stop, the peer's end of stream, a
    /// [`last_request`](Self::last_request), a failed request that closes
    /// it, a response [`closes_after`](Self::closes_after) judges final).
    /// The protocol may mark it, so that the peer learns of the close from
    /// the answer rather than from the close alone: HTTP's `Connection:
    /// close`. Not called for the protocol's own final answers
    /// ([`decode_error`](Self::decode_error),
    /// [`read_timeout_response`](Self::read_timeout_response)), which are
    /// last by definition, nor when the last response went out before the
    /// connection learned that it would close (a stop that comes while
    /// nothing is in flight closes with no answer to mark; so does a
    /// handler's panic; and over a transport that cannot count its unread
    /// bytes, as [`serve_connection`]'s cannot, a stop's reading is known
    /// to be over only after a fresh look at I/O, so an answer finishing
    /// in the same poll as the stop goes out unmarked). `closes_after` is
    /// asked before this, of the unmarked response. Default: nothing.
    fn last_response(&self, response: &mut Self::Response) {
        let _ = response;
    }
}

/// The decode error of a protocol's codec.
pub type DecodeError<P> = <<P as ServerProto>::Codec as Decoder>::Error;

/// The encode error of a protocol's codec.
pub type EncodeError<P> =
    <<P as ServerProto>::Codec as Encoder<<P as ServerProto>::Response>>::Error;
