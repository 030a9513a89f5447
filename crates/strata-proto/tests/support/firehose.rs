//! A peer that never stops sending: an in-memory transport, always ready,
//! whose reads repeat a pattern (a request line, say) and whose writes are
//! all accepted. It ends its stream after `cap` bytes, a hang guard only,
//! and counts the bytes read from it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// See the module docs.
pub struct Firehose {
    pattern: &'static [u8],
    cap: u64,
    read: Arc<AtomicU64>,
}

impl Firehose {
    /// A peer that sends `pattern` over and over, `cap` bytes in all; the
    /// counter says how many were read so far.
    pub fn new(pattern: &'static [u8], cap: u64) -> (Firehose, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        let peer = Firehose {
            pattern,
            cap,
            read: read.clone(),
        };
        (peer, read)
    }
}

impl futures_io::AsyncRead for Firehose {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let done = self.read.load(Ordering::Relaxed);
        let n = usize::try_from(self.cap.saturating_sub(done))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let at = usize::try_from(done % self.pattern.len() as u64).expect("under the length");
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = self.pattern[(at + i) % self.pattern.len()];
        }
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for Firehose {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
