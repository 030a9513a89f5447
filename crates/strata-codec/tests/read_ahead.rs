//! `Framed::poll_read_ahead`, plus edge checks of a lone `\r` at end of
//! stream and of length-delimited limits.

mod support;

use std::pin::Pin;
use std::task::Poll;

use futures_core::Stream;
use strata_codec::{Framed, LinesCodec};
use support::{Mock, noop_cx};

/// `Framed`'s Memory docs: "When a read finds nothing to read (`Pending`)
/// and no undecoded bytes are buffered, the read buffer is freed", so an
/// idle `Framed` holds no heap memory; a read ahead that finds nothing
/// frees it too (it used to keep the read window it had zero-filled).
#[test]
fn read_ahead_that_finds_nothing_frees_the_empty_read_buffer() {
    let mut cx = noop_cx();
    // Control: the same idle reader through poll_next holds nothing.
    let mut framed = Framed::new(Mock::new().read_pending(), LinesCodec::new());
    assert!(Pin::new(&mut framed).poll_next(&mut cx).is_pending());
    assert_eq!(framed.read_buffer().capacity(), 0);

    let mut framed = Framed::new(Mock::new().read_pending(), LinesCodec::new());
    assert!(framed.poll_read_ahead(&mut cx, 4096).is_pending());
    assert!(framed.read_buffer().is_empty());
    assert_eq!(
        framed.read_buffer().capacity(),
        0,
        "an idle Framed kept its read window after poll_read_ahead"
    );
}

/// After a read ahead that found nothing, a later `poll_next` that also
/// finds nothing frees the buffer again (sanity check of the rule above).
#[test]
fn read_ahead_then_idle_poll_next_frees() {
    let mut cx = noop_cx();
    let mut framed = Framed::new(Mock::new().read_pending().read_pending(), LinesCodec::new());
    assert!(framed.poll_read_ahead(&mut cx, 4096).is_pending());
    assert!(Pin::new(&mut framed).poll_next(&mut cx).is_pending());
    assert_eq!(framed.read_buffer().capacity(), 0);
}

