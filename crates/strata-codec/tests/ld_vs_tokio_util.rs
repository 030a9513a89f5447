//! `LengthDelimitedCodec` against tokio-util 0.7's, differentially.
//!
//! Both codecs get the same builder calls. For thousands of random
//! settings (offset 0–3, field length 1–8, both byte orders, adjustments
//! from -300 to +300, `num_skip` from 0 to the header plus 2 or left at its
//! default, limits from 0 to 8 MiB) and random streams cut into random
//! reads, strata must yield exactly tokio-util's frames and end the same
//! way, except where strata's documentation lists a deliberate difference;
//! the comparison checks that each divergence is one of those, on the
//! header where it happens. Encoding must write the same bytes and accept
//! the same data, with one listed exception. A seeded generator keeps the
//! runs reproducible; a failure prints the seed and the case.

mod support;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_executor::block_on;
use futures_util::StreamExt;
use strata_codec::{FramedRead, LengthDelimitedCodec, LengthDelimitedCodecError};
use support::Mock;
use tokio_util::codec::LengthDelimitedCodec as TokioCodec;

/// splitmix64: small, seeded, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be 0.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    fn bytes(&mut self, n: usize) -> impl Iterator<Item = u8> + '_ {
        (0..n).map(|_| self.next() as u8)
    }
}

#[derive(Debug, Clone, Copy)]
struct Cfg {
    offset: usize,
    width: usize,
    big: bool,
    adjustment: isize,
    num_skip: Option<usize>,
    max: usize,
}

impl Cfg {
    fn header_len(&self) -> usize {
        self.offset + self.width
    }

    fn skip(&self) -> usize {
        self.num_skip.unwrap_or(self.header_len())
    }

    fn field_max(&self) -> u64 {
        u64::MAX >> (64 - 8 * self.width)
    }

    fn strata(&self) -> LengthDelimitedCodec {
        let mut builder = LengthDelimitedCodec::builder();
        builder
            .length_field_offset(self.offset)
            .length_field_length(self.width)
            .length_adjustment(self.adjustment)
            .max_frame_length(self.max);
        if self.big {
            builder.big_endian();
        } else {
            builder.little_endian();
        }
        if let Some(skip) = self.num_skip {
            builder.num_skip(skip);
        }
        builder.build()
    }

    fn tokio(&self) -> TokioCodec {
        let mut builder = TokioCodec::builder();
        builder
            .length_field_offset(self.offset)
            .length_field_length(self.width)
            .length_adjustment(self.adjustment)
            .max_frame_length(self.max);
        if self.big {
            builder.big_endian();
        } else {
            builder.little_endian();
        }
        if let Some(skip) = self.num_skip {
            builder.num_skip(skip);
        }
        builder.new_codec()
    }

    /// Settings for the decoding comparison: adjustments mostly small so
    /// that frames stay short, a few large negative ones (which meet
    /// tokio-util's lowered limit on 1- and 2-byte fields).
    fn random_for_decoding(rng: &mut Rng) -> Cfg {
        let offset = rng.index(4);
        let width = 1 + rng.index(8);
        let header_len = offset + width;
        let adjustment = match rng.below(8) {
            0 => -(header_len as isize),
            1 => rng.pick(&[-300, -256, -255, -254, -65_535, 255]),
            _ => rng.below(25) as isize - 12,
        };
        let num_skip = match rng.below(3) {
            0 => None,
            _ => Some(rng.index(header_len + 3)),
        };
        let max = rng.pick(&[0, 1, 3, 8, 16, 40, 64, 255, 256, 300, 1000, 8 << 20]);
        Cfg {
            offset,
            width,
            big: rng.below(2) == 0,
            adjustment,
            num_skip,
            max,
        }
    }

    /// Reads the length field of the frame that starts at `pos`, if the
    /// wire holds it.
    fn field_at(&self, wire: &[u8], pos: usize) -> Option<u64> {
        let field = wire.get(pos + self.offset..pos + self.header_len())?;
        let mut value = 0u64;
        let mut push = |b: &u8| value = (value << 8) | u64::from(*b);
        if self.big {
            field.iter().for_each(&mut push);
        } else {
            field.iter().rev().for_each(&mut push);
        }
        Some(value)
    }

