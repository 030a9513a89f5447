//! LengthDelimitedCodec against a plain reference of its documented
//! behaviour (tokio-util's meaning of the settings: read the field, skip
//! `num_skip` bytes, take `value + adjustment` bytes), call by call
//! (result and buffer), for layouts picked by the input (offset 0..3,
//! width 1..8, either endianness, adjustment -9..+6, num_skip default,
//! 0..3 or header-1..header+2, small limits), cut into reads at arbitrary
//! points. Errors must repeat forever (poisoning).
#![no_main]

#[path = "common/chunks.rs"]
mod chunks;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strata_codec::{Decoder, LengthDelimitedCodec, LengthDelimitedCodecError};

#[derive(Debug, PartialEq)]
enum Out {
    Frame(Vec<u8>),
    None,
    TooLarge,
    Invalid,
    Eof,
}

struct Cfg {
    off: usize,
    width: usize,
    big: bool,
    adj: isize,
    skip: Option<usize>,
    max: usize,
}

struct Reference {
    cfg: Cfg,
    poisoned: Option<Out>,
}

impl Reference {
    fn decode(&mut self, buf: &mut Vec<u8>) -> Out {
        if let Some(p) = &self.poisoned {
            return match p {
                Out::TooLarge => Out::TooLarge,
                _ => Out::Invalid,
            };
        }
        let c = &self.cfg;
        let hl = c.off + c.width;
        let skip = c.skip.unwrap_or(hl);
        // The header before anything is read (the skipped bytes are waited
        // for with the frame, below).
        if buf.len() < hl {
            return Out::None;
        }
        let field = &buf[c.off..hl];
        let mut v: u64 = 0;
        if c.big {
            for &b in field {
                v = (v << 8) | u64::from(b);
            }
        } else {
            for &b in field.iter().rev() {
                v = (v << 8) | u64::from(b);
            }
        }
        // The limit is on the value as read, before the adjustment.
        if v > c.max as u64 {
            self.poisoned = Some(Out::TooLarge);
            return Out::TooLarge;
        }
        let frame = i128::from(v) + c.adj as i128;
        // The frame is the `frame` bytes after the skipped ones; it must
        // not be negative, nor end inside its own header.
        let end = skip as i128 + frame;
        // ... nor need more than any buffer can hold.
        if frame < 0 || end < hl as i128 || end > isize::MAX as i128 {
            self.poisoned = Some(Out::Invalid);
            return Out::Invalid;
        }
        let end = end as usize;
        if buf.len() < end {
            return Out::None;
        }
        let frame = buf[skip..end].to_vec();
        buf.drain(..end);
        Out::Frame(frame)
    }
    fn decode_eof(&mut self, buf: &mut Vec<u8>) -> Out {
        match self.decode(buf) {
            Out::None if buf.is_empty() => Out::None,
            Out::None => Out::Eof,
            o => o,
        }
    }
}

fn out(r: Result<Option<BytesMut>, LengthDelimitedCodecError>) -> Out {
    match r {
        Ok(Some(f)) => Out::Frame(f.to_vec()),
        Ok(None) => Out::None,
        Err(LengthDelimitedCodecError::FrameTooLarge { .. }) => Out::TooLarge,
        Err(LengthDelimitedCodecError::InvalidLength { .. }) => Out::Invalid,
        Err(LengthDelimitedCodecError::UnexpectedEof { .. }) => Out::Eof,
        Err(e) => panic!("{e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [a, b, ncuts, rest @ ..] = data else {
        return;
    };
    let off = usize::from(a & 3);
    let width = usize::from((a >> 2) & 7) + 1;
    let big = a & 0x20 != 0;
    let adj = isize::from(b % 16) - 9;
    let hl = off + width;
    let skip = match (b >> 4) % 4 {
        0 | 1 => None,
        2 => Some(usize::from(a >> 6)),
        // Around the header's end, past it included.
        _ => Some(hl - 1 + usize::from(a >> 6)),
    };
    let max = [0usize, 1, 7, 8, 64, 255, 256, 1 << 20][usize::from(b >> 5) & 7];
    let cfg = Cfg {
        off,
        width,
        big,
        adj,
        skip,
        max,
    };
    let mut builder = LengthDelimitedCodec::builder();
    builder
        .length_field_offset(off)
        .length_field_length(width)
        .length_adjustment(adj)
        .max_frame_length(max);
    if !big {
        builder.little_endian();
    }
    if let Some(s) = skip {
        builder.num_skip(s);
    }
    let mut codec = builder.build();
    let mut reference = Reference {
        cfg,
        poisoned: None,
    };

    let ncuts = usize::from(ncuts % 8).min(rest.len());
    let (cuts, input) = rest.split_at(ncuts);
    let chunks = chunks::cut(input, cuts);

    let mut buf = BytesMut::new();
    let mut rbuf = Vec::new();
    let mut errors = 0;
    for chunk in &chunks {
        buf.extend_from_slice(chunk);
        rbuf.extend_from_slice(chunk);
        loop {
            let r = reference.decode(&mut rbuf);
            let s = out(codec.decode(&mut buf));
            assert_eq!(s, r);
            assert_eq!(&buf[..], &rbuf[..]);
            match r {
                Out::Frame(_) => {}
                Out::None => break,
                _ => {
                    errors += 1;
                    if errors > 3 {
                        break;
                    }
                }
            }
        }
    }
    for _ in 0..3 {
        let r = reference.decode_eof(&mut rbuf);
        let s = out(codec.decode_eof(&mut buf));
        assert_eq!(s, r);
        assert_eq!(&buf[..], &rbuf[..]);
        if r == Out::None {
            break;
        }
    }
});
