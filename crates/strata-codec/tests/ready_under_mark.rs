//! `poll_ready` is ready at once, without I/O, while the buffer is under
//! the high-water mark, also after a flush that stopped part way (as
//! `FramedWrite::set_high_water_mark`, `Framed`'s docs and strata-proto's
//! backpressure docs say): a pipelined server must not stop reading
//! requests with a few bytes buffered.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, BytesMut};
use futures_io::AsyncWrite;
use futures_sink::Sink;
use strata_codec::{Encoder, FramedWrite};

/// Takes `first` bytes on its first write, then is never ready again
/// (a peer that stopped reading); counts write calls.
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

struct Bytes;
impl Encoder<usize> for Bytes {
    type Error = io::Error;
    fn encode(&mut self, n: usize, dst: &mut BytesMut) -> io::Result<()> {
        dst.put_bytes(b'x', n);
        Ok(())
    }
}

/// A flush of one `item`-byte frame writes 10 bytes and stops; then
/// `poll_ready`, with `item - 10` bytes buffered under the 64 KiB mark, is
/// ready at once and makes no write.
fn ready_under_the_mark_after_a_partial_flush_of(item: usize) {
    let mut w = FramedWrite::new(
        Stalls {
            first: 10,
            calls: 0,
        },
        Bytes,
    );
    assert_eq!(w.high_water_mark(), 64 * 1024);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx).is_ready());
    Sink::<usize>::start_send(Pin::new(&mut w), item).unwrap();
    // The flush writes 10 bytes, then the peer takes no more.
    assert!(Sink::<usize>::poll_flush(Pin::new(&mut w), &mut cx).is_pending());
    let left = item - 10;
    assert_eq!(w.write_buffer().len(), left);
    let calls = w.get_ref().calls;

    let ready = Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx);
    assert_eq!(
        w.get_ref().calls,
        calls,
        "poll_ready wrote with {left} bytes buffered under a 64 KiB mark"
    );
    assert!(
        ready.is_ready(),
        "poll_ready is Pending with {left} bytes buffered under a 64 KiB mark"
    );
}

#[test]
fn poll_ready_is_ready_under_the_mark_after_a_partial_flush() {
    ready_under_the_mark_after_a_partial_flush_of(100);
}

/// Also with more than half the mark left: only a drain that started at
/// the mark goes on down to half of it.
#[test]
fn poll_ready_is_ready_under_the_mark_after_a_partial_flush_over_half_the_mark() {
    ready_under_the_mark_after_a_partial_flush_of(40_000);
}

/// A writer that took 10 bytes of the buffer, then stalls.
fn stalled_after_10_bytes() -> FramedWrite<Stalls, Bytes> {
    FramedWrite::new(
        Stalls {
            first: 10,
            calls: 0,
        },
        Bytes,
    )
}

/// A new mark set after a partial flush (no drain under way) applies as
/// any mark does: under it, `poll_ready` is ready at once, even with more
/// than half of the new mark buffered.
#[test]
fn a_mark_set_after_a_partial_flush_keeps_poll_ready_ready_under_it() {
    let mut w = stalled_after_10_bytes();
    let mut cx = Context::from_waker(Waker::noop());
    Sink::<usize>::start_send(Pin::new(&mut w), 40_000).unwrap();
    assert!(Sink::<usize>::poll_flush(Pin::new(&mut w), &mut cx).is_pending());
    assert_eq!(w.write_buffer().len(), 39_990);
    w.set_high_water_mark(50_000);
    let calls = w.get_ref().calls;
    assert!(Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx).is_ready());
    assert_eq!(w.get_ref().calls, calls, "poll_ready wrote under the mark");
}

/// A new mark set during a drain that started at the old one: the drain
/// goes on down to half of the new mark.
#[test]
fn a_mark_set_during_a_drain_keeps_draining_to_half_of_it() {
    let mut w = stalled_after_10_bytes();
    let mut cx = Context::from_waker(Waker::noop());
    Sink::<usize>::start_send(Pin::new(&mut w), 70_000).unwrap();
    // At the 64 KiB mark: the drain writes 10 bytes, then the peer stalls.
    assert!(Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx).is_pending());
    assert_eq!(w.write_buffer().len(), 69_990);
    w.set_high_water_mark(100_000);
    let calls = w.get_ref().calls;
    // Under the new mark, but over half of it: still draining.
    assert!(Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx).is_pending());
    assert_eq!(w.get_ref().calls, calls + 1);
}
