//! A scripted I/O object for driving `Framed` without sockets.
//!
//! Reads follow a script of byte chunks, `Pending` pauses and errors, then
//! report end of stream. Writes follow their own script (accept up to n
//! bytes, `Pending`, an error) and accept everything once it runs out.
//! Every call is counted and every written byte recorded.

#![allow(dead_code)] // each test file uses a different part

pub(crate) mod alloc;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_io::{AsyncRead, AsyncWrite};

#[derive(Debug)]
enum ReadStep {
    Data(Vec<u8>),
    Pending,
    Error(io::ErrorKind),
}

#[derive(Debug)]
enum WriteStep {
    Accept(usize),
    Pending,
    Error(io::ErrorKind),
}

/// The scripted I/O object.
#[derive(Debug, Default)]
pub(crate) struct Mock {
    reads: VecDeque<ReadStep>,
    writes: VecDeque<WriteStep>,
    /// Every byte accepted by `poll_write`, in order.
    pub(crate) written: Vec<u8>,
    pub(crate) read_calls: usize,
    pub(crate) write_calls: usize,
    pub(crate) flush_calls: usize,
    pub(crate) closed: bool,
    /// The largest buffer `poll_read` was offered.
    pub(crate) largest_read_buf: usize,
}

impl Mock {
    pub(crate) fn new() -> Self {
        Mock::default()
    }

    /// Next read returns these bytes (split if the reader offers less room).
    pub(crate) fn read(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.reads
            .push_back(ReadStep::Data(bytes.as_ref().to_vec()));
        self
    }

    /// Each chunk is its own read, with a `Pending` before each.
    pub(crate) fn read_chunks<'a>(mut self, chunks: impl IntoIterator<Item = &'a [u8]>) -> Self {
        for chunk in chunks {
            self = self.read_pending().read(chunk);
        }
        self
    }

    pub(crate) fn read_pending(mut self) -> Self {
        self.reads.push_back(ReadStep::Pending);
        self
    }

    pub(crate) fn read_error(mut self, kind: io::ErrorKind) -> Self {
        self.reads.push_back(ReadStep::Error(kind));
        self
    }

    /// Next write accepts at most `n` bytes.
    pub(crate) fn write_accept(mut self, n: usize) -> Self {
        self.writes.push_back(WriteStep::Accept(n));
        self
    }

    pub(crate) fn write_pending(mut self) -> Self {
        self.writes.push_back(WriteStep::Pending);
        self
    }

    pub(crate) fn write_error(mut self, kind: io::ErrorKind) -> Self {
        self.writes.push_back(WriteStep::Error(kind));
        self
    }

    /// Read steps not consumed yet.
    pub(crate) fn reads_left(&self) -> usize {
        self.reads.len()
    }
}

impl AsyncRead for Mock {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.read_calls += 1;
        this.largest_read_buf = this.largest_read_buf.max(buf.len());
        match this.reads.pop_front() {
            None => Poll::Ready(Ok(0)),
            Some(ReadStep::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(ReadStep::Error(kind)) => Poll::Ready(Err(io::Error::new(kind, "scripted"))),
            Some(ReadStep::Data(mut data)) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                if n < data.len() {
                    this.reads.push_front(ReadStep::Data(data.split_off(n)));
                }
                Poll::Ready(Ok(n))
            }
        }
    }
}

impl AsyncWrite for Mock {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.write_calls += 1;
        let n = match this.writes.pop_front() {
            None => buf.len(),
            Some(WriteStep::Accept(n)) => n.min(buf.len()),
            Some(WriteStep::Pending) => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Some(WriteStep::Error(kind)) => {
                return Poll::Ready(Err(io::Error::new(kind, "scripted")));
            }
        };
        this.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().flush_calls += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().closed = true;
        Poll::Ready(Ok(()))
    }
}

/// A context whose waker does nothing, for polling by hand.
pub(crate) fn noop_cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}
