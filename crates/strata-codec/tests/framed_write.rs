//! The write side of `Framed` and `FramedWrite`, over scripted I/O.

mod support;

use std::io;
use std::pin::Pin;

use futures_executor::block_on;
use futures_sink::Sink;
use futures_util::{SinkExt, StreamExt};
use strata_codec::{
    BytesCodec, Framed, FramedWrite, LengthDelimitedCodec, LinesCodec, LinesCodecError,
};
use support::{Mock, noop_cx};

#[test]
fn many_small_items_leave_in_one_write() {
    let mut framed = FramedWrite::new(Mock::new(), LinesCodec::new());
    block_on(async {
        for i in 0..1000 {
            framed.feed(format!("line {i}")).await.unwrap();
        }
        SinkExt::<String>::flush(&mut framed).await.unwrap();
    });
    let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    let mock = framed.get_ref();
    assert_eq!(mock.written, expected.as_bytes());
    assert_eq!(mock.write_calls, 1);
    assert_eq!(mock.flush_calls, 1);
}

#[test]
fn poll_ready_under_the_mark_does_no_io() {
    let mut framed = FramedWrite::new(Mock::new(), BytesCodec::new());
    framed.set_high_water_mark(100);
    let mut cx = noop_cx();
    for _ in 0..9 {
        let ready = Sink::<&[u8]>::poll_ready(Pin::new(&mut framed), &mut cx);
        assert!(ready.is_ready());
        Pin::new(&mut framed).start_send(&[0u8; 10][..]).unwrap();
    }
    assert_eq!(framed.write_buffer().len(), 90);
    assert_eq!(framed.get_ref().write_calls, 0);
}

#[test]
fn backpressure_at_the_high_water_mark() {
    let mock = Mock::new().write_pending().write_accept(15);
    let mut framed = FramedWrite::new(mock, BytesCodec::new());
    framed.set_high_water_mark(16);
    let mut cx = noop_cx();
    for _ in 0..4 {
        Pin::new(&mut framed).start_send(&b"abcd"[..]).unwrap();
    }
    // 16 bytes buffered: at the mark, so poll_ready must write, and the
    // writer is not ready.
    let ready = Sink::<&[u8]>::poll_ready(Pin::new(&mut framed), &mut cx);
    assert!(ready.is_pending());
    assert_eq!(framed.write_buffer().len(), 16);
    assert_eq!(framed.get_ref().write_calls, 1);
    // The writer takes 15 bytes: under the mark again, ready.
    let ready = Sink::<&[u8]>::poll_ready(Pin::new(&mut framed), &mut cx);
    assert!(matches!(ready, std::task::Poll::Ready(Ok(()))));
    assert_eq!(framed.write_buffer().len(), 1);
    assert_eq!(framed.get_ref().written, b"abcdabcdabcdabc");
}

/// Over the mark with a writer that takes part of the buffer per call,
/// `poll_ready` writes down to half the mark (not just under the mark),
/// and the bytes left move to the front of the allocation.
#[test]
fn poll_ready_keeps_writing_while_over_the_mark() {
    let mock = Mock::new()
        .write_accept(4)
        .write_accept(4)
        .write_accept(4)
        .write_accept(1)
        .write_accept(4);
    let mut framed = FramedWrite::new(mock, BytesCodec::new());
    framed.set_high_water_mark(8);
    Pin::new(&mut framed).start_send(&[1u8; 20][..]).unwrap();
    let capacity = framed.write_buffer().capacity();
    let mut cx = noop_cx();
    assert!(Sink::<&[u8]>::poll_ready(Pin::new(&mut framed), &mut cx).is_ready());
    // 20 -> 16 -> 12 -> 8 (at the mark) -> 7 (under it, over half) -> 3.
    assert_eq!(framed.write_buffer().len(), 3);
    assert_eq!(framed.get_ref().write_calls, 5);
    assert_eq!(
        framed.write_buffer().capacity(),
        capacity,
        "the 3 bytes left moved to the front of the allocation"
    );
}