    /// `value + adjustment`, the frame length tokio-util and strata agree
    /// on when it is valid.
    fn frame_len(&self, value: u64) -> i128 {
        i128::from(value) + self.adjustment as i128
    }
}

/// A stream for `cfg`: mostly well-formed frames (a random head, the
/// length field, then enough bytes for `num_skip` and the frame), with
/// edge values, stray bytes and, sometimes, a cut-off end.
fn random_wire(rng: &mut Rng, cfg: &Cfg) -> Vec<u8> {
    let header_len = cfg.header_len();
    let skip = cfg.skip();
    let mut wire = Vec::new();
    for _ in 0..rng.below(7) {
        if rng.below(12) == 0 {
            let n = 1 + rng.index(5);
            wire.extend(rng.bytes(n));
            continue;
        }
        let value: i128 = match rng.below(6) {
            // Edges: limits, the field's maximum, lengths around 0 and
            // around the header.
            0 => {
                let edges = [
                    0,
                    1,
                    cfg.max as i128,
                    cfg.max as i128 + 1,
                    i128::from(cfg.field_max()),
                    i128::from(cfg.field_max()) - 1,
                    i128::from(cfg.field_max()) + cfg.adjustment as i128,
                    i128::from(cfg.field_max()) + cfg.adjustment as i128 + 1,
                    -(cfg.adjustment as i128),
                    header_len as i128 - skip as i128 - cfg.adjustment as i128 - 1,
                ];
                rng.pick(&edges)
            }
            // Any frame length, the ones that end inside the header
            // included.
            1 => rng.below(24) as i128 - cfg.adjustment as i128,
            // A well-formed frame.
            _ => {
                let least = header_len.saturating_sub(skip) as i128;
                least + rng.below(40) as i128 - cfg.adjustment as i128
            }
        };
        let value = value.clamp(0, i128::from(cfg.field_max())) as u64;
        let start = wire.len();
        wire.extend(rng.bytes(cfg.offset));
        let be = value.to_be_bytes();
        let field = &be[8 - cfg.width..];
        if cfg.big {
            wire.extend_from_slice(field);
        } else {
            wire.extend(field.iter().rev());
        }
        // The rest of the frame, when it is short enough to send.
        let frame = cfg.frame_len(value);
        if (0..=2000).contains(&frame) {
            let end = start + (skip + frame as usize).max(header_len);
            let rest = end - wire.len();
            wire.extend(rng.bytes(rest));
        }
    }
    if rng.below(4) == 0 {
        wire.truncate(rng.index(wire.len() + 1));
    }
    wire
}

/// `wire` cut into reads: whole, byte by byte, or random sizes (some
/// empty).
fn random_chunks(rng: &mut Rng, wire: &[u8]) -> Vec<Vec<u8>> {
    match rng.below(4) {
        0 => vec![wire.to_vec()],
        1 => wire.chunks(1).map(<[u8]>::to_vec).collect(),
        _ => {
            let mut chunks = Vec::new();
            let mut rest = wire;
            while !rest.is_empty() {
                let n = rng.index(17).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                chunks.push(chunk.to_vec());
                rest = tail;
            }
            chunks
        }
    }
}

/// How a decoding run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `decode_eof` returned `Ok(None)`.
    Clean,
    /// strata's `FrameTooLarge`; tokio-util's `InvalidData`.
    TooLarge,
    /// strata's `InvalidLength`; tokio-util's `InvalidInput` (a length
    /// that overflows or goes negative after the adjustment).
    Invalid,
    /// strata's `UnexpectedEof`; tokio-util's "bytes remaining on stream".
    Eof,
    /// An empty frame that consumed nothing: the decoder would yield it
    /// forever.
    Stuck,
}

#[derive(Debug)]
struct Run {
    frames: Vec<Vec<u8>>,
    end: End,
}

/// Decodes after every read until `Ok(None)`, then at end of stream until
/// `Ok(None)`; stops at the first error.
fn run(
    chunks: &[Vec<u8>],
    mut decode: impl FnMut(&mut BytesMut, bool) -> Result<Option<BytesMut>, End>,
) -> Run {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let reads = chunks.iter().map(Some).chain([None]);
    for read in reads {
        let eof = read.is_none();
        if let Some(chunk) = read {
            buf.extend_from_slice(chunk);
        }
        loop {
            let before = buf.len();
            match decode(&mut buf, eof) {
                Ok(Some(frame)) => {
                    let stuck = frame.is_empty() && buf.len() == before;
                    frames.push(frame.to_vec());
                    if stuck {
                        return Run {
                            frames,
                            end: End::Stuck,
                        };
                    }
                }
                Ok(None) => break,
                Err(end) => return Run { frames, end },
            }
        }
    }
    Run {
        frames,
        end: End::Clean,
    }
}

