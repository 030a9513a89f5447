//! Unix domain stream sockets.

mod listener;
mod stream;

pub use listener::UnixListener;
pub use stream::UnixStream;

use std::io;
use std::path::Path;

/// The address of a Unix domain socket (a path, an abstract name on
/// Linux, or unnamed).
pub type SocketAddr = std::os::unix::net::SocketAddr;

/// The socket address `path` names. On Linux and Android a path that
/// starts with a NUL byte names a socket in the abstract namespace (the
/// bytes after the NUL, no file), as in tokio; elsewhere such a path is
/// refused, as any path with a NUL byte is.
///
/// Two names are refused because the kernel would bind a random abstract
/// name instead (autobind), where no one could connect: the empty path
/// (std encodes it as an address of the family alone), and the empty
/// abstract name `"\0"` (mio, which makes the system call, gives it the
/// same length).
fn socket_addr(path: &Path) -> io::Result<SocketAddr> {
    if path.as_os_str().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an empty Unix socket path",
        ));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::ffi::OsStrExt;
        if let Some(name) = path.as_os_str().as_bytes().strip_prefix(b"\0") {
            if name.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an empty abstract socket name; give one after the NUL byte",
                ));
            }
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            return SocketAddr::from_abstract_name(name);
        }
    }
    SocketAddr::from_pathname(path)
}
