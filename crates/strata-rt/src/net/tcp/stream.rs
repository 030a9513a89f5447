//! `TcpStream`: a connected TCP socket.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use mio::Interest;

use super::split::{OwnedReadHalf, OwnedWriteHalf};
use crate::context;
use crate::net::ToSocketAddrs;
use crate::net::addr::{no_address, resolve};
use crate::net::queued::{Queue, queued_bytes};
use crate::reactor::{Direction, IoHandle, PollEvented, Ready};

/// A TCP connection.
///
/// Implements [`AsyncRead`](futures_io::AsyncRead) and
/// [`AsyncWrite`](futures_io::AsyncWrite), also for `&TcpStream`: where
/// tokio's `split()` lends out a read half and a write half, here two
/// shared references do (`let (mut rd, mut wr) = (&stream, &stream);`,
/// then read with one while writing with the other, in one task, through
/// `join`). For halves that move to tasks of their own,
/// [`into_split`](Self::into_split). (A `stream.split()` reaches
/// `StreamExt::split` of `futures-util`, which is for streams of items.)
///
/// Closing: [`AsyncWrite::poll_close`](futures_io::AsyncWrite::poll_close) shuts down the write direction
/// (the peer reads EOF); dropping the stream closes the socket.
///
/// # Cancel safety
///
/// A `poll_read` or `poll_write` that returns `Pending` has read or written
/// nothing, so the futures of `futures-util`'s `AsyncReadExt::read` and
/// `AsyncWriteExt::write` (one call each) are cancel-safe: dropped before
/// they complete, they lose no byte. Those that loop (`read_exact`,
/// `read_to_end`, `write_all`) are not: what they moved before the drop
/// is gone with them. The same holds for `&TcpStream`, the split halves
/// and [`UnixStream`](crate::net::UnixStream).
///
/// # Examples
///
/// ```
/// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
/// use strata_rt::net::{TcpListener, TcpStream};
///
/// strata_rt::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     strata_rt::spawn(async move {
///         let (mut conn, _) = listener.accept().await.unwrap();
///         conn.write_all(b"hello").await.unwrap();
///     });
///     let mut stream = TcpStream::connect(addr).await?;
///     let mut buf = String::new();
///     stream.read_to_string(&mut buf).await?;
///     assert_eq!(buf, "hello");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct TcpStream {
    io: PollEvented<mio::net::TcpStream>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each resolved address in turn.
    ///
    /// On a worker, a host name is looked up on the blocking pool (see
    /// [`ToSocketAddrs`]).
    ///
    /// # Errors
    ///
    /// The OS error of the last attempt, for example `ConnectionRefused`
    /// when nothing listens on the port. Never hangs on a refused connect.
    ///
    /// # Panics
    ///
    /// Panics if first polled outside a strata runtime. Once started in
    /// one, the future may be finished on any thread.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the socket it was
    /// connecting, if any: nothing is left half-open.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        // The reactor for the sockets this makes should the future move to
        // a thread outside any runtime before it makes them (after a name
        // lookup, or a refused address).
        let home = crate::reactor::home("TcpStream::connect");
        let mut last = None;
        for a in resolve(&addr, "TcpStream::connect").await? {
            match Self::connect_addr(a, &home).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_address))
    }

    async fn connect_addr(addr: SocketAddr, home: &Arc<IoHandle>) -> io::Result<TcpStream> {
        let mio_stream = mio::net::TcpStream::connect(addr)?;
        let io = PollEvented::with_home(
            mio_stream,
            Interest::READABLE | Interest::WRITABLE,
            Ready::EMPTY,
            home,
        )?;
        let stream = TcpStream { io };
        // A non-blocking connect completes when the socket turns writable;
        // then the socket error (if any) tells success from failure.
        poll_fn(|cx| {
            loop {
                let ev = ready!(stream.io.poll_ready(cx, Direction::Write))?;
                let s = stream.io.get_ref();
                if let Some(e) = s.take_error()? {
                    return Poll::Ready(Err(e));
                }
                match s.peer_addr() {
                    Ok(_) => return Poll::Ready(Ok(())),
                    // Spurious wake-up: still connecting. Forget the
                    // readiness and wait for the next event.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        stream.io.clear_readiness(ev)
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        })
        .await?;
        Ok(stream)
    }

    pub(crate) fn from_accepted(
        stream: mio::net::TcpStream,
        listener: &Arc<IoHandle>,
    ) -> io::Result<TcpStream> {
        // A just-accepted socket is almost always writable and, for
        // request/response protocols, often already readable: start
        // optimistic and let a `WouldBlock` correct it.
        let io = PollEvented::with_home(
            stream,
            Interest::READABLE | Interest::WRITABLE,
            Ready::READ_WRITE,
            listener,
        )?;
        Ok(TcpStream { io })
    }

    /// Wraps a connected std stream (switched to non-blocking mode).
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        context::require("TcpStream::from_std");
        stream.set_nonblocking(true)?;
        let io = PollEvented::new(
            mio::net::TcpStream::from_std(stream),
            Interest::READABLE | Interest::WRITABLE,
            Ready::READ_WRITE,
            "TcpStream::from_std",
        )?;
        Ok(TcpStream { io })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY`: send small writes at once instead of waiting to
    /// coalesce them (Nagle's algorithm). Request/response servers usually
    /// want it on.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
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

    /// Bytes written to this socket that the peer has not acknowledged yet
    /// (the kernel's send queue: `SIOCOUTQ`). A value that shrinks while no
    /// new bytes are written means the peer is taking data.
    ///
    /// # Errors
    ///
    /// `Unsupported` off Linux; otherwise the OS error of the `ioctl(2)`.
    pub fn unsent_bytes(&self) -> io::Result<usize> {
        queued_bytes(self.io.get_ref().as_fd(), Queue::Send)
    }

    /// Shuts down the read, write, or both directions (`shutdown(2)`).
    ///
    /// Tasks waiting to write on this stream are woken once its write
    /// direction is shut down, and their writes fail (`BrokenPipe`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)?;
        self.io.shut_down(how);
        Ok(())
    }

    /// Splits into a read half and a write half that can move to different
    /// tasks. Dropping the write half shuts down the write direction.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        super::split::split(Arc::new(self))
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

    /// Copies the bytes waiting in the socket into `buf` without taking
    /// them (`MSG_PEEK`), waiting until at least one has arrived: the count
    /// copied, or `Ok(0)` at the end of the stream. The next read returns
    /// the same bytes. For looking at a connection's first bytes before
    /// choosing how to handle it (a protocol or TLS sniff).
    ///
    /// As long as the bytes are not read, every `peek` returns at once:
    /// do not loop on it waiting for more to arrive.
    ///
    /// A pending error (the peer's reset) is the exception to "takes
    /// nothing": the OS reports it to one receive call, so the peek gets it
    /// and a read after it may find only the end of the stream. Take a
    /// peek's error as the connection's.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: no byte is taken from the socket.
    ///
    /// # Example
    ///
    /// ```
    /// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    /// use strata_rt::net::{TcpListener, TcpStream};
    ///
    /// strata_rt::run(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
    ///     client.write_all(b"GET / HTTP/1.1\r\n").await?;
    ///     let (mut conn, _) = listener.accept().await?;
    ///     let mut first = [0u8; 3];
    ///     let n = conn.peek(&mut first).await?;
    ///     assert_eq!(&first[..n], &b"GET"[..n]);
    ///     let mut all = [0u8; 3];
    ///     conn.read_exact(&mut all).await?; // the same bytes, still there
    ///     assert_eq!(&all, b"GET");
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.wait_io(Direction::Read, |s| s.peek(buf)).await
    }

    /// Polls to [`peek`](Self::peek): `Pending` (with `cx`'s waker
    /// registered) until a byte or the end of the stream has arrived.
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |s| s.peek(buf))
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

    pub(crate) fn poll_read_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, buf)
    }

    pub(crate) fn poll_read_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read_vectored(cx, bufs)
    }

    pub(crate) fn poll_write_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write(cx, buf)
    }

    pub(crate) fn poll_write_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write_vectored(cx, bufs)
    }

    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        match self.shutdown(Shutdown::Write) {
            // The peer may have reset the connection already; the write side
            // is closed either way.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }
}

impl_as_fd!(TcpStream);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl_async_io!(TcpStream);
impl_async_io!(&TcpStream);
