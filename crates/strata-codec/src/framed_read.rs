//! [`FramedRead`]: a stream of frames decoded from an [`AsyncRead`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_core::{FusedStream, Stream};
use futures_io::AsyncRead;

use crate::Decoder;
use crate::framed_impl::ReadState;

/// A [`Stream`] of frames read from an [`AsyncRead`] and cut by a
/// [`Decoder`].
///
/// Use it for the read half of a connection, or for a source that is
/// read-only; [`Framed`](crate::Framed) covers both directions at once.
/// Reading, end of stream, errors and memory use work as described on
/// [`Framed`](crate::Framed#reading).
///
/// The I/O object must be [`Unpin`]; pin other readers with `Box::pin`.
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use futures_util::io::Cursor;
/// use strata_codec::{FramedRead, LinesCodec};
///
/// futures_executor::block_on(async {
///     let input = Cursor::new(b"one\r\ntwo\n".to_vec());
///     let mut lines = FramedRead::new(input, LinesCodec::new());
///     assert_eq!(lines.next().await.unwrap().unwrap(), "one");
///     assert_eq!(lines.next().await.unwrap().unwrap(), "two");
///     assert!(lines.next().await.is_none());
/// });
/// ```
#[derive(Debug)]
pub struct FramedRead<T, D> {
    io: T,
    decoder: D,
    state: ReadState,
}

// The decoder is never pinned: it is only used through `&mut`.
impl<T: Unpin, D> Unpin for FramedRead<T, D> {}

impl<T, D> FramedRead<T, D> {
    /// Reads frames from `io` with `decoder`.
    ///
    /// No buffer is allocated until the first read.
    pub fn new(io: T, decoder: D) -> Self {
        FramedRead {
            io,
            decoder,
            state: ReadState::new(),
        }
    }

    /// Like [`new`](Self::new), with bytes already read from `io`, which
    /// are decoded before anything else is read.
    pub fn with_read_buffer(io: T, decoder: D, read_buffer: BytesMut) -> Self {
        FramedRead {
            io,
            decoder,
            state: ReadState::with_buffer(read_buffer),
        }
    }

    /// The I/O object.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The I/O object, mutably. Reading from it directly skips the decoder
    /// and can lose or corrupt frames.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The I/O object; bytes read but not yet decoded are dropped (use
    /// [`into_parts`](Self::into_parts) to keep them).
    pub fn into_inner(self) -> T {
        self.io
    }

    /// The I/O object, the decoder and the bytes read but not yet decoded.
    pub fn into_parts(self) -> (T, D, BytesMut) {
        (self.io, self.decoder, self.state.into_buffer())
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The decoder, mutably.
    pub fn decoder_mut(&mut self) -> &mut D {
        &mut self.decoder
    }

    /// The bytes read but not yet decoded.
    pub fn read_buffer(&self) -> &BytesMut {
        self.state.buffer()
    }

    /// The bytes read but not yet decoded, mutably. The next poll decodes
    /// before it reads, so bytes added here are seen.
    pub fn read_buffer_mut(&mut self) -> &mut BytesMut {
        self.state.buffer_mut()
    }

    /// Sets the smallest read size: the free space reserved in the read
    /// buffer before each read (default 4 KiB; 0 is taken as 1, and more
    /// than 16 MiB as 16 MiB). Reads that fill it grow it, up to 64 KiB
    /// (or the window set, if that is larger).
    pub fn set_read_window(&mut self, bytes: usize) {
        self.state.set_read_window(bytes);
    }

    /// The smallest read size; see [`set_read_window`](Self::set_read_window).
    pub fn read_window(&self) -> usize {
        self.state.read_window()
    }

    /// Whether to free the read buffer when the reader is idle and nothing
    /// is buffered (default `true`). See [`Framed`](crate::Framed#memory).
    pub fn set_release_idle_buffers(&mut self, release: bool) {
        self.state.set_release_idle(release);
    }
}

impl<T, D: Decoder> FramedRead<T, D> {
    /// Decodes the next frame from the bytes already buffered, without
    /// reading; `Ok(None)` means no whole frame is buffered.
    ///
    /// See [`Framed::try_decode_buffered`](crate::Framed::try_decode_buffered).
    ///
    /// # Errors
    ///
    /// Returns the decoder's error; the stream then ends.
    pub fn try_decode_buffered(&mut self) -> Result<Option<D::Item>, D::Error> {
        self.state.try_decode(&mut self.decoder)
    }
}

impl<T: AsyncRead + Unpin, D: Decoder> Stream for FramedRead<T, D> {
    type Item = Result<D::Item, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.state.poll_next(&mut this.io, &mut this.decoder, cx)
    }
}

impl<T: AsyncRead + Unpin, D: Decoder> FusedStream for FramedRead<T, D> {
    fn is_terminated(&self) -> bool {
        self.state.is_terminated()
    }
}
