//! The write side after a flush that stopped part way: `poll_ready` stays
//! ready under the mark, and a large buffer is still released after the
//! complete flush when it was handed out (`write_buffer_mut`,
//! `into_parts`) in between. Heap bytes are counted per thread.

mod support;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, BytesMut};
use futures_io::AsyncWrite;
use futures_sink::Sink;
use strata_codec::{BytesCodec, Encoder, Framed, FramedWrite};
use support::{Mock, noop_cx};

#[global_allocator]
static GLOBAL: support::alloc::Counting = support::alloc::Counting;

/// Takes `first` bytes on its first write, then is never ready again (a
/// peer that stopped reading); counts write calls.
struct Stalls {
    first: usize,
    calls: usize,
}

impl AsyncWrite for Stalls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.calls += 1;
        if self.calls == 1 {
            Poll::Ready(Ok(self.first.min(buf.len())))
        } else {
            Poll::Pending
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct Fill;
impl Encoder<usize> for Fill {
    type Error = io::Error;
    fn encode(&mut self, n: usize, dst: &mut BytesMut) -> io::Result<()> {
        dst.put_bytes(b'x', n);
        Ok(())
    }
}

/// `Framed`'s docs: "while the write buffer holds less than the high-water
/// mark ... it is ready at once, without any I/O", also after a flush that
/// wrote a few bytes and stopped with more than half the mark left (only
/// a drain that started at the mark goes on to half of it).
#[test]
fn poll_ready_is_ready_under_the_mark_after_a_partial_flush_over_half_the_mark() {
    let mut w = FramedWrite::new(
        Stalls {
            first: 10,
            calls: 0,
        },
        Fill,
    );
    assert_eq!(w.high_water_mark(), 64 * 1024);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx).is_ready());
    Sink::<usize>::start_send(Pin::new(&mut w), 40_000).unwrap();
    // The flush writes 10 bytes, then the peer takes no more.
    assert!(Sink::<usize>::poll_flush(Pin::new(&mut w), &mut cx).is_pending());
    assert_eq!(w.write_buffer().len(), 39_990);
    let calls = w.get_ref().calls;

    // 39,990 bytes buffered, the mark is 65,536: ready at once, no I/O.
    let ready = Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx);
    assert_eq!(
        w.get_ref().calls,
        calls,
        "poll_ready wrote with 39,990 bytes buffered under a 64 KiB mark"
    );
    assert!(
        ready.is_ready(),
        "poll_ready is Pending with 39,990 bytes buffered under a 64 KiB mark"
    );
}

/// `Framed`'s docs, Memory: with idle releases off, "Large buffers (256 KiB
/// or more) are still freed as above" (after a complete flush). A large
/// frame whose flush stopped part way, then touched through
/// `write_buffer_mut` (or taken apart with `into_parts` and put back with
/// `from_parts`), is freed after the complete flush too: the buffer is
/// compacted before it is handed out, so no written part stays hidden in
/// front of it, where `capacity()`, which the check goes by, would not
/// count it.
fn large_write_buffer_released_after(big: usize, first_write: usize, handover: bool) {
    let mock = Mock::new().write_accept(first_write).write_pending();
    let mut framed = Framed::new(mock, BytesCodec::new());
    framed.set_release_idle_buffers(false);
    let mut cx = noop_cx();
    let before = support::alloc::live();
    Pin::new(&mut framed).start_send(vec![7u8; big]).unwrap();
    assert!(Sink::<Vec<u8>>::poll_flush(Pin::new(&mut framed), &mut cx).is_pending());
    if handover {
        let parts = framed.into_parts();
        framed = Framed::from_parts(parts);
        framed.set_release_idle_buffers(false);
    } else {
        let _ = framed.write_buffer_mut();
    }
    assert!(Sink::<Vec<u8>>::poll_flush(Pin::new(&mut framed), &mut cx).is_ready());
    let written = framed.get_ref().written.len();
    assert_eq!(written, big);
    // What the mock recorded (`written`, a Vec that grew to hold 1 MiB)
    // is live too; count only the frame buffer.
    let mock_bytes = framed.get_ref().written.capacity() as isize;
    let held = support::alloc::live() - before - mock_bytes;
    assert!(
        held < 256 * 1024,
        "after a complete flush the write buffer still holds {held} bytes \
         (capacity() says {})",
        framed.write_buffer().capacity()
    );
}

#[test]
fn large_write_buffer_is_released_after_write_buffer_mut() {
    large_write_buffer_released_after(1 << 20, 900 * 1024, false);
    // Less written than left: the rest was not moved to the front.
    large_write_buffer_released_after(1 << 20, 100 * 1024, false);
    large_write_buffer_released_after(300 * 1024, 100 * 1024, false);
}

#[test]
fn large_write_buffer_is_released_after_into_parts_from_parts() {
    large_write_buffer_released_after(1 << 20, 900 * 1024, true);
    large_write_buffer_released_after(1 << 20, 100 * 1024, true);
    large_write_buffer_released_after(300 * 1024, 100 * 1024, true);
}
