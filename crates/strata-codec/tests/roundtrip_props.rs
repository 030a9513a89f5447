//! Property tests: encoding then decoding is the identity, and how the
//! bytes are cut into reads never changes the frames decoded.

mod support;

use bytes::BytesMut;
use futures_executor::block_on;
use futures_util::StreamExt;
use proptest::prelude::*;
use proptest::sample::Index;
use strata_codec::{
    BytesCodec, Decoder, Encoder, FramedRead, LengthDelimitedBuilder, LengthDelimitedCodec,
    LinesCodec,
};
use support::Mock;

/// Cuts `bytes` at the given points into chunks (some possibly empty).
fn cut<'a>(bytes: &'a [u8], points: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = points.iter().map(|p| p.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for end in at {
        chunks.push(&bytes[start..end]);
        start = end;
    }
    chunks.push(&bytes[start..]);
    chunks
}

/// Feeds the chunks to the decoder one at a time, decoding after each,
/// then drains with `decode_eof`.
fn decode_chunked<D: Decoder>(decoder: &mut D, chunks: &[&[u8]]) -> Result<Vec<D::Item>, D::Error> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf)? {
            frames.push(frame);
        }
    }
    while let Some(frame) = decoder.decode_eof(&mut buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

/// The same through `FramedRead`, with a pause before every chunk.
fn decode_framed<D: Decoder>(decoder: D, chunks: &[&[u8]]) -> Result<Vec<D::Item>, D::Error> {
    let non_empty = chunks.iter().copied().filter(|c| !c.is_empty());
    let framed = FramedRead::new(Mock::new().read_chunks(non_empty), decoder);
    block_on(framed.collect::<Vec<_>>()).into_iter().collect()
}

fn encode_all<I, E: Encoder<I>>(encoder: &mut E, items: impl IntoIterator<Item = I>) -> BytesMut
where
    E::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::new();
    for item in items {
        encoder.encode(item, &mut buf).unwrap();
    }
    buf
}

fn line() -> impl Strategy<Value = String> {
    // Any text without line breaks, some of it multi-byte.
    "[^\r\n]{0,40}"
}

fn length_delimited_config() -> impl Strategy<Value = LengthDelimitedBuilder> {
    (1usize..=8, any::<bool>(), any::<bool>()).prop_map(|(width, big, counts_itself)| {
        let mut builder = LengthDelimitedCodec::builder();
        builder.length_field_length(width);
        if big {
            builder.big_endian();
        } else {
            builder.little_endian();
        }
        if counts_itself {
            builder.length_adjustment(-(width as isize));
        }
        builder
    })
}

/// A length-delimited layout with a head around the length field: `offset`
/// leading bytes, the field, `gap` bytes after it, then the payload. The
/// field holds the payload's length, or the whole frame's.
#[derive(Debug, Clone)]
struct HeadLayout {
    offset: usize,
    width: usize,
    big: bool,
    gap: usize,
    counts_whole_frame: bool,
    /// Where the decoded frame starts: anywhere from the first byte to the
    /// payload.
    skip: usize,
}

impl HeadLayout {
    fn head_len(&self) -> usize {
        self.offset + self.width + self.gap
    }

    /// The builder that decodes each frame to its bytes from `skip` on:
    /// the frame length is `head_len - skip + payload`.
    fn builder(&self) -> LengthDelimitedBuilder {
        let mut builder = LengthDelimitedCodec::builder();
        let adjustment = if self.counts_whole_frame {
            -(self.skip as isize)
        } else {
            (self.head_len() - self.skip) as isize
        };
        builder
            .length_field_offset(self.offset)
            .length_field_length(self.width)
            .length_adjustment(adjustment)
            .num_skip(self.skip);
        if !self.big {
            builder.little_endian();
        }
        builder
    }

    /// One frame on the wire.
    fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let value = if self.counts_whole_frame {
            self.head_len() + payload.len()
        } else {
            payload.len()
        } as u64;
        let mut field = value.to_be_bytes()[8 - self.width..].to_vec();
        if !self.big {
            field.reverse();
        }
        let mut wire = vec![0xa5; self.offset];
        wire.extend_from_slice(&field);
        wire.extend(std::iter::repeat_n(0x5a, self.gap));
        wire.extend_from_slice(payload);
        wire
    }
}

fn head_layout() -> impl Strategy<Value = HeadLayout> {
    (
        0usize..4,
        1usize..=8,
        any::<bool>(),
        0usize..4,
        any::<bool>(),
        any::<Index>(),
    )
        .prop_map(|(offset, width, big, gap, counts_whole_frame, skip)| {
            let mut layout = HeadLayout {
                offset,
                width,
                big,
                gap,
                counts_whole_frame,
                skip: 0,
            };
            layout.skip = skip.index(layout.head_len() + 1);
            layout
        })
}

