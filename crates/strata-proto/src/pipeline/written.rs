//! An I/O wrapper that counts the bytes written and read through it: the
//! write timeout tells a peer that reads slowly (the count moves) from one
//! that stopped reading (it does not), and a graceful stop knows when it
//! has read what had arrived before it. It also remembers whether the
//! transport itself failed a read, or reported the peer gone, so that the
//! dispatcher need not dig that out of the codec's error.

use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// `io`, plus the number of bytes written and read through it so far.
#[derive(Debug)]
pub(crate) struct Counted<T> {
    io: T,
    written: u64,
    read: u64,
    /// The last read's error, if it failed, and the last failed write's
    /// (or flush's, close's), as an OS code: 0 for none; for an error
    /// without one (a transport in user space: TLS, an in-memory pipe),
    /// [`GONE`] if its kind says the peer is gone, -1 otherwise. Plain
    /// stores (a call on the error path cost the
    /// request path 25 to 60 instructions at depth 1, callgrind); sorted
    /// only when needed. A read that does not fail (data, or `Pending`)
    /// clears the read's: a failure that was retried (`Interrupted`) is no
    /// reason for a later decoder error.
    read_error: i32,
    write_error: i32,
}

impl<T> Counted<T> {
    pub(crate) fn new(io: T) -> Self {
        Counted {
            io,
            written: 0,
            read: 0,
            read_error: 0,
            write_error: 0,
        }
    }

    /// Whether the last read of the transport failed (not counting
    /// `EINTR`).
    pub(crate) fn read_failed(&self) -> bool {
        self.read_error != 0 && self.read_error != libc::EINTR
    }

    /// Forgets the last read's failure: its error was dealt with (the
    /// reset watch drops what is not a reset).
    pub(crate) fn forget_read_error(&mut self) {
        self.read_error = 0;
    }

    /// Whether the transport's own error, in either direction, said the
    /// peer is gone (a reset, a broken pipe, out of reach), by its OS code
    /// or, without one, by its kind.
    pub(crate) fn gone(&self) -> bool {
        [self.read_error, self.write_error].into_iter().any(|code| {
            code == GONE || code > 0 && super::error::reset(&io::Error::from_raw_os_error(code))
        })
    }

    /// Bytes read so far.
    pub(crate) fn read(&self) -> u64 {
        self.read
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The wrapped transport.
    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    #[inline]
    fn count(&mut self, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &r {
            Poll::Ready(Ok(n)) => self.written += *n as u64,
            Poll::Ready(Err(e)) => self.write_error = error_code(e),
            Poll::Pending => {}
        }
        r
    }

    #[inline]
    fn counted_read(&mut self, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &r {
            Poll::Ready(Ok(n)) => {
                self.read += *n as u64;
                self.read_error = 0;
            }
            Poll::Ready(Err(_)) => return self.read_failed_with(r),
            Poll::Pending => self.read_error = 0,
        }
        r
    }

    /// `counted_read` for a failed read. The result goes through by value:
    /// the read path that handed `error_code` the error by reference, even
    /// out of line, cost about 55 instructions per request at depth 1
    /// (callgrind), this none.
    #[cold]
    #[inline(never)]
    fn read_failed_with(&mut self, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Err(e)) = &r {
            self.read_error = error_code(e);
        }
        r
    }

    #[inline]
    fn checked(&mut self, r: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
        if let Poll::Ready(Err(e)) = &r {
            self.write_error = error_code(e);
        }
        r
    }
}

/// [`Counted`]'s code for an error without an OS code whose kind says the
/// peer is gone.
const GONE: i32 = -2;

/// An error as [`Counted`] keeps it. Out of line: the request path only
/// calls it when a transport fails.
#[cold]
#[inline(never)]
fn error_code(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(code) => code,
        // `reset` leaves `UnexpectedEof` out (a decoder reports a cut
        // frame with it), but from the transport itself (TLS: a peer gone
        // without `close_notify`) it means the peer went.
        None if super::error::reset(e) || e.kind() == io::ErrorKind::UnexpectedEof => GONE,
        None => -1,
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    #[inline]
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        self.counted_read(r)
    }

    #[inline]
    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_read_vectored(cx, bufs);
        self.counted_read(r)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    #[inline]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.count(r)
    }

    #[inline]
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.count(r)
    }

    #[inline]
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.checked(r)
    }

    #[inline]
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_close(cx);
        self.checked(r)
    }
}
