//! The machinery shared by [`Framed`](crate::Framed),
//! [`FramedRead`](crate::FramedRead) and [`FramedWrite`](crate::FramedWrite):
//! a read state and a write state, each owning its buffer.
//!
//! The wrappers own the I/O object and the codec and lend them to these
//! states on every call, so one implementation serves all three.
//!
//! # Read side
//!
//! [`ReadState`] is in one of five phases:
//!
//! ```text
//!                 decode -> Some(frame)
//!                   +-------+
//!                   |       |
//!                   |       v          decode -> None
//!   (start) ----> Framing --------------------------------> Reading
//!                   ^                                      |   |
//!                   |            read n > 0 bytes          |   |
//!                   +--------------------------------------+   |
//!                                                              | read 0 bytes (EOF)
//!                                                              v
//!                               decode_eof -> Some(frame)   Draining <--+
//!                                                  |        |   |      |
//!                                                  +--------+---|------+
//!                                                               |
//!                                          decode_eof -> None   |
//!                                                               v
//!   any error (read, decode, decode_eof) ------------------>  Failed     Ended
//!                                                    (both yield None for good)
//! ```
//!
//! - `Framing`: the buffer may hold a frame; call `decode` before reading.
//! - `Reading`: `decode` found no frame in the buffer; read more first.
//! - `Draining`: the reader hit end of stream; call `decode_eof` until it
//!   returns `None`.
//! - `Ended`: `decode_eof` returned `None` and the stream yielded `None`.
//! - `Failed`: an error was yielded; the stream yields `None` from now on.
//!
//! Both end phases are final, so the stream is fused.
//!
//! # Memory
//!
//! Buffers start empty (no allocation). Before each read the read buffer
//! gets a read window of free space, 4 KiB at first, growing while reads
//! fill it (up to 64 KiB) and shrinking when they do not. When the reader
//! is idle (it returned `Pending`) and the read buffer is empty, the buffer
//! is freed; the write buffer is freed after a complete flush. So an idle
//! connection holds no buffer memory at all. Both releases can be turned
//! off with `set_release_idle_buffers(false)`, trading memory for fewer
//! allocations; buffers of `LARGE_BUFFER` or more are released either way.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};

use crate::{Decoder, Encoder};

/// Default high-water mark of the write buffer: 64 KiB.
pub(crate) const DEFAULT_HIGH_WATER_MARK: usize = 64 * 1024;

/// Smallest read window: the free space reserved before a read.
pub(crate) const DEFAULT_READ_WINDOW: usize = 4 * 1024;

/// Largest read window; reads that keep filling the window grow it to this.
const MAX_READ_WINDOW: usize = 64 * 1024;

/// Largest smallest read window a caller may set: each read reserves it,
/// and the thread's scratch buffer keeps it.
pub(crate) const MAX_SET_READ_WINDOW: usize = 16 << 20;

/// A buffer this large that becomes empty is freed even while busy, and
/// even with idle releases off, so one big frame does not leave a big
/// buffer behind.
const LARGE_BUFFER: usize = 256 * 1024;

/// Fewer bytes than this left waiting in a large buffer are moved to a
/// buffer of their own size (at most a quarter of `LARGE_BUFFER`, copied
/// once per large frame).
const SMALL_REMAINDER: usize = LARGE_BUFFER / 4;

thread_local! {
    /// Initialised memory that reads land in when the frame buffer is empty;
    /// see `ReadState::poll_read`. At most `MAX_READ_WINDOW` (or a larger
    /// configured window) per thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Zeroes `buf[..upto]` when dropped, also on unwind.
struct ZeroOnDrop<'a> {
    buf: &'a mut [u8],
    upto: usize,
}

impl Drop for ZeroOnDrop<'_> {
    #[inline]
    fn drop(&mut self) {
        // Most reads end `Pending` with nothing to clear: no call then.
        if self.upto > 0 {
            self.buf[..self.upto].fill(0);
        }
    }
}

