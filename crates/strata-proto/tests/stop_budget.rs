//! After a graceful stop, a `Pending` read with the task's budget spent
//! means "more to read next poll" while fewer bytes were read than had
//! arrived before the stop. If the read that spent the last unit found the
//! transport empty, nothing else wakes the task when the poll writes
//! nothing (the peer's last bytes are the start of a request): the stop
//! hung until the read timeout. Found by a review of the change that
//! introduced the rule; the connection now wakes itself in that case.

mod support;

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use strata_codec::{LinesCodec, LinesCodecError};
use strata_proto::pipeline::serve_connection;
use strata_proto::pipeline::{ErrorAction, ServerProto};
use strata_service::BoxError;
use support::{Echo, Flag, cfg, connected_pair, deadline};

/// Lines of up to 1 KiB.
struct LongLines;

impl ServerProto for LongLines {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(1024)
    }

    fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
        Some(format!("error: {err}"))
    }

    fn service_error(&self, err: &BoxError) -> ErrorAction<String> {
        ErrorAction::Respond(format!("failed: {err}"))
    }
}

/// A wrapper transport that reads at most 4 bytes at a time and spends a
/// budget unit on a read that found nothing (as a transport that accounts
/// after the fact might): that read can spend the task's last unit, and
/// nothing wakes the task.
struct Metered(strata_rt::net::TcpStream);

impl futures_io::AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(4);
        let read = Pin::new(&mut self.0).poll_read(cx, &mut buf[..n]);
        if read.is_pending()
            && let Poll::Ready(unit) =
                strata_rt::coop::poll_proceed(&mut Context::from_waker(std::task::Waker::noop()))
        {
            unit.made_progress();
        }
        read
    }
}

impl futures_io::AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// Connections holding 400..=640 bytes of an unfinished request at the
/// stop, read 4 bytes at a time (one budget unit per read, the socket's),
/// so that for one of them (508 bytes: 127 reads) the read that finds the
/// socket empty spends the last unit. Every stop must end promptly.
#[test]
fn a_stop_ends_when_the_budget_runs_out_on_an_empty_read() {
    let hung = deadline(60, || {
        let rt = strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            strata_rt::spawn(async {
                let mut conns = Vec::new();
                for n in (400..=640usize).step_by(4) {
                    let (mut client, server) = connected_pair();
                    let stop = Arc::new(Flag::default());
                    let stop2 = stop.clone();
                    let conn = strata_rt::spawn_local(async move {
                        serve_connection(Metered(server), &LongLines, Echo, &cfg(), stop2.wait())
                            .await
                    });
                    strata_rt::time::sleep(Duration::from_millis(20)).await;
                    // Part of a request: n bytes, no newline yet.
                    client.write_all("x".repeat(n).as_bytes()).unwrap();
                    stop.fire();
                    conns.push((n, client, conn));
                }
                let mut hung = Vec::new();
                for (n, _client, conn) in conns {
                    // Hang guard only: a stop with nothing left to read ends
                    // within a few polls (plus a 100 ms linger); the read
                    // timeout (30 s) would end a hung one much later.
                    match strata_rt::time::timeout(Duration::from_secs(3), conn).await {
                        Ok(r) => {
                            r.unwrap().unwrap();
                        }
                        Err(_) => hung.push(n),
                    }
                }
                hung
            })
            .await
            .unwrap()
        })
    });
    assert!(
        hung.is_empty(),
        "stop did not end (within 3 s) for connections holding {hung:?} bytes of a partial request"
    );
}
