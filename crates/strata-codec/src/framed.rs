//! [`Framed`]: one object that is both a stream of decoded frames and a
//! sink of items to encode, over one I/O object.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_core::{FusedStream, Stream};
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;

use crate::framed_impl::{ReadState, WriteState};
use crate::{Decoder, Encoder};

/// A connection seen as frames: a [`Stream`] of decoded frames and a
/// [`Sink`] of items to encode, over one [`AsyncRead`] + [`AsyncWrite`].
///
/// The codec implements [`Decoder`] for the read side and [`Encoder`] for
/// the write side. The I/O object must be [`Unpin`] (sockets are); pin
/// other I/O objects with `Box::pin`. The codec need not be.
///
/// # Examples
///
/// An echo of lines, over an in-memory I/O object:
///
/// ```
/// use futures_util::io::Cursor;
/// use futures_util::{SinkExt, StreamExt};
/// use strata_codec::{Framed, LinesCodec};
///
/// futures_executor::block_on(async {
///     let io = Cursor::new(b"ping\n".to_vec());
///     let mut framed = Framed::new(io, LinesCodec::new());
///     let line = framed.next().await.unwrap().unwrap();
///     assert_eq!(line, "ping");
///     framed.send(line + "!").await.unwrap(); // encode, then flush
///     assert_eq!(&framed.get_ref().get_ref()[5..], b"ping!\n");
/// });
/// ```
///
/// # Reading
///
/// Each poll of the stream first asks the decoder for a frame from the
/// bytes already buffered, and only reads from the I/O object when there
/// is none. A read appends to the read buffer, which grows as a frame
/// needs; how large a frame may get is the codec's business (every codec
/// in this crate has a bounded default).
///
/// At end of stream the decoder's [`decode_eof`](Decoder::decode_eof) turns
/// the remaining bytes into final frames, or reports a partial frame as an
/// error; then the stream yields `None`. After an error (from reading or
/// decoding) the stream also yields `None`. Either way it stays ended: it
/// is a [`FusedStream`].
///
/// Only reads from the I/O object take part in a runtime's cooperative
/// budget (strata's sockets spend it; tokio-util's `Framed` behaves the
/// same): frames decoded from bytes already buffered cost none. A task
/// that loops over a stream that always has frames yields once its reads
/// spend the budget, which with small frames can be after a hundred
/// thousand frames; such a loop that must leave its worker to others
/// sooner yields itself now and then (`strata_rt::yield_now`).
///
/// A read, write, flush or close that the I/O object fails with
/// `Interrupted` (a signal cut it short) is made again at once, as std's
/// `read_exact` and `write_all` do; an object that only ever says
/// `Interrupted` keeps the task as it would keep those. (Sockets never
/// do: strata's are non-blocking.)
///
/// # Writing
///
/// [`start_send`](Sink::start_send) only encodes the item into the write
/// buffer; nothing is written until a flush or backpressure. So items sent
/// between two flushes leave in one write call (or a few, if the I/O
/// object accepts only part of the buffer at a time). Send many items with
/// [`SinkExt::feed`](https://docs.rs/futures-util/0.3/futures_util/sink/trait.SinkExt.html#method.feed)
/// and flush once, rather than using `send` for each.
///
/// [`poll_ready`](Sink::poll_ready) is where backpressure happens: while
/// the write buffer holds less than the high-water mark (64 KiB by
/// default, see [`set_high_water_mark`](Self::set_high_water_mark)) it is
/// ready at once, without any I/O; at or over the mark it writes until the
/// buffer is under the mark again, and returns `Pending` if the I/O object
/// cannot take more. When the I/O object takes only part of the buffer per
/// write (a slow peer, a TLS stream's records), it writes on down to half
/// the mark (a low-water mark), and the bytes left then move to the front
/// of the allocation, so that it is reused instead of grown. The mark
/// bounds the buffer's contents to the mark plus one item; its allocation
/// can reach twice that, since the buffer grows by doubling (64 KiB of
/// responses and one more make a 128 KiB buffer), and less than three
/// times the mark plus two items when items are added after a flush that
/// stopped part way, before the next drain moves what it left.
///
/// [`poll_flush`](Sink::poll_flush) writes the whole buffer with plain
/// `poll_write` calls (the buffer is one contiguous slice, so a vectored
/// write would not save a call) and then flushes the I/O object.
///
/// A codec may encode several item types (`LinesCodec` takes `&str` and
/// `String`), and then `Framed` is a `Sink` of each; `flush` and `close`
/// name no item, so name the `Sink` for them:
/// `SinkExt::<&str>::flush(&mut framed)`.
///
/// # Peeking at buffered frames
///
/// A protocol layer that writes responses often wants to flush only when
/// no further request is already waiting in the read buffer.
/// [`try_decode_buffered`](Self::try_decode_buffered) decodes a frame from
/// the buffered bytes without touching the I/O object, so the layer can
/// serve all pipelined requests first and flush once.
///
/// # Memory
///
/// Idle connections should cost little, so both buffers start empty and
/// give their memory back when there is nothing in them:
///
/// - Before a read, the read buffer gets a read window of free space: 4
///   KiB at first ([`set_read_window`](Self::set_read_window)), doubling
///   while reads fill it, up to 64 KiB.
/// - When a read finds nothing to read (`Pending`) and no undecoded bytes
///   are buffered, the read buffer is freed. A large read buffer (256 KiB
///   or more) is also freed as soon as decoding empties it, and when a
///   read finds nothing with only a few bytes (under 64 KiB, the start of
///   the next frame) left in it, they move to a buffer of their own size.
/// - After a complete flush the write buffer is freed.
///
/// Frames that a codec splits off the read buffer without copying (those
/// of [`LengthDelimitedCodec`](crate::LengthDelimitedCodec) and
/// [`BytesCodec`](crate::BytesCodec), and the longer [`Line`](crate::Line)s
/// of [`LinesCodec::shared`](crate::LinesCodec::shared)) share its
/// allocation, so holding on to one keeps that allocation alive; copy
/// small frames you keep for long.
///
/// So an idle `Framed`, one with no partial frame and nothing unflushed,
/// holds the I/O object, the codec and two empty `BytesMut` handles, and
/// no heap memory of its own. Call
/// [`set_release_idle_buffers(false)`](Self::set_release_idle_buffers) to
/// keep the buffers instead, which saves an allocation per read and per
/// flush on busy connections at the cost of holding their memory. Large
/// buffers (256 KiB or more) are still freed as above, and a few bytes
/// left after a large frame still move to a buffer of their own: a busy
/// connection may never go idle, and one large frame should not pin its
/// memory for the rest of the connection's life.
///
/// # Cancel safety
///
/// The state lives in the `Framed`, not in the futures that drive it, so
/// dropping one of them (a `select!` branch that lost, a timeout) loses
/// nothing the `Framed` took:
///
/// - `next()` is cancel-safe: the bytes of a partly read frame stay in
///   the read buffer for the next call.
/// - `flush()` is cancel-safe: what it did not write stays buffered.
/// - `send(item)` is not, in the usual `Sink` way: dropped while
///   [`poll_ready`](Sink::poll_ready) waits at the high-water mark, the
///   item, still in the future, is dropped with it; dropped after it was
///   encoded, the item is written by the next flush. To keep the item
///   when the race is lost, wait in the `select!` for readiness alone
///   (`poll_fn(|cx| Pin::new(&mut framed).poll_ready(cx))`), then hand the
///   item over with [`start_send`](Sink::start_send).
///
/// The same holds for [`FramedRead`](crate::FramedRead) and
/// [`FramedWrite`](crate::FramedWrite).
///
/// # Splitting
///
/// This crate has no `split` of its own: use
/// [`StreamExt::split`](https://docs.rs/futures-util/0.3/futures_util/stream/trait.StreamExt.html#method.split)
/// from `futures-util` (behind its `sink` feature), or build
/// a [`FramedRead`](crate::FramedRead) and a
/// [`FramedWrite`](crate::FramedWrite) over the two halves of a socket
/// split by the runtime.
#[derive(Debug)]
pub struct Framed<T, C> {
    io: T,
    codec: C,
    read: ReadState,
    write: WriteState,
}

