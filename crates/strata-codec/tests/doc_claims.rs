//! Checks of claims made in strata-codec's public documentation.

use bytes::BytesMut;
use futures_util::io::Cursor;
use futures_util::stream::{FusedStream, StreamExt};
use strata_codec::{Decoder, Encoder, Framed, LinesCodec, LinesCodecError};

/// `Framed`: "After an error (from reading or decoding) the stream also
/// yields `None` ... it stays ended: it is a `FusedStream`", and
/// `LinesCodec`: "A `Framed` ends its stream at the first error".
#[test]
fn framed_ends_at_the_first_decode_error() {
    futures_executor::block_on(async {
        let io = Cursor::new(b"ok\nfar too long a line\nnext\n".to_vec());
        let mut framed = Framed::new(io, LinesCodec::with_max_length(4));
        assert_eq!(framed.next().await.unwrap().unwrap(), "ok");
        assert!(matches!(
            framed.next().await,
            Some(Err(LinesCodecError::LineTooLong { limit: 4 }))
        ));
        assert!(framed.next().await.is_none());
        assert!(framed.is_terminated());
        assert!(framed.next().await.is_none());
    });
}

/// `LinesCodec`: "`x\r\r\n` decodes to `"x\r"`" and encoding refuses "a
/// line that contains `\n` or ends in `\r`", short or long.
#[test]
fn carriage_returns_as_documented() {
    let mut codec = LinesCodec::new();
    let mut buf = BytesMut::from(&b"x\r\r\n"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("x\r"));
    let mut out = BytesMut::new();
    for bad in [
        "x\r",
        "a\nb",
        "0123456789abcdefghij\r",
        "0123456789abcdef\n0123456789",
    ] {
        assert!(matches!(
            codec.encode(bad, &mut out),
            Err(LinesCodecError::EmbeddedNewline)
        ));
    }
    assert!(out.is_empty());
    // End of stream: a lone `\r` is no line; a last line without newline is.
    let mut buf = BytesMut::from(&b"\r"[..]);
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    let mut buf = BytesMut::from(&b"last\r"[..]);
    assert_eq!(codec.decode_eof(&mut buf).unwrap().as_deref(), Some("last"));
}

/// `Framed::set_high_water_mark` / `set_read_window`: "0 is taken as 1,
/// and more than 16 MiB as 16 MiB"; defaults 64 KiB and 4 KiB.
#[test]
fn framed_settings_bounds() {
    let mut f = Framed::new(Cursor::new(Vec::<u8>::new()), LinesCodec::new());
    assert_eq!(f.high_water_mark(), 64 * 1024);
    assert_eq!(f.read_window(), 4 * 1024);
    f.set_high_water_mark(0);
    f.set_read_window(0);
    assert_eq!((f.high_water_mark(), f.read_window()), (1, 1));
    f.set_read_window(usize::MAX);
    assert_eq!(f.read_window(), 16 << 20);
}
