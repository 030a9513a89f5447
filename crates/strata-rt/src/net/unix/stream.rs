//! `UnixStream`: a connected Unix domain stream socket.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::task::{Poll, ready};

use mio::Interest;

use super::SocketAddr;
use crate::context;
use crate::net::queued::{Queue, queued_bytes};
use crate::reactor::{Direction, IoHandle, PollEvented, Ready};

/// A Unix domain stream connection; implements [`AsyncRead`](futures_io::AsyncRead) and
/// [`AsyncWrite`](futures_io::AsyncWrite) (also for `&UnixStream`).
pub struct UnixStream {
    io: PollEvented<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path` (on Linux and Android, a `path`
    /// starting with a NUL byte names an abstract socket, as in
    /// [`UnixListener::bind`](super::UnixListener::bind)).
    ///
    /// # Errors
    ///
    /// The OS error, for example `NotFound` or `ConnectionRefused`. A
    /// listener whose backlog is full refuses at once (the OS answers a
    /// non-blocking connect with `EAGAIN`): that is `ConnectionRefused`
    /// too, saying so, rather than a `WouldBlock` no caller should see.
    /// `InvalidInput` for an empty `path` or an empty abstract name.
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the socket it was
    /// connecting: nothing is left half-open.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        context::require("UnixStream::connect");
        let s = mio::net::UnixStream::connect_addr(&super::socket_addr(path.as_ref())?).map_err(
            |e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        "the listener's backlog is full",
                    )
                } else {
                    e
                }
            },
        )?;
        let stream = Self::from_mio(s, Ready::EMPTY, "UnixStream::connect")?;
        poll_fn(|cx| {
            ready!(stream.io.poll_ready(cx, Direction::Write))?;
            match stream.io.get_ref().take_error()? {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Ready(Ok(())),
            }
        })
        .await?;
        Ok(stream)
    }

    /// A connected pair of streams.
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        context::require("UnixStream::pair");
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((
            Self::from_mio(a, Ready::READ_WRITE, "UnixStream::pair")?,
            Self::from_mio(b, Ready::READ_WRITE, "UnixStream::pair")?,
        ))
    }

    /// Wraps a connected std stream (switched to non-blocking mode).
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        context::require("UnixStream::from_std");
        stream.set_nonblocking(true)?;
        Self::from_mio(
            mio::net::UnixStream::from_std(stream),
            Ready::READ_WRITE,
            "UnixStream::from_std",
        )
    }

    #[track_caller]
    pub(super) fn from_mio(
        s: mio::net::UnixStream,
        ready: Ready,
        api: &str,
    ) -> io::Result<UnixStream> {
        let io = PollEvented::new(s, Interest::READABLE | Interest::WRITABLE, ready, api)?;
        Ok(UnixStream { io })
    }

    /// Registers a stream a listener accepted (see `PollEvented::with_home`).
    pub(super) fn from_accepted(
        s: mio::net::UnixStream,
        listener: &Arc<IoHandle>,
    ) -> io::Result<UnixStream> {
        let io = PollEvented::with_home(
            s,
            Interest::READABLE | Interest::WRITABLE,
            Ready::READ_WRITE,
            listener,
        )?;
        Ok(UnixStream { io })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Bytes the peer sent that wait in the kernel's receive queue, not yet
    /// read (`FIONREAD`): what a read could take right now, whether or not
    /// the reactor has reported it yet.
    ///
    /// # Errors
    ///
    /// The OS error of the `ioctl(2)`.
    pub fn unread_bytes(&self) -> io::Result<usize> {
        queued_bytes(self.io.get_ref().as_fd(), Queue::Receive)
    }

    /// Bytes written to this socket that the peer has not read yet
    /// (`SIOCOUTQ`). Unlike TCP's, the count is of the kernel memory those
    /// bytes are charged as, bookkeeping included, so it can exceed the
    /// bytes written; it is 0 once the peer has read everything. A value
    /// that shrinks while no new bytes are written means the peer is
    /// reading.
    ///
    /// # Errors
    ///
    /// `Unsupported` off Linux; otherwise the OS error of the `ioctl(2)`.
    pub fn unsent_bytes(&self) -> io::Result<usize> {
        queued_bytes(self.io.get_ref().as_fd(), Queue::Send)
    }

    /// Reads what the socket holds now, without waiting: the bytes read,
    /// `Ok(0)` at the end of the stream, or `WouldBlock` if nothing has
    /// arrived (then [`readable`](Self::readable) waits for more). For a
    /// task that waits with `readable().await` and then reads, as with
    /// tokio's `try_read`. It neither yields nor spends the task's
    /// cooperative budget.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read as _;
        self.io.try_io(Direction::Read, |mut s| s.read(buf))
    }

    /// Writes what the socket takes now, without waiting: the bytes
    /// written, or `WouldBlock` if its send buffer is full (then
    /// [`writable`](Self::writable) waits for room). It neither yields nor
    /// spends the task's cooperative budget.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        use std::io::Write as _;
        self.io.try_io(Direction::Write, |mut s| s.write(buf))
    }

    /// Waits until the socket may be readable: then read with
    /// [`try_read`](Self::try_read), which may still say `WouldBlock`
    /// (wait again then), or with the `AsyncRead` methods.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read).await
    }

    /// Waits until the socket may be writable.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write).await
    }

    /// Shuts down the read, write, or both directions.
    ///
    /// Tasks waiting to write on this stream are woken once its write
    /// direction is shut down, and their writes fail (`BrokenPipe`).
    ///
    /// The peer's `shutdown(Read)` is another matter: Linux reports no
    /// event for it on Unix sockets, so a task waiting to write into a
    /// full buffer is woken only when the peer reads or closes the socket
    /// (a blocking std write fails at once with `BrokenPipe`; tokio waits
    /// as strata does).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)?;
        self.io.shut_down(how);
        Ok(())
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }
}

impl_as_fd!(UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl_async_io!(UnixStream);
impl_async_io!(&UnixStream);