fn run_strata(cfg: &Cfg, chunks: &[Vec<u8>]) -> Run {
    let mut codec = cfg.strata();
    run(chunks, |buf, eof| {
        let result = if eof {
            strata_codec::Decoder::decode_eof(&mut codec, buf)
        } else {
            strata_codec::Decoder::decode(&mut codec, buf)
        };
        result.map_err(|err| match err {
            LengthDelimitedCodecError::FrameTooLarge { .. } => End::TooLarge,
            LengthDelimitedCodecError::InvalidLength { .. } => End::Invalid,
            LengthDelimitedCodecError::UnexpectedEof { .. } => End::Eof,
            other => panic!("unexpected error {other:?}"),
        })
    })
}

fn run_tokio(cfg: &Cfg, chunks: &[Vec<u8>]) -> Run {
    let mut codec = cfg.tokio();
    run(chunks, |buf, eof| {
        let result = if eof {
            tokio_util::codec::Decoder::decode_eof(&mut codec, buf)
        } else {
            tokio_util::codec::Decoder::decode(&mut codec, buf)
        };
        result.map_err(|err| match err.kind() {
            io::ErrorKind::InvalidData => End::TooLarge,
            io::ErrorKind::InvalidInput => End::Invalid,
            io::ErrorKind::Other => End::Eof,
            _ => panic!("unexpected error {err:?}"),
        })
    })
}

/// How strata's run relates to tokio-util's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Same,
    /// tokio-util yields a frame that ends inside its own header; strata
    /// reports `InvalidLength` there.
    ShortFrame,
    /// tokio-util rejects a value within the limit as set, because it
    /// lowers the limit to what the field holds after a negative
    /// adjustment; strata accepts it.
    LoweredLimit,
    /// The stream ends right after the skipped bytes of a non-empty frame:
    /// tokio-util ends cleanly, strata reports `UnexpectedEof`.
    EofAfterSkip,
    /// The stream ends inside the skipped bytes after a header over the
    /// limit or invalid: strata checked the header as soon as it was
    /// there and reports that; tokio-util, still waiting for the skipped
    /// bytes, reports the early end.
    EarlyHeaderCheck,
}

/// Compares the runs; panics unless they agree up to one of the listed
/// differences, checked against the header where the runs part.
fn compare(cfg: &Cfg, wire: &[u8], s: &Run, t: &Run) -> Outcome {
    let common = s
        .frames
        .iter()
        .zip(&t.frames)
        .take_while(|(a, b)| a == b)
        .count();
    if s.frames == t.frames && s.end == t.end {
        return Outcome::Same;
    }
    let skip = cfg.skip();
    let pos: usize = s.frames[..common].iter().map(|f| skip + f.len()).sum();
    let value = cfg.field_at(wire, pos);
    let frame = value.map(|v| cfg.frame_len(v));
    let within_limit = value.is_some_and(|v| v <= cfg.max as u64);

    // tokio-util yields a frame ending inside its header; strata refuses.
    if s.frames.len() == common
        && s.end == End::Invalid
        && t.frames.len() > common
        && skip + t.frames[common].len() < cfg.header_len()
        && within_limit
        && frame == Some(t.frames[common].len() as i128)
    {
        return Outcome::ShortFrame;
    }
    // tokio-util's lowered limit.
    if t.frames.len() == common
        && t.end == End::TooLarge
        && (s.frames.len() > common || s.end != End::TooLarge)
        && within_limit
        && cfg.adjustment < 0
        && value
            .is_some_and(|v| i128::from(v) > i128::from(cfg.field_max()) + cfg.adjustment as i128)
    {
        return Outcome::LoweredLimit;
    }
    // tokio-util drops the skipped bytes on reading the header, then sees
    // an empty buffer at the end of the stream.
    if s.frames.len() == common
        && t.frames.len() == common
        && s.end == End::Eof
        && t.end == End::Clean
        && wire.len() - pos == skip
        && skip >= cfg.header_len()
        && within_limit
        && frame.is_some_and(|n| n > 0)
    {
        return Outcome::EofAfterSkip;
    }
    // strata reads the header before the skipped bytes arrive.
    if s.frames.len() == common
        && t.frames.len() == common
        && t.end == End::Eof
        && skip > cfg.header_len()
        && wire.len() - pos < skip
        && value.is_some()
        && match s.end {
            End::TooLarge => !within_limit,
            End::Invalid => within_limit,
            _ => false,
        }
    {
        return Outcome::EarlyHeaderCheck;
    }
    panic!(
        "strata and tokio-util part after {common} frames (at byte {pos}, value {value:?}):\n\
         cfg {cfg:?}\nwire {wire:02x?}\nstrata {s:?}\ntokio-util {t:?}"
    );
}

