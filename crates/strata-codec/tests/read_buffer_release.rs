//! What an idle framed reader holds on the heap, counted by a per-thread
//! counting allocator: a buffer that decoding emptied exactly (the frames
//! were split off its front, leaving a `capacity()` of 0) still owns the
//! allocation they were cut from, and a buffer filled by `poll_read_ahead`
//! is judged large by what it held, as one filled by reads is.

mod support;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use futures_core::Stream;
use strata_codec::{BytesCodec, Decoder, Framed, FramedRead, LengthDelimitedCodec};

// ---------------------------------------------------------------------
// A per-thread heap counter (as in ld_limits.rs and framed_edges.rs).

#[global_allocator]
static GLOBAL: support::alloc::Counting = support::alloc::Counting;

/// A peer that sends `total` bytes of back-to-back length-delimited frames
/// (4-byte big-endian header, `frame - 4` zero bytes each), then goes
/// quiet (`Pending`, connection open). Generated on the fly: no heap.
struct FramesThenQuiet {
    frame: usize,
    total: usize,
    pos: usize,
}

impl futures_io::AsyncRead for FramesThenQuiet {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pos == this.total {
            return Poll::Pending;
        }
        let header = ((this.frame - 4) as u32).to_be_bytes();
        let mut n = 0;
        while n < buf.len() && this.pos < this.total {
            let at = this.pos % this.frame;
            buf[n] = if at < 4 { header[at] } else { 0 };
            this.pos += 1;
            n += 1;
        }
        Poll::Ready(Ok(n))
    }
}

fn warm_scratch() {
    // The thread-local scratch buffer of the read path, grown once.
    let mut warm = FramedRead::new(
        FramesThenQuiet {
            frame: 70_000,
            total: 70_000,
            pos: 0,
        },
        LengthDelimitedCodec::new(),
    );
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Some(f)) = Pin::new(&mut warm).poll_next(&mut cx) {
        drop(f);
    }
    drop(warm);
}

/// `Framed` docs (Memory): "When a read finds nothing to read (`Pending`)
/// and no undecoded bytes are buffered, the read buffer is freed ... an
/// idle `Framed` ... holds ... no heap memory of its own."
///
/// A read into the empty buffer allocates exactly the bytes that arrived;
/// when they are whole frames, `split_to` leaves an empty buffer whose
/// `capacity()` is 0 but which still owns the whole allocation (the frames
/// were views into it). The idle release frees it all the same.
#[test]
fn idle_reader_frees_a_buffer_that_decoding_emptied_exactly() {
    warm_scratch();
    for frame in [64usize, 1000, 4096] {
        let before = support::alloc::live();
        let mut r = FramedRead::new(
            FramesThenQuiet {
                frame,
                total: frame,
                pos: 0,
            },
            LengthDelimitedCodec::new(),
        );
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut r).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(f))) => assert_eq!(f.len(), frame - 4),
            other => panic!("{other:?}"),
        }
        // The application is done with the frame; the peer goes quiet.
        assert!(Pin::new(&mut r).poll_next(&mut cx).is_pending());
        assert!(r.read_buffer().is_empty());
        let held = support::alloc::live() - before;
        assert!(
            held == 0,
            "an idle FramedRead with nothing buffered still holds {held} heap bytes \
             (read_buffer().capacity() = {}) after one {frame}-byte frame",
            r.read_buffer().capacity()
        );
    }
}

/// `BytesCodec` hands out each read as a view of the buffer (`split`), so
/// after every read the emptied buffer has `capacity()` 0 while owning
/// the read's allocation; an idle connection must not pin its last read.
#[test]
fn idle_bytes_codec_reader_holds_no_heap() {
    warm_scratch();
    let before = support::alloc::live();
    let mut r = FramedRead::new(
        FramesThenQuiet {
            frame: 3000,
            total: 3000,
            pos: 0,
        },
        BytesCodec::new(),
    );
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut r).poll_next(&mut cx) {
        Poll::Ready(Some(Ok(f))) => assert_eq!(f.len(), 3000),
        other => panic!("{other:?}"),
    }
    assert!(Pin::new(&mut r).poll_next(&mut cx).is_pending());
    let held = support::alloc::live() - before;
    assert!(
        held == 0,
        "an idle FramedRead<_, BytesCodec> still holds {held} heap bytes \
         (read_buffer().capacity() = {})",
        r.read_buffer().capacity()
    );
}

/// With idle releases on and the emptied buffer's `capacity()` above 0,
/// the idle release frees it.
#[test]
fn read_ahead_buffer_with_room_left_is_freed_when_idle() {
    let (held, capacity) = held_after_read_ahead(900 * 1024, true);
    assert!(held < 256 * 1024, "{held} {capacity}");
}

/// Reads 'total' bytes of 1 KiB frames with `poll_read_ahead`, decodes and
/// drops them all, lets the peer go quiet (`Pending`), and returns the heap
/// bytes the idle `Framed` still holds.
fn held_after_read_ahead(total: usize, release_idle: bool) -> (isize, usize) {
    warm_scratch();
    let before = support::alloc::live();
    let mut f = Framed::new(
        FramesThenQuiet {
            frame: 1024,
            total,
            pos: 0,
        },
        LengthDelimitedCodec::new(),
    );
    f.set_release_idle_buffers(release_idle);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(f.poll_read_ahead(&mut cx, total).is_ready());
    assert_eq!(f.read_buffer().len(), total);
    let mut frames = 0;
    loop {
        match Pin::new(&mut f).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                assert_eq!(frame.len(), 1020);
                frames += 1;
            }
            Poll::Pending => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(frames, total / 1024);
    assert!(f.read_buffer().is_empty());
    (support::alloc::live() - before, f.read_buffer().capacity())
}

