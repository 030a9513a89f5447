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

mod read;
mod write;

pub(crate) use read::ReadState;
pub(crate) use write::WriteState;

/// Truncates `buf` to `len` when dropped, also on unwind: what a read or
/// an encoder added is cut back unless the guard's `len` is moved past it.
struct TruncateOnDrop<'a> {
    buf: &'a mut bytes::BytesMut,
    len: usize,
}

impl Drop for TruncateOnDrop<'_> {
    #[inline]
    fn drop(&mut self) {
        self.buf.truncate(self.len);
    }
}

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
