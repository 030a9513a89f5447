//! The codec benchmark: strata-codec against tokio-util's codecs, same
//! input, same loop, one process, one run.
//!
//! ```text
//! cargo run --release -p strata-bench --bin codec -- [--reps 16] [--lines 1000000] [--frames 200000]
//!       [--long-lines] [--only SUBSTRING]
//! ```
//!
//! Unknown flags and values that do not parse are errors (exit status 2).
//!
//! Cases, each for `LinesCodec` and `LengthDelimitedCodec` (plus one for
//! strata's `LinesCodec::shared`, decoding into `Line`, against tokio-util's
//! `String` lines):
//!
//! * decode, whole: `Decoder::decode` in a loop on one `BytesMut` holding
//!   the whole input;
//! * decode, 4 KiB chunks: the input appended to a buffer 4 KiB at a time,
//!   as socket reads would, decoding all whole frames after each chunk;
//! * encode: every frame encoded into a buffer that is cleared whenever it
//!   holds 64 KiB or more, as a flush would.
//!
//! Lines are 5 to 20 bytes on the wire, line ending included (3 to 19
//! bytes of ASCII text; 1 in 8 ends with `\r\n`), the short requests of a
//! line protocol; with `--long-lines`, 20 to 200 bytes of text, one line
//! in 4 with multi-byte UTF-8 characters (2 to 4 bytes each), which takes
//! decoders off any short-ASCII path. Length-
//! delimited frames have a 4-byte big-endian header and a 16 to 512-byte
//! body. Both sides run with the same limits (8 KiB per line, 8 MiB per
//! frame). After one warm-up round, not recorded, the implementations
//! alternate (A B, then B A, ...) on every case and repetition, so drift
//! hits both alike. Every decoded frame is
//! passed through `black_box` and counted, and the count and byte total
//! are checked, so the optimizer cannot drop the work.
//!
//! MB/s counts the bytes a run processes: a decoder's input (line endings
//! included), an encoder's output (the lines encoder writes `\n` alone, so
//! its output is shorter than the decoders' input).
//!
//! The table gives medians over the repetitions, their ratio, the median
//! (and range) of the per-repetition ratios (both sides of a pair run back
//! to back, so they share that moment's load), and per side the slowest and
//! fastest run relative to its median.

use std::hint::black_box;

use bytes::BytesMut;
use strata_bench::args::{ArgError, Args};
use strata_bench::report::{Sample, measure, median_rate, spread};

/// Lines are at most this long; both codecs are given the same limit.
const MAX_LINE: usize = 8 * 1024;
/// The size of one simulated socket read.
const CHUNK: usize = 4 * 1024;
/// Encoded bytes are dropped ("flushed") once this many are buffered.
const FLUSH_AT: usize = 64 * 1024;

const USAGE: &str = "\
codec benchmark: strata-codec against tokio-util's codecs

usage:
  codec [--reps 16] [--lines 1000000] [--frames 200000] [--long-lines] [--only SUBSTRING]
      --long-lines makes lines 20 to 200 bytes of text, some of it non-ASCII
      --only runs just the cases whose name contains SUBSTRING

Unknown flags and values that do not parse are errors (exit status 2).";

/// A small deterministic PRNG (xorshift64*), so every run sees the same input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

/// One workload: the bytes on the wire and the frames they carry.
struct Workload {
    /// The encoded stream, as decoders see it.
    wire: Vec<u8>,
    /// Each frame's payload as a range of `payloads`.
    frames: Vec<(usize, usize)>,
    /// The frames' payloads back to back, for the encoders.
    payloads: Vec<u8>,
    /// Sum of the payload lengths: what a decoder must hand out.
    payload_bytes: usize,
}

impl Workload {
    fn frame(&self, i: usize) -> &[u8] {
        let (start, end) = self.frames[i];
        &self.payloads[start..end]
    }
}

