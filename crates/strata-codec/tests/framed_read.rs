//! The read side of `Framed` and `FramedRead`, over scripted I/O.

mod support;

use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Buf, BytesMut};
use futures_core::{FusedStream, Stream};
use futures_executor::block_on;
use futures_util::StreamExt;
use strata_codec::{
    Decoder, Framed, FramedRead, LengthDelimitedCodec, LengthDelimitedCodecError, LinesCodec,
    LinesCodecError,
};
use support::{Mock, noop_cx};

fn collect<T, D>(framed: &mut FramedRead<T, D>) -> Vec<Result<D::Item, D::Error>>
where
    T: futures_io::AsyncRead + Unpin,
    D: Decoder,
{
    block_on(framed.by_ref().collect())
}

/// A decoder of fixed 4-byte frames that keeps the default `decode_eof`.
#[derive(Debug)]
struct Fixed4;

impl Decoder for Fixed4 {
    type Item = [u8; 4];
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<[u8; 4]>> {
        if src.len() < 4 {
            return Ok(None);
        }
        let mut frame = [0; 4];
        src.copy_to_slice(&mut frame);
        Ok(Some(frame))
    }
}

#[test]
fn frames_split_across_reads_and_pauses() {
    let mock = Mock::new().read_chunks([&b"he"[..], b"llo\r", b"\nwor", b"ld\n", b"!\n"]);
    let mut framed = FramedRead::new(mock, LinesCodec::new());
    let lines: Vec<String> = collect(&mut framed)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines, ["hello", "world", "!"]);
    assert!(framed.is_terminated());
}

#[test]
fn several_frames_in_one_read_are_all_yielded() {
    let mock = Mock::new().read(b"a\nb\nc\n");
    let mut framed = FramedRead::new(mock, LinesCodec::new());
    let lines: Vec<String> = collect(&mut framed)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines, ["a", "b", "c"]);
    // One read with data, one that saw end of stream.
    assert_eq!(framed.get_ref().read_calls, 2);
}

#[test]
fn partial_frame_at_eof_is_an_error() {
    // A 4-byte header announcing 10 bytes, then only 3 of them.
    let mock = Mock::new().read(b"\x00\x00\x00\x0aabc");
    let mut framed = FramedRead::new(mock, LengthDelimitedCodec::new());
    let results = collect(&mut framed);
    assert_eq!(results.len(), 1);
    assert!(matches!(
        results[0],
        Err(LengthDelimitedCodecError::UnexpectedEof { buffered: 7 })
    ));
}

#[test]
fn partial_frame_at_eof_is_an_error_with_the_default_decode_eof() {
    let mock = Mock::new().read(b"abcdef");
    let mut framed = FramedRead::new(mock, Fixed4);
    let results = collect(&mut framed);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().unwrap(), b"abcd");
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

/// Frames of 4 bytes that the decoder takes out of the buffer as they
/// come, holding the frame in progress itself: it says so in `in_frame`.
#[derive(Debug, Default)]
struct Held4(Vec<u8>);

impl Decoder for Held4 {
    type Item = Vec<u8>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Vec<u8>>> {
        let take = (4 - self.0.len()).min(src.len());
        self.0.extend_from_slice(&src.split_to(take));
        Ok((self.0.len() == 4).then(|| std::mem::take(&mut self.0)))
    }

    fn in_frame(&self, src: &BytesMut) -> bool {
        !self.0.is_empty() || !src.is_empty()
    }
}

#[test]
fn a_frame_held_by_the_decoder_at_eof_is_an_error_with_the_default_decode_eof() {
    let mock = Mock::new().read_chunks([&b"abcd"[..], b"e"]);
    let mut framed = FramedRead::new(mock, Held4::default());
    let results = collect(&mut framed);
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap(), b"abcd");
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn final_unterminated_line_is_yielded_at_eof() {
    let mock = Mock::new().read(b"one\ntwo");
    let mut framed = FramedRead::new(mock, LinesCodec::new());
    let lines: Vec<String> = collect(&mut framed)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines, ["one", "two"]);
}

