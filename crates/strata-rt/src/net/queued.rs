//! The kernel's per-socket queue lengths (`FIONREAD`, `SIOCOUTQ`), shared
//! by every stream type and its halves.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Which of a socket's kernel queues [`queued_bytes`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    /// Received, not yet read (`FIONREAD`).
    Receive,
    /// Written, not yet taken by the peer (`SIOCOUTQ`, Linux only).
    Send,
}

/// The length of `queue` on the stream socket `fd`, in bytes.
///
/// # Errors
///
/// `Unsupported` for [`Queue::Send`] off Linux; otherwise the OS error of
/// the `ioctl(2)`.
pub(crate) fn queued_bytes(fd: BorrowedFd<'_>, queue: Queue) -> io::Result<usize> {
    let request = match queue {
        Queue::Receive => libc::FIONREAD,
        // SIOCOUTQ has the same request number as TIOCOUTQ; libc names
        // only the latter on every Linux target.
        #[cfg(target_os = "linux")]
        Queue::Send => libc::TIOCOUTQ,
        #[cfg(not(target_os = "linux"))]
        Queue::Send => return Err(io::Error::from(io::ErrorKind::Unsupported)),
    };
    let mut queued: libc::c_int = 0;
    // SAFETY: `fd` is borrowed, so it stays an open descriptor for the whole
    // call; both requests write exactly one `c_int` through the pointer,
    // which points at `queued`, live and writable for the whole call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, &raw mut queued) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(queued).unwrap_or(0))
}
