//! LinesCodec on arbitrary bytes, cut into two reads at an arbitrary point:
//! never panics, never yields a line over the limit, never buffers more
//! than the limit (plus one byte for a possible `\r`) between reads.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strata_codec::{Decoder, LinesCodec};

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let (first, second) = input.split_at(usize::from(cut).min(input.len()));
    let mut codec = LinesCodec::with_max_length(MAX);
    let mut buf = BytesMut::new();
    for chunk in [first, second] {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(line)) => assert!(line.len() <= MAX && !line.contains('\n')),
                Ok(None) => break,
                Err(_) => {} // the bad line is dropped; decoding goes on
            }
        }
        assert!(buf.len() <= MAX + 1);
    }
    while let Ok(Some(line)) = codec.decode_eof(&mut buf) {
        assert!(line.len() <= MAX);
    }
});
