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

#[test]
fn poll_ready_is_ready_under_the_mark_after_a_partial_flush() {
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
    Sink::<usize>::start_send(Pin::new(&mut w), 100).unwrap();
    // The flush writes 10 bytes, then the peer takes no more.
    assert!(Sink::<usize>::poll_flush(Pin::new(&mut w), &mut cx).is_pending());
    assert_eq!(w.write_buffer().len(), 90);
    let calls = w.get_ref().calls;

    // 90 bytes buffered, the mark is 65,536: ready at once, no I/O.
    let ready = Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx);
    assert_eq!(
        w.get_ref().calls,
        calls,
        "poll_ready wrote with 90 bytes buffered under a 64 KiB mark"
    );
    assert!(
        ready.is_ready(),
        "poll_ready is Pending with 90 bytes buffered under a 64 KiB mark"
    );
}
