//! A transport that always says `Interrupted`, met by the watch for a
//! reset that runs while requests are in flight after bad input: the
//! watch yields after a few, as the linger gives up, so the worker is not
//! held and the connection ends. (The watch once read again at once
//! without a bound, and the connection never ended.) `deadline` is the
//! hang guard.

mod support;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use strata_proto::pipeline::serve_connection;
use strata_service::service_fn;
use support::deadline;

/// Lines of at most 8 bytes.
struct Short;

impl strata_proto::pipeline::ServerProto for Short {
    type Request = String;
    type Response = String;
    type Codec = strata_codec::LinesCodec;
    fn codec(&self) -> strata_codec::LinesCodec {
        strata_codec::LinesCodec::with_max_length(8)
    }
}

/// Gives a good line and an over-long one in one read, then reports
/// `Interrupted` on every read.
struct Storm {
    sent: bool,
}

impl futures_io::AsyncRead for Storm {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if !self.sent {
            self.sent = true;
            let bytes = b"a\nfar too long a line\n";
            buf[..bytes.len()].copy_from_slice(bytes);
            return Poll::Ready(Ok(bytes.len()));
        }
        Poll::Ready(Err(std::io::ErrorKind::Interrupted.into()))
    }
}

impl futures_io::AsyncWrite for Storm {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The first request is still running when the bad line is read: reading
/// stops and the watch for a reset runs until it finishes. With the
/// transport always interrupted, the connection still ends, on its bad
/// request.
#[test]
fn a_transport_that_keeps_saying_interrupted_does_not_hold_the_reset_watch_forever() {
    let ended = deadline(20, || {
        let rt = strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let svc = service_fn(|l: String| async move {
                strata_rt::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(l)
            });
            let cfg = strata_proto::ConnectionConfig::default()
                .idle_timeout(None)
                .read_timeout(None)
                .write_timeout(None);
            strata_rt::spawn(async move {
                serve_connection(
                    Storm { sent: false },
                    &Short,
                    svc,
                    &cfg,
                    std::future::pending(),
                )
                .await
            })
            .await
            .unwrap()
        })
    });
    assert!(ended.is_err(), "ended as {ended:?}");
}
