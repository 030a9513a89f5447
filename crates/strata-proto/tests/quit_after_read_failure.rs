//! A response the protocol marks as the last supersedes bad input read
//! behind it, but not a transport read that failed (not a reset, not bad
//! input: `ConnectionError::Io`): the connection ends with the I/O error,
//! as behind any other request. (A first version wiped it out too, and
//! the connection ended `Ok`.) `deadline` is the hang guard.

mod support;

use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use strata_proto::pipeline::{ConnectionError, serve_connection};
use strata_service::service_fn;
use support::{connected_pair, deadline, on_a_worker};

/// A strata `TcpStream` whose reads fail with `EIO` once `fail` is set.
struct FailsReadsAfter {
    inner: strata_rt::net::TcpStream,
    fail: Arc<AtomicBool>,
}

impl futures_io::AsyncRead for FailsReadsAfter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.fail.load(Ordering::SeqCst) {
            return Poll::Ready(Err(std::io::Error::from_raw_os_error(libc::EIO)));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for FailsReadsAfter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Lines, echoed; `bye` (to `quit`) is the connection's last response.
struct Quits;

impl strata_proto::pipeline::ServerProto for Quits {
    type Request = String;
    type Response = String;
    type Codec = strata_codec::LinesCodec;
    fn codec(&self) -> strata_codec::LinesCodec {
        strata_codec::LinesCodec::new()
    }
    fn closes_after(&self, response: &String) -> bool {
        response == "bye"
    }
}

fn run(request: &'static str, reply: &'static str) -> (Result<(), ConnectionError>, String) {
    deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let fail = Arc::new(AtomicBool::new(false));
            let fail2 = fail.clone();
            let conn = strata_rt::spawn(async move {
                let io = FailsReadsAfter {
                    inner: server,
                    fail: fail2,
                };
                let svc = service_fn(move |line: String| async move {
                    strata_rt::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, std::io::Error>(if line == request {
                        reply.to_string()
                    } else {
                        line
                    })
                });
                let cfg = strata_proto::ConnectionConfig::default()
                    .idle_timeout(None)
                    .read_timeout(None)
                    .write_timeout(None);
                serve_connection(io, &Quits, svc, &cfg, std::future::pending()).await
            });
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            client.write_all(format!("{request}\n").as_bytes()).unwrap();
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            // While the request runs, the transport's next read fails (a
            // byte wakes the connection for it).
            fail.store(true, Ordering::SeqCst);
            client.write_all(b"z").unwrap();
            let got = strata_rt::spawn_blocking(move || {
                let mut got = Vec::new();
                let _ = client.read_to_end(&mut got);
                got
            })
            .await
            .unwrap();
            (
                conn.await.unwrap(),
                String::from_utf8_lossy(&got).into_owned(),
            )
        })
    })
}

/// The reference: behind an ordinary request, the failed read ends the
/// connection with the I/O error once the request is answered.
#[test]
fn a_failed_read_behind_a_request_ends_the_connection_with_the_io_error() {
    let (ended, got) = run("slow", "slow");
    assert_eq!(got, "slow\n");
    assert!(
        matches!(ended, Err(ConnectionError::Io(_))),
        "ended as {ended:?}"
    );
}

/// Behind the last response, the same failed read does not vanish.
#[test]
fn a_failed_read_behind_the_last_response_is_not_superseded() {
    let (ended, got) = run("quit", "bye");
    assert_eq!(got, "bye\n");
    assert!(
        matches!(ended, Err(ConnectionError::Io(_))),
        "ended as {ended:?}"
    );
}
