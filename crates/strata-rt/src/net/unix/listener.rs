//! `UnixListener`: accepting Unix domain connections.

use std::fmt;
use std::io;
use std::path::Path;
use std::task::{Context, Poll, ready};

use mio::Interest;

use super::{SocketAddr, UnixStream};
use crate::context;
use crate::reactor::{Direction, PollEvented, Ready};

/// A Unix domain socket listening for connections.
///
/// The socket file is not removed on drop; remove it yourself if the path
/// should be reused.
///
/// # Examples
///
/// ```
/// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
/// use strata_rt::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("strata-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("sock");
/// let _ = std::fs::remove_file(&path);
/// strata_rt::run(async {
///     let listener = UnixListener::bind(&path)?;
///     let mut client = UnixStream::connect(&path).await?;
///     let (mut server, _) = listener.accept().await?;
///     client.write_all(b"hi").await?;
///     let mut buf = [0; 2];
///     server.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct UnixListener {
    io: PollEvented<mio::net::UnixListener>,
}

impl UnixListener {
    /// Creates the socket file at `path` and listens on it.
    ///
    /// On Linux and Android, a `path` starting with a NUL byte (`"\0name"`)
    /// binds `name` in the abstract namespace instead: no file is created,
    /// and the name is gone when the socket closes.
    ///
    /// # Errors
    ///
    /// The OS error, for example `AddrInUse` if the file exists;
    /// `InvalidInput` for an empty `path` or an empty abstract name
    /// (`"\0"`), on which the kernel would bind a random name instead.
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        context::require("UnixListener::bind");
        let l = mio::net::UnixListener::bind_addr(&super::socket_addr(path.as_ref())?)?;
        let io = PollEvented::new(
            l,
            Interest::READABLE,
            Ready::LISTENING,
            "UnixListener::bind",
        )?;
        Ok(UnixListener { io })
    }

    /// Wraps a std listener (switched to non-blocking mode).
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        context::require("UnixListener::from_std");
        listener.set_nonblocking(true)?;
        let io = PollEvented::new(
            mio::net::UnixListener::from_std(listener),
            Interest::READABLE,
            Ready::LISTENING,
            "UnixListener::from_std",
        )?;
        Ok(UnixListener { io })
    }

    /// Accepts a connection.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        self.io
            .wait(Direction::Read, |cx| self.poll_accept(cx))
            .await
    }

    /// Polls for a connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let (s, addr) = ready!(self.io.poll_io(cx, Direction::Read, |l| l.accept()))?;
        Poll::Ready(UnixStream::from_accepted(s, self.io.io_handle()).map(|s| (s, addr)))
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

impl_as_fd!(UnixListener);

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
