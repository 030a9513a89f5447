//! What the transport reports decides how a connection ends, whatever the
//! codec's error type makes of it: a vanished peer is a vanished peer on
//! a read (a disconnect, no error line) and on a write (`Ok(())`), and a
//! read the transport fails otherwise is an I/O error (no error line, the
//! requests in flight answered), through a codec whose error is
//! `Arc<io::Error>` (the usual cloneable error; an `Arc` is not itself an
//! `io::Error`) or one whose `source()` skips the `io::Error` inside (what
//! thiserror's `#[error(transparent)]` makes). Both were taken for bad
//! input and failed writes when the dispatcher read the codec's error.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use strata_codec::{Decoder, Encoder};
use strata_proto::pipeline::{ConnectionError, ServerProto, serve_connection};
use strata_service::service_fn;
use support::failing::{Failing, MakeError};
use support::{cfg, connected_pair, deadline, on_a_worker};

/// What `#[derive(thiserror::Error)] enum E { #[error(transparent)]
/// Io(#[from] io::Error) }` comes to: its `source()` is the inner error's
/// own, which skips the `io::Error`.
#[derive(Debug)]
enum Transparent {
    Io(std::io::Error),
}

impl std::fmt::Display for Transparent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transparent::Io(e) => std::fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Transparent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Transparent::Io(e) => std::error::Error::source(e),
        }
    }
}

impl From<std::io::Error> for Transparent {
    fn from(e: std::io::Error) -> Self {
        Transparent::Io(e)
    }
}

/// Lines of bytes, with the error type `E`.
struct ArcLines<E>(std::marker::PhantomData<E>);
impl<E: From<std::io::Error>> Decoder for ArcLines<E> {
    type Item = Vec<u8>;
    type Error = E;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<u8>>, Self::Error> {
        match src.iter().position(|&b| b == b'\n') {
            Some(i) => Ok(Some(src.split_to(i + 1).to_vec())),
            None => Ok(None),
        }
    }
}
impl<E: From<std::io::Error>> Encoder<Vec<u8>> for ArcLines<E> {
    type Error = E;
    fn encode(&mut self, item: Vec<u8>, dst: &mut BytesMut) -> Result<(), Self::Error> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}
struct ArcProto<E>(std::marker::PhantomData<E>);
impl<E> ServerProto for ArcProto<E>
where
    E: From<std::io::Error> + std::error::Error + Send + Sync + 'static,
{
    type Request = Vec<u8>;
    type Response = Vec<u8>;
    type Codec = ArcLines<E>;
    fn codec(&self) -> ArcLines<E> {
        ArcLines(std::marker::PhantomData)
    }
    fn decode_error(&self, _: &E) -> Option<Vec<u8>> {
        Some(b"error: bad\n".to_vec())
    }
}

fn run<E>(
    send: &'static [u8],
    errno: i32,
    write_errno: Option<i32>,
) -> (Result<(), ConnectionError>, Vec<u8>)
where
    E: From<std::io::Error> + std::error::Error + Send + Sync + 'static,
{
    let read_error = (errno != 0).then(|| Failing::os(errno));
    run_failing::<E>(send, read_error, write_errno.map(Failing::os))
}