/// `poll_read`, retried on `Interrupted`. What an interrupted read wrote
/// is zeroed before the retry, which may report fewer bytes (the scratch
/// buffer is shared by the thread's connections; see `poll_read`).
fn read_retrying<T: AsyncRead + Unpin>(
    io: &mut T,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    loop {
        match Pin::new(&mut *io).poll_read(cx, buf) {
            Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::Interrupted => buf.fill(0),
            other => return other,
        }
    }
}

/// Where the read side of a framed stream is; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadPhase {
    Framing,
    Reading,
    Draining,
    Ended,
    Failed,
}

/// The read half of the framing machinery: buffer, phase and read window.
#[derive(Debug)]
pub(crate) struct ReadState {
    buffer: BytesMut,
    phase: ReadPhase,
    /// How many bytes the next read may fill.
    window: usize,
    /// The smallest window, also the first one.
    min_window: usize,
    /// The most bytes the buffer has held since it was last freed: a lower
    /// bound on its allocation, which `capacity` no longer shows once
    /// decoded frames were split off its front.
    peak: usize,
    release_idle: bool,
}

impl ReadState {
    pub(crate) fn new() -> Self {
        Self::with_buffer(BytesMut::new())
    }

    pub(crate) fn with_buffer(buffer: BytesMut) -> Self {
        ReadState {
            buffer,
            phase: ReadPhase::Framing,
            window: DEFAULT_READ_WINDOW,
            min_window: DEFAULT_READ_WINDOW,
            peak: 0,
            release_idle: true,
        }
    }

    pub(crate) fn buffer(&self) -> &BytesMut {
        &self.buffer
    }

    /// Mutable access to the buffer. The caller may add bytes, so the next
    /// poll decodes before it reads.
    pub(crate) fn buffer_mut(&mut self) -> &mut BytesMut {
        if self.phase == ReadPhase::Reading {
            self.phase = ReadPhase::Framing;
        }
        &mut self.buffer
    }

    pub(crate) fn into_buffer(self) -> BytesMut {
        self.buffer
    }

    pub(crate) fn is_terminated(&self) -> bool {
        matches!(self.phase, ReadPhase::Ended | ReadPhase::Failed)
    }

    pub(crate) fn set_read_window(&mut self, bytes: usize) {
        self.min_window = bytes.clamp(1, MAX_SET_READ_WINDOW);
        self.window = self.min_window;
    }

    pub(crate) fn read_window(&self) -> usize {
        self.min_window
    }

    pub(crate) fn set_release_idle(&mut self, release: bool) {
        self.release_idle = release;
    }

    /// Decodes one frame from the bytes already buffered, without reading.
    // Always inlined: the pipelined dispatcher calls it once per request,
    // and left to the inliner, a second caller was enough to keep it (and
    // the decoder) out of that loop, about 30 instructions more per
    // request at depth 16 (callgrind).
    #[inline(always)]
    pub(crate) fn try_decode<D: Decoder>(
        &mut self,
        decoder: &mut D,
    ) -> Result<Option<D::Item>, D::Error> {
        let result = match self.phase {
            ReadPhase::Framing | ReadPhase::Reading => decoder.decode(&mut self.buffer),
            ReadPhase::Draining => decoder.decode_eof(&mut self.buffer),
            ReadPhase::Ended | ReadPhase::Failed => return Ok(None),
        };
        match result {
            Ok(Some(frame)) => {
                if self.phase == ReadPhase::Reading {
                    self.phase = ReadPhase::Framing;
                }
                self.after_frame();
                Ok(Some(frame))
            }
            Ok(None) => {
                if self.phase == ReadPhase::Framing {
                    self.phase = ReadPhase::Reading;
                }
                Ok(None)
            }
            Err(err) => {
                // As `fail`: the stream ends and holds none of the bytes.
                self.phase = ReadPhase::Failed;
                self.buffer = BytesMut::new();
                Err(err)
            }
        }
    }