/// A limit below the buffer reads nothing; a zero limit reads nothing;
/// `Interrupted` is retried; the limit caps the buffer; EOF is remembered
/// and the buffered lines (and a last unterminated one) still come out.
#[test]
fn read_ahead_limits_interrupted_and_remembered_eof() {
    use futures_util::StreamExt;
    let mut cx = noop_cx();
    let mock = Mock::new()
        .read_error(std::io::ErrorKind::Interrupted)
        .read(b"a\nb\nc\r\n\rd");
    let mut framed = Framed::new(mock, LinesCodec::new());
    assert!(matches!(
        framed.poll_read_ahead(&mut cx, 0),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(framed.get_ref().read_calls, 0);
    assert!(matches!(
        framed.poll_read_ahead(&mut cx, 3),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(&framed.read_buffer()[..], b"a\nb");
    assert!(matches!(
        framed.poll_read_ahead(&mut cx, 2),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(&framed.read_buffer()[..], b"a\nb");
    assert!(matches!(
        framed.poll_read_ahead(&mut cx, 1 << 20),
        Poll::Ready(Ok(()))
    ));
    let calls = framed.get_ref().read_calls;
    // EOF remembered: no more reads, everything decoded, then the end.
    let lines: Vec<String> =
        futures_executor::block_on((&mut framed).map(|r| r.unwrap()).collect::<Vec<_>>());
    assert_eq!(lines, ["a", "b", "c", "\rd"]);
    assert_eq!(framed.get_ref().read_calls, calls);
    assert_eq!(
        framed.poll_read_ahead(&mut cx, 10).map_err(|_| ()),
        Poll::Ready(Ok(()))
    );
}

/// A read error from read ahead is returned once and ends the stream.
#[test]
fn read_ahead_error_ends_the_stream() {
    use futures_util::StreamExt;
    let mut cx = noop_cx();
    let mock = Mock::new()
        .read(b"a\n")
        .read_error(std::io::ErrorKind::ConnectionReset);
    let mut framed = Framed::new(mock, LinesCodec::new());
    match framed.poll_read_ahead(&mut cx, 100) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("{other:?}"),
    }
    assert!(futures_executor::block_on(framed.next()).is_none());
    assert!(framed.try_decode_buffered().unwrap().is_none());
}

/// A lone \r at EOF is no line, also after a discarded long line
/// and at max_length 0 / 1.
#[test]
fn lone_cr_at_eof_with_limits_and_discarding() {
    use bytes::BytesMut;
    use strata_codec::Decoder;
    for max in [0usize, 1, 2] {
        let mut c = LinesCodec::with_max_length(max);
        let mut b = BytesMut::from(&b"\r"[..]);
        assert!(c.decode_eof(&mut b).unwrap().is_none(), "max {max}");
        assert!(c.decode_eof(&mut b).unwrap().is_none());
    }
    let mut c = LinesCodec::with_max_length(2);
    let mut b = BytesMut::from(&b"abcdef"[..]);
    assert!(c.decode(&mut b).is_err());
    b.extend_from_slice(b"g\nx\r");
    assert_eq!(c.decode_eof(&mut b).unwrap().as_deref(), Some("x"));
    assert!(c.decode_eof(&mut b).unwrap().is_none());
}

/// Encode at the field's maximum in both byte orders, one past it,
/// a positive adjustment larger than the data, and the decode of the
/// field's maximum against an exact limit and with num_skip past the
/// header; overflow of num_skip + N.
#[test]
fn length_delimited_edges() {
    use bytes::BytesMut;
    use strata_codec::{Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError as E};
    for le in [false, true] {
        let mut b = LengthDelimitedCodec::builder();
        b.length_field_length(3)
            .length_adjustment(-3)
            .max_frame_length(usize::MAX);
        if le {
            b.little_endian();
        }
        let mut c = b.build();
        let data = vec![7u8; 0xFF_FFFF - 3];
        let mut buf = BytesMut::new();
        c.encode(&data[..], &mut buf).unwrap();
        assert_eq!(&buf[..3], b"\xff\xff\xff");
        let mut one_more = BytesMut::new();
        assert!(matches!(
            c.encode(&vec![0u8; 0xFF_FFFF - 2][..], &mut one_more),
            Err(E::FrameTooLarge { limit, .. }) if limit == 0xFF_FFFF - 3
        ));
        assert!(one_more.is_empty());
        assert_eq!(c.decode(&mut buf).unwrap().unwrap().len(), data.len());
        assert!(buf.is_empty());
    }
    let mut c = LengthDelimitedCodec::builder().length_adjustment(5).build();
    assert!(matches!(
        c.encode(&b"abc"[..], &mut BytesMut::new()),
        Err(E::InvalidLength { value: -2 })
    ));

    // Limit exactly the value: accepted; one less: FrameTooLarge, sticky.
    let mut c = LengthDelimitedCodec::builder()
        .length_field_length(1)
        .num_skip(3)
        .max_frame_length(2)
        .build();
    let mut buf = BytesMut::from(&b"\x02XYhi\x03"[..]);
    assert_eq!(&c.decode(&mut buf).unwrap().unwrap()[..], b"hi");
    // The header alone is enough for the check: no wait for the skipped
    // bytes after it.
    assert!(matches!(
        c.decode(&mut buf),
        Err(E::FrameTooLarge {
            length: 3,
            limit: 2
        })
    ));
    assert!(matches!(c.decode(&mut buf), Err(E::FrameTooLarge { .. })));

    let mut c = LengthDelimitedCodec::builder()
        .length_field_length(8)
        .max_frame_length(usize::MAX)
        .build();
    let mut buf = BytesMut::from(&u64::MAX.to_be_bytes()[..]);
    assert!(matches!(c.decode(&mut buf), Err(E::InvalidLength { .. })));
}

/// An end of stream seen by a read ahead is remembered by
/// `try_decode_buffered` too: it drains with `decode_eof` (the last line
/// has no newline), and the stream then ends without reading again.
#[test]
fn try_decode_buffered_drains_after_a_read_ahead_eof_and_the_stream_ends_without_reading() {
    let mut cx = noop_cx();
    let mut framed = Framed::new(Mock::new().read(b"a\nb"), LinesCodec::new());
    assert!(matches!(
        framed.poll_read_ahead(&mut cx, 100),
        Poll::Ready(Ok(()))
    ));
    let reads = framed.get_ref().read_calls;
    assert_eq!(framed.try_decode_buffered().unwrap().as_deref(), Some("a"));
    assert_eq!(framed.try_decode_buffered().unwrap().as_deref(), Some("b"));
    assert_eq!(framed.try_decode_buffered().unwrap(), None);
    assert!(matches!(
        Pin::new(&mut framed).poll_next(&mut cx),
        Poll::Ready(None)
    ));
    assert_eq!(framed.get_ref().read_calls, reads, "no read after the EOF");
}

/// Each read of a read ahead is offered only the room left under the
/// limit, so reads that return a little at a time never take the buffer
/// past it.
#[test]
fn read_ahead_in_small_reads_stops_exactly_at_the_limit() {
    let mut cx = noop_cx();
    let mock = Mock::new().read(b"ab").read(b"cdefghijkl\n");
    let mut framed = Framed::new(mock, LinesCodec::new());
    assert!(matches!(
        framed.poll_read_ahead(&mut cx, 4),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(&framed.read_buffer()[..], b"abcd");
    assert!(matches!(
        framed.poll_read_ahead(&mut cx, 7),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(&framed.read_buffer()[..], b"abcdefg");
}
