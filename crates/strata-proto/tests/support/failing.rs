//! A real connection whose transport fails on demand.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Makes the error a failing operation returns.
pub type MakeError = Box<dyn Fn() -> io::Error + Send>;

/// A strata `TcpStream` whose reads fail with `read_error()` once the
/// first bytes were read (with `None`, they wait forever instead), and
/// whose writes fail with `write_error()`, if given.
pub struct Failing {
    inner: strata_rt::net::TcpStream,
    read_error: Option<MakeError>,
    write_error: Option<MakeError>,
    read_some: bool,
}

impl Failing {
    pub fn new(
        inner: strata_rt::net::TcpStream,
        read_error: Option<MakeError>,
        write_error: Option<MakeError>,
    ) -> Failing {
        Failing {
            inner,
            read_error,
            write_error,
            read_some: false,
        }
    }

    /// Fails with the OS error `errno`.
    pub fn os(errno: i32) -> MakeError {
        Box::new(move || io::Error::from_raw_os_error(errno))
    }
}

impl futures_io::AsyncRead for Failing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.read_some {
            return match &self.read_error {
                Some(make) => Poll::Ready(Err(make())),
                None => Poll::Pending,
            };
        }
        let n = std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.read_some = n > 0;
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for Failing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(make) = &self.write_error {
            return Poll::Ready(Err(make()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