#[test]
fn decoding_matches_tokio_util_on_random_settings_and_streams() {
    const SEED: u64 = 0x1d5e_ed00_c0de_c001;
    let mut rng = Rng(SEED);
    let mut tally = std::collections::HashMap::new();
    let mut frames = 0usize;
    for case in 0..20_000 {
        let cfg = Cfg::random_for_decoding(&mut rng);
        let wire = random_wire(&mut rng, &cfg);
        // Two cuttings of the same stream: the outcome must not depend on
        // where the reads fall.
        let mut first = None;
        for _ in 0..2 {
            let chunks = random_chunks(&mut rng, &wire);
            let s = run_strata(&cfg, &chunks);
            let t = run_tokio(&cfg, &chunks);
            let outcome = std::panic::catch_unwind(|| compare(&cfg, &wire, &s, &t))
                .unwrap_or_else(|_| panic!("seed {SEED:#x}, case {case}, chunks {chunks:?}"));
            frames += s.frames.len();
            *tally.entry(outcome).or_insert(0usize) += 1;
            match &first {
                None => first = Some((s.frames, s.end)),
                Some(prev) => assert_eq!(
                    prev,
                    &(s.frames, s.end),
                    "seed {SEED:#x}, case {case}: the cutting changed strata's output"
                ),
            }
        }
    }
    eprintln!("{frames} frames compared; outcomes {tally:?}");
    // The comparison saw each of the differences, and mostly agreement.
    let same = tally.get(&Outcome::Same).copied().unwrap_or(0);
    assert!(same > 30_000, "{tally:?}");
    for outcome in [
        Outcome::ShortFrame,
        Outcome::LoweredLimit,
        Outcome::EofAfterSkip,
        Outcome::EarlyHeaderCheck,
    ] {
        assert!(
            tally.contains_key(&outcome),
            "never hit {outcome:?}: {tally:?}"
        );
    }
    assert!(frames > 20_000, "only {frames} frames");
}