// The codec is never pinned: it is only used through `&mut`.
impl<T: Unpin, C> Unpin for Framed<T, C> {}

/// The pieces of a [`Framed`], to take it apart without losing buffered
/// bytes, for example to hand a connection over to another protocol.
#[derive(Debug)]
#[non_exhaustive]
pub struct FramedParts<T, C> {
    /// The I/O object.
    pub io: T,
    /// The codec.
    pub codec: C,
    /// Bytes read but not yet decoded.
    pub read_buffer: BytesMut,
    /// Bytes encoded but not yet written.
    pub write_buffer: BytesMut,
}

impl<T, C> FramedParts<T, C> {
    /// Parts with empty buffers.
    pub fn new(io: T, codec: C) -> Self {
        FramedParts {
            io,
            codec,
            read_buffer: BytesMut::new(),
            write_buffer: BytesMut::new(),
        }
    }
}

impl<T, C> Framed<T, C> {
    /// Frames `io` with `codec`.
    ///
    /// No buffer is allocated until the first read or the first item.
    pub fn new(io: T, codec: C) -> Self {
        Framed {
            io,
            codec,
            read: ReadState::new(),
            write: WriteState::new(),
        }
    }

    /// Puts a `Framed` back together. Buffered read bytes are decoded
    /// before anything else is read; buffered write bytes go out first.
    pub fn from_parts(parts: FramedParts<T, C>) -> Self {
        Framed {
            io: parts.io,
            codec: parts.codec,
            read: ReadState::with_buffer(parts.read_buffer),
            write: WriteState::with_buffer(parts.write_buffer),
        }
    }

