//! The RESP subset of `resp/mod.rs`, served by `TcpServer` and driven by a
//! hand-written client over 127.0.0.1, and by `serve_connection` over a
//! transport that hands over one byte per read.

mod resp;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};
use proptest::prelude::*;
use resp::*;
use strata_codec::{Decoder, Encoder};
use strata_proto::ConnectionConfig;
use strata_proto::pipeline::{ConnectionError, serve_connection};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A pipeline of requests covering every command, and its answers.
fn script() -> (Vec<u8>, Vec<Reply>) {
    let reqs: Vec<Vec<&[u8]>> = vec![
        vec![b"PING"],
        vec![b"ping", b"hi"],
        vec![b"ECHO", b"two\r\nlines"],
        vec![b"GET", b"k"],
        vec![b"SET", b"k", b""],
        vec![b"GET", b"k"],
        vec![b"SET", b"n", b"41"],
        vec![b"INCR", b"n"],
        vec![b"INCR", b"fresh"],
        vec![b"INCR", b"k"],
        vec![b"FLUSHALL"],
        vec![b"GET"],
        vec![b"DEL", b"k", b"n", b"nope"],
        vec![b"GET", b"n"],
    ];
    let answers = vec![
        Reply::Simple("PONG".into()),
        Reply::Bulk(b("hi")),
        Reply::Bulk(b("two\r\nlines")),
        Reply::Null,
        Reply::ok(),
        Reply::Bulk(Bytes::new()),
        Reply::ok(),
        Reply::Integer(42),
        Reply::Integer(1),
        Reply::err("ERR value is not an integer or out of range"),
        Reply::err("ERR unknown command 'FLUSHALL'"),
        Reply::err("ERR wrong number of arguments for 'get' command"),
        Reply::Integer(2),
        Reply::Null,
    ];
    let mut bytes = Vec::new();
    for r in &reqs {
        bytes.extend_from_slice(&request(r));
    }
    // Empty arrays are skipped, as Redis does.
    bytes.splice(0..0, b"*0\r\n".iter().copied());
    (bytes, answers)
}

// ------------------------------------------------------------ the codec alone

#[test]
fn decoder_takes_requests_split_at_every_byte() {
    let (bytes, answers) = script();
    let whole = {
        let mut codec = RespCodec::default();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut out = Vec::new();
        while let Some(cmd) = codec.decode(&mut buf).unwrap() {
            out.push(cmd);
        }
        assert!(buf.is_empty());
        out
    };
    assert_eq!(whole.len(), answers.len());
    for cut in 0..=bytes.len() {
        let mut codec = RespCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in [&bytes[..cut], &bytes[cut..]] {
            buf.extend_from_slice(part);
            while let Some(cmd) = codec.decode(&mut buf).unwrap() {
                out.push(cmd);
            }
        }
        assert_eq!(out, whole, "cut at {cut}");
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }
}

#[test]
fn decoder_bounds_are_checked_before_the_body_arrives() {
    let mut codec = RespCodec::new(1024, 8);
    // 512 MB declared, no byte of it sent: refused at once.
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$536870912\r\n"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(RespError::BulkTooLong {
            declared: 536_870_912,
            max: 1024
        })
    ));
    let mut buf = BytesMut::from(&b"*1000000\r\n"[..]);
    assert!(matches!(
        RespCodec::new(1024, 8).decode(&mut buf),
        Err(RespError::ArrayTooLong { .. })
    ));
    // A header line with no end in sight.
    let mut buf = BytesMut::from(&[b'*'; 100][..]);
    assert!(matches!(
        RespCodec::default().decode(&mut buf),
        Err(RespError::Protocol(_))
    ));
    for bad in [
        &b"GET k\r\n"[..],
        b"*1\r\n:1\r\n",
        b"*1\r\n$-1\r\n",
        b"*x\r\n",
        b"*1\n",
        b"*1\r\n$1\r\nab\r\n",
    ] {
        let mut buf = BytesMut::from(bad);
        assert!(
            matches!(
                RespCodec::default().decode(&mut buf),
                Err(RespError::Protocol(_))
            ),
            "{:?}",
            bad.escape_ascii().to_string()
        );
    }
}