/// A flush that stops part way (the writer is full) with more left than
/// written: `poll_ready` stays ready at once under the mark, and the bytes
/// left move to the front once a later write leaves the written part at
/// least as long as them.
#[test]
fn poll_ready_after_a_partial_flush_is_ready_under_the_mark() {
    let mock = Mock::new().write_accept(2).write_pending().write_accept(12);
    let mut framed = FramedWrite::new(mock, BytesCodec::new());
    framed.set_high_water_mark(64);
    Pin::new(&mut framed).start_send(&[7u8; 10][..]).unwrap();
    let mut cx = noop_cx();
    // The flush writes 2 of 10, then the writer is full.
    assert!(Sink::<&[u8]>::poll_flush(Pin::new(&mut framed), &mut cx).is_pending());
    assert_eq!(framed.write_buffer().len(), 8);
    let calls = framed.get_ref().write_calls;
    assert!(Sink::<&[u8]>::poll_ready(Pin::new(&mut framed), &mut cx).is_ready());
    assert_eq!(
        framed.get_ref().write_calls,
        calls,
        "no write under the mark"
    );
    Pin::new(&mut framed).start_send(&[8u8; 10][..]).unwrap();
    // 12 of 18 written: 14 in front, 6 left, which move to the front.
    assert!(Sink::<&[u8]>::poll_flush(Pin::new(&mut framed), &mut cx).is_ready());
    let mut expected = vec![7u8; 10];
    expected.extend([8u8; 10]);
    assert_eq!(framed.get_ref().written, expected);
}

#[test]
fn partial_writes_keep_order_and_finish() {
    let mut mock = Mock::new();
    for n in [1, 2, 3, 5, 8] {
        mock = mock.write_accept(n).write_pending();
    }
    let mut framed = FramedWrite::new(mock, LinesCodec::new());
    block_on(async {
        framed.feed("first").await.unwrap();
        framed.feed("second").await.unwrap();
        framed.send("third").await.unwrap();
    });
    assert_eq!(framed.get_ref().written, b"first\nsecond\nthird\n");
    assert!(framed.write_buffer().is_empty());
}

#[test]
fn write_errors_surface_through_the_codec_error() {
    let mock = Mock::new().write_error(io::ErrorKind::BrokenPipe);
    let mut framed = FramedWrite::new(mock, LinesCodec::new());
    let err = block_on(framed.send("x")).unwrap_err();
    assert!(matches!(err, LinesCodecError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe));
}

#[test]
fn a_writer_that_accepts_nothing_is_an_error() {
    let mock = Mock::new().write_accept(0);
    let mut framed = FramedWrite::new(mock, BytesCodec::new());
    let err = block_on(framed.send(&b"data"[..])).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WriteZero);
}

#[test]
fn encode_errors_leave_the_buffer_untouched() {
    let mut framed = FramedWrite::new(Mock::new(), LinesCodec::new());
    block_on(framed.feed("ok")).unwrap();
    let err = block_on(framed.feed("two\nlines")).unwrap_err();
    assert!(matches!(err, LinesCodecError::EmbeddedNewline));
    assert_eq!(&framed.write_buffer()[..], b"ok\n");
}

#[test]
fn close_flushes_then_closes() {
    let mut framed = FramedWrite::new(Mock::new(), LinesCodec::new());
    block_on(async {
        framed.feed("bye").await.unwrap();
        SinkExt::<&str>::close(&mut framed).await.unwrap();
    });
    assert_eq!(framed.get_ref().written, b"bye\n");
    assert!(framed.get_ref().closed);
}

fn item_flushed(release: bool, size: usize) -> FramedWrite<Mock, BytesCodec> {
    let mut framed = FramedWrite::new(Mock::new(), BytesCodec::new());
    framed.set_release_idle_buffers(release);
    block_on(framed.send(vec![9u8; size])).unwrap();
    assert_eq!(framed.get_ref().written.len(), size);
    framed
}

fn big_item_flushed(release: bool) -> FramedWrite<Mock, BytesCodec> {
    item_flushed(release, 100 * 1024)
}

