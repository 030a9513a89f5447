//! Async sockets: TCP, UDP and Unix domain.
//!
//! Each socket is registered with one worker's reactor and can then be
//! used from any task on any thread. It is registered on its first
//! operation that waits on readiness (a read, write, accept, send or
//! receive; options and addresses do not count), with the worker that
//! makes it: a stream accepted in `block_on`, or by a task on one worker,
//! and handed to a task on another joins the worker of the task that
//! reads it. A socket first used off the workers (in `block_on`) joins the
//! worker that the runtime's next task spawned off the workers goes to
//! (from any thread) at the time it was created, or if it was created on
//! a worker, that worker; a stream accepted outside any runtime, its
//! listener's worker. `connect` waits for the connection, so a stream
//! connected in `block_on` is registered by the connect, as any socket
//! first used there. Errors of the registration itself (the runtime shut
//! down, say) come from that first operation. Streams implement
//! `futures_io::AsyncRead` and `AsyncWrite`, so any runtime-agnostic async
//! crate works on them.
//!
//! Only that worker delivers the socket's readiness, though: while it is
//! busy (a task that blocks it, or a long run of tasks) a task waiting on
//! the socket from another worker is not woken, even if its own worker is
//! idle, and a [`timeout`](crate::time::timeout) around that wait may
//! expire with the data already in the socket; tokio, where any idle
//! worker drives I/O, would wake it. A socket
//! used by the task that first used it gets its readiness from that
//! task's worker; one moved to a task on another worker after that keeps
//! its first worker.
//!
//! Several tasks may wait on the same socket in the same direction (for
//! example two tasks calling [`UdpSocket::recv_from`] on a shared socket);
//! each readiness event wakes all of them. That holds for the `async fn`s
//! (`recv_from`, `accept`, `TcpStream::readable`, ...). The `poll_*`
//! methods and the `AsyncRead`/`AsyncWrite` impls keep, as in tokio, only
//! the waker of the latest `poll_*` call per direction besides those: of
//! two tasks polling one socket at once that way, only the one that polled
//! last is woken, and a task that polled once and gave up holds nothing.
//!
//! Addresses are taken as [`ToSocketAddrs`]: socket addresses, or
//! strings such as `"localhost:80"`. The operations that wait
//! ([`TcpStream::connect`], [`UdpSocket::send_to`]) look a host name up on
//! the blocking pool when they run on a worker, so the system resolver
//! does not block the worker's other tasks; `bind` and
//! [`UdpSocket::connect`] look it up on the calling thread.
//!
//! Streams are read until `WouldBlock` before a reading task waits:
//! readiness is cleared only by `WouldBlock`, never assumed from a short
//! read. After a short read, though, when other tasks are waiting on the
//! worker and no event arrived in between, the next `poll_read` returns
//! `Pending` once with the task already woken (a yield): the task answers
//! what it read, the worker looks at I/O and runs the other tasks, and the
//! read that follows mostly finds the peer's next bytes instead of
//! `WouldBlock`. On a loaded line server this halves the number of `recv`
//! calls.

/// `AsFd` and `AsRawFd` for a socket type `$ty` with an `io:
/// PollEvented<_>` field, so options this crate does not wrap can be set
/// (through `socket2::SockRef`, for example). Do not read, write or close
/// the descriptor through it: the reactor tracks its readiness.
macro_rules! impl_as_fd {
    ($($ty:ty),*) => {$(
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.io.get_ref().as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.io.get_ref().as_raw_fd()
            }
        }
    )*};
}

/// `AsyncRead` and `AsyncWrite` for a stream type `$ty` (or `&$ty`) with
/// an `io: PollEvented<_>` field and a `shutdown_write` method. Flushing is
/// a no-op (writes go straight to the kernel); closing shuts down the write
/// direction, so the peer reads end of stream.
macro_rules! impl_async_io {
    ($ty:ty) => {
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.io.poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.io.poll_read_vectored(cx, bufs)
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.io.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.io.poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown_write())
            }
        }
    };
}

mod addr;
mod queued;
pub mod tcp;
mod udp;
#[cfg(unix)]
pub mod unix;

pub use addr::ToSocketAddrs;
pub use tcp::{TcpListener, TcpListenerBuilder, TcpStream};
pub use udp::UdpSocket;
#[cfg(unix)]
pub use unix::{UnixListener, UnixStream};
