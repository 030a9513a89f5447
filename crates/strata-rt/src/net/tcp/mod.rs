//! TCP: a listener, a stream, and the stream's owned halves.

mod listener;
mod split;
mod stream;

pub use listener::{TcpListener, TcpListenerBuilder};
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::TcpStream;
