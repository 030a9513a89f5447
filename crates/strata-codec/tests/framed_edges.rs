//! Framed / FramedRead / FramedWrite and the line codecs at their edges,
//! partly differential against tokio-util (from a review; its two findings,
//! a large buffer kept after a big line and scratch bytes shown to another
//! connection's reader, are the first two tests below).

mod support;

use std::io;
use std::pin::Pin;
use std::task::Poll;

use futures_executor::block_on;
use futures_util::StreamExt;
use strata_codec::{Framed, FramedRead, LinesCodec};
use support::Mock;

#[global_allocator]
static GLOBAL: support::alloc::Counting = support::alloc::Counting;

/// Produces `big` bytes of `a`, a newline, then `x\n` lines forever
/// (never `Pending`, never EOF): a busy peer. No script stored on the heap.
struct BigThenSmall {
    big: usize,
    pos: usize,
}

impl futures_io::AsyncRead for BigThenSmall {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut n = 0;
        while n < buf.len() {
            buf[n] = if this.pos < this.big {
                b'a'
            } else if this.pos == this.big {
                b'\n'
            } else if (this.pos - this.big) % 2 == 1 {
                b'x'
            } else {
                b'\n'
            };
            this.pos += 1;
            n += 1;
            if this.pos == this.big + 1 {
                break; // the big line ends a read
            }
        }
        Poll::Ready(Ok(n))
    }
}

/// The docs: "A large read buffer (256 KiB or more) is also freed as soon
/// as decoding empties it." With LinesCodec (which advances past the line
/// rather than splitting it off) the emptied buffer reports a small
/// `capacity()`; the check used to go by it and kept the large allocation
/// while the connection stayed busy.
#[test]
fn large_line_buffer_is_released_once_emptied_while_busy() {
    large_line_buffer_released(true);
}

/// The same with idle releases turned off, as the pipelined server does
/// (it frees small buffers on its idle timer instead): a busy connection
/// never goes idle, so one large line must not pin its allocation for the
/// rest of the connection's life. Only small buffers are kept.
#[test]
fn large_line_buffer_is_released_even_with_idle_releases_off() {
    large_line_buffer_released(false);
}

fn large_line_buffer_released(release_idle: bool) {
    let len = 400_000;
    // Warm the thread-local scratch buffer so it is not counted.
    let mut warm = FramedRead::new(Mock::new().read(vec![b'z'; 70_000]), LinesCodec::new());
    let _ = block_on(warm.next());
    drop(warm);
    let before = support::alloc::live();
    let mut framed = FramedRead::new(
        BigThenSmall { big: len, pos: 0 },
        LinesCodec::with_max_length(1 << 20),
    );
    framed.set_release_idle_buffers(release_idle);
    let line = block_on(framed.next()).unwrap().unwrap();
    assert_eq!(line.len(), len);
    drop(line);
    for _ in 0..1000 {
        assert_eq!(block_on(framed.next()).unwrap().unwrap(), "x");
    }
    let held = support::alloc::live() - before;
    assert!(
        held < 256 * 1024,
        "after one 400 kB line, the busy FramedRead (idle releases {release_idle}) \
         still holds {held} heap bytes (read_buffer().capacity() = {})",
        framed.read_buffer().capacity()
    );
}

// ---------------------------------------------------------------------
// An I/O object usable by both strata (futures-io) and tokio-util (tokio).

#[derive(Clone, Debug)]
enum Step {
    Data(Vec<u8>),
    Pending,
}

/// Reads follow `steps` (each `Data` may be split by a small buffer),
/// then EOF. `Pending` wakes at once, so `block_on` goes on.
#[derive(Debug)]
struct Script {
    steps: std::collections::VecDeque<Step>,
}

impl Script {
    fn new(steps: &[Step]) -> Self {
        Script {
            steps: steps.iter().cloned().collect(),
        }
    }
    fn next(&mut self, cx: &mut std::task::Context<'_>, room: usize) -> Poll<Vec<u8>> {
        match self.steps.pop_front() {
            None => Poll::Ready(Vec::new()),
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Step::Data(mut d)) => {
                if d.len() > room {
                    let rest = d.split_off(room);
                    self.steps.push_front(Step::Data(rest));
                }
                Poll::Ready(d)
            }
        }
    }
}

impl futures_io::AsyncRead for Script {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let d = std::task::ready!(self.get_mut().next(cx, buf.len()));
        buf[..d.len()].copy_from_slice(&d);
        Poll::Ready(Ok(d.len()))
    }
}

