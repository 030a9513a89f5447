//! `FramedRead` and `FramedWrite` over scripted transports, against the
//! bare codec. The input picks a codec (`LinesCodec` or
//! `LengthDelimitedCodec`, small limits), a read window, a high-water mark,
//! and a script of transport behaviours: reads of a given size (writing
//! junk past what they report), `Pending`, and `Interrupted` after writing
//! junk into the offered buffer; then writes that take a given size,
//! `Pending`, `Interrupted`, and flushes that are `Pending`.
//!
//! Checks: the frames `FramedRead` yields, up to and including the first
//! error (after which it yields nothing), are exactly those the codec
//! decodes from the whole input at once; re-encoding those frames
//! through `FramedWrite` writes exactly the bytes the bare encoder makes.
#![no_main]

#[path = "../../crates/strata-proto/tests/model/script.rs"]
mod script;

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use libfuzzer_sys::fuzz_target;
use script::{Reader, Writer};
use strata_codec::{
    Decoder, Encoder, FramedRead, FramedWrite, LengthDelimitedCodec, LinesCodec, LinesCodecError,
};

/// Polls before a run is declared stuck: far more than any input needs.
const MAX_POLLS: usize = 100_000;

/// A frame or the text of an error, comparable across both paths.
#[derive(Debug, PartialEq)]
enum Out {
    Frame(Vec<u8>),
    Error(String),
}

/// Decodes the whole input at once, then at its end, up to and including
/// the first error.
fn reference<D>(mut codec: D, input: &[u8]) -> Vec<Out>
where
    D: Decoder,
    D::Item: AsRef<[u8]>,
    D::Error: std::fmt::Display,
{
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(f)) => out.push(Out::Frame(f.as_ref().to_vec())),
            Ok(None) => break,
            Err(e) => {
                out.push(Out::Error(e.to_string()));
                return out;
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(f)) => out.push(Out::Frame(f.as_ref().to_vec())),
            Ok(None) => return out,
            Err(e) => {
                out.push(Out::Error(e.to_string()));
                return out;
            }
        }
    }
}

/// Everything `FramedRead` yields until it ends.
fn framed<D>(codec: D, reader: Reader<'_>, window: usize) -> Vec<Out>
where
    D: Decoder + Unpin,
    D::Item: AsRef<[u8]>,
    D::Error: std::fmt::Display,
{
    let mut framed = FramedRead::new(reader, codec);
    framed.set_read_window(window);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    for _ in 0..MAX_POLLS {
        match Pin::new(&mut framed).poll_next(&mut cx) {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(f))) => out.push(Out::Frame(f.as_ref().to_vec())),
            Poll::Ready(Some(Err(e))) => out.push(Out::Error(e.to_string())),
            Poll::Ready(None) => return out,
        }
    }
    panic!("FramedRead did not end within {MAX_POLLS} polls");
}

/// Polls a sink operation until it is ready.
fn until_ready<T>(mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(v) = f(&mut cx) {
            return v;
        }
    }
    panic!("FramedWrite did not finish within {MAX_POLLS} polls");
}

/// Writes `frames` through `FramedWrite` (sending each, flushing after
/// every `flush_every`, closing at the end) and returns the bytes written.
fn write_framed<E>(
    codec: E,
    frames: &[Bytes],
    script: &[u8],
    hwm: usize,
    flush_every: usize,
) -> Vec<u8>
where
    E: Encoder<Bytes> + Unpin,
    E::Error: std::fmt::Debug,
{
    let writer = Writer::new(script);
    let mut sink = FramedWrite::new(writer, codec);
    sink.set_high_water_mark(hwm);
    for (i, f) in frames.iter().enumerate() {
        until_ready(|cx| Pin::new(&mut sink).poll_ready(cx)).unwrap();
        Pin::new(&mut sink).start_send(f.clone()).unwrap();
        if (i + 1) % flush_every == 0 {
            until_ready(|cx| Pin::new(&mut sink).poll_flush(cx)).unwrap();
        }
    }
    until_ready(|cx| Pin::new(&mut sink).poll_close(cx)).unwrap();
    assert!(sink.write_buffer().is_empty(), "bytes left after close");
    sink.into_inner().written
}

fn encode_all<E: Encoder<Bytes>>(mut codec: E, frames: &[Bytes]) -> Vec<u8>
where
    E::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::new();
    for f in frames {
        codec.encode(f.clone(), &mut buf).unwrap();
    }
    buf.to_vec()
}

fn frames_of(outs: &[Out]) -> Vec<Bytes> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Frame(f) => Some(Bytes::copy_from_slice(f)),
            Out::Error(_) => None,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    // Header: codec, window, high-water mark, flush period, script lengths.
    let Some((head, rest)) = data.split_first_chunk::<6>() else {
        return;
    };
    let [which, window, hwm, flush_every, n_read, n_write] = *head;
    let window = usize::from(window) * 4 + 1;
    let hwm = usize::from(hwm) * 2;
    let flush_every = usize::from(flush_every % 8) + 1;
    let (read_script, rest) = rest.split_at(usize::from(n_read).min(rest.len()));
    let (write_script, input) = rest.split_at(usize::from(n_write).min(rest.len()));
    let reader = Reader::new(input, read_script);
    if which % 2 == 0 {
        let codec = || LinesCodec::with_max_length(64);
        let got = framed(codec(), reader, window);
        assert_eq!(
            got,
            reference(codec(), input),
            "FramedRead against the codec"
        );
        // Only lines the encoder takes (not one ending in `\r`, which
        // would read back without it).
        let frames: Vec<Bytes> = frames_of(&got)
            .into_iter()
            .filter(|f| {
                LineBytes(codec())
                    .encode(f.clone(), &mut BytesMut::new())
                    .is_ok()
            })
            .collect();
        let written = write_framed(LineBytes(codec()), &frames, write_script, hwm, flush_every);
        assert_eq!(
            written,
            encode_all(LineBytes(codec()), &frames),
            "FramedWrite against the codec"
        );
    } else {
        let codec = || {
            LengthDelimitedCodec::builder()
                .max_frame_length(200)
                .build()
        };
        let got = framed(codec(), reader, window);
        assert_eq!(
            got,
            reference(codec(), input),
            "FramedRead against the codec"
        );
        let frames = frames_of(&got);
        let written = write_framed(codec(), &frames, write_script, hwm, flush_every);
        assert_eq!(
            written,
            encode_all(codec(), &frames),
            "FramedWrite against the codec"
        );
    }
});

/// `LinesCodec` taking UTF-8 `Bytes`, so both codecs share the writer.
struct LineBytes(LinesCodec);

impl Encoder<Bytes> for LineBytes {
    type Error = LinesCodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), Self::Error> {
        let s = std::str::from_utf8(&item).expect("decoded lines are UTF-8");
        self.0.encode(s, dst)
    }
}
