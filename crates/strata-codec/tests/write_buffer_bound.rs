//! The write buffer under a slow peer whose writes take part of the
//! buffer, with flushes that stop part way: its allocation stays within the
//! documented bound, and no byte is lost or reordered. A test-only global
//! allocator records the largest block asked for on the tracking thread.

mod support;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, BytesMut};
use futures_io::AsyncWrite;
use futures_sink::Sink;
use strata_codec::{Encoder, FramedWrite};

#[global_allocator]
static GLOBAL: support::alloc::Counting = support::alloc::Counting;

/// A slow peer: each write takes at most `allow` bytes, once; with
/// nothing allowed it is `Pending`. Checks, without allocating, that the
/// bytes it takes are `Fill`'s in order.
#[derive(Default)]
struct Valve {
    allow: usize,
    taken: usize,
    in_order: bool,
}

impl AsyncWrite for Valve {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.allow == 0 {
            return Poll::Pending;
        }
        let n = self.allow.min(buf.len());
        self.allow = 0;
        let start = self.taken;
        if start == 0 {
            self.in_order = true;
        }
        let ok = buf[..n]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == ((start + i) % 251) as u8);
        self.in_order &= ok;
        self.taken += n;
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Encodes `n` as `n` bytes counting up (mod 251), so order is checkable.
struct Fill(u64);
impl Encoder<usize> for Fill {
    type Error = io::Error;
    fn encode(&mut self, n: usize, dst: &mut BytesMut) -> io::Result<()> {
        for _ in 0..n {
            dst.put_u8((self.0 % 251) as u8);
            self.0 += 1;
        }
        Ok(())
    }
}

/// `Framed`'s docs (Writing): "The mark bounds the buffer's contents to
/// the mark plus one item; its allocation can reach twice that ..., and
/// less than three times the mark plus two items when items are added
/// after a flush that stopped part way, before the next drain moves what
/// it left."
///
/// The caller follows the Sink contract (poll_ready before every item) and
/// flushes now and then; each flush's write takes a bit less than half of
/// what is buffered, so the written part in front never reaches the rest.
/// Left there, written part plus rest would approach twice the mark, and
/// one item of 1,000 bytes would double an allocation of about twice the
/// mark (it reached four times the mark); the rest is copied to its own
/// allocation once half the mark is written in front of it.
#[test]
fn write_buffer_allocation_stays_under_three_marks_plus_two_items_with_partial_flushes() {
    const ITEM: usize = 1000;
    let mut w = FramedWrite::new(Valve::default(), Fill(0));
    let mark = w.high_water_mark();
    let mut cx = Context::from_waker(Waker::noop());
    // Mirror of the written part in front of the buffer.
    let mut front = 0usize;
    let mut sent = 0usize;
    support::alloc::track_largest(true);
    for _round in 0..64 {
        // Items while poll_ready is ready (no I/O under the mark).
        loop {
            w.get_mut().allow = 0;
            match Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx) {
                Poll::Ready(r) => r.unwrap(),
                Poll::Pending => break,
            }
            Sink::<usize>::start_send(Pin::new(&mut w), ITEM).unwrap();
            sent += ITEM;
        }
        // A flush whose write takes a little less than half of what is
        // left beyond the written part, then the peer stalls.
        let len = w.write_buffer().len();
        let c = ((len - front.min(len)) / 2).saturating_sub(1).max(1);
        w.get_mut().allow = c;
        assert!(Sink::<usize>::poll_flush(Pin::new(&mut w), &mut cx).is_pending());
        front += c;
        if front >= w.write_buffer().len() {
            front = 0;
        }
    }
    support::alloc::track_largest(false);
    let largest = support::alloc::largest();
    // Nothing lost or reordered on the way.
    w.get_mut().allow = usize::MAX;
    loop {
        w.get_mut().allow = usize::MAX;
        match Sink::<usize>::poll_flush(Pin::new(&mut w), &mut cx) {
            Poll::Ready(r) => {
                r.unwrap();
                break;
            }
            Poll::Pending => {}
        }
    }
    assert_eq!(w.get_ref().taken, sent);
    assert!(w.get_ref().in_order, "bytes lost or reordered");
    let bound = 3 * mark + 2 * ITEM;
    assert!(
        largest < bound,
        "largest write-buffer allocation {largest} bytes, documented bound < 3 * mark + 2 items = {bound}"
    );
}

/// xorshift64, for repeatable random schedules.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random schedules of poll_ready (with a peer taking a random part or
/// nothing), items, flushes that stop part way, and `write_buffer_mut`
/// (which compacts): every byte goes out once, in order.
#[test]
fn random_partial_writes_and_handovers_lose_or_reorder_no_byte() {
    for seed in 1..500u64 {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut w = FramedWrite::new(Valve::default(), Fill(0));
        w.set_high_water_mark(4096);
        w.set_release_idle_buffers(seed % 2 == 0);
        let mut cx = Context::from_waker(Waker::noop());
        let mut sent = 0;
        for _ in 0..400 {
            match r.below(10) {
                0..=6 => {
                    w.get_mut().allow = if r.below(3) == 0 {
                        1 + r.below(600) as usize
                    } else {
                        0
                    };
                    if let Poll::Ready(res) = Sink::<usize>::poll_ready(Pin::new(&mut w), &mut cx) {
                        res.unwrap();
                        let n = 1 + r.below(200) as usize;
                        Sink::<usize>::start_send(Pin::new(&mut w), n).unwrap();
                        sent += n;
                    }
                }
                7 | 8 => {
                    let len = w.write_buffer().len() as u64;
                    w.get_mut().allow = 1 + r.below(len / 2 + 1) as usize;
                    let _ = Sink::<usize>::poll_flush(Pin::new(&mut w), &mut cx);
                }
                _ => {
                    let _ = w.write_buffer_mut().len();
                }
            }
        }
        loop {
            w.get_mut().allow = usize::MAX;
            if let Poll::Ready(res) = Sink::<usize>::poll_flush(Pin::new(&mut w), &mut cx) {
                res.unwrap();
                break;
            }
        }
        assert_eq!(w.get_ref().taken, sent, "seed {seed}");
        assert!(w.get_ref().in_order, "seed {seed}: bytes lost or reordered");
    }
}