impl tokio::io::AsyncRead for Script {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let d = std::task::ready!(self.get_mut().next(cx, buf.remaining()));
        buf.put_slice(&d);
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug, PartialEq)]
enum Out {
    Line(String),
    Err,
}

/// Strata's lines until the stream ends (it is fused).
fn strata_lines(steps: &[Step]) -> Vec<Out> {
    let mut framed = FramedRead::new(Script::new(steps), LinesCodec::with_max_length(usize::MAX));
    block_on(async {
        let mut out = Vec::new();
        while let Some(r) = framed.next().await {
            out.push(r.map(Out::Line).unwrap_or(Out::Err));
        }
        out
    })
}

/// tokio-util's lines up to the first `None` or error.
fn tokio_lines(steps: &[Step]) -> Vec<Out> {
    let mut framed = tokio_util::codec::FramedRead::new(
        Script::new(steps),
        tokio_util::codec::LinesCodec::new(),
    );
    block_on(async {
        let mut out = Vec::new();
        while let Some(r) = framed.next().await {
            match r {
                Ok(l) => out.push(Out::Line(l)),
                Err(_) => {
                    out.push(Out::Err);
                    break;
                }
            }
        }
        out
    })
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let byte = prop::sample::select(vec![b'a', b'\r', b'\n', 0xc3, 0xa9, 0xff, b' ']);
    prop_oneof![
        1 => Just(Step::Pending),
        4 => prop::collection::vec(byte, 0..40).prop_map(Step::Data),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// Without a length limit, strata's FramedRead<LinesCodec> yields what
    /// tokio-util's does, for any chunking with Pending anywhere.
    #[test]
    fn lines_match_tokio_util_without_limit(steps in proptest::collection::vec(step(), 0..30)) {
        proptest::prop_assert_eq!(strata_lines(&steps), tokio_lines(&steps));
    }
}

/// A reader offered a buffer can look at it before filling it. When the
/// frame buffer is empty, strata reads into a thread-local scratch buffer
/// shared by every connection on the thread, which used to still hold
/// another connection's bytes (it is now zeroed after each read).
struct Peeking {
    seen: Vec<u8>,
}

impl futures_io::AsyncRead for Peeking {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.seen = buf.to_vec();
        Poll::Ready(Ok(0))
    }
}

#[test]
fn reader_is_not_shown_another_connections_bytes() {
    let mut first = FramedRead::new(Mock::new().read(b"password=hunter2\n"), LinesCodec::new());
    assert_eq!(block_on(first.next()).unwrap().unwrap(), "password=hunter2");
    let mut second = FramedRead::new(Peeking { seen: Vec::new() }, LinesCodec::new());
    assert!(block_on(second.next()).is_none());
    let seen = &second.get_ref().seen;
    let leaked = seen.windows(7).any(|w| w == b"hunter2");
    assert!(
        !leaked,
        "the second connection's reader was handed {:?}",
        String::from_utf8_lossy(&seen[..24])
    );
}

/// Writes a line into the buffer it is offered, then fails the read (as a
/// reader that decrypts in place and then finds the record corrupt).
struct WritesThenFails;

impl futures_io::AsyncRead for WritesThenFails {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let secret = b"password=hunter2\n";
        buf[..secret.len()].copy_from_slice(secret);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad record",
        )))
    }
}

/// The same for a read that failed after writing into the scratch buffer:
/// only the bytes of successful reads used to be zeroed.
#[test]
fn reader_is_not_shown_a_failed_read_s_bytes() {
    // A fresh thread: a fresh scratch buffer.
    let leaked = std::thread::spawn(|| {
        let mut first = FramedRead::new(WritesThenFails, LinesCodec::new());
        assert!(block_on(first.next()).unwrap().is_err());
        let mut second = FramedRead::new(Peeking { seen: Vec::new() }, LinesCodec::new());
        assert!(block_on(second.next()).is_none());
        second.get_ref().seen.windows(7).any(|w| w == b"hunter2")
    })
    .join()
    .unwrap();
    assert!(
        !leaked,
        "the second connection's reader was handed a failed read's bytes"
    );
}

const SECRET: &[u8] = b"password=hunter2\n";

/// Writes a line into the buffer it is offered, then panics.
struct WritesThenPanics;

impl futures_io::AsyncRead for WritesThenPanics {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        buf[..SECRET.len()].copy_from_slice(SECRET);
        panic!("corrupt record");
    }
}

