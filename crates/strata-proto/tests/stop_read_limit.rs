//! After a stop, `serve_connection` over a transport that is always ready
//! reads at most the documented 16 MiB more. Waits are watchdogs against
//! hangs only; assertions count bytes, never time.

mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use strata_proto::pipeline::serve_connection;
use support::{Echo, TestProto, cfg, deadline};

/// A peer that never stops sending: every read is filled at once with
/// `echo x` requests. After `cap` bytes it reports end of stream, only so
/// that a connection that never stops reading still ends (a hang guard).
/// Writes are all accepted.
struct Firehose {
    read: Arc<AtomicU64>,
    cap: u64,
}

const REQUEST: &[u8] = b"echo x\n";

impl futures_io::AsyncRead for Firehose {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let done = self.read.load(Ordering::Relaxed);
        if done >= self.cap {
            return Poll::Ready(Ok(0));
        }
        // Whole requests only, so that the stream is always well formed.
        let n = (buf.len() / REQUEST.len()) * REQUEST.len();
        for chunk in buf[..n].chunks_mut(REQUEST.len()) {
            chunk.copy_from_slice(REQUEST);
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
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `serve_connection`'s docs: after `stop`, with no kernel to ask, "a
/// connection reads on while `io` has data, but at most 16 MiB more".
/// A transport that is always ready and takes no part in strata's budget
/// (an in-memory pipe, a TLS or compression wrapper) never says `Pending`;
/// the bound must hold anyway. The stop fires before the first poll; the
/// peer would send 64 MiB (then the test ends the stream, a hang guard).
#[test]
fn after_stop_serve_connection_reads_at_most_16_mib_more_from_a_peer_that_never_stops() {
    const LIMIT: u64 = 16 << 20;
    const GUARD: u64 = 64 << 20;
    let read = Arc::new(AtomicU64::new(0));
    let counted = read.clone();
    let result = deadline(300, move || {
        let rt = support::memory::one_worker_runtime();
        // On a worker, as under `TcpServer`, where the cooperative budget
        // applies.
        let task = rt.handle().spawn(async move {
            let io = Firehose {
                read: counted,
                cap: GUARD,
            };
            // The stop has already happened.
            serve_connection(io, &TestProto, Echo, &cfg(), std::future::ready(()))
                .await
                .map_err(|e| e.to_string())
        });
        rt.block_on(task).expect("the connection task completes")
    });
    let total = read.load(Ordering::Relaxed);
    assert!(
        total <= LIMIT + (1 << 20),
        "after the stop, serve_connection read {} MiB from a peer that never stops sending \
         (documented: \"at most 16 MiB more\"); it stopped only because the test ended the \
         stream at {} MiB (connection result: {result:?})",
        total >> 20,
        GUARD >> 20
    );
}
