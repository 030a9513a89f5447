//! strata-codec: turning byte streams into frames and back.
//!
//! A network connection carries bytes; a protocol speaks in messages. This
//! crate is the layer in between, and it has two halves:
//!
//! - **Codecs** say where one frame ends and the next begins. A
//!   [`Decoder`] takes a frame off the front of a byte buffer, or says it
//!   needs more bytes; an [`Encoder`] appends an item's bytes to a buffer.
//!   Codecs do no I/O, so they are plain values that are easy to test.
//! - **Framing** drives a codec over an I/O object: [`Framed`] is a
//!   [`Stream`](futures_core::Stream) of decoded frames and a
//!   [`Sink`](futures_sink::Sink) of items to send, over anything that
//!   implements [`AsyncRead`](futures_io::AsyncRead) and
//!   [`AsyncWrite`](futures_io::AsyncWrite). [`FramedRead`] and
//!   [`FramedWrite`] do one direction each. They own the buffers: reads
//!   grow the read buffer as frames need, writes are collected and sent in
//!   batches with a high-water mark for backpressure, and idle connections
//!   give their buffer memory back.
//!
//! The crate depends on no runtime, only on the `futures` traits, `bytes`
//! and `memchr`, so it works over strata's sockets and any other.
//!
//! # Codecs in the box
//!
//! | codec | frame | bound (default) |
//! |---|---|---|
//! | [`LinesCodec`] | a UTF-8 line ended by `\n` or `\r\n` | 8 KiB per line |
//! | [`LengthDelimitedCodec`] | bytes after a 1- to 8-byte length header, laid out with tokio-util's settings | 8 MiB per length value |
//! | [`BytesCodec`] | whatever bytes arrived | one read |
//!
//! Input over a bound is an error, never unbounded memory. `LinesCodec`
//! and `LengthDelimitedCodec` have a setter for their bound and an error
//! enum to match on; `BytesCodec` takes one read at a time (at most the
//! larger of 64 KiB and [`Framed::set_read_window`]'s size: the read
//! window grows while reads fill it), or what was buffered ahead
//! ([`Framed::poll_read_ahead`], [`FramedParts`]) at once, and fails only
//! with `io::Error`.
//!
//! # Example
//!
//! A line protocol: answer `hello` with `world`, anything else with `idk`.
//!
//! ```
//! use futures_util::io::Cursor;
//! use futures_util::{SinkExt, StreamExt};
//! use strata_codec::{Framed, LinesCodec};
//!
//! # futures_executor::block_on(async {
//! let io = Cursor::new(b"hello\r\nbonjour\n".to_vec()); // stands in for a socket
//! let mut framed = Framed::new(io, LinesCodec::new());
//! while let Some(line) = framed.next().await {
//!     let answer = if line? == "hello" { "world" } else { "idk" };
//!     framed.send(answer).await?;
//! }
//! assert!(framed.get_ref().get_ref().ends_with(b"world\nidk\n"));
//! # Ok::<(), strata_codec::LinesCodecError>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]

mod bytes_codec;
mod decoder;
mod encoder;
mod framed;
mod framed_impl;
mod framed_read;
mod framed_write;
mod length_delimited;
mod line;
mod lines;
mod word;

pub use bytes_codec::BytesCodec;
pub use decoder::Decoder;
pub use encoder::Encoder;
pub use framed::{Framed, FramedParts};
pub use framed_read::FramedRead;
pub use framed_write::FramedWrite;
pub use length_delimited::{
    DEFAULT_MAX_FRAME_LENGTH, LengthDelimitedBuilder, LengthDelimitedCodec,
    LengthDelimitedCodecError,
};
pub use line::Line;
pub use lines::{DEFAULT_MAX_LINE_LENGTH, FromLine, LinesCodec, LinesCodecError};