    /// Drives the read side: decode what is buffered, read when needed.
    pub(crate) fn poll_next<T, D>(
        &mut self,
        io: &mut T,
        decoder: &mut D,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<D::Item, D::Error>>>
    where
        T: AsyncRead + Unpin,
        D: Decoder,
    {
        loop {
            match self.phase {
                ReadPhase::Framing => match decoder.decode(&mut self.buffer) {
                    Ok(Some(frame)) => {
                        self.after_frame();
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    Ok(None) => self.phase = ReadPhase::Reading,
                    Err(err) => return self.fail(err),
                },
                ReadPhase::Reading => match ready!(self.poll_read(io, cx)) {
                    Ok(0) => self.phase = ReadPhase::Draining,
                    Ok(_) => self.phase = ReadPhase::Framing,
                    Err(err) => return self.fail(err.into()),
                },
                ReadPhase::Draining => match decoder.decode_eof(&mut self.buffer) {
                    Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                    Ok(None) => {
                        self.phase = ReadPhase::Ended;
                        self.buffer = BytesMut::new();
                        return Poll::Ready(None);
                    }
                    Err(err) => return self.fail(err),
                },
                ReadPhase::Ended | ReadPhase::Failed => return Poll::Ready(None),
            }
        }
    }

    /// Reads into the buffer, without decoding, until it holds at least
    /// `limit` bytes, the end of the stream is seen (remembered: the next
    /// `poll_next` decodes what is buffered, then ends), or reading would
    /// block (`Pending`, the waker registered). A read error is returned
    /// and ends the stream, as in `poll_next`.
    pub(crate) fn poll_read_ahead<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
        limit: usize,
    ) -> Poll<io::Result<()>> {
        while matches!(self.phase, ReadPhase::Framing | ReadPhase::Reading)
            && self.buffer.len() < limit
        {
            // At most up to the limit: this is memory nobody asked for yet.
            let filled = self.buffer.len();
            let room = self.window.min(limit - filled);
            self.buffer.resize(filled + room, 0);
            let result = read_retrying(io, cx, &mut self.buffer[filled..]);
            let n = match &result {
                Poll::Ready(Ok(n)) => (*n).min(room),
                _ => 0,
            };
            self.buffer.truncate(filled + n);
            // As `poll_read` does: what a large buffer is judged by.
            self.peak = self.peak.max(self.buffer.len());
            match result {
                Poll::Pending => {
                    // As `poll_read` does.
                    self.maybe_release_while_waiting();
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => self.phase = ReadPhase::Draining,
                Poll::Ready(Ok(_)) => self.phase = ReadPhase::Framing,
                Poll::Ready(Err(err)) => {
                    self.phase = ReadPhase::Failed;
                    self.buffer = BytesMut::new();
                    return Poll::Ready(Err(err));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn fail<I, E>(&mut self, err: E) -> Poll<Option<Result<I, E>>> {
        self.phase = ReadPhase::Failed;
        self.buffer = BytesMut::new();
        Poll::Ready(Some(Err(err)))
    }

    /// After a frame was taken: free the buffer if it is empty and large.
    #[inline]
    fn after_frame(&mut self) {
        // Not tied to `release_idle`: that keeps small buffers for reuse,
        // and a busy connection may never be idle.
        if self.buffer.is_empty() && self.peak.max(self.buffer.capacity()) >= LARGE_BUFFER {
            self.buffer = BytesMut::new();
            self.peak = 0;
        }
    }

    /// One read into the free space after the buffered bytes.
    ///
    /// The crate has no unsafe code, so memory must be initialised before
    /// a read may fill it. When nothing is buffered (the common case: the
    /// previous frames were all decoded), the read goes into this thread's
    /// scratch buffer, initialised once, and only the bytes that arrived are
    /// copied into the frame buffer (and then zeroed in the scratch buffer,
    /// which the next read on the thread may be another connection's; all
    /// of the window after a read that failed, was interrupted or
    /// panicked): an idle connection holds no buffer, and a small request
    /// costs a small allocation instead of zeroing a whole window. A reader
    /// that writes past the count it reports, or writes and then returns
    /// `Pending`, leaves those bytes to the next reader on the thread, as
    /// with any reused buffer; sockets write only what they report. When
    /// part of a frame is buffered, the window after it is zeroed and read
    /// into directly; the adaptive window keeps that cost in line with the
    /// bytes actually read.
    ///
    /// A reader whose `io` is itself fed by another framed reader (framing
    /// over framing) finds the scratch buffer in use by the outer one while
    /// the inner one reads; the inner one then reads into its own buffer.
    fn poll_read<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let scratch_read = if self.buffer.is_empty() {
            let window = self.window;
            let buffer = &mut self.buffer;
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.try_borrow_mut().ok()?;
                if scratch.len() < window {
                    scratch.resize(window, 0);
                }
                // The next reader on this thread, maybe another
                // connection's, must not be handed these bytes: the guard
                // zeroes the whole window unless the read reported what it
                // wrote (a reader may write and then fail or panic: say it
                // decrypts in place, then finds the record corrupt; what an
                // interrupted read wrote is zeroed before its retry).
                let mut guard = ZeroOnDrop {
                    buf: &mut scratch[..window],
                    upto: window,
                };
                let result = read_retrying(io, cx, guard.buf);
                match result {
                    Poll::Ready(Ok(n)) => {
                        let n = n.min(window);
                        buffer.extend_from_slice(&guard.buf[..n]);
                        guard.upto = n;
                    }
                    Poll::Pending => guard.upto = 0,
                    Poll::Ready(Err(_)) => {}
                }
                Some(result)
            })
        } else {
            None
        };
        let result = match scratch_read {
            Some(result) => result,
            None => {
                let filled = self.buffer.len();
                self.buffer.resize(filled + self.window, 0);
                let result = read_retrying(io, cx, &mut self.buffer[filled..]);
                let n = match &result {
                    Poll::Ready(Ok(n)) => (*n).min(self.window),
                    _ => 0,
                };
                self.buffer.truncate(filled + n);
                result
            }
        };
        match result {
            Poll::Pending => {
                self.maybe_release_while_waiting();
                Poll::Pending
            }
            Poll::Ready(Ok(n)) => {
                let n = n.min(self.window);
                self.adapt_window(n);
                self.peak = self.peak.max(self.buffer.len());
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        }
    }

    /// `release_while_waiting` if it may have anything to do: with idle
    /// releases off (a busy server) only a large buffer is released, and
    /// that test is inlined where a read found nothing.
    #[inline(always)]
    fn maybe_release_while_waiting(&mut self) {
        if self.release_idle || self.peak.max(self.buffer.capacity()) >= LARGE_BUFFER {
            self.release_while_waiting();
        }
    }

    /// Nothing more to read for now. Nothing buffered: hold no memory. A
    /// few bytes left after a large frame (the start of the next one):
    /// keep them in a buffer of their size, not in the large frame's
    /// allocation, which the buffer would otherwise reuse while it waits.
    ///
    /// Called by `maybe_release_while_waiting` only (with idle releases off,
    /// only for a large buffer).
    fn release_while_waiting(&mut self) {
        if self.buffer.is_empty() {
            // Even with a `capacity()` of 0: a buffer that decoding emptied
            // exactly (the frames were split off its front) still owns the
            // allocation they were cut from. A new one costs nothing.
            self.buffer = BytesMut::new();
            self.peak = 0;
        } else if self.buffer.len() < SMALL_REMAINDER
            && self.peak.max(self.buffer.capacity()) >= LARGE_BUFFER
        {
            self.buffer = BytesMut::from(&self.buffer[..]);
            self.peak = self.buffer.len();
        }
    }

    fn adapt_window(&mut self, n: usize) {
        if n == self.window {
            self.window = (self.window * 2).min(MAX_READ_WINDOW.max(self.min_window));
        } else if n < self.window / 2 {
            self.window = (self.window / 2).max(self.min_window);
        }
    }
}

/// The write half of the framing machinery: buffer and high-water mark.
#[derive(Debug)]
pub(crate) struct WriteState {
    buffer: BytesMut,
    high_water_mark: usize,
    /// `poll_ready` is ready at once while the buffer is shorter than
    /// this: the mark, or half the mark plus one while a drain that
    /// partial writes started is not finished (see `after_partial_write`).
    accept_below: usize,
    /// Bytes written by partial writes since the buffer was last emptied
    /// or compacted: the written part still in front of it, which
    /// `BytesMut` does not show. 0 when not known (after `buffer_mut`).
    front: usize,
    release_idle: bool,
}

impl WriteState {
    pub(crate) fn new() -> Self {
        Self::with_buffer(BytesMut::new())
    }

    pub(crate) fn with_buffer(buffer: BytesMut) -> Self {
        WriteState {
            buffer,
            high_water_mark: DEFAULT_HIGH_WATER_MARK,
            accept_below: DEFAULT_HIGH_WATER_MARK,
            front: 0,
            release_idle: true,
        }
    }

    pub(crate) fn buffer(&self) -> &BytesMut {
        &self.buffer
    }

    pub(crate) fn buffer_mut(&mut self) -> &mut BytesMut {
        // The caller may replace or reshape the buffer, so the count of
        // what was written in front of it goes; first the bytes left move
        // to the front, or a written part hidden there would escape the
        // release after a complete flush, which goes by `capacity()`.
        self.compact();
        &mut self.buffer
    }

    pub(crate) fn into_buffer(mut self) -> BytesMut {
        // As for `buffer_mut`: whoever gets it has no count.
        self.compact();
        self.buffer
    }

    /// Leaves no written part in front of the buffered bytes: moves them
    /// to the front of the allocation, or, when they are longer than what
    /// was written (a move would overlap), to an allocation of their own
    /// size.
    #[cold]
    fn compact(&mut self) {
        if self.front > 0 {
            if self.front >= self.buffer.len() {
                self.reuse_front();
            } else {
                self.buffer = BytesMut::from(&self.buffer[..]);
                self.front = 0;
            }
        }
        self.accept_below = self.high_water_mark;
    }

    pub(crate) fn set_high_water_mark(&mut self, bytes: usize) {
        // A drain to the low-water mark under way lowered `accept_below`.
        let draining = self.accept_below < self.high_water_mark;
        self.high_water_mark = bytes.max(1);
        if self.front == 0 {
            self.accept_below = self.high_water_mark;
        } else {
            // Part of the buffer was written: the same rules, new mark.
            self.after_partial_write(draining);
        }
    }

    pub(crate) fn high_water_mark(&self) -> usize {
        self.high_water_mark
    }

    pub(crate) fn set_release_idle(&mut self, release: bool) {
        self.release_idle = release;
    }

    /// Ready while the buffer is under the high-water mark; at or over it,
    /// writes until it is under again (to half the mark if the writer takes
    /// part of the buffer per write: see `after_partial_write`).
    #[inline]
    pub(crate) fn poll_ready<T, E>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), E>>
    where
        T: AsyncWrite + Unpin,
        E: From<io::Error>,
    {
        // Checked before every frame: the common under-the-mark case is
        // inlined, the writing loop is not.
        if self.buffer.len() < self.accept_below {
            return Poll::Ready(Ok(()));
        }
        self.poll_drain_to_mark(io, cx)
    }

    /// Writes until the buffer is under the mark again: a writer that
    /// takes part of the buffer per call is written to until the buffer
    /// holds at most half the mark (see `after_partial_write`).
    #[inline(never)]
    fn poll_drain_to_mark<T, E>(&mut self, io: &mut T, cx: &mut Context<'_>) -> Poll<Result<(), E>>
    where
        T: AsyncWrite + Unpin,
        E: From<io::Error>,
    {
        while self.buffer.len() >= self.accept_below {
            ready!(self.poll_write_once(io, cx, true))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Encodes `item` into the buffer, all or nothing: an encoder that
    /// fails after appending part of a frame leaves no half frame to be
    /// flushed.
    // Always inlined, like `Framed::start_send`: left to the inliner, a
    // busy caller keeps it (and the encoder) out of line, and the call
    // costs about as much as encoding a short frame.
    #[inline(always)]
    pub(crate) fn start_send<I, C: Encoder<I>>(
        &mut self,
        encoder: &mut C,
        item: I,
    ) -> Result<(), C::Error> {
        let before = self.buffer.len();
        encoder.encode(item, &mut self.buffer).inspect_err(|_| {
            self.buffer.truncate(before);
        })
    }

    /// Writes the whole buffer, then flushes the I/O object.
    pub(crate) fn poll_flush<T, E>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), E>>
    where
        T: AsyncWrite + Unpin,
        E: From<io::Error>,
    {
        while !self.buffer.is_empty() {
            ready!(self.poll_write_once(io, cx, false))?;
        }
        ready!(Pin::new(&mut *io).poll_flush(cx))?;
        let capacity = self.buffer.capacity();
        if capacity > 0 && (self.release_idle || capacity >= LARGE_BUFFER) {
            self.buffer = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Flushes, then closes the I/O object.
    pub(crate) fn poll_close<T, E>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), E>>
    where
        T: AsyncWrite + Unpin,
        E: From<io::Error>,
    {
        ready!(self.poll_flush::<T, E>(io, cx))?;
        Pin::new(&mut *io).poll_close(cx).map_err(E::from)
    }

    /// One write call with everything buffered; drops what was written.
    /// `draining`: called by `poll_drain_to_mark`, not by a flush.
    fn poll_write_once<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
        draining: bool,
    ) -> Poll<io::Result<()>> {
        let n = loop {
            match ready!(Pin::new(&mut *io).poll_write(cx, &self.buffer)) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the writer accepted no bytes of a non-empty frame buffer",
            )));
        }
        if n >= self.buffer.len() {
            // Keeps the whole allocation for reuse, unlike `advance`.
            self.buffer.clear();
            if self.front > 0 {
                self.reuse_front();
            }
        } else {
            self.buffer.advance(n);
            self.front = self.front.saturating_add(n);
            self.after_partial_write(draining);
        }
        Poll::Ready(Ok(()))
    }

    /// After a write that took part of the buffer, which only moved the
    /// buffer's start.
    ///
    /// Left there, the written part in front is reused only once it is at
    /// least as long as the rest (`BytesMut::reserve` then moves the rest
    /// to the front); short of that, an item that does not fit behind
    /// doubles the whole allocation, written part included, and a writer
    /// that keeps taking part of the buffer (a slow peer, a TLS stream's
    /// 16 KiB records) could take it to four times the mark. So:
    ///
    /// - in a drain that started at the mark (`draining`), over half the
    ///   mark, no item is taken until the buffer is written down to half
    ///   the mark (a low-water mark);
    /// - otherwise, once the written part is at least as long as the rest,
    ///   the rest moves to the front: a copy of at most half the mark per
    ///   half the mark written, after a drain from the mark.
    ///
    /// A flush that stopped part way with more left than written leaves
    /// the rest where it is, and under the mark items are taken as usual
    /// (ready at once, as documented), until half the mark has been written
    /// in front of it: then the rest, if it is under the mark (items may
    /// follow it), is copied to an allocation of its own size, a copy of at
    /// most the mark per half the mark written. (Left there, flushes that
    /// each take a little under half would let written part and rest creep
    /// to twice the mark, and one more item would double that.) A rest over
    /// the mark takes no items, so nothing grows behind it.
    #[cold]
    fn after_partial_write(&mut self, draining: bool) {
        let len = self.buffer.len();
        let half = self.high_water_mark / 2;
        if draining && len > half {
            self.accept_below = half + 1;
        } else if self.front >= len {
            self.reuse_front();
        } else {
            if !draining && self.front >= half && len <= self.high_water_mark {
                self.buffer = BytesMut::from(&self.buffer[..]);
                self.front = 0;
            }
            self.accept_below = self.high_water_mark;
        }
    }

    /// Moves the bytes left (maybe none: `clear` keeps the written part
    /// in front too) to the start of the allocation. The written part in
    /// front must be at least as long as they are: asked for one byte more
    /// than the space behind them, `reserve` then moves them there instead
    /// of allocating.
    #[cold]
    fn reuse_front(&mut self) {
        debug_assert!(self.front >= self.buffer.len() && self.front > 0);
        let behind = self.buffer.capacity() - self.buffer.len();
        self.buffer.reserve(behind + 1);
        self.front = 0;
        self.accept_below = self.high_water_mark;
    }
}