#[test]
fn read_error_is_yielded_then_the_stream_ends() {
    let mock = Mock::new()
        .read(b"ok\n")
        .read_error(io::ErrorKind::ConnectionReset)
        .read(b"never\n");
    let mut framed = FramedRead::new(mock, LinesCodec::new());
    let results = collect(&mut framed);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().unwrap(), "ok");
    assert!(
        matches!(&results[1], Err(LinesCodecError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset)
    );
    assert!(framed.is_terminated());
    assert!(block_on(framed.next()).is_none());
    assert_eq!(
        framed.get_ref().reads_left(),
        1,
        "nothing is read after an error"
    );
}

#[test]
fn interrupted_reads_are_retried() {
    let mock = Mock::new()
        .read_error(io::ErrorKind::Interrupted)
        .read(b"x\n");
    let mut framed = FramedRead::new(mock, LinesCodec::new());
    let lines: Vec<String> = collect(&mut framed)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines, ["x"]);
}

#[test]
fn decode_error_ends_the_stream() {
    let mock = Mock::new().read(b"\xff\xfe\nfine\n");
    let mut framed = FramedRead::new(mock, LinesCodec::new());
    let results = collect(&mut framed);
    assert_eq!(results.len(), 1);
    assert!(matches!(results[0], Err(LinesCodecError::InvalidUtf8(_))));
}

#[test]
fn over_long_line_byte_by_byte_keeps_the_buffer_bounded() {
    const MAX: usize = 64;
    let input = vec![b'a'; 10 * MAX];
    let mock = Mock::new().read_chunks(input.chunks(1));
    let mut framed = FramedRead::new(mock, LinesCodec::with_max_length(MAX));
    let mut cx = noop_cx();
    let err = loop {
        match Pin::new(&mut framed).poll_next(&mut cx) {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(line))) => panic!("unexpected line {line:?}"),
            Poll::Ready(Some(Err(err))) => break err,
            Poll::Ready(None) => panic!("stream ended without an error"),
        }
        // One byte per read, one byte of slack for a `\r`.
        assert!(framed.read_buffer().len() <= MAX + 2);
    };
    assert!(matches!(err, LinesCodecError::LineTooLong { limit: MAX }));
    // The error came as soon as the limit was passed, not at end of input.
    assert!(framed.get_ref().reads_left() > 8 * MAX);
}

#[test]
fn try_decode_buffered_does_no_io() {
    let mock = Mock::new().read(b"a\nb\nc").read_pending().read(b"\n");
    let mut framed = Framed::new(mock, LinesCodec::new());
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "a");
    let reads = framed.get_ref().read_calls;
    assert_eq!(framed.try_decode_buffered().unwrap().as_deref(), Some("b"));
    assert_eq!(
        framed.try_decode_buffered().unwrap(),
        None,
        "c is incomplete"
    );
    assert_eq!(framed.get_ref().read_calls, reads);
    assert_eq!(&framed.read_buffer()[..], b"c");
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "c");
    assert!(block_on(framed.next()).is_none());
    assert_eq!(framed.try_decode_buffered().unwrap(), None);
}

#[test]
fn try_decode_buffered_reports_decode_errors_and_ends_the_stream() {
    let mut framed = Framed::new(Mock::new().read(b"ok\n"), LinesCodec::with_max_length(3));
    framed.read_buffer_mut().extend_from_slice(b"too long\n");
    assert!(matches!(
        framed.try_decode_buffered(),
        Err(LinesCodecError::LineTooLong { limit: 3 })
    ));
    assert!(framed.is_terminated());
    assert!(block_on(framed.next()).is_none());
}

#[test]
fn bytes_put_in_the_read_buffer_are_decoded_first() {
    let mock = Mock::new().read_pending().read(b"second\n");
    let mut framed = FramedRead::new(mock, LinesCodec::new());
    let mut cx = noop_cx();
    assert!(Pin::new(&mut framed).poll_next(&mut cx).is_pending());
    framed.read_buffer_mut().extend_from_slice(b"first\n");
    let lines: Vec<String> = collect(&mut framed)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines, ["first", "second"]);
}

/// One 100 KiB frame, then the peer goes quiet.
fn big_frame_then_idle(release: bool) -> FramedRead<Mock, LengthDelimitedCodec> {
    let mut wire = (100 * 1024u32).to_be_bytes().to_vec();
    wire.extend(std::iter::repeat_n(7u8, 100 * 1024));
    let mut framed = FramedRead::new(
        Mock::new().read(wire).read_pending(),
        LengthDelimitedCodec::new(),
    );
    framed.set_release_idle_buffers(release);
    let mut cx = noop_cx();
    let frame = match Pin::new(&mut framed).poll_next(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame,
        other => panic!("expected a frame, got {other:?}"),
    };
    assert_eq!(frame.len(), 100 * 1024);
    drop(frame);
    assert!(Pin::new(&mut framed).poll_next(&mut cx).is_pending());
    framed
}

