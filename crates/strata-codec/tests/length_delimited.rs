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

fn decode_all(codec: &mut LengthDelimitedCodec, wire: &[u8]) -> Vec<BytesMut> {
    let mut buf = BytesMut::from(wire);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

#[test]
fn length_counting_its_own_field() {
    // Header dropped: the adjustment takes the 2 header bytes off.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(2)
        .little_endian()
        .length_adjustment(-2)
        .build();
    assert_eq!(&decode_one(&mut codec, b"\x05\x00abc")[..], b"abc");
    // Header kept: nothing skipped, and the length already covers it.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(2)
        .little_endian()
        .num_skip(0)
        .build();
    assert_eq!(&decode_one(&mut codec, b"\x05\x00abc")[..], b"\x05\x00abc");
}

#[test]
fn header_offset_before_the_length_field() {
    // Keeping the type byte and the length: the frame starts at byte 0 and
    // covers them, so the adjustment adds their 3 bytes.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_offset(1)
        .length_field_length(2)
        .length_adjustment(3)
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
    // Dropping just the type byte.
    let mut skip_type = LengthDelimitedCodec::builder()
        .length_field_offset(1)
        .length_field_length(2)
        .length_adjustment(2)
        .num_skip(1)
        .build();
    assert_eq!(
        &decode_one(&mut skip_type, b"\x07\x00\x02ok")[..],
        b"\x00\x02ok"
    );
}

/// The seven layouts of tokio-util 0.7's `length_delimited` module docs,
/// with the same builder calls, decode to the frames those docs show.
#[test]
fn tokio_util_documented_layouts() {
    let build = |offset: usize, width: usize, adjustment: isize, skip: Option<usize>| {
        let mut builder = LengthDelimitedCodec::builder();
        builder
            .length_field_offset(offset)
            .length_field_length(width)
            .length_adjustment(adjustment);
        if let Some(skip) = skip {
            builder.num_skip(skip);
        }
        builder.build()
    };
    let cases: [(LengthDelimitedCodec, &[u8], &[u8]); 7] = [
        // 1: a u16 length of the payload, head dropped.
        (build(0, 2, 0, None), b"\x00\x0BHello world", b"Hello world"),
        // 2: the same, head kept.
        (
            build(0, 2, 2, Some(0)),
            b"\x00\x0BHello world",
            b"\x00\x0BHello world",
        ),
        // 3: a u16 length of the whole frame, head dropped.
        (
            build(0, 2, -2, None),
            b"\x00\x0DHello world",
            b"Hello world",
        ),
        // 4: a 3-byte length, then 2 more head bytes; all kept.
        (
            build(0, 3, 5, Some(0)),
            b"\x00\x00\x0B\xCA\xFEHello world",
            b"\x00\x00\x0B\xCA\xFEHello world",
        ),
        // 5: hdr1, a u16 length of hdr2 + payload, hdr2; hdr2 kept.
        (
            build(1, 2, 1, Some(3)),
            b"\xCA\x00\x0B\xFEHello world",
            b"\xFEHello world",
        ),
        // 6: the same, the length counting the whole frame.
        (
            build(1, 2, -3, Some(3)),
            b"\xCA\x00\x0F\xFEHello world",
            b"\xFEHello world",
        ),
        // 7: a 3-byte length, one byte it does not count, skipped.
        (
            build(0, 3, 0, Some(4)),
            b"\x00\x00\x0B\xFFHello world",
            b"Hello world",
        ),
    ];
    for (i, (mut codec, wire, frame)) in cases.into_iter().enumerate() {
        assert_eq!(
            &decode_one(&mut codec, wire)[..],
            frame,
            "example {}",
            i + 1
        );
    }
    // Example 2 with a second frame behind the first.
    let mut codec = build(0, 2, 2, Some(0));
    assert_eq!(
        decode_all(&mut codec, b"\x00\x0BHello world\x00\x02hi"),
        [&b"\x00\x0BHello world"[..], b"\x00\x02hi"]
    );
}

#[test]
fn num_skip_past_the_header_drops_uncounted_bytes() {
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(1)
        .num_skip(3)
        .build();
    let mut buf = BytesMut::new();
    // The header is there, but not all the skipped bytes: nothing yet,
    // and nothing consumed.
    for byte in b"\x02xx" {
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[*byte]);
    }
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert_eq!(&buf[..], b"\x02xx");
    buf.extend_from_slice(b"hi\x00yy");
    assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"hi");
    // An empty frame still takes its skipped bytes.
    assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"");
    assert!(buf.is_empty());
}

