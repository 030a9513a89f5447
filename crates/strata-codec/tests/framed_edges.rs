//! Framed, FramedRead and FramedWrite at their edges: a fused stream, a
//! reader that is interrupted or ends mid-frame, a writer that takes one
//! byte at a time, backpressure at the mark, a sink after an encode error.
mod support;

use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::BytesMut;
use futures_core::Stream;
use futures_executor::block_on;
use futures_sink::Sink;
use futures_util::{SinkExt, StreamExt};
use strata_codec::{
    BytesCodec, Decoder, Framed, FramedRead, FramedWrite, LengthDelimitedCodec,
    LengthDelimitedCodecError, LinesCodec, LinesCodecError,
};
use support::{Mock, noop_cx};

#[test]
fn stream_is_fused_after_none() {
    let mut framed = FramedRead::new(Mock::new().read("a\nb"), LinesCodec::new());
    let mut cx = noop_cx();
    let mut got = Vec::new();
    loop {
        match Pin::new(&mut framed).poll_next(&mut cx) {
            Poll::Ready(Some(x)) => got.push(x.unwrap()),
            Poll::Ready(None) => break,
            Poll::Pending => {}
        }
    }
    assert_eq!(got, ["a", "b"]);
    let calls = framed.get_ref().read_calls;
    for _ in 0..3 {
        assert!(matches!(
            Pin::new(&mut framed).poll_next(&mut cx),
            Poll::Ready(None)
        ));
    }
    assert_eq!(framed.get_ref().read_calls, calls);
    assert!(futures_core::FusedStream::is_terminated(&framed));
}

#[test]
fn interrupted_mid_frame_and_one_byte_reads() {
    let mock = Mock::new()
        .read("ab")
        .read_error(io::ErrorKind::Interrupted)
        .read_pending()
        .read("c\r")
        .read_error(io::ErrorKind::Interrupted)
        .read("\nd");
    let mut framed = FramedRead::new(mock, LinesCodec::new());
    framed.set_read_window(1);
    let got: Vec<_> = block_on(framed.collect::<Vec<_>>());
    let got: Vec<String> = got.into_iter().map(Result::unwrap).collect();
    assert_eq!(got, ["abc", "d"]);
}

#[test]
fn eof_mid_length_delimited_frame_is_unexpected_eof_then_none() {
    let mock = Mock::new()
        .read(b"\x00\x00\x00\x05he")
        .read_pending()
        .read(b"l");
    let mut framed = FramedRead::new(mock, LengthDelimitedCodec::new());
    let items: Vec<_> = block_on(framed.by_ref().collect::<Vec<_>>());
    assert_eq!(items.len(), 1);
    assert!(matches!(
        items[0],
        Err(LengthDelimitedCodecError::UnexpectedEof { buffered: 7 })
    ));
    assert!(block_on(framed.next()).is_none());
}

#[test]
fn writer_accepting_one_byte_at_a_time() {
    let mut mock = Mock::new();
    for _ in 0..200 {
        mock = mock.write_accept(1).write_pending();
    }
    let mut framed = FramedWrite::new(mock, LinesCodec::new());
    framed.set_high_water_mark(4);
    block_on(async {
        for s in ["hello", "wörld", "x"] {
            framed.send(s).await.unwrap();
        }
        SinkExt::<&str>::close(&mut framed).await.unwrap();
    });
    assert_eq!(framed.get_ref().written, "hello\nwörld\nx\n".as_bytes());
    assert!(framed.get_ref().closed);
}

#[test]
fn poll_ready_backpressure_with_one_byte_writes() {
    let mock = Mock::new()
        .write_accept(1)
        .write_accept(1)
        .write_pending()
        .write_accept(1);
    let mut framed = FramedWrite::new(mock, BytesCodec::new());
    framed.set_high_water_mark(4);
    let mut cx = noop_cx();
    Pin::new(&mut framed).start_send(&b"abcdef"[..]).unwrap();
    let r = Sink::<&[u8]>::poll_ready(Pin::new(&mut framed), &mut cx);
    assert!(r.is_pending());
    assert_eq!(framed.write_buffer().len(), 4);
    let r = Sink::<&[u8]>::poll_ready(Pin::new(&mut framed), &mut cx);
    assert!(matches!(r, Poll::Ready(Ok(()))));
    assert_eq!(framed.write_buffer().len(), 3);
    assert_eq!(framed.get_ref().written, b"abc");
}

#[test]
fn sink_after_encode_error_goes_on() {
    let mut framed = Framed::new(Mock::new(), LinesCodec::new());
    block_on(async {
        assert!(matches!(
            framed.send("a\nb").await,
            Err(LinesCodecError::EmbeddedNewline)
        ));
        framed.send("ok").await.unwrap();
    });
    assert_eq!(framed.get_ref().written, b"ok\n");
}

#[test]
fn try_decode_buffered_then_poll_next_at_eof() {
    let mut framed = FramedRead::new(Mock::new().read("a\nb"), LinesCodec::new());
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "a");
    // "b" buffered, no newline.
    assert!(framed.try_decode_buffered().unwrap().is_none());
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "b");
    assert!(block_on(framed.next()).is_none());
    assert!(framed.try_decode_buffered().unwrap().is_none());
}

/// A decoder with the default decode_eof; frames are single bytes except
/// that byte 0 is "need more".
struct Pairs;
impl Decoder for Pairs {
    type Item = Vec<u8>;
    type Error = io::Error;
    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Vec<u8>>> {
        if src.len() < 2 {
            return Ok(None);
        }
        Ok(Some(src.split_to(2).to_vec()))
    }
}

#[test]
fn default_decode_eof_with_leftover_is_error() {
    let framed = FramedRead::new(Mock::new().read("abc"), Pairs);
    let items: Vec<_> = block_on(framed.collect::<Vec<_>>());
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap(), b"ab");
    assert_eq!(
        items[1].as_ref().unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
}
