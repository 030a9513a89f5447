//! `LengthDelimitedCodec` against a model of its documented rules, over
//! its configuration space (field widths 1 to 8 bytes, both byte orders,
//! offsets, adjustments up to the extremes, bytes to skip, limits), and the
//! framed readers' end of stream: partial frames, errors, polls after the
//! end.

use bytes::BytesMut;
use futures_core::FusedStream;
use futures_util::StreamExt;
use futures_util::io::Cursor;
use strata_codec::{
    BytesCodec, Decoder, Encoder, FramedRead, LengthDelimitedCodec, LengthDelimitedCodecError,
    LinesCodec, LinesCodecError,
};

#[derive(Debug, Clone, Copy)]
struct Cfg {
    offset: usize,
    width: usize,
    adj: isize,
    skip: Option<usize>,
    max: usize,
    big: bool,
}

impl Cfg {
    fn header(&self) -> usize {
        self.offset + self.width
    }
    fn skip(&self) -> usize {
        self.skip.unwrap_or(self.header())
    }
    fn field_max(&self) -> u64 {
        u64::MAX >> (64 - 8 * self.width)
    }
    fn build(&self) -> LengthDelimitedCodec {
        let mut b = LengthDelimitedCodec::builder();
        b.length_field_offset(self.offset)
            .length_field_length(self.width)
            .length_adjustment(self.adj)
            .max_frame_length(self.max);
        if let Some(s) = self.skip {
            b.num_skip(s);
        }
        if self.big {
            b.big_endian();
        } else {
            b.little_endian();
        }
        b.build()
    }
}

#[derive(Debug, PartialEq)]
enum Enc {
    Ok(u64),
    TooLarge,
    Invalid,
}

/// The documented encoding rules.
fn model_encode(c: &Cfg, len: usize) -> Enc {
    let by_field = c.field_max() as i128 + c.adj as i128;
    if by_field < 0 {
        return Enc::Invalid;
    }
    let limit = by_field.min(c.max as i128);
    if len as i128 > limit {
        return Enc::TooLarge;
    }
    let v = len as i128 - c.adj as i128;
    if v < 0 {
        return Enc::Invalid;
    }
    Enc::Ok(v as u64)
}

fn field_bytes(c: &Cfg, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..c.width {
        out.push((v >> (8 * i)) as u8);
    }
    if c.big {
        out.reverse();
    }
    out
}

fn interesting_adjustments(width: usize) -> Vec<isize> {
    let fm = u64::MAX >> (64 - 8 * width);
    let mut v: Vec<isize> = vec![0, 1, -1, 2, -2, 3, -3, 8, -8, 9, -9, 300, -300];
    v.extend([isize::MIN, isize::MIN + 1, isize::MAX, isize::MAX - 1]);
    if let Ok(fm) = isize::try_from(fm) {
        for k in 0..4isize {
            v.push(-fm + k);
            v.push(-fm - k);
            v.push(fm - k);
        }
    }
    v
}