#[test]
fn read_buffer_is_released_when_idle() {
    let framed = big_frame_then_idle(true);
    assert_eq!(framed.read_buffer().capacity(), 0);
}

#[test]
fn read_buffer_is_kept_when_release_is_off() {
    let framed = big_frame_then_idle(false);
    assert!(framed.read_buffer().capacity() > 0);
}

#[test]
fn large_read_buffer_is_released_once_emptied_even_while_busy() {
    let len = 512 * 1024;
    let mut wire = (len as u32).to_be_bytes().to_vec();
    wire.extend(std::iter::repeat_n(1u8, len));
    let mock = Mock::new().read(wire).read(b"\x00\x00\x00\x01x");
    let mut framed = FramedRead::new(mock, LengthDelimitedCodec::new());
    let frame = block_on(framed.next()).unwrap().unwrap();
    assert_eq!(frame.len(), len);
    assert_eq!(framed.read_buffer().capacity(), 0);
    assert_eq!(&block_on(framed.next()).unwrap().unwrap()[..], b"x");
}

#[test]
fn read_window_grows_for_bulk_reads() {
    let len = 1024 * 1024;
    let mut wire = (len as u32).to_be_bytes().to_vec();
    wire.extend(std::iter::repeat_n(1u8, len));
    let mut framed = FramedRead::new(Mock::new().read(wire), LengthDelimitedCodec::new());
    assert_eq!(block_on(framed.next()).unwrap().unwrap().len(), len);
    let mock = framed.get_ref();
    assert_eq!(mock.largest_read_buf, 64 * 1024);
    // With a fixed 4 KiB window this would take 256 reads.
    assert!(mock.read_calls < 32, "{} reads", mock.read_calls);
}

#[test]
fn first_read_offers_the_read_window() {
    let mut framed = FramedRead::new(Mock::new().read(b"x\n"), LinesCodec::new());
    framed.set_read_window(512);
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "x");
    assert_eq!(framed.get_ref().largest_read_buf, 512);
}

/// Bytes that come out of another framed reader: framing over framing
/// (say, lines inside length-delimited envelopes).
struct Unframed {
    frames: FramedRead<futures_util::io::Cursor<Vec<u8>>, strata_codec::BytesCodec>,
    pending: BytesMut,
}

impl futures_io::AsyncRead for Unframed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_empty() {
            match futures_util::ready!(self.frames.poll_next_unpin(cx)) {
                Some(Ok(bytes)) => self.pending = bytes,
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(0)),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Poll::Ready(Ok(n))
    }
}

#[test]
fn a_framed_reader_can_read_from_another_framed_reader() {
    let inner = Unframed {
        frames: FramedRead::new(
            futures_util::io::Cursor::new(b"hello\nworld\n".to_vec()),
            strata_codec::BytesCodec::new(),
        ),
        pending: BytesMut::new(),
    };
    let mut outer = FramedRead::new(inner, LinesCodec::new());
    let lines: Vec<String> = collect(&mut outer)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines, ["hello", "world"]);
}

#[test]
fn bytes_put_in_the_read_buffer_are_decoded_while_the_reader_has_nothing() {
    let mock = Mock::new().read_pending().read_pending();
    let mut framed = FramedRead::new(mock, LinesCodec::new());
    let mut cx = noop_cx();
    assert!(Pin::new(&mut framed).poll_next(&mut cx).is_pending());
    framed.read_buffer_mut().extend_from_slice(b"first\n");
    match Pin::new(&mut framed).poll_next(&mut cx) {
        Poll::Ready(Some(Ok(line))) => assert_eq!(line, "first"),
        other => panic!("expected the buffered line, got {other:?}"),
    }
    assert_eq!(framed.get_ref().read_calls, 1, "decoded without reading");
}