#[test]
fn a_frame_must_not_end_inside_its_own_header() {
    // With nothing skipped and no adjustment, the 4-byte length must
    // count at least itself.
    let layout = || {
        LengthDelimitedCodec::builder()
            .length_field_length(4)
            .num_skip(0)
            .build()
    };
    let mut codec = layout();
    assert_eq!(
        &decode_one(&mut codec, b"\x00\x00\x00\x04")[..],
        b"\x00\x00\x00\x04"
    );
    for short in 0u8..4 {
        let mut codec = layout();
        let mut buf = BytesMut::from(&[0, 0, 0, short][..]);
        assert!(
            matches!(
                codec.decode(&mut buf),
                Err(LengthDelimitedCodecError::InvalidLength { value }) if value == i128::from(short)
            ),
            "value {short}"
        );
        assert_eq!(buf.len(), 4, "nothing consumed");
    }
    // Skipping part of the header: the frame must cover the rest of it.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_offset(1)
        .length_field_length(1)
        .length_adjustment(-1)
        .num_skip(1)
        .build();
    assert!(matches!(
        codec.decode(&mut BytesMut::from(&b"\x07\x01"[..])),
        Err(LengthDelimitedCodecError::InvalidLength { value: 1 })
    ));
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_offset(1)
        .length_field_length(1)
        .length_adjustment(-1)
        .num_skip(1)
        .build();
    assert_eq!(&decode_one(&mut codec, b"\x07\x02")[..], b"\x02");
}

