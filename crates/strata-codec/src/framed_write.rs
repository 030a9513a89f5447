//! [`FramedWrite`]: a sink of items encoded onto an [`AsyncWrite`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_io::AsyncWrite;
use futures_sink::Sink;

use crate::Encoder;
use crate::framed_impl::WriteState;

/// A [`Sink`] of items encoded by an [`Encoder`] and written to an
/// [`AsyncWrite`].
///
/// Use it for the write half of a connection, or for a sink that is
/// write-only; [`Framed`](crate::Framed) covers both directions at once.
/// Buffering, backpressure and flushing work as described on
/// [`Framed`](crate::Framed#writing).
///
/// The I/O object must be [`Unpin`]; pin other writers with `Box::pin`.
///
/// # Examples
///
/// ```
/// use futures_util::SinkExt;
/// use strata_codec::{FramedWrite, LinesCodec};
///
/// futures_executor::block_on(async {
///     let mut lines = FramedWrite::new(Vec::new(), LinesCodec::new());
///     lines.feed("hello").await.unwrap(); // buffered only
///     lines.feed("world").await.unwrap();
///     // One write for both. `LinesCodec` encodes several item types,
///     // so name the one meant: `Sink<&str>`.
///     SinkExt::<&str>::flush(&mut lines).await.unwrap();
///     assert_eq!(lines.get_ref(), b"hello\nworld\n");
/// });
/// ```
#[derive(Debug)]
pub struct FramedWrite<T, E> {
    io: T,
    encoder: E,
    state: WriteState,
}

// The encoder is never pinned: it is only used through `&mut`.
impl<T: Unpin, E> Unpin for FramedWrite<T, E> {}

impl<T, E> FramedWrite<T, E> {
    /// Writes items to `io` with `encoder`.
    ///
    /// No buffer is allocated until the first item.
    pub fn new(io: T, encoder: E) -> Self {
        FramedWrite {
            io,
            encoder,
            state: WriteState::new(),
        }
    }

    /// The I/O object.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The I/O object, mutably. Writing to it directly while items are
    /// buffered interleaves bytes out of order.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The I/O object; bytes not yet written are dropped (flush first, or
    /// use [`into_parts`](Self::into_parts) to keep them).
    pub fn into_inner(self) -> T {
        self.io
    }

    /// The I/O object, the encoder and the bytes not yet written.
    pub fn into_parts(self) -> (T, E, BytesMut) {
        (self.io, self.encoder, self.state.into_buffer())
    }

    /// The encoder.
    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// The encoder, mutably.
    pub fn encoder_mut(&mut self) -> &mut E {
        &mut self.encoder
    }

    /// The encoded bytes not yet written.
    pub fn write_buffer(&self) -> &BytesMut {
        self.state.buffer()
    }

    /// The encoded bytes not yet written, mutably. After a write that took
    /// part of them, they are first moved to the start of their allocation
    /// (or copied to one of their size), so that what was written is not
    /// kept behind them.
    pub fn write_buffer_mut(&mut self) -> &mut BytesMut {
        self.state.buffer_mut()
    }

    /// Sets the high-water mark of the write buffer (default 64 KiB; 0 is
    /// taken as 1).
    ///
    /// `poll_ready` writes to the I/O object while the buffer holds at least
    /// this many bytes (and, once the I/O object took only part of the
    /// buffer, on down to half of it). See [`Framed`](crate::Framed#writing).
    pub fn set_high_water_mark(&mut self, bytes: usize) {
        self.state.set_high_water_mark(bytes);
    }

    /// The high-water mark of the write buffer.
    pub fn high_water_mark(&self) -> usize {
        self.state.high_water_mark()
    }

    /// Whether to free the write buffer after a complete flush (default
    /// `true`). See [`Framed`](crate::Framed#memory).
    pub fn set_release_idle_buffers(&mut self, release: bool) {
        self.state.set_release_idle(release);
    }
}

impl<T, I, E> Sink<I> for FramedWrite<T, E>
where
    T: AsyncWrite + Unpin,
    E: Encoder<I>,
{
    type Error = E::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        this.state.poll_ready(&mut this.io, cx)
    }

    fn start_send(self: Pin<&mut Self>, item: I) -> Result<(), Self::Error> {
        let this = self.get_mut();
        this.state.start_send(&mut this.encoder, item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        this.state.poll_flush(&mut this.io, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        this.state.poll_close(&mut this.io, cx)
    }
}