#[test]
fn write_buffer_is_released_after_a_complete_flush() {
    assert_eq!(big_item_flushed(true).write_buffer().capacity(), 0);
}

#[test]
fn write_buffer_is_kept_when_release_is_off() {
    assert!(big_item_flushed(false).write_buffer().capacity() > 0);
}

/// With releases off only small buffers are kept for reuse: one large
/// response must not pin its allocation on a connection that stays busy.
#[test]
fn large_write_buffer_is_released_even_when_release_is_off() {
    assert_eq!(item_flushed(false, 1 << 20).write_buffer().capacity(), 0);
}

#[test]
fn idle_connection_after_a_round_trip_holds_no_buffers() {
    let mock = Mock::new().read(b"hello\n").read_pending();
    let mut framed = Framed::new(mock, LinesCodec::new());
    let mut cx = noop_cx();
    let request = block_on(framed.next()).unwrap().unwrap();
    assert_eq!(request, "hello");
    block_on(framed.send("world")).unwrap();
    assert!(Pin::new(&mut framed).poll_next_unpin(&mut cx).is_pending());
    assert_eq!(framed.read_buffer().capacity(), 0);
    assert_eq!(framed.write_buffer().capacity(), 0);
    assert_eq!(framed.get_ref().written, b"world\n");
}

#[test]
fn framed_parts_keep_buffered_bytes() {
    let mut framed = Framed::new(Mock::new().read(b"a\nrest"), LengthDelimitedCodec::new());
    framed
        .read_buffer_mut()
        .extend_from_slice(b"\x00\x00\x00\x01z");
    block_on(framed.feed(&b"q"[..])).unwrap();
    let parts = framed.into_parts();
    assert_eq!(&parts.read_buffer[..], b"\x00\x00\x00\x01z");
    assert_eq!(&parts.write_buffer[..], b"\x00\x00\x00\x01q");
    let mut framed = Framed::from_parts(parts);
    assert_eq!(&block_on(framed.next()).unwrap().unwrap()[..], b"z");
    block_on(SinkExt::<&[u8]>::flush(&mut framed)).unwrap();
    assert_eq!(framed.get_ref().written, b"\x00\x00\x00\x01q");
}

/// An encoder that fails after appending part of a frame leaves nothing
/// of it in the write buffer: what is flushed is whole frames only.
#[test]
fn a_failed_encode_leaves_no_half_frame() {
    struct HalfThenFail;
    impl strata_codec::Encoder<&'static str> for HalfThenFail {
        type Error = io::Error;
        fn encode(&mut self, item: &'static str, dst: &mut bytes::BytesMut) -> io::Result<()> {
            dst.extend_from_slice(item.as_bytes());
            if item == "bad" {
                return Err(io::Error::other("refused after appending"));
            }
            dst.extend_from_slice(b"\n");
            Ok(())
        }
    }
    let mut framed = FramedWrite::new(Mock::new(), HalfThenFail);
    Pin::new(&mut framed).start_send("good").unwrap();
    assert!(Pin::new(&mut framed).start_send("bad").is_err());
    assert_eq!(&framed.write_buffer()[..], b"good\n");
}

/// A high-water mark of 0 is taken as 1, and the getter says so (it
/// reported 0 while 1 was used).
#[test]
fn a_zero_high_water_mark_is_one() {
    let mut framed = Framed::new(Mock::new(), LinesCodec::new());
    framed.set_high_water_mark(0);
    assert_eq!(framed.high_water_mark(), 1);
    let mut write = FramedWrite::new(Mock::new(), BytesCodec::new());
    write.set_high_water_mark(0);
    assert_eq!(write.high_water_mark(), 1);
}