fn lines_workload(count: usize, long: bool) -> Workload {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:/";
    /// Multi-byte characters of 2, 3 and 4 bytes.
    const WIDE: [&str; 4] = ["é", "ß", "€", "😀"];
    let mut rng = Rng(0x1135_c0de_0000_0001);
    let per_line = if long { 112 } else { 14 };
    let mut wire = Vec::with_capacity(count * per_line);
    let mut payloads = Vec::with_capacity(count * per_line);
    let mut frames = Vec::with_capacity(count);
    for _ in 0..count {
        let crlf = rng.next().is_multiple_of(8);
        let text = if long {
            rng.range(20, 200)
        } else {
            // 5 to 20 bytes on the wire, line ending included.
            rng.range(5, 20) - if crlf { 2 } else { 1 }
        };
        let wide = long && rng.next().is_multiple_of(4);
        let start = payloads.len();
        while payloads.len() - start < text {
            // Only long lines draw more than one number per character, so
            // the short workload is the bytes earlier sessions measured.
            let room = text - (payloads.len() - start);
            let c = if wide {
                Some(WIDE[rng.next() as usize % WIDE.len()])
                    .filter(|c| c.len() <= room && rng.next().is_multiple_of(3))
            } else {
                None
            };
            match c {
                Some(c) => payloads.extend_from_slice(c.as_bytes()),
                None => payloads.push(ALPHABET[rng.next() as usize % ALPHABET.len()]),
            }
        }
        wire.extend_from_slice(&payloads[start..]);
        wire.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        frames.push((start, payloads.len()));
    }
    let payload_bytes = payloads.len();
    Workload {
        wire,
        frames,
        payloads,
        payload_bytes,
    }
}

fn length_delimited_workload(count: usize) -> Workload {
    let mut rng = Rng(0x1e57_f4a3_0000_0002);
    let mut wire = Vec::with_capacity(count * 268);
    let mut payloads = Vec::with_capacity(count * 264);
    let mut frames = Vec::with_capacity(count);
    for _ in 0..count {
        let len = rng.range(16, 512);
        let start = payloads.len();
        payloads.extend((0..len).map(|j| (j as u64 ^ rng.0) as u8));
        wire.extend_from_slice(&(len as u32).to_be_bytes());
        wire.extend_from_slice(&payloads[start..]);
        frames.push((start, payloads.len()));
    }
    let payload_bytes = payloads.len();
    Workload {
        wire,
        frames,
        payloads,
        payload_bytes,
    }
}

/// What a decode run produced: frames and payload bytes, checked afterwards.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Tally {
    frames: usize,
    bytes: usize,
}

/// Decodes everything in `buf` (all of it whole frames) with `decode`.
#[inline(always)]
fn drain<F, E>(buf: &mut BytesMut, tally: &mut Tally, mut decode: F)
where
    F: FnMut(&mut BytesMut) -> Result<Option<usize>, E>,
    E: std::fmt::Debug,
{
    while let Some(len) = decode(buf).expect("decode") {
        tally.frames += 1;
        tally.bytes += len;
    }
}

/// Decodes the whole input held in one buffer. The buffer is filled before
/// the clock starts.
fn decode_whole<F, E>(wire: &[u8], decode: F) -> (Sample, Tally)
where
    F: FnMut(&mut BytesMut) -> Result<Option<usize>, E>,
    E: std::fmt::Debug,
{
    let mut buf = BytesMut::from(wire);
    let mut tally = Tally {
        frames: 0,
        bytes: 0,
    };
    let sample = measure(|| {
        drain(&mut buf, &mut tally, decode);
        tally.frames as u64
    });
    assert!(buf.is_empty(), "input left undecoded");
    (sample, tally)
}

/// Feeds the input 4 KiB at a time, decoding after each chunk.
fn decode_chunked<F, E>(wire: &[u8], mut decode: F) -> (Sample, Tally)
where
    F: FnMut(&mut BytesMut) -> Result<Option<usize>, E>,
    E: std::fmt::Debug,
{
    let mut buf = BytesMut::with_capacity(2 * CHUNK);
    let mut tally = Tally {
        frames: 0,
        bytes: 0,
    };
    let sample = measure(|| {
        for chunk in wire.chunks(CHUNK) {
            buf.extend_from_slice(black_box(chunk));
            drain(&mut buf, &mut tally, &mut decode);
        }
        tally.frames as u64
    });
    assert!(buf.is_empty(), "input left undecoded");
    (sample, tally)
}