    /// Takes the `Framed` apart, keeping the buffered bytes.
    pub fn into_parts(self) -> FramedParts<T, C> {
        FramedParts {
            io: self.io,
            codec: self.codec,
            read_buffer: self.read.into_buffer(),
            write_buffer: self.write.into_buffer(),
        }
    }

    /// The I/O object.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The I/O object, mutably. Reading or writing it directly bypasses
    /// the buffers and can corrupt the frame streams.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The I/O object; buffered bytes are dropped (use
    /// [`into_parts`](Self::into_parts) to keep them).
    pub fn into_inner(self) -> T {
        self.io
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The codec, mutably.
    pub fn codec_mut(&mut self) -> &mut C {
        &mut self.codec
    }

    /// The bytes read but not yet decoded.
    pub fn read_buffer(&self) -> &BytesMut {
        self.read.buffer()
    }

    /// The bytes read but not yet decoded, mutably. The next poll decodes
    /// before it reads, so bytes added here are seen.
    pub fn read_buffer_mut(&mut self) -> &mut BytesMut {
        self.read.buffer_mut()
    }

    /// The encoded bytes not yet written.
    pub fn write_buffer(&self) -> &BytesMut {
        self.write.buffer()
    }

    /// The encoded bytes not yet written, mutably. After a write that took
    /// part of them, they are first moved to the start of their allocation
    /// (or copied to one of their size), so that what was written is not
    /// kept behind them.
    pub fn write_buffer_mut(&mut self) -> &mut BytesMut {
        self.write.buffer_mut()
    }

    /// Sets the high-water mark of the write buffer (default 64 KiB; 0 is
    /// taken as 1); see [Writing](Self#writing).
    pub fn set_high_water_mark(&mut self, bytes: usize) {
        self.write.set_high_water_mark(bytes);
    }

    /// The high-water mark of the write buffer.
    pub fn high_water_mark(&self) -> usize {
        self.write.high_water_mark()
    }

    /// Sets the smallest read size (default 4 KiB; 0 is taken as 1, and
    /// more than 16 MiB as 16 MiB); see [Memory](Self#memory).
    pub fn set_read_window(&mut self, bytes: usize) {
        self.read.set_read_window(bytes);
    }

    /// The smallest read size.
    pub fn read_window(&self) -> usize {
        self.read.read_window()
    }

    /// Whether to free empty buffers when the connection goes idle
    /// (default `true`); see [Memory](Self#memory).
    pub fn set_release_idle_buffers(&mut self, release: bool) {
        self.read.set_release_idle(release);
        self.write.set_release_idle(release);
    }
}

impl<T, C: Decoder> Framed<T, C> {
    /// Decodes the next frame from the bytes already buffered, without
    /// reading from the I/O object.
    ///
    /// `Ok(None)` means no whole frame is buffered now; the next
    /// [`poll_next`](Stream::poll_next) would have to read. This is the
    /// test for "flush now?" in a pipelining server:
    ///
    /// ```
    /// use futures_util::io::Cursor;
    /// use futures_util::{SinkExt, StreamExt};
    /// use strata_codec::{Framed, LinesCodec};
    ///
    /// futures_executor::block_on(async {
    ///     let io = Cursor::new(b"a\nb\nc\n".to_vec());
    ///     let mut framed = Framed::new(io, LinesCodec::new());
    ///     let mut next = framed.next().await.transpose().unwrap();
    ///     while let Some(request) = next {
    ///         framed.feed(request.to_uppercase()).await.unwrap();
    ///         next = match framed.try_decode_buffered().unwrap() {
    ///             Some(request) => Some(request), // more work, no flush yet
    ///             None => {
    ///                 SinkExt::<String>::flush(&mut framed).await.unwrap();
    ///                 framed.next().await.transpose().unwrap()
    ///             }
    ///         };
    ///     }
    ///     assert_eq!(&framed.get_ref().get_ref()[6..], b"A\nB\nC\n");
    /// });
    /// ```
    ///
    /// It also works after end of stream, where it drains with
    /// [`decode_eof`](Decoder::decode_eof), and returns `Ok(None)` once the
    /// stream has ended.
    ///
    /// # Errors
    ///
    /// Returns the decoder's error; the stream then ends, as it would had
    /// the error come from [`poll_next`](Stream::poll_next).
    #[inline(always)]
    pub fn try_decode_buffered(&mut self) -> Result<Option<C::Item>, C::Error> {
        self.read.try_decode(&mut self.codec)
    }
}

impl<T: AsyncRead + Unpin, C> Framed<T, C> {
    /// Reads from the I/O object into the read buffer, without decoding,
    /// until the buffer holds `limit` bytes, the end of the stream is seen,
    /// or the read would block (`Pending`, with the waker registered).
    ///
    /// A server that has stopped taking requests (its in-flight bound is
    /// reached) uses this to keep noticing a peer that resets or goes away,
    /// with its memory bounded by `limit`. The bytes read stay buffered for
    /// later [`poll_next`](Stream::poll_next) calls; an end of stream seen
    /// here is remembered, so `poll_next` decodes what is buffered (with
    /// [`decode_eof`](Decoder::decode_eof) at the end) and then ends. Once
    /// the buffer holds `limit` bytes nothing is read, and a reset is not
    /// seen until reading resumes.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use futures_util::io::Cursor;
    /// use strata_codec::{Framed, LinesCodec};
    ///
    /// futures_executor::block_on(async {
    ///     let mut framed = Framed::new(Cursor::new(b"a\nb\nc\n".to_vec()), LinesCodec::new());
    ///     std::future::poll_fn(|cx| framed.poll_read_ahead(cx, 4)).await.unwrap();
    ///     assert_eq!(&framed.read_buffer()[..], b"a\nb\n");
    ///     assert_eq!(framed.next().await.unwrap().unwrap(), "a");
    /// });
    /// ```
    ///
    /// # Errors
    ///
    /// A read error, returned here; the stream then ends (buffered bytes
    /// are dropped), as after a read error in `poll_next`.
    pub fn poll_read_ahead(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<()>> {
        self.read.poll_read_ahead(&mut self.io, cx, limit)
    }
}

impl<T: AsyncRead + Unpin, C: Decoder> Stream for Framed<T, C> {
    type Item = Result<C::Item, C::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.read.poll_next(&mut this.io, &mut this.codec, cx)
    }
}

impl<T: AsyncRead + Unpin, C: Decoder> FusedStream for Framed<T, C> {
    fn is_terminated(&self) -> bool {
        self.read.is_terminated()
    }
}

impl<T, I, C> Sink<I> for Framed<T, C>
where
    T: AsyncWrite + Unpin,
    C: Encoder<I>,
{
    type Error = C::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        this.write.poll_ready(&mut this.io, cx)
    }

    #[inline(always)]
    fn start_send(self: Pin<&mut Self>, item: I) -> Result<(), Self::Error> {
        let this = self.get_mut();
        this.write.start_send(&mut this.codec, item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        this.write.poll_flush(&mut this.io, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        this.write.poll_close(&mut this.io, cx)
    }
}
