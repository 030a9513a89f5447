//! LinesCodec on arbitrary bytes, cut into two reads at an arbitrary point:
//! never panics, never yields a line over the limit, never buffers more
//! than the limit (plus one byte for a possible `\r`) between reads; and
//! the `Line`-decoding form (`LinesCodec::shared`) gives exactly the same
//! lines and errors as the `String` form.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strata_codec::{Decoder, Line, LinesCodec, LinesCodecError};

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let (first, second) = input.split_at(usize::from(cut).min(input.len()));
    let mut codec = LinesCodec::with_max_length(MAX);
    let mut shared = LinesCodec::shared().max_length(MAX);
    let mut buf = BytesMut::new();
    let mut buf2 = BytesMut::new();
    for chunk in [first, second] {
        buf.extend_from_slice(chunk);
        buf2.extend_from_slice(chunk);
        loop {
            let a = codec.decode(&mut buf);
            let b = shared.decode(&mut buf2);
            same(&a, &b);
            match a {
                Ok(Some(line)) => assert!(line.len() <= MAX && !line.contains('\n')),
                Ok(None) => break,
                Err(_) => {} // the bad line is dropped; decoding goes on
            }
        }
        assert!(buf.len() <= MAX + 1);
        assert_eq!(buf, buf2);
    }
    loop {
        let a = codec.decode_eof(&mut buf);
        let b = shared.decode_eof(&mut buf2);
        same(&a, &b);
        match a {
            Ok(Some(line)) => assert!(line.len() <= MAX),
            _ => break,
        }
    }
});

/// Both forms agree: the same line, or the same kind of error.
fn same(a: &Result<Option<String>, LinesCodecError>, b: &Result<Option<Line>, LinesCodecError>) {
    match (a, b) {
        (Ok(x), Ok(y)) => assert_eq!(x.as_deref(), y.as_ref().map(Line::as_str)),
        (Err(x), Err(y)) => assert_eq!(std::mem::discriminant(x), std::mem::discriminant(y)),
        _ => panic!("String and Line decoding disagree: {a:?} vs {b:?}"),
    }
}
