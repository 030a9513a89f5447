//! `LinesCodec` on its own: line endings, limits, bad input, end of stream.

use std::error::Error;

use bytes::BytesMut;
use strata_codec::{DEFAULT_MAX_LINE_LENGTH, Decoder, Encoder, LinesCodec, LinesCodecError};

fn decode_all(codec: &mut LinesCodec, buf: &mut BytesMut) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(line) = codec.decode(buf).unwrap() {
        lines.push(line);
    }
    lines
}

#[test]
fn lf_and_crlf_endings_are_stripped() {
    let mut codec = LinesCodec::new();
    let mut buf = BytesMut::from("a\nb\r\n\n\r\nc\rd\n");
    assert_eq!(decode_all(&mut codec, &mut buf), ["a", "b", "", "", "c\rd"]);
    assert!(buf.is_empty());
}

#[test]
fn decode_on_an_empty_buffer_is_none() {
    let mut codec = LinesCodec::new();
    assert_eq!(codec.decode(&mut BytesMut::new()).unwrap(), None);
    assert_eq!(codec.decode_eof(&mut BytesMut::new()).unwrap(), None);
}

#[test]
fn scanning_resumes_across_calls() {
    let mut codec = LinesCodec::new();
    let mut buf = BytesMut::new();
    for byte in b"resumed line" {
        buf.extend_from_slice(&[*byte]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }
    buf.extend_from_slice(b"\nnext");
    assert_eq!(
        codec.decode(&mut buf).unwrap().as_deref(),
        Some("resumed line")
    );
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\n");
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("next"));
}

#[test]
fn default_limit_is_8_kib() {
    assert_eq!(DEFAULT_MAX_LINE_LENGTH, 8192);
    assert_eq!(LinesCodec::new().get_max_length(), 8192);
    assert_eq!(LinesCodec::new().max_length(10).get_max_length(), 10);
    let mut codec = LinesCodec::new();
    let mut ok = BytesMut::from(format!("{}\r\n", "x".repeat(8192)).as_str());
    assert_eq!(codec.decode(&mut ok).unwrap().unwrap().len(), 8192);
    let mut long = BytesMut::from(format!("{}\n", "x".repeat(8193)).as_str());
    assert!(matches!(
        codec.decode(&mut long),
        Err(LinesCodecError::LineTooLong { limit: 8192 })
    ));
}

#[test]
fn complete_line_over_the_limit_is_dropped_with_its_newline() {
    let mut codec = LinesCodec::with_max_length(3);
    let mut buf = BytesMut::from("abc\nabcd\nxyz\n");
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("abc"));
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(err, LinesCodecError::LineTooLong { limit: 3 }));
    assert_eq!(
        err.to_string(),
        "line too long: exceeds the limit of 3 bytes"
    );
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("xyz"));
}

#[test]
fn partial_line_over_the_limit_errors_early_then_is_discarded() {
    let mut codec = LinesCodec::with_max_length(4);
    let mut buf = BytesMut::from("abcd\r");
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        None,
        "may still end in \\r\\n"
    );
    buf.extend_from_slice(b"f");
    assert!(matches!(
        codec.decode(&mut buf),
        Err(LinesCodecError::LineTooLong { limit: 4 })
    ));
    assert!(buf.is_empty(), "the partial line is dropped at once");
    assert!(codec.in_frame(&buf), "still in the over-long line");
    buf.extend_from_slice(b"still the same line");
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
    assert!(codec.in_frame(&buf));
    buf.extend_from_slice(b" ends\nok\n");
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("ok"));
    assert!(!codec.in_frame(&buf), "between lines");
    // One byte over that is not a `\r`: the error comes at once.
    let mut buf = BytesMut::from("abcde");
    assert!(matches!(
        codec.decode(&mut buf),
        Err(LinesCodecError::LineTooLong { limit: 4 })
    ));
}

