//! The read half: [`ReadState`], its phases and read window, and the
//! thread's scratch buffer for reads into an empty buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures_io::AsyncRead;

use crate::Decoder;

use super::{
    DEFAULT_READ_WINDOW, LARGE_BUFFER, MAX_READ_WINDOW, MAX_SET_READ_WINDOW, SMALL_REMAINDER,
    TruncateOnDrop,
};

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

/// One read of at most `window` bytes appended to `buffer` (zeroed
/// first: the crate has no unsafe code). Out of line: inlined, its unwind
/// guard changed how the whole read path compiled (callgrind, line server
/// at D=16: about 6 instructions per request more).
#[inline(never)]
fn read_after<T: AsyncRead + Unpin>(
    buffer: &mut BytesMut,
    window: usize,
    io: &mut T,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let filled = buffer.len();
    buffer.resize(filled + window, 0);
    // Cut back to what arrived, also when the read panics: a reader used
    // again after the panic was caught must not take the window for bytes
    // that arrived.
    let mut guard = TruncateOnDrop {
        buf: buffer,
        len: filled,
    };
    let result = read_retrying(io, cx, &mut guard.buf[filled..]);
    if let Poll::Ready(Ok(n)) = &result {
        guard.len = filled + (*n).min(window);
    }
    result
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
                match self.phase {
                    ReadPhase::Framing => self.phase = ReadPhase::Reading,
                    // `decode_eof` is not called again once it said `None`:
                    // the stream ends, as in `poll_next`.
                    ReadPhase::Draining => {
                        self.phase = ReadPhase::Ended;
                        self.buffer = BytesMut::new();
                    }
                    _ => {}
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
            // (`read_after` cuts the buffer back to what arrived, also when
            // the read panics.)
            let room = self.window.min(limit - self.buffer.len());
            let result = read_after(&mut self.buffer, room, io, cx);
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
            None => read_after(&mut self.buffer, self.window, io, cx),
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
        } else if self.buffer.len() < SMALL_REMAINDER && self.peak >= LARGE_BUFFER {
            // Judged by what the buffer held, not by its capacity: a large
            // capacity with little ever held in it is a decoder's `reserve`
            // for the frame now arriving, which it asked for so that the
            // frame is not copied as it grows; moving the start of that
            // frame to a small buffer would drop the reservation at every
            // read that waits (one frame-sized allocation each).
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
