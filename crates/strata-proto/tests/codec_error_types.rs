//! A codec whose error type is `Arc<io::Error>` (the usual cloneable
//! error): a vanished peer reported through it is still a vanished peer,
//! on a read (a disconnect, no error line) and on a write (`Ok(())`), as
//! through a codec whose error holds the `io::Error` itself. (The `Arc` is
//! not itself an `io::Error`, and its `source()` skips the one inside, so
//! it was taken for bad input and a failed write.)

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use strata_codec::{Decoder, Encoder};
use strata_proto::pipeline::{ConnectionError, ServerProto, serve_connection};
use strata_service::service_fn;
use support::{cfg, connected_pair, deadline};

fn on_a_worker<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let rt = strata_rt::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap();
    rt.block_on(async { strata_rt::spawn(fut).await.unwrap() })
}

/// Lines, with a cloneable error: `Arc<io::Error>` (From<io::Error> holds).
struct ArcLines;
impl Decoder for ArcLines {
    type Item = Vec<u8>;
    type Error = Arc<std::io::Error>;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<u8>>, Self::Error> {
        match src.iter().position(|&b| b == b'\n') {
            Some(i) => Ok(Some(src.split_to(i + 1).to_vec())),
            None => Ok(None),
        }
    }
}
impl Encoder<Vec<u8>> for ArcLines {
    type Error = Arc<std::io::Error>;
    fn encode(&mut self, item: Vec<u8>, dst: &mut BytesMut) -> Result<(), Self::Error> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}
struct ArcProto;
impl ServerProto for ArcProto {
    type Request = Vec<u8>;
    type Response = Vec<u8>;
    type Codec = ArcLines;
    fn codec(&self) -> ArcLines {
        ArcLines
    }
    fn decode_error(&self, _: &Arc<std::io::Error>) -> Option<Vec<u8>> {
        Some(b"error: bad\n".to_vec())
    }
}

/// Reads fail with `errno` (0: stay pending) once the first bytes were
/// read; writes fail with `write_errno`, if set.
struct Dies {
    inner: strata_rt::net::TcpStream,
    errno: i32,
    write_errno: Option<i32>,
    read_some: bool,
}
impl futures_io::AsyncRead for Dies {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.read_some && self.errno == 0 {
            return Poll::Pending;
        }
        if self.read_some {
            return Poll::Ready(Err(std::io::Error::from_raw_os_error(self.errno)));
        }
        let n = std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.read_some = n > 0;
        Poll::Ready(Ok(n))
    }
}
impl futures_io::AsyncWrite for Dies {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.write_errno {
            return Poll::Ready(Err(std::io::Error::from_raw_os_error(e)));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

fn run(
    send: &'static [u8],
    errno: i32,
    write_errno: Option<i32>,
) -> (Result<(), ConnectionError>, Vec<u8>) {
    deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let conn = strata_rt::spawn_local(async move {
                let io = Dies {
                    inner: server,
                    errno,
                    write_errno,
                    read_some: false,
                };
                let echo = service_fn(|r: Vec<u8>| async move { Ok::<_, std::io::Error>(r) });
                serve_connection(io, &ArcProto, echo, &cfg(), std::future::pending()).await
            });
            client.write_all(send).unwrap();
            let ended = conn.await.unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = Vec::new();
            let _ = client.read_to_end(&mut got);
            (ended, got)
        })
    })
}

/// A kernel reset (or ETIMEDOUT) on a read, reported through a codec whose
/// error is `Arc<io::Error>`, is a lost peer: no error line, a disconnect.
#[test]
fn a_reset_through_an_arc_codec_error_is_a_disconnect() {
    for errno in [libc::ECONNRESET, libc::ETIMEDOUT] {
        let (ended, got) = run(b"par", errno, None);
        let e = ended.expect_err("the read failed");
        assert!(e.is_disconnect(), "errno {errno}: ended as {e:?}");
        assert!(
            got.is_empty(),
            "errno {errno}: client got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// A write that finds the peer gone (EPIPE) ends the connection with
/// `Ok(())` (serve_connection's doc), also through an `Arc<io::Error>` codec.
#[test]
fn a_broken_pipe_through_an_arc_codec_error_ends_ok() {
    let (ended, _) = run(b"hello\n", 0, Some(libc::EPIPE));
    assert!(ended.is_ok(), "ended as {ended:?}");
}

/// The same broken pipe through the lines codec (whose error holds the
/// `io::Error`) ends `Ok(())`.
#[test]
fn a_broken_pipe_through_the_lines_codec_ends_ok() {
    let ended = deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let conn = strata_rt::spawn_local(async move {
                let io = Dies {
                    inner: server,
                    errno: 0,
                    write_errno: Some(libc::EPIPE),
                    read_some: false,
                };
                serve_connection(
                    io,
                    &support::TestProto,
                    support::Echo,
                    &cfg(),
                    std::future::pending(),
                )
                .await
            });
            client.write_all(b"hello\n").unwrap();
            conn.await.unwrap()
        })
    });
    assert!(ended.is_ok(), "ended as {ended:?}");
}
