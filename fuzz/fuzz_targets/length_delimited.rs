//! LengthDelimitedCodec on arbitrary bytes, with a layout picked by the
//! first byte and the rest cut into two reads at a point picked by the
//! second: never panics, never yields a frame over the limit (the limit
//! bounds the length field's value; the adjustments here are never
//! positive, so it bounds the frame too), and every frame re-encodes to
//! exactly the bytes it was decoded from (the layouts here have no offset
//! and skip the whole header, where encoding is decoding's inverse).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strata_codec::{Decoder, Encoder, LengthDelimitedCodec};

const MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let [layout, cut, input @ ..] = data else {
        return;
    };
    let width = usize::from(layout & 7) + 1;
    let mut builder = LengthDelimitedCodec::builder();
    builder.length_field_length(width).max_frame_length(MAX);
    if layout & 8 != 0 {
        builder.little_endian();
    }
    if layout & 16 != 0 {
        builder.length_adjustment(-(width as isize)); // the length counts itself
    }
    let mut codec = builder.build();
    let mut encoder = builder.build();

    let (first, second) = input.split_at(usize::from(*cut).min(input.len()));
    let mut buf = BytesMut::new();
    let mut fed = 0; // input bytes appended to buf so far
    for chunk in [first, second] {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            let start = fed - buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX);
                    let mut wire = BytesMut::new();
                    encoder.encode(&frame[..], &mut wire).unwrap();
                    assert_eq!(&wire[..], &input[start..fed - buf.len()]);
                }
                Ok(None) => break,
                Err(_) => return, // a bad header ends the stream
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