/// The same with a large buffer filled by `poll_read_ahead`, default
/// settings: 1 MiB of small frames read ahead (the buffer grows by
/// doubling to exactly 1 MiB), all decoded and dropped, then the peer goes
/// quiet: the idle release frees the whole 1 MiB allocation.
#[test]
fn read_ahead_buffer_filled_exactly_is_freed_when_idle() {
    let (held, capacity) = held_after_read_ahead(1 << 20, true);
    assert!(
        held < 256 * 1024,
        "an idle Framed with nothing buffered still holds {held} heap bytes \
         (read_buffer().capacity() = {capacity}) after 1 MiB was read ahead and decoded"
    );
}

/// With idle releases off, `Framed` docs: "Large buffers (256 KiB or more)
/// are still freed as above", and "A large read buffer (256 KiB or more) is
/// also freed as soon as decoding empties it". 900 KiB read ahead (a 1 MiB
/// allocation), decoded, dropped: the buffer is judged by what it held
/// (`poll_read_ahead` records it, as reads do), not by the emptied
/// buffer's `capacity()` (124 KiB left behind the decoded bytes).
#[test]
fn read_ahead_large_buffer_is_freed_with_idle_releases_off() {
    let (held, capacity) = held_after_read_ahead(900 * 1024, false);
    assert!(
        held < 256 * 1024,
        "idle releases off: an idle Framed with nothing buffered still holds {held} heap \
         bytes (read_buffer().capacity() = {capacity}) after 900 KiB was read ahead and \
         decoded"
    );
}

/// A read window set absurdly large is capped at 16 MiB: each read
/// reserves the window (and the thread's scratch buffer keeps it), so
/// `usize::MAX` would fail the first read's allocation.
#[test]
fn an_absurd_read_window_is_capped() {
    let mut f = FramedRead::new(
        FramesThenQuiet {
            frame: 64,
            total: 64,
            pos: 0,
        },
        LengthDelimitedCodec::new(),
    );
    f.set_read_window(usize::MAX);
    assert_eq!(f.read_window(), 16 << 20);
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut f).poll_next(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => assert_eq!(frame.len(), 60),
        other => panic!("{other:?}"),
    }
    f.set_read_window(0);
    assert_eq!(f.read_window(), 1);
}

/// A length-prefixed decoder (4-byte big-endian length, then that many
/// bytes, at most 4 MiB) that, once it knows a frame's length, reserves
/// the rest of the frame if `reserve` (as the `Decoder` docs allow, "to
/// avoid regrowth").
struct Prefixed {
    reserve: bool,
}

impl Decoder for Prefixed {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(src[..4].try_into().unwrap()) as usize;
        if len > 4 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long"));
        }
        if src.len() < 4 + len {
            if self.reserve {
                src.reserve(4 + len - src.len());
            }
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(len)))
    }
}

/// A slow sender: 1 KiB a read, `Pending` (woken at once) before each.
struct Slow {
    data: Vec<u8>,
    at: usize,
    ready: bool,
}

impl futures_io::AsyncRead for Slow {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !std::mem::replace(&mut self.ready, true) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        let n = 1024.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Poll::Ready(Ok(n))
    }
}

/// The bytes allocated while a 1 MiB frame arrives through [`Slow`].
fn allocated_for_a_slow_frame(reserve: bool, release_idle: bool) -> usize {
    const FRAME: usize = 1 << 20;
    let mut data = (FRAME as u32).to_be_bytes().to_vec();
    data.resize(4 + FRAME, 7);
    let io = Slow {
        data,
        at: 0,
        ready: false,
    };
    let mut framed = FramedRead::new(io, Prefixed { reserve });
    framed.set_release_idle_buffers(release_idle);
    let mut cx = Context::from_waker(Waker::noop());
    support::alloc::reset_allocated();
    let frame = loop {
        if let Poll::Ready(item) = Pin::new(&mut framed).poll_next(&mut cx) {
            break item.unwrap().unwrap();
        }
    };
    let allocated = support::alloc::allocated();
    assert_eq!(frame.len(), FRAME);
    allocated
}

/// A decoder's reservation for the frame in progress is kept while the
/// frame arrives, reads waiting in between: about one allocation of the
/// frame's size, with idle releases on or off. (It was once dropped at
/// each waiting read while under 64 KiB were buffered, taken for a large
/// frame's leftover: 75 MB allocated for a 1 MiB frame arriving 1 KiB a
/// read, 2.6 MB without the reservation.)
#[test]
fn a_decoders_reservation_is_kept_while_its_frame_arrives() {
    let grown = allocated_for_a_slow_frame(false, true);
    for release_idle in [true, false] {
        let reserved = allocated_for_a_slow_frame(true, release_idle);
        assert!(
            reserved <= 4 << 20,
            "a decoder that reserves its 1 MiB frame made Framed allocate {reserved} \
             bytes ({grown} without the reservation; idle releases {release_idle})"
        );
    }
}
