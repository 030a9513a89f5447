//! The write half: [`WriteState`], its buffer and high-water mark.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use futures_io::AsyncWrite;

use crate::Encoder;

use super::{DEFAULT_HIGH_WATER_MARK, LARGE_BUFFER, TruncateOnDrop};

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
    /// fails, or panics, after appending part of a frame leaves no half
    /// frame to be flushed (a writer used again after a caught panic would
    /// send the next frame behind it).
    // Always inlined, like `Framed::start_send`: left to the inliner, a
    // busy caller keeps it (and the encoder) out of line, and the call
    // costs about as much as encoding a short frame.
    #[inline(always)]
    pub(crate) fn start_send<I, C: Encoder<I>>(
        &mut self,
        encoder: &mut C,
        item: I,
    ) -> Result<(), C::Error> {
        let len = self.buffer.len();
        let mut guard = TruncateOnDrop {
            buf: &mut self.buffer,
            len,
        };
        let result = encoder.encode(item, guard.buf);
        if result.is_ok() {
            // Keep the frame: cut back to where it ends (no change).
            guard.len = guard.buf.len();
        }
        result
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
        ready!(retrying(|| Pin::new(&mut *io).poll_flush(cx)))?;
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
        retrying(|| Pin::new(&mut *io).poll_close(cx)).map_err(E::from)
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

/// `poll` again while it says `Interrupted`, as the writes do: a signal
/// that cut a call short is no error of the transport's.
fn retrying(mut poll: impl FnMut() -> Poll<io::Result<()>>) -> Poll<io::Result<()>> {
    loop {
        match poll() {
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