#[test]
fn encoder_is_all_or_nothing() {
    let mut codec = RespCodec::default();
    let mut buf = BytesMut::from(&b"+OK\r\n"[..]);
    assert!(codec.encode(Reply::err("ERR a\r\nb"), &mut buf).is_err());
    assert_eq!(&buf[..], b"+OK\r\n");
    codec.encode(Reply::Bulk(b("a\r\nb")), &mut buf).unwrap();
    codec.encode(Reply::Integer(-3), &mut buf).unwrap();
    codec.encode(Reply::Null, &mut buf).unwrap();
    assert_eq!(&buf[..], b"+OK\r\n$4\r\na\r\nb\r\n:-3\r\n$-1\r\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any chunking of the pipeline decodes to the same requests.
    #[test]
    fn decoder_any_chunking(cuts in proptest::collection::vec(0usize..400, 0..12)) {
        let (bytes, answers) = script();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort();
        let mut codec = RespCodec::default();
        let mut buf = BytesMut::new();
        let mut n = 0;
        for w in cuts.windows(2) {
            buf.extend_from_slice(&bytes[w[0]..w[1]]);
            while codec.decode(&mut buf).unwrap().is_some() {
                n += 1;
            }
        }
        prop_assert_eq!(n, answers.len());
        prop_assert!(buf.is_empty());
    }
}

// ------------------------------------------------------------ over TCP

#[test]
fn commands_over_tcp_in_one_write() {
    let (server, store) = start(RespProto::default(), ConnectionConfig::default());
    let (bytes, answers) = script();
    let mut c = Client::connect(server.local_addr());
    c.send(&bytes);
    let want = replies(&answers);
    assert_eq!(c.read_exact(want.len()), want);
    // The store is shared: another connection sees the first one's writes.
    let mut other = Client::connect(server.local_addr());
    other.send(&request(&[b"GET", b"fresh"]));
    assert_eq!(other.read_exact(7), b"$1\r\n1\r\n");
    assert_eq!(store.execute(&[b("GET"), b("fresh")]), Reply::Bulk(b("1")));
    assert!(server.shutdown());
}

#[test]
fn pipeline_split_at_every_byte_over_tcp() {
    let (server, _) = start(RespProto::default(), ConnectionConfig::default());
    let (bytes, answers) = script();
    // Replies that do not depend on what earlier connections stored: a
    // fresh key space per connection is not on offer, so reset the keys.
    let reset = request(&[b"DEL", b"k", b"n", b"fresh"]);
    let want = replies(&answers);
    for cut in 1..bytes.len() {
        let mut c = Client::connect(server.local_addr());
        c.send(&reset);
        let _ = c.read_exact(4);
        c.send(&bytes[..cut]);
        std::thread::sleep(Duration::from_millis(2));
        c.send(&bytes[cut..]);
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let (got, end) = c.read_to_close();
        end.unwrap();
        assert_eq!(parse_replies(&got), parse_replies(&want), "cut at {cut}");
    }
    assert!(server.shutdown());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random chunks, each its own write with a pause after it.
    #[test]
    fn pipeline_random_chunks_over_tcp(cuts in proptest::collection::vec(0usize..400, 1..8)) {
        let (server, _) = start(RespProto::default(), ConnectionConfig::default());
        let (bytes, answers) = script();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort();
        let mut c = Client::connect(server.local_addr());
        for w in cuts.windows(2) {
            c.send(&bytes[w[0]..w[1]]);
            std::thread::sleep(Duration::from_millis(1));
        }
        let want = replies(&answers);
        prop_assert_eq!(c.read_exact(want.len()), want);
        prop_assert!(server.shutdown());
    }
}

#[test]
fn unknown_command_answers_an_error_and_keeps_the_connection() {
    let (server, _) = start(RespProto::default(), ConnectionConfig::default());
    let mut c = Client::connect(server.local_addr());
    c.send(&request(&[b"NOPE", b"x"]));
    c.send(&request(&[b"PING"]));
    let want = replies(&[
        Reply::err("ERR unknown command 'NOPE'"),
        Reply::Simple("PONG".into()),
    ]);
    assert_eq!(c.read_exact(want.len()), want);
    c.send(&request(&[b"ECHO", b"still here"]));
    let want = replies(&[Reply::Bulk(b("still here"))]);
    assert_eq!(c.read_exact(want.len()), want);
    assert!(server.shutdown());
}

/// QUIT is answered `+OK`, after the answers before it, and the
/// connection then closes (the protocol's `last_request` and
/// `closes_after`): the commands sent after it in the same write are not
/// run.
#[test]
fn quit_answers_ok_then_closes() {
    let (server, store) = start(RespProto::default(), ConnectionConfig::default());
    let mut c = Client::connect(server.local_addr());
    let mut batch = request(&[b"SET", b"k", b"1"]);
    batch.extend(request(&[b"QUIT"]));
    batch.extend(request(&[b"SET", b"k", b"2"]));
    c.send(&batch);
    let (got, end) = c.read_to_close();
    assert_eq!(got, replies(&[Reply::ok(), Reply::ok()]));
    end.expect("a clean close");
    assert_eq!(store.execute(&[b("GET"), b("k")]), Reply::Bulk(b("1")));
    assert!(server.shutdown());
}

#[test]
fn malformed_request_mid_pipeline_earlier_answers_then_error_then_close() {
    let (server, store) = start(RespProto::default(), ConnectionConfig::default());
    let mut c = Client::connect(server.local_addr());
    let mut bytes = request(&[b"SET", b"a", b"1"]);
    bytes.extend_from_slice(&request(&[b"INCR", b"a"]));
    bytes.extend_from_slice(b"*1\r\n:5\r\n"); // an integer where a bulk string goes
    bytes.extend_from_slice(&request(&[b"INCR", b"a"])); // never run
    c.send(&bytes);
    // The peer does not half-close: the server closes.
    let (got, end) = c.read_to_close();
    end.expect("a clean close, not a reset");
    assert_eq!(
        parse_replies(&got),
        vec![
            Reply::ok(),
            Reply::Integer(2),
            Reply::err("ERR Protocol error: expected '$', got ':'"),
        ]
    );
    assert_eq!(store.execute(&[b("GET"), b("a")]), Reply::Bulk(b("2")));
    assert!(server.shutdown());
}

#[test]
fn declared_huge_bulk_is_refused_before_its_bytes() {
    let (server, _) = start(RespProto::default(), ConnectionConfig::default());
    let mut c = Client::connect(server.local_addr());
    c.send(&request(&[b"PING"]));
    // 512 MB declared; nothing of it follows, and the client keeps the
    // connection open: the answer must not wait for the bytes.
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n");
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    assert_eq!(
        parse_replies(&got),
        vec![
            Reply::Simple("PONG".into()),
            Reply::err("ERR Protocol error: invalid bulk length")
        ]
    );
    assert!(server.shutdown());
}

#[test]
fn bulk_within_the_bound_arrives_slowly_and_is_served() {
    let (server, _) = start(RespProto::default(), ConnectionConfig::default());
    let mut c = Client::connect(server.local_addr());
    let value = vec![b'v'; DEFAULT_MAX_BULK];
    let req = request(&[b"SET", b"big", &value]);
    for chunk in req.chunks(7000) {
        c.send(chunk);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(c.read_exact(5), b"+OK\r\n");
    c.send(&request(&[b"GET", b"big"]));
    let want = replies(&[Reply::Bulk(Bytes::from(value))]);
    assert_eq!(c.read_exact(want.len()), want);
    assert!(server.shutdown());
}

#[test]
fn half_close_after_sending_still_gets_every_answer() {
    let (server, _) = start(RespProto::default(), ConnectionConfig::default());
    let (bytes, answers) = script();
    let mut c = Client::connect(server.local_addr());
    c.send(&bytes);
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, end) = c.read_to_close();
    end.unwrap();
    assert_eq!(parse_replies(&got), answers);
    assert!(server.shutdown());
}

#[test]
fn end_of_stream_inside_a_request_answers_after_the_complete_ones() {
    let (server, _) = start(RespProto::default(), ConnectionConfig::default());
    let mut c = Client::connect(server.local_addr());
    let mut bytes = request(&[b"PING"]);
    bytes.extend_from_slice(b"*2\r\n$4\r\nECHO\r\n$10\r\nabc"); // cut short
    c.send(&bytes);
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, end) = c.read_to_close();
    end.unwrap();
    let got = parse_replies(&got);
    assert_eq!(got[0], Reply::Simple("PONG".into()));
    // The default `decode_eof`'s io error, through `decode_error`.
    match &got[1..] {
        [Reply::Error(m)] => assert!(
            m.starts_with("ERR Protocol error: stream ended in the middle of a frame"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(server.shutdown());
}

// ------------------------------------------------------------ one byte a read

/// A transport that hands over one byte per read, `Pending` in between,
/// then an end of stream; it records what is written.
struct Trickle {
    input: Vec<u8>,
    at: usize,
    ready: bool,
    out: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        if self.at == self.input.len() {
            return Poll::Ready(Ok(0));
        }
        buf[0] = self.input[self.at];
        self.at += 1;
        Poll::Ready(Ok(1))
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.out.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn serve_trickle(input: Vec<u8>) -> (Vec<u8>, Result<(), ConnectionError>) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let io = Trickle {
        input,
        at: 0,
        ready: false,
        out: out.clone(),
    };
    let result = strata_rt::run(async move {
        serve_connection(
            io,
            &RespProto::default(),
            Store::default(),
            &ConnectionConfig::default(),
            std::future::pending(),
        )
        .await
    });
    let out = out.lock().unwrap().clone();
    (out, result)
}

#[test]
fn one_byte_per_read_through_serve_connection() {
    let (bytes, answers) = script();
    let (out, result) = serve_trickle(bytes);
    result.unwrap();
    assert_eq!(parse_replies(&out), answers);
}

#[test]
fn truncated_last_request_ends_with_a_decode_error_holding_unexpected_eof() {
    let mut bytes = request(&[b"PING"]);
    bytes.extend_from_slice(b"*1\r\n$4\r\nPI");
    let (out, result) = serve_trickle(bytes);
    let err = result.unwrap_err();
    assert!(matches!(err, ConnectionError::Decode(_)), "{err:?}");
    assert!(!err.is_disconnect());
    let inner = std::error::Error::source(&err).unwrap();
    let resp = inner.downcast_ref::<RespError>().unwrap();
    assert!(matches!(resp, RespError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof));
    assert_eq!(parse_replies(&out)[0], Reply::Simple("PONG".into()));
}
