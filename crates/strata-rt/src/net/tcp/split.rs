//! Owned read and write halves of a `TcpStream`.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use super::TcpStream;

pub(super) fn split(stream: Arc<TcpStream>) -> (OwnedReadHalf, OwnedWriteHalf) {
    (
        OwnedReadHalf {
            stream: stream.clone(),
        },
        OwnedWriteHalf {
            stream,
            shutdown_on_drop: true,
        },
    )
}

/// The read half of a [`TcpStream`], from [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    stream: Arc<TcpStream>,
}

/// The write half of a [`TcpStream`], from [`TcpStream::into_split`].
///
/// Dropping it (or closing it) shuts down the write direction, so the peer
/// sees EOF; the read half stays usable.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    stream: Arc<TcpStream>,
    shutdown_on_drop: bool,
}

/// The error of [`OwnedReadHalf::reunite`] when the halves came from
/// different streams; it hands both halves back.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl std::fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tried to reunite halves of different TCP streams")
    }
}

impl std::error::Error for ReuniteError {}

impl OwnedReadHalf {
    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Bytes the peer sent that wait in the kernel's receive queue, not yet
    /// read (`FIONREAD`): what a read could take right now, whether or not
    /// the reactor has reported it yet. See [`TcpStream::unread_bytes`].
    ///
    /// # Errors
    ///
    /// The OS error of the `ioctl(2)`.
    pub fn unread_bytes(&self) -> io::Result<usize> {
        self.stream.unread_bytes()
    }

    /// Copies waiting bytes without taking them; see [`TcpStream::peek`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.peek(buf).await
    }

    /// Polls to peek; see [`TcpStream::poll_peek`].
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_peek(cx, buf)
    }

    /// Puts the two halves of one stream back together.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`], holding both halves, if they belong to different
    /// streams.
    pub fn reunite(self, mut other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        if !Arc::ptr_eq(&self.stream, &other.stream) {
            return Err(ReuniteError(self, other));
        }
        other.shutdown_on_drop = false;
        let stream = other.stream.clone();
        drop(other);
        drop(self);
        Ok(Arc::into_inner(stream).expect("both halves dropped, one reference left"))
    }
}

impl OwnedWriteHalf {
    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Bytes written to this socket that the peer has not acknowledged yet
    /// (the kernel's send queue: `SIOCOUTQ`). A value that shrinks while no
    /// new bytes are written means the peer is taking data. See
    /// [`TcpStream::unsent_bytes`].
    ///
    /// # Errors
    ///
    /// `Unsupported` off Linux; otherwise the OS error of the `ioctl(2)`.
    pub fn unsent_bytes(&self) -> io::Result<usize> {
        self.stream.unsent_bytes()
    }

    /// Drops the half without shutting down the write direction.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.stream.shutdown_write();
        }
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_read_priv(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_read_vectored_priv(cx, bufs)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_vectored_priv(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.stream.shutdown_write())
    }
}