#[test]
fn an_ended_stream_stays_ended_when_bytes_are_put_in_its_read_buffer() {
    let mut framed = FramedRead::new(Mock::new().read(b"a\n"), LinesCodec::new());
    let lines: Vec<String> = collect(&mut framed)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines, ["a"]);
    assert!(framed.is_terminated());
    let reads = framed.get_ref().read_calls;
    framed.read_buffer_mut().extend_from_slice(b"late\n");
    assert!(framed.is_terminated());
    assert!(block_on(framed.next()).is_none());
    assert_eq!(framed.get_ref().read_calls, reads);
}

#[test]
fn a_stream_is_terminated_only_once_it_has_ended() {
    let mut framed = FramedRead::new(Mock::new().read(b"a\n"), LinesCodec::new());
    assert!(!framed.is_terminated());
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "a");
    assert!(!framed.is_terminated());
    assert!(block_on(framed.next()).is_none());
    assert!(framed.is_terminated());

    let mut framed = Framed::new(Mock::new().read(b"a\n"), LinesCodec::new());
    assert!(!framed.is_terminated());
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "a");
    assert!(!framed.is_terminated());
    assert!(block_on(framed.next()).is_none());
    assert!(framed.is_terminated());
}

/// Returns `sizes[i]` bytes on its i-th read (all it is offered for
/// `usize::MAX`), then end of stream; records the room each read offered.
struct ReadSizes {
    sizes: Vec<usize>,
    offered: Vec<usize>,
}

impl futures_io::AsyncRead for ReadSizes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let i = self.offered.len();
        self.offered.push(buf.len());
        let n = self.sizes.get(i).map_or(0, |&size| size.min(buf.len()));
        buf[..n].fill(b'x');
        Poll::Ready(Ok(n))
    }
}

/// The read window doubles after a read that fills it and halves (not
/// below the smallest) after one that fills less than half of it.
#[test]
fn read_window_shrinks_after_reads_under_half_of_it() {
    const FULL: usize = usize::MAX;
    let io = ReadSizes {
        sizes: vec![FULL, FULL, FULL, 1, 8192, 12_000, 8191, 1, 1],
        offered: Vec::new(),
    };
    let mut framed = FramedRead::new(io, strata_codec::BytesCodec::new());
    let total: usize = block_on(
        framed
            .by_ref()
            .map(|frame| frame.unwrap().len())
            .collect::<Vec<_>>(),
    )
    .into_iter()
    .sum();
    assert_eq!(
        total,
        4096 + 8192 + 16_384 + 1 + 8192 + 12_000 + 8191 + 1 + 1
    );
    assert_eq!(
        framed.get_ref().offered,
        [
            4096, 8192, 16_384, 32_768, 16_384, 16_384, 16_384, 8192, 4096, 4096
        ]
    );
}

/// `\n`-separated frames; at the end of the stream, what is left is one
/// last frame. Counts the `decode_eof` calls made after one said `None`.
#[derive(Default)]
struct LastLine {
    eof_done: bool,
    calls_after_none: usize,
}

impl Decoder for LastLine {
    type Item = String;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<String>> {
        Ok(src.iter().position(|&b| b == b'\n').map(|i| {
            let line = src.split_to(i + 1);
            String::from_utf8_lossy(&line[..i]).into_owned()
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<String>> {
        if self.eof_done {
            self.calls_after_none += 1;
        }
        if let Some(line) = self.decode(src)? {
            return Ok(Some(line));
        }
        if src.is_empty() {
            self.eof_done = true;
            return Ok(None);
        }
        let rest = src.split();
        Ok(Some(String::from_utf8_lossy(&rest).into_owned()))
    }
}

/// `decode_eof` is called until it says `None`, and not after, also when
/// the frames are taken as the pipelined server takes a batch: the first
/// from the stream, the rest with `try_decode_buffered`. (That left the
/// stream draining, and the next `poll_next` called `decode_eof` again.)
#[test]
fn decode_eof_is_not_called_again_after_it_said_none() {
    block_on(async {
        let io = futures_util::io::Cursor::new(b"a\nb".to_vec());
        let mut framed = Framed::new(io, LastLine::default());
        let mut frames = Vec::new();
        while let Some(first) = framed.next().await {
            frames.push(first.unwrap());
            while let Some(more) = framed.try_decode_buffered().unwrap() {
                frames.push(more);
            }
        }
        assert_eq!(frames, ["a", "b"]);
        assert_eq!(framed.codec().calls_after_none, 0);
    });
}