/// Writes a line, reports `Interrupted`, then end of stream.
struct WritesThenInterrupted {
    calls: u32,
}

impl futures_io::AsyncRead for WritesThenInterrupted {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.calls += 1;
        if this.calls == 1 {
            buf[..SECRET.len()].copy_from_slice(SECRET);
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::Interrupted)));
        }
        Poll::Ready(Ok(0))
    }
}

/// Whether a reader on a fresh thread, after `first` ran there, is handed
/// the secret.
fn leaked_after(first: impl FnOnce() + Send + 'static) -> bool {
    std::thread::spawn(|| {
        first();
        let mut second = FramedRead::new(Peeking { seen: Vec::new() }, LinesCodec::new());
        assert!(block_on(second.next()).is_none());
        second.get_ref().seen.windows(7).any(|w| w == b"hunter2")
    })
    .join()
    .unwrap()
}

/// The same for a read that panicked, or was interrupted, after writing:
/// a review found that only a read ending in an error was covered.
#[test]
fn reader_is_not_shown_a_panicked_or_interrupted_read_s_bytes() {
    let panicked = leaked_after(|| {
        let r = std::panic::catch_unwind(|| {
            let mut first = FramedRead::new(WritesThenPanics, LinesCodec::new());
            let _ = block_on(first.next());
        });
        assert!(r.is_err());
    });
    assert!(!panicked, "handed the bytes of a read that panicked");
    let interrupted = leaked_after(|| {
        let mut first = FramedRead::new(WritesThenInterrupted { calls: 0 }, LinesCodec::new());
        assert!(block_on(first.next()).is_none());
    });
    assert!(!interrupted, "handed the bytes of an interrupted read");
}

/// Gives `hel`, then writes garbage into the buffer it is offered and
/// panics, then gives `lo\n`.
struct PanicsMidLine {
    calls: u32,
}

impl futures_io::AsyncRead for PanicsMidLine {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.calls += 1;
        let part: &[u8] = match this.calls {
            1 => b"hel",
            2 => {
                buf[..4].copy_from_slice(b"XXXX");
                panic!("corrupt record");
            }
            3 => b"lo\n",
            _ => b"",
        };
        buf[..part.len()].copy_from_slice(part);
        Poll::Ready(Ok(part.len()))
    }
}

/// After `PanicsMidLine`'s panic: the buffer holds the 3 bytes that
/// arrived, nothing of the panicking read's window.
fn assert_arrived_only(left: &bytes::BytesMut) {
    assert!(
        left.as_ref() == b"hel",
        "{} bytes buffered after the panic, not the 3 that arrived",
        left.len()
    );
}

/// A read that panics while part of a frame is buffered leaves the
/// buffer as it was: a reader used again after the panic was caught
/// decodes the frame from the bytes that arrived, not from what the
/// panicking read left in the window.
#[test]
fn read_that_panics_mid_frame_leaves_the_buffered_bytes_as_they_were() {
    let mut framed = FramedRead::new(PanicsMidLine { calls: 0 }, LinesCodec::new());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = block_on(framed.next());
    }));
    assert!(r.is_err(), "the second read panics");
    assert_arrived_only(framed.read_buffer());
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "hello");
}

/// The same for a read-ahead (`Framed::poll_read_ahead`): it grew the
/// buffer by the window before the read and cut it back only after, so a
/// read that panicked left the window in the buffer, as if the peer had
/// sent it.
#[test]
fn read_ahead_that_panics_leaves_the_buffered_bytes_as_they_were() {
    struct Both(PanicsMidLine);
    impl futures_io::AsyncRead for Both {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }
    impl futures_io::AsyncWrite for Both {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    let mut framed = Framed::new(Both(PanicsMidLine { calls: 0 }), LinesCodec::new());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(matches!(
        framed.poll_read_ahead(&mut cx, 3),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(framed.read_buffer().as_ref(), b"hel");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = framed.poll_read_ahead(&mut cx, 64);
    }));
    assert!(r.is_err(), "the second read panics");
    assert_arrived_only(framed.read_buffer());
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "hello");
}

// ---------------------------------------------------------------------
// Write side.

/// Accepts at most `per_write` bytes per call, `Pending` before every
/// write, flush and close call (alternating), or `Ok(0)` once
/// `zero_after` bytes were taken. Panics past 10_000 calls, so a loop on
/// `Ok(0)` fails instead of hanging.
#[derive(Debug, Default)]
struct Trickle {
    per_write: usize,
    zero_after: Option<usize>,
    written: Vec<u8>,
    flip: [bool; 3],
    calls: usize,
    flushes: usize,
    closed: bool,
}