proptest! {
    #[test]
    fn lines_survive_any_cutting(
        lines in prop::collection::vec(line(), 0..20),
        points in prop::collection::vec(any::<Index>(), 0..12),
        crlf in any::<bool>(),
    ) {
        let mut wire = encode_all(&mut LinesCodec::new(), &lines).to_vec();
        if crlf {
            wire = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
        }
        let chunks = cut(&wire, &points);
        prop_assert_eq!(&decode_chunked(&mut LinesCodec::new(), &chunks).unwrap(), &lines);
        prop_assert_eq!(&decode_framed(LinesCodec::new(), &chunks).unwrap(), &lines);
    }

    #[test]
    fn lines_encode_as_text_plus_newline(lines in prop::collection::vec(line(), 0..20)) {
        let wire = encode_all(&mut LinesCodec::new(), lines.iter().map(String::as_str));
        let expected: String = lines.iter().map(|l| format!("{l}\n")).collect();
        prop_assert_eq!(&wire[..], expected.as_bytes());
    }

    #[test]
    fn encoding_fails_exactly_on_an_embedded_newline(
        before in prop::collection::vec(any::<u8>(), 0..40),
        text in "[a\n\u{e9}]{0,40}",
    ) {
        // Lines up to 40 bytes cross every size class of the encoder's
        // word-at-a-time path, after any amount of buffered output.
        let mut buf = BytesMut::from(&before[..]);
        let result = LinesCodec::new().encode(text.as_str(), &mut buf);
        if text.contains('\n') {
            prop_assert!(result.is_err());
            prop_assert_eq!(&buf[..], &before[..], "a failed encode must not write");
        } else {
            prop_assert!(result.is_ok());
            let mut expected = before.clone();
            expected.extend_from_slice(text.as_bytes());
            expected.push(b'\n');
            prop_assert_eq!(&buf[..], &expected[..]);
        }
    }

    #[test]
    fn length_delimited_frames_survive_any_cutting(
        config in length_delimited_config(),
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..12),
        points in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let wire = encode_all(&mut config.build(), &frames);
        let chunks = cut(&wire, &points);
        let decoded = decode_chunked(&mut config.build(), &chunks).unwrap();
        prop_assert_eq!(&decoded, &frames);
        let decoded = decode_framed(config.build(), &chunks).unwrap();
        prop_assert_eq!(&decoded, &frames);
    }

    /// `num_skip` anywhere in the head (below, at or past the length
    /// field), with the adjustment that goes with it: each frame decodes to
    /// its own bytes from `num_skip` on, however the stream is cut.
    #[test]
    fn length_delimited_num_skip_anywhere_in_the_head(
        layout in head_layout(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..8),
        points in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let frames: Vec<Vec<u8>> = payloads.iter().map(|p| layout.frame(p)).collect();
        let expected: Vec<&[u8]> = frames.iter().map(|f| &f[layout.skip..]).collect();
        let wire = frames.concat();
        let chunks = cut(&wire, &points);
        let decoded = decode_chunked(&mut layout.builder().build(), &chunks).unwrap();
        prop_assert_eq!(&decoded, &expected);
        let decoded = decode_framed(layout.builder().build(), &chunks).unwrap();
        prop_assert_eq!(&decoded, &expected);
        // With the head skipped and the field first, encoding the payloads
        // gives the same wire.
        if layout.offset == 0 && layout.gap == 0 && layout.skip == layout.head_len() {
            let encoded = encode_all(&mut layout.builder().build(), &payloads);
            prop_assert_eq!(&encoded[..], &wire[..]);
        }
    }

    #[test]
    fn bytes_codec_chunks_concatenate_to_the_input(
        items in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..12),
        points in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let wire = encode_all(&mut BytesCodec::new(), &items);
        prop_assert_eq!(wire.to_vec(), items.concat());
        let chunks = cut(&wire, &points);
        let decoded = decode_chunked(&mut BytesCodec::new(), &chunks).unwrap();
        prop_assert!(decoded.iter().all(|chunk| !chunk.is_empty()));
        prop_assert_eq!(decoded.concat(), items.concat());
        let decoded = decode_framed(BytesCodec::new(), &chunks).unwrap();
        prop_assert_eq!(decoded.concat(), items.concat());
    }

    #[test]
    fn lines_decoder_never_panics_and_stays_bounded(
        input in prop::collection::vec(any::<u8>(), 0..600),
        points in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        const MAX: usize = 32;
        let mut codec = LinesCodec::with_max_length(MAX);
        let mut buf = BytesMut::new();
        for chunk in cut(&input, &points) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(line)) => prop_assert!(line.len() <= MAX),
                    Ok(None) => break,
                    // The codec drops the bad line and goes on.
                    Err(_) => {}
                }
            }
            // One byte of slack for a `\r` that may begin a line ending.
            prop_assert!(buf.len() <= MAX + 1);
        }
    }
}