#[test]
fn the_limit_applies_to_the_field_value_before_the_adjustment() {
    // A positive adjustment: a value at the limit is accepted, and the
    // frame is longer than the limit by the adjustment.
    let layout = |adjustment: isize| {
        LengthDelimitedCodec::builder()
            .length_field_length(1)
            .length_adjustment(adjustment)
            .max_frame_length(4)
            .build()
    };
    let mut codec = layout(2);
    assert_eq!(decode_one(&mut codec, b"\x04abcdef").len(), 6);
    let mut codec = layout(2);
    assert!(matches!(
        codec.decode(&mut BytesMut::from(&b"\x05"[..])),
        Err(LengthDelimitedCodecError::FrameTooLarge {
            length: 5,
            limit: 4
        })
    ));
    // A negative adjustment: the value is still what is compared.
    let mut codec = layout(-2);
    assert_eq!(decode_one(&mut codec, b"\x04ab").len(), 2);
    let mut codec = layout(-2);
    assert!(matches!(
        codec.decode(&mut BytesMut::from(&b"\x05"[..])),
        Err(LengthDelimitedCodecError::FrameTooLarge {
            length: 5,
            limit: 4
        })
    ));
    // The largest value a field holds is accepted when the limit allows
    // it, even with a negative adjustment.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(1)
        .length_adjustment(-1)
        .build();
    let mut wire = vec![0xff];
    wire.extend_from_slice(&[9; 254]);
    assert_eq!(decode_one(&mut codec, &wire).len(), 254);
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
    // The value is within the limit, but value + adjustment is beyond
    // usize.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(8)
        .length_adjustment(isize::MAX)
        .max_frame_length(usize::MAX)
        .build();
    let mut buf = BytesMut::from(&[0xff; 8][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(LengthDelimitedCodecError::InvalidLength { .. })
    ));
    // The frame fits in usize, but not with the skipped bytes in front.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(8)
        .max_frame_length(usize::MAX)
        .build();
    let mut buf = BytesMut::from(&[0xff; 8][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(LengthDelimitedCodecError::InvalidLength { .. })
    ));
    // More than any buffer can hold (`isize::MAX` bytes) with the
    // skipped bytes: such a frame could never arrive.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(8)
        .max_frame_length(usize::MAX)
        .build();
    let mut buf = BytesMut::from(&b"\x7f\xff\xff\xff\xff\xff\xff\xffabc"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(LengthDelimitedCodecError::InvalidLength { .. })
    ));
    // Within that: the codec waits, without reserving on the header's
    // word.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_length(8)
        .max_frame_length(usize::MAX)
        .build();
    let mut buf = BytesMut::from(&b"\x0f\xff\xff\xff\xff\xff\xff\xffabc"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() < 64);
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
    // A partial header, a header alone, a partial body.
    for wire in [
        &b"\x00\x00"[..],
        b"\x00\x00\x00\x05",
        b"\x00\x00\x00\x05hel",
    ] {
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
fn encode_ignores_offset_and_num_skip() {
    // Like tokio-util's encoder: the field (data length minus the
    // adjustment), then the data; no bytes for the offset, whatever the
    // skip.
    let mut codec = LengthDelimitedCodec::builder()
        .length_field_offset(3)
        .length_field_length(2)
        .length_adjustment(2)
        .num_skip(0)
        .build();
    let mut buf = BytesMut::new();
    codec.encode(&b"Hello world"[..], &mut buf).unwrap();
    assert_eq!(&buf[..], b"\x00\x09Hello world");
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

#[test]
fn set_max_frame_length_applies_from_the_next_header_on() {
    let mut codec = LengthDelimitedCodec::new();
    // The header is read, and checked, under the 8 MiB default.
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x05hel"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    codec.set_max_frame_length(2);
    assert_eq!(codec.max_frame_length(), 2);
    // That frame keeps the limit it was checked against.
    buf.extend_from_slice(b"lo");
    assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"hello");
    // The next headers are checked against the new one.
    buf.extend_from_slice(b"\x00\x00\x00\x02hi\x00\x00\x00\x03abc");
    assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"hi");
    assert!(matches!(
        codec.decode(&mut buf),
        Err(LengthDelimitedCodecError::FrameTooLarge {
            length: 3,
            limit: 2
        })
    ));
    // So is the data to encode.
    let mut out = BytesMut::new();
    assert!(matches!(
        codec.encode(&b"abc"[..], &mut out),
        Err(LengthDelimitedCodecError::FrameTooLarge {
            length: 3,
            limit: 2
        })
    ));
    codec.encode(&b"ab"[..], &mut out).unwrap();
    assert_eq!(&out[..], b"\x00\x00\x00\x02ab");
    // Raised, it lets larger frames through.
    let mut codec = LengthDelimitedCodec::builder().max_frame_length(2).build();
    codec.set_max_frame_length(3);
    assert_eq!(&decode_one(&mut codec, b"\x00\x00\x00\x03abc")[..], b"abc");
}

#[test]
fn byte_order_setters_keep_the_other_settings_and_the_last_one_wins() {
    let encode = |codec: &mut LengthDelimitedCodec| {
        let mut buf = BytesMut::new();
        codec.encode(&b"ab"[..], &mut buf).unwrap();
        buf.to_vec()
    };
    // Chained after other settings, which they keep.
    let mut big = LengthDelimitedCodec::builder()
        .length_field_length(2)
        .little_endian()
        .big_endian()
        .build();
    assert_eq!(encode(&mut big), b"\x00\x02ab");
    let mut native = LengthDelimitedCodec::builder()
        .length_field_length(2)
        .big_endian()
        .native_endian()
        .build();
    let mut want = 2u16.to_ne_bytes().to_vec();
    want.extend_from_slice(b"ab");
    assert_eq!(encode(&mut native), want);
    assert_eq!(
        &native
            .decode(&mut BytesMut::from(&want[..]))
            .unwrap()
            .unwrap()[..],
        b"ab"
    );
    // Called on their own, as statements.
    let mut builder = LengthDelimitedCodec::builder();
    builder.length_field_length(2);
    builder.little_endian();
    builder.big_endian();
    assert_eq!(encode(&mut builder.build()), b"\x00\x02ab");
    builder.little_endian();
    builder.native_endian();
    assert_eq!(encode(&mut builder.build()), want);
}