impl Trickle {
    /// `Pending` on every other call of each kind (0 write, 1 flush, 2 close).
    fn gate(&mut self, cx: &mut std::task::Context<'_>, kind: usize) -> bool {
        self.calls += 1;
        assert!(self.calls < 10_000, "writer polled 10_000 times");
        self.flip[kind] = !self.flip[kind];
        if self.flip[kind] {
            cx.waker().wake_by_ref();
        }
        self.flip[kind]
    }
    fn write(&mut self, cx: &mut std::task::Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.gate(cx, 0) {
            return Poll::Pending;
        }
        if self.zero_after.is_some_and(|z| self.written.len() >= z) {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(self.per_write);
        self.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for Trickle {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.gate(cx, 1) {
            return Poll::Pending;
        }
        this.flushes += 1;
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.gate(cx, 2) {
            return Poll::Pending;
        }
        this.closed = true;
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Trickle {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(self, cx)
    }
    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(self, cx)
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// Lines fed, flushed and closed through a writer that takes a few
    /// bytes at a time with `Pending` in between: the same wire bytes as
    /// tokio-util, everything written, flushed and closed.
    #[test]
    fn sink_matches_tokio_util_with_trickling_writer(
        lines in proptest::collection::vec("[a-z é]{0,20}", 0..12),
        per_write in 1usize..7,
        hwm in 0usize..40,
    ) {
        use futures_util::SinkExt;
        let mut ours = strata_codec::FramedWrite::new(
            Trickle { per_write, ..Trickle::default() },
            LinesCodec::new(),
        );
        ours.set_high_water_mark(hwm);
        let mut theirs = tokio_util::codec::FramedWrite::new(
            Trickle { per_write, ..Trickle::default() },
            tokio_util::codec::LinesCodec::new(),
        );
        theirs.set_backpressure_boundary(hwm);
        block_on(async {
            for l in &lines {
                ours.feed(l.as_str()).await.unwrap();
                proptest::prop_assert!(ours.write_buffer().len() <= hwm.max(1) - 1 + l.len() + 1);
                theirs.feed(l.as_str()).await.unwrap();
            }
            SinkExt::<&str>::close(&mut ours).await.unwrap();
            SinkExt::<&str>::close(&mut theirs).await.unwrap();
            Ok(())
        })?;
        proptest::prop_assert_eq!(&ours.get_ref().written, &theirs.get_ref().written);
        proptest::prop_assert!(ours.get_ref().closed && ours.write_buffer().is_empty());
        proptest::prop_assert!(ours.get_ref().flushes >= 1);
    }
}

#[test]
fn writer_returning_zero_is_write_zero_everywhere() {
    use futures_util::SinkExt;
    for path in 0..3 {
        let mut framed = strata_codec::FramedWrite::new(
            Trickle {
                per_write: 3,
                zero_after: Some(if path == 0 { 0 } else { 4 }),
                ..Trickle::default()
            },
            strata_codec::BytesCodec::new(),
        );
        framed.set_high_water_mark(8);
        let err = block_on(async {
            match path {
                0 => {
                    // poll_ready's drain at the high-water mark
                    framed.feed(&b"0123456789"[..]).await.unwrap();
                    framed.feed(&b"x"[..]).await.unwrap_err()
                }
                1 => framed.send(&b"0123456789"[..]).await.unwrap_err(),
                _ => {
                    framed.feed(&b"0123456"[..]).await.unwrap();
                    SinkExt::<&[u8]>::close(&mut framed).await.unwrap_err()
                }
            }
        });
        assert_eq!(err.kind(), io::ErrorKind::WriteZero, "path {path}");
        // Nothing is lost: what was not written is still buffered.
        let taken = framed.get_ref().written.len();
        assert!(!framed.get_ref().closed);
        assert_eq!(
            taken + framed.write_buffer().len(),
            if path == 2 { 7 } else { 10 }
        );
    }
}

/// A reader that returns Ok(0) and then more data: strata's stream stays
/// ended and does not read again (documented: FusedStream), where
/// tokio-util's resumes. Checked, not a finding.
#[test]
fn eof_then_more_data_stays_ended() {
    let steps = [Step::Data(b"a\nb".to_vec())];
    let mut framed = FramedRead::new(Script::new(&steps), LinesCodec::new());
    framed.get_mut().steps.push_back(Step::Data(Vec::new()));
    framed
        .get_mut()
        .steps
        .push_back(Step::Data(b"c\n".to_vec()));
    let got: Vec<String> = block_on(framed.by_ref().map(Result::unwrap).collect());
    assert_eq!(got, ["a", "b"]);
    assert!(futures_core::FusedStream::is_terminated(&framed));
    assert!(block_on(framed.next()).is_none());
    assert_eq!(framed.get_ref().steps.len(), 1, "no read after the end");
}

/// `total` bytes of `a` with no newline, served as fast as asked.
struct Flood {
    total: usize,
    sent: usize,
}

impl futures_io::AsyncRead for Flood {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = buf.len().min(this.total - this.sent);
        buf[..n].fill(b'a');
        this.sent += n;
        Poll::Ready(Ok(n))
    }
}

/// A peer sending a 100 MB line to a 64 KiB limit: an error after about
/// the limit, a bounded peak, and the stream ends without reading the rest.
#[test]
fn hundred_megabyte_line_is_bounded() {
    let mut framed = FramedRead::new(
        Flood {
            total: 100_000_000,
            sent: 0,
        },
        LinesCodec::with_max_length(64 * 1024),
    );
    let before = support::alloc::live();
    support::alloc::reset_peak(before);
    let first = block_on(framed.next()).unwrap();
    assert!(matches!(
        first,
        Err(strata_codec::LinesCodecError::LineTooLong { .. })
    ));
    assert!(block_on(framed.next()).is_none());
    let peak = support::alloc::peak() - before;
    assert!(peak < 512 * 1024, "peak {peak}");
    assert!(
        framed.get_ref().sent < 512 * 1024,
        "read {}",
        framed.get_ref().sent
    );
}

/// Buffered bytes survive into_parts / from_parts, both directions, and a
/// FramedRead taken apart and rebuilt with its buffer.
#[test]
fn parts_keep_buffered_bytes() {
    use futures_util::SinkExt;
    let io = Script::new(&[Step::Data(b"one\ntw".to_vec()), Step::Data(b"o\n".to_vec())]);
    let mut r = FramedRead::new(io, LinesCodec::new());
    assert_eq!(block_on(r.next()).unwrap().unwrap(), "one");
    let (io, codec, buf) = r.into_parts();
    assert_eq!(&buf[..], b"tw");
    let mut r = FramedRead::with_read_buffer(io, codec, buf);
    assert_eq!(block_on(r.next()).unwrap().unwrap(), "two");

    let mut f = strata_codec::Framed::new(support::Mock::new().read(b"a\nb"), LinesCodec::new());
    assert_eq!(block_on(f.next()).unwrap().unwrap(), "a");
    block_on(f.feed("out")).unwrap();
    let parts = f.into_parts();
    assert_eq!(
        (&parts.read_buffer[..], &parts.write_buffer[..]),
        (&b"b"[..], &b"out\n"[..])
    );
    let mut f = strata_codec::Framed::from_parts(parts);
    assert_eq!(block_on(f.next()).unwrap().unwrap(), "b");
    block_on(SinkExt::<&str>::flush(&mut f)).unwrap();
    assert_eq!(f.get_ref().written, b"out\n");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
    /// Read-ahead with any limits between polls changes nothing in the
    /// frames yielded (including at EOF), with Pending anywhere.
    #[test]
    fn read_ahead_is_transparent(
        steps in proptest::collection::vec(step(), 0..20),
        limits in proptest::collection::vec(0usize..64, 1..20),
    ) {
        let want = strata_lines(&steps);
        let mut framed =
            strata_codec::Framed::new(Duplex(Script::new(&steps)), LinesCodec::with_max_length(usize::MAX));
        let got = block_on(async {
            let mut out = Vec::new();
            let mut i = 0;
            loop {
                let limit = limits[i % limits.len()];
                i += 1;
                let mut cx_poll = std::future::poll_fn(|cx| {
                    Poll::Ready(framed.poll_read_ahead(cx, limit))
                });
                let _ = (&mut cx_poll).await;
                match framed.next().await {
                    Some(r) => out.push(r.map(Out::Line).unwrap_or(Out::Err)),
                    None => break,
                }
            }
            out
        });
        proptest::prop_assert_eq!(got, want);
    }
}

/// `Script` under another type, for `Framed` (only its reads are used).
struct Duplex(Script);

impl futures_io::AsyncRead for Duplex {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}