#[test]
fn encoding_matches_tokio_util_on_random_settings_and_lengths() {
    const SEED: u64 = 0x1d5e_ed00_c0de_c002;
    let mut rng = Rng(SEED);
    let data = vec![0x5a; 70_100];
    let mut both_ok = 0;
    let mut both_err = 0;
    let mut truncated = 0;
    for case in 0..20_000 {
        let mut cfg = Cfg::random_for_decoding(&mut rng);
        cfg.adjustment = match rng.below(4) {
            0 => rng.pick(&[
                -70_000, -65_536, -65_535, -256, -255, 255, 256, 65_535, 70_000,
            ]),
            1 => -(i128::from(cfg.field_max()).min(70_000) as isize) + rng.below(5) as isize - 2,
            _ => rng.below(41) as isize - 20,
        };
        cfg.max = rng.pick(&[0, 1, 16, 255, 256, 300, 65_535, 65_536, 8 << 20]);
        let field_room = i128::from(cfg.field_max()) + cfg.adjustment as i128;
        let edges = [
            0,
            1,
            cfg.max as i128 - 1,
            cfg.max as i128,
            cfg.max as i128 + 1,
            field_room - 1,
            field_room,
            field_room + 1,
            cfg.adjustment as i128 - 1,
            cfg.adjustment as i128,
            rng.below(300) as i128,
        ];
        let len = rng.pick(&edges).clamp(0, data.len() as i128) as usize;
        let item = &data[..len];

        let mut s = cfg.strata();
        let mut t = cfg.tokio();
        let mut s_buf = BytesMut::from(&b"before"[..]);
        let mut t_buf = BytesMut::from(&b"before"[..]);
        let s_result = strata_codec::Encoder::encode(&mut s, item, &mut s_buf);
        let t_result =
            tokio_util::codec::Encoder::encode(&mut t, Bytes::copy_from_slice(item), &mut t_buf);
        let context = format!("seed {SEED:#x}, case {case}, cfg {cfg:?}, length {len}");
        match (&s_result, &t_result) {
            (Ok(()), Ok(())) => {
                assert_eq!(s_buf, t_buf, "{context}");
                both_ok += 1;
            }
            (Err(_), Err(_)) => {
                assert_eq!(&s_buf[..], b"before", "{context}: a failed encode wrote");
                both_err += 1;
            }
            // The one listed difference: no data length fits the field
            // after the adjustment. tokio-util still takes empty data and
            // writes its field value cut to the field's width.
            (Err(LengthDelimitedCodecError::InvalidLength { .. }), Ok(())) => {
                assert!(field_room < 0 && len == 0, "{context}: {s_result:?}");
                assert_eq!(&s_buf[..], b"before", "{context}: a failed encode wrote");
                truncated += 1;
            }
            _ => panic!("{context}: strata {s_result:?}, tokio-util {t_result:?}"),
        }
    }
    eprintln!(
        "encode: {both_ok} both ok, {both_err} both refused, {truncated} truncated by tokio-util"
    );
    assert!(both_ok > 2_000 && both_err > 2_000 && truncated > 0);
}

/// The frames of tokio-util's documented layouts (its `length_delimited`
/// module docs, examples 1 to 7) through both framed readers, read in
/// small pieces.
#[test]
fn documented_layouts_through_both_framed_readers() {
    let cases: [(Cfg, &[u8]); 7] = [
        (cfg(0, 2, 0, None), b"\x00\x0BHello world"),
        (cfg(0, 2, 2, Some(0)), b"\x00\x0BHello world"),
        (cfg(0, 2, -2, None), b"\x00\x0DHello world"),
        (cfg(0, 3, 5, Some(0)), b"\x00\x00\x0B\xCA\xFEHello world"),
        (cfg(1, 2, 1, Some(3)), b"\xCA\x00\x0B\xFEHello world"),
        (cfg(1, 2, -3, Some(3)), b"\xCA\x00\x0F\xFEHello world"),
        (cfg(0, 3, 0, Some(4)), b"\x00\x00\x0B\xFFHello world"),
    ];
    let expected: [&[u8]; 7] = [
        b"Hello world",
        b"\x00\x0BHello world",
        b"Hello world",
        b"\x00\x00\x0B\xCA\xFEHello world",
        b"\xFEHello world",
        b"\xFEHello world",
        b"Hello world",
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for ((cfg, frame), want) in cases.iter().zip(expected) {
        // Each frame three times, read 3 bytes at a time.
        let wire = frame.repeat(3);
        let chunks: Vec<Vec<u8>> = wire.chunks(3).map(<[u8]>::to_vec).collect();

        let strata = FramedRead::new(
            Mock::new().read_chunks(chunks.iter().map(Vec::as_slice)),
            cfg.strata(),
        );
        let strata: Vec<Vec<u8>> = block_on(strata.map(|f| f.unwrap().to_vec()).collect());

        let tokio = tokio_util::codec::FramedRead::new(Chunks(chunks.into()), cfg.tokio());
        let tokio: Vec<Vec<u8>> = runtime.block_on(tokio.map(|f| f.unwrap().to_vec()).collect());

        assert_eq!(tokio, [want; 3], "{cfg:?}");
        assert_eq!(strata, tokio, "{cfg:?}");
    }
}

fn cfg(offset: usize, width: usize, adjustment: isize, num_skip: Option<usize>) -> Cfg {
    Cfg {
        offset,
        width,
        big: true,
        adjustment,
        num_skip,
        max: 1024,
    }
}

/// A tokio reader that returns the chunks one per read.
struct Chunks(VecDeque<Vec<u8>>);

impl tokio::io::AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut chunk) = self.0.pop_front() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.push_front(chunk.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}
