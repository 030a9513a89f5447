//! The write side after a flush that stopped part way: a large buffer is
//! still released after the complete flush when it was handed out
//! (`write_buffer_mut`, `into_parts`) in between. Heap bytes are counted
//! per thread. (That `poll_ready` stays ready under the mark then is in
//! ready_under_mark.rs.)

mod support;

use std::pin::Pin;

use futures_sink::Sink;
use strata_codec::{BytesCodec, Framed};
use support::{Mock, noop_cx};

#[global_allocator]
static GLOBAL: support::alloc::Counting = support::alloc::Counting;

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