/// `run` with the transport's errors made by `read_error` and
/// `write_error`.
fn run_failing<E>(
    send: &'static [u8],
    read_error: Option<MakeError>,
    write_error: Option<MakeError>,
) -> (Result<(), ConnectionError>, Vec<u8>)
where
    E: From<std::io::Error> + std::error::Error + Send + Sync + 'static,
{
    deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let conn = strata_rt::spawn_local(async move {
                let io = Failing::new(server, read_error, write_error);
                let echo = service_fn(|r: Vec<u8>| async move { Ok::<_, std::io::Error>(r) });
                let proto = ArcProto::<E>(std::marker::PhantomData);
                serve_connection(io, &proto, echo, &cfg(), std::future::pending()).await
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

/// A kernel reset (or ETIMEDOUT) on a read is a lost peer: no error
/// line, a disconnect.
fn reset_is_a_disconnect<E>()
where
    E: From<std::io::Error> + std::error::Error + Send + Sync + 'static,
{
    for errno in [libc::ECONNRESET, libc::ETIMEDOUT] {
        let (ended, got) = run::<E>(b"par", errno, None);
        let e = ended.expect_err("the read failed");
        assert!(e.is_disconnect(), "errno {errno}: ended as {e:?}");
        // The codec's error is still there, down the `source()` chain, and
        // no message comes twice in a row in it (a "Caused by:" report).
        let mut cur = std::error::Error::source(&e);
        let (mut found, mut links) = (false, Vec::new());
        while let Some(c) = cur {
            found |= c.is::<E>();
            links.push(c.to_string());
            cur = c.source();
        }
        assert!(found, "errno {errno}: no codec error in {e:?}");
        for w in links.windows(2) {
            assert_ne!(w[0], w[1], "errno {errno}: {links:?}");
        }
        assert!(
            got.is_empty(),
            "errno {errno}: client got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

#[test]
fn a_reset_through_an_arc_codec_error_is_a_disconnect() {
    reset_is_a_disconnect::<Arc<std::io::Error>>();
}

#[test]
fn a_reset_through_a_transparent_codec_error_is_a_disconnect() {
    reset_is_a_disconnect::<Transparent>();
}

/// A write that finds the peer gone (EPIPE) ends the connection with
/// `Ok(())` (`serve_connection`'s docs).
#[test]
fn a_broken_pipe_through_an_arc_or_transparent_codec_error_ends_ok() {
    let (ended, _) = run::<Arc<std::io::Error>>(b"hello\n", 0, Some(libc::EPIPE));
    assert!(ended.is_ok(), "Arc: ended as {ended:?}");
    let (ended, _) = run::<Transparent>(b"hello\n", 0, Some(libc::EPIPE));
    assert!(ended.is_ok(), "transparent: ended as {ended:?}");
}

/// A transport in user space (TLS, an in-memory pipe) tells a lost peer
/// by its error's kind alone, with no OS code. Through a codec error that
/// hides the `io::Error`, a reset on a read is still a disconnect, and a
/// broken pipe on a write still ends the connection with `Ok(())`: the
/// dispatcher used to keep only the transport's OS codes, and took both
/// for plain I/O errors.
#[test]
fn a_user_space_transport_s_lost_peer_shows_through_a_transparent_codec_error() {
    let kind = |kind: std::io::ErrorKind| -> MakeError {
        Box::new(move || std::io::Error::new(kind, "the peer is gone (a user-space transport)"))
    };
    // `UnexpectedEof`: TLS's peer gone without `close_notify`.
    for gone in [
        std::io::ErrorKind::ConnectionReset,
        std::io::ErrorKind::UnexpectedEof,
    ] {
        let (ended, got) = run_failing::<Transparent>(b"par", Some(kind(gone)), None);
        let e = ended.expect_err("the read failed");
        assert!(e.is_disconnect(), "{gone:?}: ended as {e:?}");
        assert!(
            got.is_empty(),
            "{gone:?}: client got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    let broken_pipe = Some(kind(std::io::ErrorKind::BrokenPipe));
    let (ended, _) = run_failing::<Transparent>(b"hello\n", None, broken_pipe);
    assert!(ended.is_ok(), "ended as {ended:?}");
}

/// An OS error that is no lost peer (`ENOENT`, 2) stays an I/O error on
/// a read and on a write, through a codec error that hides it: the code
/// the dispatcher keeps for a user-space transport's lost peer must not
/// collide with an OS code. (From mutation testing: `GONE` as 2 passed
/// the other tests.)
#[test]
fn an_os_error_that_is_no_lost_peer_stays_an_io_error() {
    let (ended, got) = run::<Transparent>(b"par", libc::ENOENT, None);
    let e = ended.expect_err("the read failed");
    assert!(!e.is_disconnect(), "read: ended as {e:?}");
    assert!(matches!(e, ConnectionError::Io(_)), "read: ended as {e:?}");
    assert!(
        got.is_empty(),
        "read: client got {:?}",
        String::from_utf8_lossy(&got)
    );
    let (ended, _) = run::<Transparent>(b"hello\n", 0, Some(libc::ENOENT));
    let e = ended.expect_err("the write failed: not a vanished peer");
    assert!(!e.is_disconnect(), "write: ended as {e:?}");
}

/// A read the transport fails with another error (EIO) is an I/O error,
/// as the same error on a write is: no error line (it was bad input,
/// answered with one), and the request before it still answered.
#[test]
fn a_failed_read_is_an_io_error_like_a_failed_write() {
    for read_first in [true, false] {
        let (ended, got) = if read_first {
            run::<Transparent>(b"hello\npar", libc::EIO, None)
        } else {
            run::<Transparent>(b"hello\n", 0, Some(libc::EIO))
        };
        let e = ended.expect_err("the transport failed");
        assert!(matches!(e, ConnectionError::Io(_)), "ended as {e:?}");
        assert!(!e.is_disconnect(), "ended as {e:?}");
        if read_first {
            assert_eq!(String::from_utf8_lossy(&got), "hello\n");
        }
    }
}

/// The same broken pipe through the lines codec (whose error holds the
/// `io::Error`) ends `Ok(())`.
#[test]
fn a_broken_pipe_through_the_lines_codec_ends_ok() {
    let ended = deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let conn = strata_rt::spawn_local(async move {
                let io = Failing::new(server, None, Some(Failing::os(libc::EPIPE)));
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

/// A codec error that hides the `io::Error` it came from: its message is
/// its own and its `source()` a detail of its own type (no `io::Error`
/// anywhere down the chain).
#[derive(Debug)]
struct Opaque(Detail);

#[derive(Debug)]
struct Detail(String);

impl std::fmt::Display for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("codec read failed")
    }
}

impl std::error::Error for Opaque {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Detail {}

impl From<std::io::Error> for Opaque {
    fn from(e: std::io::Error) -> Self {
        Opaque(Detail(format!("detail: {e}")))
    }
}

/// A reset that only the transport reported (the codec's error hides it)
/// is a disconnect, and the `Io` variant's error still reads as the
/// codec's error: the same message, and the same cause down its
/// `source()`, as the chain from the `ConnectionError` itself gives.
#[test]
fn the_error_of_a_disconnect_hidden_by_the_codec_reads_as_the_codecs_error() {
    let (ended, got) = run::<Opaque>(b"par", libc::ECONNRESET, None);
    let e = ended.expect_err("the read was reset");
    assert!(e.is_disconnect(), "ended as {e:?}");
    let ConnectionError::Io(inner) = &e else {
        panic!("ended as {e:?}")
    };
    assert_eq!(inner.to_string(), "codec read failed");
    let detail = std::error::Error::source(&**inner).map(|s| s.to_string());
    let want = format!(
        "detail: {}",
        std::io::Error::from_raw_os_error(libc::ECONNRESET)
    );
    assert_eq!(detail.as_deref(), Some(want.as_str()));
    let codec = std::error::Error::source(&e).expect("the codec's error");
    assert!(codec.is::<Opaque>(), "{codec:?}");
    assert!(
        got.is_empty(),
        "client got {:?}",
        String::from_utf8_lossy(&got)
    );
}
