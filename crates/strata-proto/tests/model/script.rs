//! Scripted transports: a reader and a writer that move bytes in pieces
//! of the sizes a script picks, and return `Pending` or `Interrupted`
//! where it says. Used by the pipeline model (`mod.rs`) and, by path, by
//! the `framed` and `pipeline` fuzz targets.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// What the scripted transport does on one call.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// Move at most this many bytes (at least one).
    Take(usize),
    /// `Pending`, waking at once.
    Pending,
    /// Scribble on the offered buffer, then fail with `Interrupted`.
    Interrupted,
}

/// The step a script byte names: `Pending`, `Interrupted`, or a size
/// from 1 to 94 bytes.
pub fn step(b: u8) -> Step {
    match b % 8 {
        0 => Step::Pending,
        1 => Step::Interrupted,
        _ => Step::Take(usize::from(b / 8) * 3 + 1),
    }
}

/// A reader that replays `data` as `script` says, then ends (`Ok(0)`).
pub struct Reader<'a> {
    data: &'a [u8],
    script: VecDeque<Step>,
}

impl AsyncRead for Reader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.script.pop_front().unwrap_or(Step::Take(usize::MAX)) {
            Step::Pending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Step::Interrupted => {
                buf.fill(b'\n');
                Poll::Ready(Err(io::ErrorKind::Interrupted.into()))
            }
            Step::Take(most) => {
                let n = most.min(buf.len()).min(this.data.len());
                buf[..n].copy_from_slice(&this.data[..n]);
                // Junk past the count: a reader may leave it there.
                buf[n..].fill(b'\n');
                this.data = &this.data[n..];
                Poll::Ready(Ok(n))
            }
        }
    }
}

/// A writer that takes bytes as `script` says; flushing and closing are
/// each `Pending` every other time.
pub struct Writer {
    pub written: Vec<u8>,
    script: VecDeque<Step>,
    /// The next flush, and the next close, is `Pending`.
    flush_waits: bool,
    close_waits: bool,
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.script.pop_front().unwrap_or(Step::Take(usize::MAX)) {
            Step::Pending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Step::Interrupted => Poll::Ready(Err(io::ErrorKind::Interrupted.into())),
            Step::Take(most) => {
                let n = most.min(buf.len());
                this.written.extend_from_slice(&buf[..n]);
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        every_other(&mut self.get_mut().flush_waits, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        every_other(&mut self.get_mut().close_waits, cx)
    }
}

/// `Pending` (waking at once) when `wait` is set, else ready; flips
/// `wait` either way.
fn every_other(wait: &mut bool, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    *wait = !*wait;
    if !*wait {
        return Poll::Ready(Ok(()));
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

impl<'a> Reader<'a> {
    /// Replays `data`, each call doing what the next byte of `script`
    /// says (see [`step`]), then reading whole buffers.
    pub fn new(data: &'a [u8], script: &[u8]) -> Self {
        Reader {
            data,
            script: script.iter().map(|&b| step(b)).collect(),
        }
    }
}

impl Writer {
    /// A writer whose calls do what the bytes of `script` say (see
    /// [`step`]), then take whole buffers.
    pub fn new(script: &[u8]) -> Self {
        Writer {
            written: Vec::new(),
            script: script.iter().map(|&b| step(b)).collect(),
            flush_waits: false,
            close_waits: false,
        }
    }
}
