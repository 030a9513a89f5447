//! Codecs that panic: a `Framed` used again after the panic was caught
//! (a client that catches a bad request's panic and carries on, a task
//! supervised by `catch_unwind`) must not put on the wire what the
//! panicking call left half done.

mod support;

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;

use bytes::{BufMut, BytesMut};
use futures_executor::block_on;
use futures_sink::Sink;
use futures_util::{SinkExt, StreamExt};
use strata_codec::{Decoder, Encoder, Framed, FramedWrite};
use support::Mock;

#[path = "../../strata-rt/tests/support/quiet.rs"]
#[allow(unreachable_pub)]
mod quiet;
use quiet::quiet;

/// Lines out; the line `boom` is written half (`bo`) and then the encoder
/// panics, as an encoder with a bug in its second half does.
struct HalfThenPanic;

impl Encoder<&'static str> for HalfThenPanic {
    type Error = io::Error;

    fn encode(&mut self, item: &'static str, dst: &mut BytesMut) -> Result<(), io::Error> {
        if item == "boom" {
            dst.put_slice(b"bo");
            panic!("test: encoder panicked mid-frame");
        }
        dst.put_slice(item.as_bytes());
        dst.put_u8(b'\n');
        Ok(())
    }
}

impl Decoder for HalfThenPanic {
    type Item = String;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, io::Error> {
        let Some(i) = src.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = src.split_to(i + 1);
        let line = String::from_utf8_lossy(&line[..i]).into_owned();
        assert_ne!(line, "boom", "test: decoder panicked");
        Ok(Some(line))
    }
}

/// An encoder that panics leaves the write buffer as it was, as one that
/// fails (`Err`) does: the frame's partial bytes are cut back. (They were
/// once left there, and the next frame went out behind `bo`: a corrupt
/// stream, `bofine\n`, that the peer reads as one line.)
#[test]
fn an_encoder_panicking_mid_frame_leaves_the_write_buffer_as_it_was() {
    quiet();
    let mut framed = Framed::new(Mock::new(), HalfThenPanic);
    block_on(framed.send("first")).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ = Pin::new(&mut framed).start_send("boom");
    }));
    assert!(r.is_err(), "the encoder panics");
    block_on(framed.send("fine")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&framed.get_ref().written),
        "first\nfine\n",
        "the panicking encode's partial frame was written"
    );
}

/// The same through `FramedWrite`.
#[test]
fn a_framed_write_encoder_panicking_mid_frame_leaves_the_buffer_as_it_was() {
    quiet();
    let mut framed = FramedWrite::new(Mock::new(), HalfThenPanic);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ = Pin::new(&mut framed).start_send("boom");
    }));
    assert!(r.is_err(), "the encoder panics");
    block_on(framed.send("fine")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&framed.get_ref().written),
        "fine\n",
        "the panicking encode's partial frame was written"
    );
}

/// A decoder that panics on a frame: the panic reaches the caller, and the
/// stream is not left claiming frames it never decoded (the frames before
/// it came out; what follows is decoded again, or the stream has ended).
#[test]
fn a_decoder_panic_reaches_the_caller_and_the_frames_before_it_were_taken() {
    quiet();
    let mut framed = Framed::new(Mock::new().read(b"a\nb\nboom\nc\n"), HalfThenPanic);
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "a");
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "b");
    let r = catch_unwind(AssertUnwindSafe(|| block_on(framed.next())));
    assert!(r.is_err(), "the decoder panics");
    // The panicking frame was consumed by the decoder before it panicked
    // (its own doing); the next one decodes.
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "c");
}

/// A `Framed` in a task whose encoder panics: the panic reaches the
/// task's `JoinHandle` as a panic (with its message), the socket is
/// closed, and the runtime's other tasks carry on.
#[test]
fn an_encoder_panic_in_a_task_reaches_its_join_handle() {
    quiet();
    let rt = strata_rt::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut got = Vec::new();
        // Until the task's socket is closed (EOF) or reset.
        let _ = s.read_to_end(&mut got);
        got
    });
    let joined = rt.block_on(async move {
        let task = strata_rt::spawn(async move {
            let stream = strata_rt::net::TcpStream::connect(addr).await.unwrap();
            let mut framed = Framed::new(stream, HalfThenPanic);
            framed.send("first").await.unwrap();
            framed.send("boom").await.unwrap();
        });
        let other = strata_rt::spawn(async { 7 });
        (task.await, other.await)
    });
    let (task, other) = joined;
    let err = task.expect_err("the task panicked");
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(other.unwrap(), 7);
    let got = peer.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&got), "first\n");
    drop(rt);
}