/// Encodes every frame, "flushing" (clearing) the buffer at 64 KiB.
/// Returns the sample and the number of bytes produced.
fn encode_all<F, E>(work: &Workload, mut encode: F) -> (Sample, usize)
where
    F: FnMut(&[u8], &mut BytesMut) -> Result<(), E>,
    E: std::fmt::Debug,
{
    let mut buf = BytesMut::new();
    let mut written = 0;
    let sample = measure(|| {
        for i in 0..work.frames.len() {
            encode(work.frame(i), &mut buf).expect("encode");
            if buf.len() >= FLUSH_AT {
                written += black_box(&buf[..]).len();
                buf.clear();
            }
        }
        written += black_box(&buf[..]).len();
        buf.clear();
        work.frames.len() as u64
    });
    (sample, written)
}

/// The two implementations of one case, and their samples.
struct Case {
    name: &'static str,
    /// Bytes processed per run, the MB/s figure's numerator: see
    /// [`bytes_per_run`].
    bytes: usize,
    strata: Vec<Sample>,
    tokio: Vec<Sample>,
}

/// The bytes one run of case `name` processes: for a decoder its input
/// (the wire, line endings included, `\r\n` as two bytes), for an encoder
/// its output. The lines encoder writes each line with `\n` alone, so its
/// output is shorter than the wire the decoders read, which has a `\r`
/// before one `\n` in 8.
fn bytes_per_run(name: &str, lines: &Workload, frames: &Workload) -> usize {
    match name {
        "lines: encode" => lines.payload_bytes + lines.frames.len(),
        n if n.starts_with("lines:") => lines.wire.len(),
        _ => frames.wire.len(),
    }
}

/// Both sides of one case, in the given order. `strata` and `tokio` each
/// return their sample; they check their own results.
fn pair(
    case: &mut Case,
    only: &str,
    strata_first: bool,
    mut strata: impl FnMut() -> Sample,
    mut tokio: impl FnMut() -> Sample,
) {
    if !case.name.contains(only) {
        return;
    }
    if strata_first {
        case.strata.push(strata());
        case.tokio.push(tokio());
    } else {
        case.tokio.push(tokio());
        case.strata.push(strata());
    }
}

/// The names of the cases, in the table's order of the `cases` array.
const NAMES: [&str; 7] = [
    "lines: decode, whole buffer",
    "lines: decode, 4 KiB chunks",
    "lines: encode",
    "length-delimited: decode, whole buffer",
    "length-delimited: decode, 4 KiB chunks",
    "length-delimited: encode",
    "lines: decode as shared Line, 4 KiB chunks",
];

/// `--reps`, `--lines`, `--frames`, `--long-lines` and `--only`, checked.
fn options(mut args: Args) -> Result<(usize, usize, usize, bool, String), ArgError> {
    // Even: strata runs first in half the rounds.
    let reps: usize = args.at_least("--reps", 16, 1)?;
    let line_count: usize = args.at_least("--lines", 1_000_000, 1)?;
    let frame_count: usize = args.at_least("--frames", 200_000, 1)?;
    let long = args.flag("--long-lines")?;
    // Only the cases whose name contains this (for profiling one case).
    let only: String = args.value("--only", String::new())?;
    if !NAMES.iter().any(|n| n.contains(&only)) {
        return Err(ArgError::new(format!(
            "--only: no case name contains {only:?}"
        )));
    }
    args.finish()?;
    Ok((reps, line_count, frame_count, long, only))
}