#[test]
fn over_long_line_byte_by_byte_keeps_memory_bounded() {
    const MAX: usize = 100;
    let mut codec = LinesCodec::with_max_length(MAX);
    let mut buf = BytesMut::new();
    let mut errors = 0;
    for _ in 0..10_000 {
        buf.extend_from_slice(b"z");
        assert!(buf.len() <= MAX + 2, "buffer grew to {}", buf.len());
        match codec.decode(&mut buf) {
            Ok(None) => {}
            Ok(Some(line)) => panic!("unexpected line of {} bytes", line.len()),
            Err(LinesCodecError::LineTooLong { .. }) => errors += 1,
            Err(err) => panic!("unexpected error {err}"),
        }
    }
    assert_eq!(errors, 1, "one error per over-long line");
    buf.extend_from_slice(b"\nfine\n");
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("fine"));
}

#[test]
fn invalid_utf8_is_an_error_and_the_next_line_decodes() {
    let mut codec = LinesCodec::new();
    let mut buf = BytesMut::from(&b"ok\n\xc3\x28\nnext\n"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("ok"));
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(err, LinesCodecError::InvalidUtf8(_)));
    assert!(err.to_string().starts_with("line is not valid UTF-8"));
    assert!(err.source().is_some());
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("next"));
}

#[test]
fn final_unterminated_line_is_yielded_at_eof() {
    let mut codec = LinesCodec::new();
    let mut buf = BytesMut::from("one\ntwo\r");
    assert_eq!(codec.decode_eof(&mut buf).unwrap().as_deref(), Some("one"));
    assert_eq!(codec.decode_eof(&mut buf).unwrap().as_deref(), Some("two"));
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn a_lone_carriage_return_at_eof_is_not_a_line() {
    for mut codec in [LinesCodec::new(), LinesCodec::with_max_length(1)] {
        let mut buf = BytesMut::from("a\r\n\r");
        assert_eq!(codec.decode_eof(&mut buf).unwrap().as_deref(), Some("a"));
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }
    // `\r` before other bytes is still part of the last line.
    let mut codec = LinesCodec::new();
    let mut buf = BytesMut::from("\rx");
    assert_eq!(codec.decode_eof(&mut buf).unwrap().as_deref(), Some("\rx"));
}

#[test]
fn final_line_is_checked_at_eof() {
    let mut codec = LinesCodec::with_max_length(3);
    let mut long = BytesMut::from("abcd");
    assert!(matches!(
        codec.decode_eof(&mut long),
        Err(LinesCodecError::LineTooLong { .. })
    ));
    let mut codec = LinesCodec::with_max_length(3);
    let mut bad = BytesMut::from(&b"\xff"[..]);
    assert!(matches!(
        codec.decode_eof(&mut bad),
        Err(LinesCodecError::InvalidUtf8(_))
    ));
}

#[test]
fn eof_while_discarding_yields_nothing_more() {
    let mut codec = LinesCodec::with_max_length(2);
    let mut buf = BytesMut::from("abcdef");
    assert!(codec.decode(&mut buf).is_err());
    buf.extend_from_slice(b"gh");
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn encode_appends_a_newline_for_str_and_string() {
    let mut codec = LinesCodec::new();
    let mut buf = BytesMut::new();
    codec.encode("a", &mut buf).unwrap();
    codec.encode(String::from("b"), &mut buf).unwrap();
    codec.encode(&String::from(""), &mut buf).unwrap();
    assert_eq!(&buf[..], b"a\nb\n\n");
}

#[test]
fn encode_rejects_embedded_newlines() {
    let mut codec = LinesCodec::new();
    let mut buf = BytesMut::from("kept\n");
    let err = codec.encode("a\nb", &mut buf).unwrap_err();
    assert!(matches!(err, LinesCodecError::EmbeddedNewline));
    assert_eq!(&buf[..], b"kept\n");
}

/// The encoder's newline check has a separate path per length class; try
/// every length up to past the longest inline class, with the newline at
/// every position, next to bytes that differ from `\n` by one bit or that
/// have the high bit set (the cases a word-at-a-time test could confuse).
#[test]
fn encode_finds_a_newline_at_any_position_of_any_length() {
    let mut codec = LinesCodec::new();
    for fill in ["a", "\u{b}", "\u{8}", "\u{e}", "\u{9}", "é", "\u{7f}"] {
        for len in 0..=80 {
            // `fill` may be two bytes long; cut to `len` bytes on a char boundary.
            let text: String = fill.repeat(len);
            let mut end = len.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let clean = &text[..end];
            let mut buf = BytesMut::from("kept");
            codec.encode(clean, &mut buf).unwrap();
            assert_eq!(&buf[4..], format!("{clean}\n").as_bytes());
            for at in 0..=clean.len() {
                if !clean.is_char_boundary(at) {
                    continue;
                }
                let bad = format!("{}\n{}", &clean[..at], &clean[at..]);
                let mut buf = BytesMut::from("kept");
                let err = codec.encode(bad.as_str(), &mut buf).unwrap_err();
                assert!(
                    matches!(err, LinesCodecError::EmbeddedNewline),
                    "len {} newline at {at}",
                    bad.len()
                );
                assert_eq!(&buf[..], b"kept", "a rejected line writes nothing");
            }
        }
    }
}

/// The decoder searches the first 16 bytes inline and the rest with
/// `memchr`; lines of every length around that boundary, followed by more
/// bytes (some with the high bit set) must split exactly at their newline.
#[test]
fn decode_splits_at_the_first_newline_for_every_line_length() {
    for len in 0..=40 {
        for tail in ["", "x", "\u{b}\u{8a}\n", "another line\n"] {
            let line = "\u{b}a\u{8}".chars().cycle().take(len).collect::<String>();
            let mut codec = LinesCodec::new();
            let mut buf = BytesMut::from(format!("{line}\n{tail}").as_str());
            assert_eq!(
                codec.decode(&mut buf).unwrap().as_deref(),
                Some(line.as_str())
            );
            assert_eq!(&buf[..], tail.as_bytes(), "line of {len} bytes");
        }
    }
}

#[test]
fn io_errors_convert_and_display() {
    let err = LinesCodecError::from(std::io::Error::other("boom"));
    assert!(matches!(err, LinesCodecError::Io(_)));
    // The cause is the source, not part of the message.
    assert_eq!(err.to_string(), "I/O error");
    let source = std::error::Error::source(&err).expect("the io::Error");
    assert_eq!(source.to_string(), "boom");
}

#[test]
fn encode_rejects_a_line_ending_in_a_carriage_return() {
    // "ab\r" would go out as "ab\r\n" and come back as "ab".
    let mut codec = LinesCodec::new();
    let mut buf = BytesMut::new();
    for line in ["ab\r", "\r", "0123456789abcdef0123\r"] {
        let err = codec.encode(line, &mut buf).unwrap_err();
        assert!(matches!(err, LinesCodecError::EmbeddedNewline), "{line:?}");
        assert!(buf.is_empty(), "nothing written for {line:?}");
    }
    // A `\r` inside a line is data, and round-trips.
    codec.encode("a\rb", &mut buf).unwrap();
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("a\rb"));
}

/// 0x80 has no bit set but the high one, and NUL none at all: a line made
/// of only these is not ASCII, though a word-at-a-time check that mixes up
/// its masks could take it for ASCII. It is an error, and the next line
/// decodes, for both item types.
#[test]
fn a_line_of_only_0x80_and_nul_bytes_is_invalid_utf8() {
    let lines: [&[u8]; 6] = [
        b"\x80",
        b"\x80\x80",
        b"\0\x80",
        b"\x80\0\x80\x80\x80\x80\x80\x80\x80\x80",
        &[0x80; 15],
        // A whole 16-byte word of them.
        &[0x80; 16],
    ];
    for line in lines {
        let mut wire = line.to_vec();
        wire.extend_from_slice(b"\nok\n");
        let mut codec = LinesCodec::new();
        let mut buf = BytesMut::from(&wire[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(err, LinesCodecError::InvalidUtf8(_)), "{line:?}");
        assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("ok"));
        let mut shared = LinesCodec::shared();
        let mut buf = BytesMut::from(&wire[..]);
        let err = shared.decode(&mut buf).unwrap_err();
        assert!(matches!(err, LinesCodecError::InvalidUtf8(_)), "{line:?}");
        assert_eq!(shared.decode(&mut buf).unwrap().unwrap(), "ok");
    }
}
