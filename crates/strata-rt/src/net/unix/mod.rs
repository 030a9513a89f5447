//! Unix domain stream sockets.

mod listener;
mod stream;

pub use listener::UnixListener;
pub use stream::UnixStream;

/// The address of a Unix domain socket (a path, or unnamed).
pub type SocketAddr = std::os::unix::net::SocketAddr;