#[test]
fn bytes_put_in_the_write_buffer_are_written_in_order_with_the_items() {
    let mut framed = FramedWrite::new(Mock::new(), LinesCodec::new());
    block_on(async {
        framed.feed("one").await.unwrap();
        framed.write_buffer_mut().extend_from_slice(b"raw\n");
        framed.feed("two").await.unwrap();
        SinkExt::<&str>::flush(&mut framed).await.unwrap();
    });
    assert_eq!(framed.get_ref().written, b"one\nraw\ntwo\n");

    let mut framed = Framed::new(Mock::new(), LinesCodec::new());
    framed.write_buffer_mut().extend_from_slice(b"hello\n");
    assert_eq!(&framed.write_buffer()[..], b"hello\n");
    block_on(SinkExt::<&str>::flush(&mut framed)).unwrap();
    assert_eq!(framed.get_ref().written, b"hello\n");
}

#[test]
fn interrupted_writes_are_retried() {
    let mock = Mock::new()
        .write_error(io::ErrorKind::Interrupted)
        .write_accept(2)
        .write_error(io::ErrorKind::Interrupted);
    let mut framed = FramedWrite::new(mock, LinesCodec::new());
    block_on(framed.send("hello")).unwrap();
    let mock = framed.get_ref();
    assert_eq!(mock.written, b"hello\n");
    assert_eq!(mock.write_calls, 4);
}

/// A drain that started at the mark lowers the bar to half of it only
/// until the drain is done: once the buffer is down to half the mark
/// (`first_write` bytes written, then the rest if any), `poll_ready` is
/// ready at once again under the mark.
fn ready_under_the_mark_after_a_drain_ending_with(first_write: usize) {
    let mut framed = FramedWrite::new(Mock::new().write_accept(first_write), BytesCodec::new());
    framed.set_high_water_mark(100);
    let mut cx = noop_cx();
    assert!(Sink::<Vec<u8>>::poll_ready(Pin::new(&mut framed), &mut cx).is_ready());
    Pin::new(&mut framed).start_send(vec![1u8; 120]).unwrap();
    // At the mark: the drain writes down to half of it.
    assert!(Sink::<Vec<u8>>::poll_ready(Pin::new(&mut framed), &mut cx).is_ready());
    assert!(framed.write_buffer().len() <= 50);
    let calls = framed.get_ref().write_calls;
    // Between half the mark and the mark.
    let item = 60 - framed.write_buffer().len();
    Pin::new(&mut framed).start_send(vec![2u8; item]).unwrap();
    assert!(Sink::<Vec<u8>>::poll_ready(Pin::new(&mut framed), &mut cx).is_ready());
    assert_eq!(
        framed.get_ref().write_calls,
        calls,
        "poll_ready wrote with {} bytes buffered under a mark of 100",
        framed.write_buffer().len()
    );
}

#[test]
fn poll_ready_is_ready_under_the_mark_after_a_drain_that_wrote_everything() {
    ready_under_the_mark_after_a_drain_ending_with(10);
}

#[test]
fn poll_ready_is_ready_under_the_mark_after_a_drain_that_ended_at_half_of_it() {
    ready_under_the_mark_after_a_drain_ending_with(70);
}

/// A writer whose flush and close are each cut short by a signal once
/// (`Interrupted`), as a transport in user space may report.
#[derive(Default)]
struct InterruptedOnce {
    written: Vec<u8>,
    flushes: usize,
    closes: usize,
}

impl futures_io::AsyncWrite for InterruptedOnce {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.get_mut().written.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        this.flushes += 1;
        std::task::Poll::Ready(if this.flushes == 1 {
            Err(io::ErrorKind::Interrupted.into())
        } else {
            Ok(())
        })
    }

    fn poll_close(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        this.closes += 1;
        std::task::Poll::Ready(if this.closes == 1 {
            Err(io::ErrorKind::Interrupted.into())
        } else {
            Ok(())
        })
    }
}

/// An interrupted flush or close is made again, as an interrupted write
/// is: a signal is no failure of the transport.
#[test]
fn an_interrupted_flush_or_close_is_made_again() {
    let mut framed = FramedWrite::new(InterruptedOnce::default(), LinesCodec::new());
    block_on(framed.send("one")).unwrap();
    block_on(SinkExt::<&str>::close(&mut framed)).unwrap();
    let io = framed.get_ref();
    assert_eq!(io.written, b"one\n");
    assert_eq!((io.flushes, io.closes), (3, 2));
}
