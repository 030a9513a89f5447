//! An in-memory peer for driving a connection by hand: what it sends, an
//! end of stream or a reset to come, and a record of what it was sent.
//! (A stand-in for a socket where a test polls the dispatcher itself; the
//! socket behaviour has its own tests over 127.0.0.1.)

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_io::{AsyncRead, AsyncWrite};

/// The peer's side of the transport.
#[derive(Default)]
pub struct Peer {
    /// Bytes the connection will read, in order.
    pub incoming: Vec<u8>,
    /// Reads fail with this once `incoming` is empty.
    pub error: Option<io::ErrorKind>,
    /// Reads return end of stream once `incoming` is empty.
    pub eof: bool,
    /// Read calls made.
    pub reads: usize,
    /// Everything written, and in how many calls.
    pub written: Vec<u8>,
    pub writes: usize,
    /// `poll_close` was called.
    pub closed: bool,
    read_waker: Option<Waker>,
}

/// The connection's side: an `AsyncRead + AsyncWrite` over a shared
/// [`Peer`].
#[derive(Clone, Default)]
pub struct Memory(pub Rc<RefCell<Peer>>);

impl Memory {
    /// Queues bytes for the connection to read, and wakes its reader.
    pub fn send(&self, b: &[u8]) {
        let mut p = self.0.borrow_mut();
        p.incoming.extend_from_slice(b);
        if let Some(w) = p.read_waker.take() {
            w.wake();
        }
    }

    /// From now on reads and writes fail as after a reset.
    pub fn reset(&self) {
        let mut p = self.0.borrow_mut();
        p.error = Some(io::ErrorKind::ConnectionReset);
        if let Some(w) = p.read_waker.take() {
            w.wake();
        }
    }

    /// What the connection wrote, as text.
    pub fn written(&self) -> String {
        String::from_utf8(self.0.borrow().written.clone()).unwrap()
    }
}

impl AsyncRead for Memory {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut p = self.0.borrow_mut();
        p.reads += 1;
        if !p.incoming.is_empty() {
            let n = buf.len().min(p.incoming.len());
            buf[..n].copy_from_slice(&p.incoming[..n]);
            p.incoming.drain(..n);
            return Poll::Ready(Ok(n));
        }
        if let Some(kind) = p.error {
            return Poll::Ready(Err(io::Error::from(kind)));
        }
        if p.eof {
            return Poll::Ready(Ok(0));
        }
        p.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Memory {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut p = self.0.borrow_mut();
        if let Some(kind) = p.error {
            return Poll::Ready(Err(io::Error::from(kind)));
        }
        p.writes += 1;
        p.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.borrow_mut().closed = true;
        Poll::Ready(Ok(()))
    }
}

/// A runtime with one worker.
pub fn one_worker_runtime() -> strata_rt::Runtime {
    strata_rt::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap()
}