fn lengths_for(c: &Cfg) -> Vec<usize> {
    let mut v: Vec<usize> = (0..=20).collect();
    let fm = c.field_max() as i128;
    for base in [fm + c.adj as i128, c.max as i128, c.adj as i128] {
        for d in -2i128..=2 {
            let l = base + d;
            if (0..=600).contains(&l) {
                v.push(l as usize);
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

/// Every width, both byte orders, a wide range of adjustments and limits:
/// `encode` behaves as documented, and whatever it writes, `decode` (fed
/// all at once and one byte at a time, and at EOF) reads back.
#[test]
fn encode_matches_the_documented_rules_and_round_trips() {
    let mut checked = 0usize;
    for width in 1..=8 {
        for big in [true, false] {
            for adj in interesting_adjustments(width) {
                for max in [0usize, 1, 5, 255, 256, 300, 65535, usize::MAX] {
                    let c = Cfg {
                        offset: 0,
                        width,
                        adj,
                        skip: None,
                        max,
                        big,
                    };
                    let mut codec = c.build();
                    for len in lengths_for(&c) {
                        let data: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
                        let mut buf = BytesMut::from(&b"prefix"[..]);
                        let got = codec.encode(&data[..], &mut buf);
                        let want = model_encode(&c, len);
                        match (&got, &want) {
                            (Ok(()), Enc::Ok(v)) => {
                                let mut expect = b"prefix".to_vec();
                                expect.extend(field_bytes(&c, *v));
                                expect.extend(&data);
                                assert_eq!(&buf[..], &expect[..], "{c:?} len {len}");
                            }
                            (
                                Err(LengthDelimitedCodecError::FrameTooLarge { .. }),
                                Enc::TooLarge,
                            )
                            | (
                                Err(LengthDelimitedCodecError::InvalidLength { .. }),
                                Enc::Invalid,
                            ) => {
                                assert_eq!(&buf[..], b"prefix", "{c:?} len {len}: wrote on error");
                                continue;
                            }
                            _ => panic!("{c:?} len {len}: got {got:?}, model {want:?}"),
                        }
                        let Enc::Ok(v) = want else { unreachable!() };
                        if v > max as u64 {
                            continue; // documented: the decoder checks the field value
                        }
                        let wire = buf.split_off(6);
                        // Whole.
                        let mut d = c.build();
                        let mut b = wire.clone();
                        let f = d.decode(&mut b).unwrap().expect("whole frame");
                        assert_eq!(&f[..], &data[..], "{c:?} len {len}");
                        assert!(b.is_empty());
                        assert!(d.decode_eof(&mut b).unwrap().is_none());
                        // Byte by byte.
                        let mut d = c.build();
                        let mut b = BytesMut::new();
                        let mut out = None;
                        for (i, byte) in wire.iter().enumerate() {
                            b.extend_from_slice(&[*byte]);
                            if let Some(f) = d.decode(&mut b).unwrap() {
                                assert_eq!(i + 1, wire.len(), "{c:?} len {len}: early frame");
                                out = Some(f);
                            }
                        }
                        assert_eq!(&out.expect("frame")[..], &data[..], "{c:?} len {len}");
                        // At EOF, any strict prefix is an error.
                        for cut in 1..wire.len().min(12) {
                            let mut d = c.build();
                            let mut b = BytesMut::from(&wire[..cut]);
                            match d.decode_eof(&mut b) {
                                Err(LengthDelimitedCodecError::UnexpectedEof { .. }) => {}
                                other => panic!("{c:?} len {len} cut {cut}: {other:?}"),
                            }
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

/// The documented decoding rules (steps 1-6), for a header at the front.
#[derive(Debug, PartialEq)]
enum Dec {
    Frame(usize, usize), // (taken, skip)
    TooLarge,
    Invalid,
}

fn model_decode(c: &Cfg, value: u64) -> Dec {
    if value > c.max as u64 {
        return Dec::TooLarge;
    }
    let n = value as i128 + c.adj as i128;
    if n < 0 {
        return Dec::Invalid;
    }
    let taken = c.skip() as i128 + n;
    if taken > isize::MAX as i128 {
        return Dec::Invalid;
    }
    if taken < c.header() as i128 {
        return Dec::Invalid;
    }
    Dec::Frame(taken as usize, c.skip())
}

/// Every width and byte order, offsets, num_skip below, at and past the
/// header, field values at the edges: decode follows the documented steps.
#[test]
fn decode_matches_the_documented_rules() {
    for width in 1..=8 {
        for big in [true, false] {
            for offset in [0usize, 1, 3] {
                let header = offset + width;
                let skips = [
                    None,
                    Some(0),
                    Some(1),
                    Some(header.saturating_sub(1)),
                    Some(header + 2),
                ];
                for skip in skips {
                    for adj in interesting_adjustments(width) {
                        for max in [0usize, 7, 255, 65536, usize::MAX] {
                            let c = Cfg {
                                offset,
                                width,
                                adj,
                                skip,
                                max,
                                big,
                            };
                            let fm = c.field_max();
                            let mut values: Vec<u64> = vec![0, 1, 2, 3, 5, 7, 8, 9, 20, fm, fm - 1];
                            values.push(max as u64 & fm);
                            if adj < 0 {
                                let a = adj.unsigned_abs() as u64;
                                for d in 0..3 {
                                    values.push(a.saturating_add(d) & fm);
                                    values.push(a.saturating_sub(d) & fm);
                                }
                            }
                            for value in values {
                                let mut wire: Vec<u8> =
                                    (0..offset as u8).map(|i| 0xa0 | i).collect();
                                wire.extend(field_bytes(&c, value));
                                let want = model_decode(&c, value);
                                let mut d = c.build();
                                match want {
                                    Dec::Frame(taken, skip) => {
                                        if taken > 2000 {
                                            // Too big to build; feed the header only.
                                            let mut b = BytesMut::from(&wire[..]);
                                            assert!(
                                                matches!(d.decode(&mut b), Ok(None)),
                                                "{c:?} v {value}"
                                            );
                                            continue;
                                        }
                                        while wire.len() < taken + 3 {
                                            wire.push(wire.len() as u8);
                                        }
                                        let mut b = BytesMut::from(&wire[..]);
                                        let f = d
                                            .decode(&mut b)
                                            .unwrap_or_else(|e| panic!("{c:?} v {value}: {e:?}"));
                                        let f = f
                                            .unwrap_or_else(|| panic!("{c:?} v {value}: no frame"));
                                        assert_eq!(&f[..], &wire[skip..taken], "{c:?} v {value}");
                                        assert_eq!(&b[..], &wire[taken..], "{c:?} v {value}");
                                    }
                                    Dec::TooLarge => {
                                        let mut b = BytesMut::from(&wire[..]);
                                        let e = d.decode(&mut b);
                                        assert!(
                                            matches!(
                                                e,
                                                Err(
                                                    LengthDelimitedCodecError::FrameTooLarge { .. }
                                                )
                                            ),
                                            "{c:?} v {value}: {e:?}"
                                        );
                                        let e = d.decode(&mut b);
                                        assert!(
                                            matches!(
                                                e,
                                                Err(
                                                    LengthDelimitedCodecError::FrameTooLarge { .. }
                                                )
                                            ),
                                            "sticky {c:?} v {value}: {e:?}"
                                        );
                                    }
                                    Dec::Invalid => {
                                        let mut b = BytesMut::from(&wire[..]);
                                        let e = d.decode(&mut b);
                                        assert!(
                                            matches!(
                                                e,
                                                Err(
                                                    LengthDelimitedCodecError::InvalidLength { .. }
                                                )
                                            ),
                                            "{c:?} v {value}: {e:?}"
                                        );
                                        let e = d.decode_eof(&mut b);
                                        assert!(
                                            matches!(
                                                e,
                                                Err(
                                                    LengthDelimitedCodecError::InvalidLength { .. }
                                                )
                                            ),
                                            "sticky {c:?} v {value}: {e:?}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// A frame exactly at the limit passes, one over fails, through FramedRead.
#[test]
fn frame_exactly_at_max_through_framed_read() {
    for width in 1..=4 {
        let max = 200usize;
        let mut b = LengthDelimitedCodec::builder();
        b.length_field_length(width).max_frame_length(max);
        let mut enc = b.build();
        let mut wire = BytesMut::new();
        enc.encode(vec![7u8; max], &mut wire).unwrap();
        assert!(
            enc.encode(vec![7u8; max + 1], &mut BytesMut::new())
                .is_err()
        );
        block_on(async {
            let mut r = FramedRead::new(Cursor::new(wire.to_vec()), b.build());
            assert_eq!(r.next().await.unwrap().unwrap().len(), max);
            assert!(r.next().await.is_none());
            assert!(r.is_terminated());
            assert!(r.next().await.is_none());
        });
    }
}

/// Partial header / body at EOF: an error, then the stream ends for good.
#[test]
fn partial_frame_at_eof_is_an_error_then_none_forever() {
    for wire in [
        &b"\x00"[..],
        b"\x00\x00\x00",
        b"\x00\x00\x00\x05hel",
        b"\x00\x00\x00\x01a\x00",
    ] {
        block_on(async {
            let mut r = FramedRead::new(Cursor::new(wire.to_vec()), LengthDelimitedCodec::new());
            let mut frames = 0;
            loop {
                match r.next().await {
                    Some(Ok(_)) => frames += 1,
                    Some(Err(LengthDelimitedCodecError::UnexpectedEof { .. })) => break,
                    other => panic!("{wire:?}: {other:?}"),
                }
            }
            assert!(frames <= 1);
            assert!(r.next().await.is_none());
            assert!(r.is_terminated());
            assert!(r.next().await.is_none());
            assert!(r.try_decode_buffered().unwrap().is_none());
        });
    }
}

/// A decode error ends the stream; later polls yield None, not the bytes
/// after the bad header.
#[test]
fn stream_after_a_decode_error_yields_none() {
    let mut wire = b"\x00\x00\x01\x00".to_vec(); // 256 > max 10
    wire.extend(b"\x00\x00\x00\x01x");
    block_on(async {
        let mut b = LengthDelimitedCodec::builder();
        b.max_frame_length(10);
        let mut r = FramedRead::new(Cursor::new(wire), b.build());
        assert!(matches!(
            r.next().await,
            Some(Err(LengthDelimitedCodecError::FrameTooLarge { .. }))
        ));
        assert!(r.next().await.is_none());
        assert!(r.is_terminated());
        assert!(r.try_decode_buffered().unwrap().is_none());
    });
}

/// BytesCodec at EOF: everything is passed on, then the end.
#[test]
fn bytes_codec_ends_cleanly() {
    block_on(async {
        let mut r = FramedRead::new(Cursor::new(b"abc".to_vec()), BytesCodec::new());
        let mut all = Vec::new();
        while let Some(f) = r.next().await {
            all.extend_from_slice(&f.unwrap());
        }
        assert_eq!(all, b"abc");
        assert!(r.next().await.is_none());
    });
    let mut c = BytesCodec::new();
    let mut b = BytesMut::new();
    assert!(c.decode_eof(&mut b).unwrap().is_none());
}

/// LinesCodec at the configured limit and with extreme limits.
#[test]
fn lines_codec_limits() {
    for max in [0usize, 1, 2, 15, 16, 17, 31, 32, 33] {
        let mut c = LinesCodec::with_max_length(max);
        let ok = "a".repeat(max);
        let mut b = BytesMut::from(format!("{ok}\n{ok}\r\n").as_str());
        assert_eq!(
            c.decode(&mut b).unwrap().as_deref(),
            Some(&ok[..]),
            "max {max}"
        );
        assert_eq!(
            c.decode(&mut b).unwrap().as_deref(),
            Some(&ok[..]),
            "max {max}"
        );
        let long = "b".repeat(max + 1);
        let mut b = BytesMut::from(format!("{long}\nnext\n").as_str());
        assert!(
            matches!(c.decode(&mut b), Err(LinesCodecError::LineTooLong { .. })),
            "max {max}"
        );
        if max >= 4 {
            assert_eq!(
                c.decode(&mut b).unwrap().as_deref(),
                Some("next"),
                "max {max}"
            );
        }
        // At EOF without newline, same limit.
        let mut c = LinesCodec::with_max_length(max);
        let mut b = BytesMut::from(ok.as_str());
        if max > 0 {
            assert_eq!(
                c.decode_eof(&mut b).unwrap().as_deref(),
                Some(&ok[..]),
                "eof max {max}"
            );
        }
        let mut b = BytesMut::from(long.as_str());
        assert!(
            matches!(
                c.decode_eof(&mut b),
                Err(LinesCodecError::LineTooLong { .. })
            ),
            "eof max {max}"
        );
    }
    let mut c = LinesCodec::with_max_length(usize::MAX);
    let mut b = BytesMut::from("x".repeat(100).as_str());
    assert!(c.decode(&mut b).unwrap().is_none());
    assert_eq!(c.decode_eof(&mut b).unwrap().unwrap().len(), 100);
    let c = LinesCodec::new().max_length(3);
    assert_eq!(c.get_max_length(), 3);
}