fn main() {
    let (reps, line_count, frame_count, long, only) =
        options(Args::from_env(USAGE)).unwrap_or_else(|e| e.exit(USAGE));

    let lines = lines_workload(line_count, long);
    let frames = length_delimited_workload(frame_count);
    let line_tally = Tally {
        frames: line_count,
        bytes: lines.payload_bytes,
    };
    let frame_tally = Tally {
        frames: frame_count,
        bytes: frames.payload_bytes,
    };
    eprintln!(
        "lines{}: {} lines, {} bytes; length-delimited: {} frames, {} bytes; {reps} repetition{}",
        if long { " (long)" } else { "" },
        line_count,
        lines.wire.len(),
        frame_count,
        frames.wire.len(),
        if reps == 1 { "" } else { "s" }
    );

    let mut cases: Vec<Case> = NAMES
        .iter()
        .map(|&name| Case {
            name,
            bytes: bytes_per_run(name, &lines, &frames),
            strata: Vec::new(),
            tokio: Vec::new(),
        })
        .collect();

    use strata_codec::{Decoder as _, Encoder as _};
    use tokio_util::codec::{Decoder as _, Encoder as _};

    // The encoders take text.
    let line_strs: Vec<&str> = (0..line_count)
        .map(|i| std::str::from_utf8(lines.frame(i)).expect("UTF-8 payload"))
        .collect();
    let encoded_lines = bytes_per_run("lines: encode", &lines, &frames);

    strata_bench::report::warn_unbalanced(reps, 2);
    // Round 0 warms up both sides (allocator, page faults, caches) and is
    // not recorded: without it, at small inputs, whichever side ran
    // second in a pair ran faster.
    for round in 0..=reps {
        let rep = round.saturating_sub(1);
        let first = rep.is_multiple_of(2);
        let [c0, c1, c2, c3, c4, c5, c6] = &mut cases[..] else {
            unreachable!()
        };

        // Lines, decode: each decoded String is passed to black_box.
        let strata_line = |buf: &mut BytesMut, codec: &mut strata_codec::LinesCodec| {
            codec
                .decode(buf)
                .map(|line| line.map(|l| black_box(l).len()))
        };
        let tokio_line = |buf: &mut BytesMut, codec: &mut tokio_util::codec::LinesCodec| {
            codec
                .decode(buf)
                .map(|line| line.map(|l| black_box(l).len()))
        };
        let strata_lines = || strata_codec::LinesCodec::with_max_length(MAX_LINE);
        let tokio_lines = || tokio_util::codec::LinesCodec::new_with_max_length(MAX_LINE);

        pair(
            c0,
            &only,
            first,
            || {
                let mut codec = strata_lines();
                let (s, t) = decode_whole(&lines.wire, |b| strata_line(b, &mut codec));
                assert_eq!(t, line_tally);
                s
            },
            || {
                let mut codec = tokio_lines();
                let (s, t) = decode_whole(&lines.wire, |b| tokio_line(b, &mut codec));
                assert_eq!(t, line_tally);
                s
            },
        );
        // strata decoding into `Line` (no allocation per line) against
        // tokio-util's `String`, the only form it offers.
        pair(
            c6,
            &only,
            first,
            || {
                let mut codec = strata_codec::LinesCodec::shared().max_length(MAX_LINE);
                let (s, t) = decode_chunked(&lines.wire, |b| {
                    codec.decode(b).map(|line| line.map(|l| black_box(l).len()))
                });
                assert_eq!(t, line_tally);
                s
            },
            || {
                let mut codec = tokio_lines();
                let (s, t) = decode_chunked(&lines.wire, |b| tokio_line(b, &mut codec));
                assert_eq!(t, line_tally);
                s
            },
        );
        pair(
            c1,
            &only,
            first,
            || {
                let mut codec = strata_lines();
                let (s, t) = decode_chunked(&lines.wire, |b| strata_line(b, &mut codec));
                assert_eq!(t, line_tally);
                s
            },
            || {
                let mut codec = tokio_lines();
                let (s, t) = decode_chunked(&lines.wire, |b| tokio_line(b, &mut codec));
                assert_eq!(t, line_tally);
                s
            },
        );
        // Lines, encode: the same &str slices for both.
        pair(
            c2,
            &only,
            first,
            || {
                let mut codec = strata_lines();
                let mut i = 0;
                let (s, n) = encode_all(&lines, |_, buf| {
                    let line = line_strs[i];
                    i += 1;
                    codec.encode(line, buf)
                });
                assert_eq!(n, encoded_lines);
                s
            },
            || {
                let mut codec = tokio_lines();
                let mut i = 0;
                let (s, n) = encode_all(&lines, |_, buf| {
                    let line = line_strs[i];
                    i += 1;
                    codec.encode(line, buf)
                });
                assert_eq!(n, encoded_lines);
                s
            },
        );

        // Length-delimited, decode: each frame (a BytesMut) goes to black_box.
        let strata_frame = |buf: &mut BytesMut, codec: &mut strata_codec::LengthDelimitedCodec| {
            codec
                .decode(buf)
                .map(|frame| frame.map(|f| black_box(f).len()))
        };
        let tokio_frame =
            |buf: &mut BytesMut, codec: &mut tokio_util::codec::LengthDelimitedCodec| {
                codec
                    .decode(buf)
                    .map(|frame| frame.map(|f| black_box(f).len()))
            };
        pair(
            c3,
            &only,
            first,
            || {
                let mut codec = strata_codec::LengthDelimitedCodec::new();
                let (s, t) = decode_whole(&frames.wire, |b| strata_frame(b, &mut codec));
                assert_eq!(t, frame_tally);
                s
            },
            || {
                let mut codec = tokio_util::codec::LengthDelimitedCodec::new();
                let (s, t) = decode_whole(&frames.wire, |b| tokio_frame(b, &mut codec));
                assert_eq!(t, frame_tally);
                s
            },
        );
        pair(
            c4,
            &only,
            first,
            || {
                let mut codec = strata_codec::LengthDelimitedCodec::new();
                let (s, t) = decode_chunked(&frames.wire, |b| strata_frame(b, &mut codec));
                assert_eq!(t, frame_tally);
                s
            },
            || {
                let mut codec = tokio_util::codec::LengthDelimitedCodec::new();
                let (s, t) = decode_chunked(&frames.wire, |b| tokio_frame(b, &mut codec));
                assert_eq!(t, frame_tally);
                s
            },
        );
        pair(
            c5,
            &only,
            first,
            || {
                let mut codec = strata_codec::LengthDelimitedCodec::new();
                let (s, n) = encode_all(&frames, |f, buf| codec.encode(f, buf));
                assert_eq!(n, frames.wire.len());
                s
            },
            || {
                let mut codec = tokio_util::codec::LengthDelimitedCodec::new();
                let (s, n) = encode_all(&frames, |f, buf| codec.encode(f, buf));
                assert_eq!(n, frames.wire.len());
                s
            },
        );
        if round == 0 {
            for case in &mut cases {
                case.strata.clear();
                case.tokio.clear();
            }
            eprintln!("warm-up done");
        } else {
            eprintln!("repetition {round}/{reps} done");
        }
    }

    println!(
        "| case | strata MB/s | tokio-util MB/s | strata Mframes/s | tokio-util Mframes/s | strata / tokio-util | paired ratio (min–max) | spread strata | spread tokio-util |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for case in cases.iter().filter(|c| !c.strata.is_empty()) {
        let frames_per_run = case.strata[0].ops as f64;
        let mb =
            |samples: &[Sample]| median_rate(samples) * case.bytes as f64 / frames_per_run / 1e6;
        let (s_lo, s_hi) = spread(&case.strata);
        let (t_lo, t_hi) = spread(&case.tokio);
        // Each repetition ran both sides back to back, so their ratio
        // shares that moment's load; its median is the steadier figure.
        let mut paired: Vec<f64> = case
            .strata
            .iter()
            .zip(&case.tokio)
            .map(|(s, t)| s.rate() / t.rate())
            .collect();
        paired.sort_by(f64::total_cmp);
        println!(
            "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2} | {:.2} ({:.2}–{:.2}) | {:.2}–{:.2} | {:.2}–{:.2} |",
            case.name,
            mb(&case.strata),
            mb(&case.tokio),
            median_rate(&case.strata) / 1e6,
            median_rate(&case.tokio) / 1e6,
            median_rate(&case.strata) / median_rate(&case.tokio),
            strata_bench::report::median(paired.iter().copied()),
            paired[0],
            paired[paired.len() - 1],
            s_lo,
            s_hi,
            t_lo,
            t_hi,
        );
    }
    println!(
        "\nMB/s counts the bytes a run processes: decoders their input (line endings \
         included, \\r\\n as two bytes), encoders their output."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_codec::Encoder as _;

    #[test]
    fn lines_encode_counts_the_bytes_the_encoders_write() {
        for long in [false, true] {
            encoded_bytes_are_counted(long);
        }
    }

    fn encoded_bytes_are_counted(long: bool) {
        let lines = lines_workload(1000, long);
        let frames = length_delimited_workload(10);
        let mut strata = strata_codec::LinesCodec::with_max_length(MAX_LINE);
        let mut tokio = tokio_util::codec::LinesCodec::new_with_max_length(MAX_LINE);
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        for i in 0..lines.frames.len() {
            let line = std::str::from_utf8(lines.frame(i)).unwrap();
            strata.encode(line, &mut a).unwrap();
            tokio_util::codec::Encoder::encode(&mut tokio, line, &mut b).unwrap();
        }
        assert_eq!(bytes_per_run("lines: encode", &lines, &frames), a.len());
        assert_eq!(a.len(), b.len());
        // The wire has a `\r` before some `\n`s: it is longer.
        assert!(lines.wire.len() > a.len());
        for name in NAMES.iter().filter(|n| n.contains("decode")) {
            let want = if name.starts_with("lines") {
                lines.wire.len()
            } else {
                frames.wire.len()
            };
            assert_eq!(bytes_per_run(name, &lines, &frames), want, "{name}");
        }
        assert_eq!(
            bytes_per_run("length-delimited: encode", &lines, &frames),
            frames.wire.len()
        );
    }

    /// The lines are as the docs say: 3 to 19 bytes of ASCII text, or
    /// with `--long-lines` 20 to 200 bytes of UTF-8 text, a quarter or so
    /// of the lines with multi-byte characters.
    #[test]
    fn the_line_workloads_are_as_documented() {
        for long in [false, true] {
            let lines = lines_workload(4000, long);
            let (lo, hi) = if long { (20, 200) } else { (3, 19) };
            let mut wide = 0;
            for i in 0..lines.frames.len() {
                let text = std::str::from_utf8(lines.frame(i)).expect("UTF-8");
                assert!((lo..=hi).contains(&text.len()), "{} bytes", text.len());
                assert!(!text.contains('\n') && !text.ends_with('\r'));
                wide += usize::from(!text.is_ascii());
            }
            if long {
                assert!((600..=1400).contains(&wide), "{wide} of 4000 non-ASCII");
            } else {
                assert_eq!(wide, 0);
            }
        }
    }

    /// Without `--long-lines` the workload is the bytes earlier sessions
    /// measured: the generator before `--long-lines`, reproduced here.
    #[test]
    fn the_short_line_workload_is_unchanged() {
        const ALPHABET: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:/";
        let count = 1000;
        let mut rng = Rng(0x1135_c0de_0000_0001);
        let mut wire = Vec::new();
        for _ in 0..count {
            let crlf = rng.next().is_multiple_of(8);
            let total = rng.range(5, 20);
            let text = total - if crlf { 2 } else { 1 };
            for _ in 0..text {
                wire.push(ALPHABET[rng.next() as usize % ALPHABET.len()]);
            }
            wire.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        assert!(lines_workload(count, false).wire == wire);
    }
}
