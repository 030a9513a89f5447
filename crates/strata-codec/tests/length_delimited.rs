//! `LengthDelimitedCodec` on its own: layouts, limits, bad headers, EOF.

use bytes::{Bytes, BytesMut};
use strata_codec::{
    DEFAULT_MAX_FRAME_LENGTH, Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError,
};

fn decode_one(codec: &mut LengthDelimitedCodec, wire: &[u8]) -> BytesMut {
    let mut buf = BytesMut::from(wire);
    let frame = codec.decode(&mut buf).unwrap().expect("a whole frame");
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frame
}

#[test]
fn default_layout_is_a_4_byte_big_endian_length() {
    let mut codec = LengthDelimitedCodec::new();
    assert_eq!(codec.max_frame_length(), DEFAULT_MAX_FRAME_LENGTH);
    assert_eq!(DEFAULT_MAX_FRAME_LENGTH, 8 * 1024 * 1024);
    let mut buf = BytesMut::new();
    codec
        .encode(Bytes::from_static(b"hello"), &mut buf)
        .unwrap();
    assert_eq!(&buf[..], b"\x00\x00\x00\x05hello");
    assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"hello");
}

#[test]
fn every_field_width_in_both_byte_orders() {
    for width in 1..=8 {
        for big in [true, false] {
            let mut builder = LengthDelimitedCodec::builder();
            builder.length_field_length(width);
            if big {
                builder.big_endian();
            } else {
                builder.little_endian();
            }
            let mut codec = builder.build();
            let mut buf = BytesMut::new();
            codec.encode(&[7u8; 3][..], &mut buf).unwrap();
            let mut header = vec![0u8; width];
            if big {
                header[width - 1] = 3;
            } else {
                header[0] = 3;
            }
            assert_eq!(&buf[..width], &header[..], "width {width}, big {big}");
            assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], [7u8; 3]);
        }
    }
}

#[test]
fn length_counting_its_own_field_with_the_header_kept() {
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(2)
        .little_endian()
        .length_adjustment(-2)
        .num_skip(0)
        .build();
    assert_eq!(&decode_one(&mut codec, b"\x05\x00abc")[..], b"\x05\x00abc");
}

#[test]
fn header_offset_before_the_length_field() {
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_offset(1)
        .length_field_length(2)
        .num_skip(0)
        .build();
    assert_eq!(
        &decode_one(&mut codec, b"\x07\x00\x02ok")[..],
        b"\x07\x00\x02ok"
    );
    let mut skip_header = LengthDelimitedCodec::builder()
        .length_field_offset(1)
        .length_field_length(2)
        .build();
    assert_eq!(&decode_one(&mut skip_header, b"\x07\x00\x02ok")[..], b"ok");
}

#[test]
fn frames_arrive_in_pieces() {
    let mut codec = LengthDelimitedCodec::new();
    let wire = b"\x00\x00\x00\x03abc\x00\x00\x00\x00";
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for byte in wire {
        buf.extend_from_slice(&[*byte]);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(frames, [&b"abc"[..], &b""[..]]);
}

#[test]
fn over_long_header_is_an_error_before_the_body_is_buffered() {
    let mut codec = LengthDelimitedCodec::builder()
        .max_frame_length(1000)
        .build();
    // The header claims 1001 bytes; none of the body has arrived.
    let mut buf = BytesMut::from(&b"\x00\x00\x03\xe9"[..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(
        err,
        LengthDelimitedCodecError::FrameTooLarge {
            length: 1001,
            limit: 1000
        }
    ));
    assert_eq!(
        err.to_string(),
        "frame too large: 1001 bytes exceeds the limit of 1000 bytes"
    );
    assert!(
        buf.capacity() < 64,
        "no memory reserved on the header's word"
    );
    // The stream cannot resynchronise: the error sticks.
    buf.extend_from_slice(&[0; 8]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(LengthDelimitedCodecError::FrameTooLarge { .. })
    ));
}

#[test]
fn huge_header_values_are_rejected_without_overflow() {
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(8)
        .length_adjustment(isize::MAX)
        .max_frame_length(usize::MAX)
        .build();
    let mut buf = BytesMut::from(&[0xff; 8][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(LengthDelimitedCodecError::FrameTooLarge { .. })
    ));
}

#[test]
fn negative_adjusted_length_is_invalid() {
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(1)
        .length_adjustment(-4)
        .build();
    let mut buf = BytesMut::from(&b"\x02ab"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(LengthDelimitedCodecError::InvalidLength { value: 2 })
    ));
}

#[test]
fn eof_in_the_middle_of_a_frame_is_an_error() {
    for wire in [&b"\x00\x00"[..], b"\x00\x00\x00\x05hel"] {
        let mut codec = LengthDelimitedCodec::new();
        let mut buf = BytesMut::from(wire);
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert!(
            matches!(err, LengthDelimitedCodecError::UnexpectedEof { buffered } if buffered == wire.len())
        );
    }
    let mut codec = LengthDelimitedCodec::new();
    assert_eq!(codec.decode_eof(&mut BytesMut::new()).unwrap(), None);
}

#[test]
fn encode_checks_the_limit_and_the_field_width() {
    let mut codec = LengthDelimitedCodec::builder().max_frame_length(4).build();
    let mut buf = BytesMut::from("kept");
    assert!(matches!(
        codec.encode(&b"12345"[..], &mut buf),
        Err(LengthDelimitedCodecError::FrameTooLarge {
            length: 5,
            limit: 4
        })
    ));
    let mut narrow = LengthDelimitedCodec::builder()
        .length_field_length(1)
        .build();
    assert!(matches!(
        narrow.encode(vec![0u8; 256], &mut buf),
        Err(LengthDelimitedCodecError::FrameTooLarge {
            length: 256,
            limit: 255
        })
    ));
    narrow.encode(vec![0u8; 255], &mut BytesMut::new()).unwrap();
    let mut positive = LengthDelimitedCodec::builder().length_adjustment(3).build();
    assert!(matches!(
        positive.encode(&b"ab"[..], &mut buf),
        Err(LengthDelimitedCodecError::InvalidLength { value: -1 })
    ));
    assert_eq!(&buf[..], b"kept", "failed encodes write nothing");
}

#[test]
#[should_panic(expected = "between 1 and 8")]
fn field_width_over_8_panics() {
    LengthDelimitedCodec::builder().length_field_length(9);
}

#[test]
#[should_panic(expected = "num_skip")]
fn num_skip_past_the_header_panics() {
    LengthDelimitedCodec::builder().num_skip(5).build();
}

#[test]
fn encode_never_writes_a_length_the_field_cannot_hold() {
    // Every frame needs a field value of at least 256: beyond one byte.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(1)
        .length_adjustment(-256)
        .build();
    let mut buf = BytesMut::new();
    let err = codec.encode(&b""[..], &mut buf).unwrap_err();
    assert!(
        matches!(err, LengthDelimitedCodecError::InvalidLength { value: 256 }),
        "{err:?}"
    );
    assert!(buf.is_empty());
    // Around the edge of the field, every encode that succeeds decodes back.
    for adj in -20isize..=20 {
        let mut codec = LengthDelimitedCodec::builder()
            .length_field_length(1)
            .length_adjustment(adj)
            .build();
        for len in 0..=300usize {
            let data = vec![7u8; len];
            let mut buf = BytesMut::new();
            if codec.encode(&data[..], &mut buf).is_ok() {
                let back = codec.decode(&mut buf).unwrap().expect("a whole frame");
                assert_eq!(&back[..], &data[..], "adjustment {adj}, length {len}");
            }
        }
    }
}
