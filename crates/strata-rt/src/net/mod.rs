//! Async sockets: TCP, UDP and Unix domain.
//!
//! Each socket is registered with one worker's reactor (the current worker
//! when created on one, else one chosen round-robin) and can then be used
//! from any task on any thread. Streams implement `futures_io::AsyncRead`
//! and `AsyncWrite`, so any runtime-agnostic async crate works on them.
//!
//! Several tasks may wait on the same socket in the same direction (for
//! example two tasks calling [`UdpSocket::recv_from`] on a shared socket);
//! each readiness event wakes all of them.

mod addr;
pub mod tcp;
mod udp;
#[cfg(unix)]
pub mod unix;

pub use tcp::{TcpListener, TcpListenerBuilder, TcpStream};
pub use udp::UdpSocket;
#[cfg(unix)]
pub use unix::{UnixListener, UnixStream};
