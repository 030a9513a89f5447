//! `LinesCodec::shared` (decoding `Line`s) against `LinesCodec::new`
//! (decoding `String`s): for any input, cut into reads any way, both give
//! the same lines and the same errors.

use bytes::BytesMut;
use proptest::prelude::*;
use strata_codec::{Decoder, Line, LinesCodec, LinesCodecError};

#[derive(Debug, PartialEq)]
enum Out {
    Line(String),
    TooLong,
    BadUtf8,
}

fn classify<L: Into<String>>(r: Result<Option<L>, LinesCodecError>) -> Option<Out> {
    match r {
        Ok(Some(l)) => Some(Out::Line(l.into())),
        Ok(None) => None,
        Err(LinesCodecError::LineTooLong { .. }) => Some(Out::TooLong),
        Err(LinesCodecError::InvalidUtf8(_)) => Some(Out::BadUtf8),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Feeds `input` in pieces cut at `cuts`, decoding after each piece and at
/// EOF, collecting every output.
fn run<C>(mut codec: C, input: &[u8], cuts: &[usize]) -> Vec<Out>
where
    C: Decoder<Error = LinesCodecError>,
    C::Item: Into<String>,
{
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.push(input.len());
    for b in bounds {
        if b < pos {
            continue;
        }
        buf.extend_from_slice(&input[pos..b]);
        pos = b;
        while let Some(o) = classify(codec.decode(&mut buf)) {
            out.push(o);
        }
    }
    while let Some(o) = classify(codec.decode_eof(&mut buf)) {
        out.push(o);
        if buf.is_empty() {
            break;
        }
    }
    out
}

fn lines_input() -> impl Strategy<Value = Vec<u8>> {
    // Text-like lines, \n or \r\n endings, some non-ASCII, some invalid
    // UTF-8, some over the limit used below.
    prop::collection::vec(
        prop_oneof![
            "[a-z ]{0,12}".prop_map(|s| s.into_bytes()),
            "[äöü€a-z]{0,6}".prop_map(|s| s.into_bytes()),
            Just(vec![0xff, 0xfe, b'x']),
            "[a-z]{20,40}".prop_map(|s| s.into_bytes()),
        ]
        .prop_flat_map(|l| {
            prop_oneof![Just(b"\n".to_vec()), Just(b"\r\n".to_vec())].prop_map(move |end| {
                let mut line = l.clone();
                line.extend_from_slice(&end);
                line
            })
        }),
        0..30,
    )
    .prop_map(|ls| ls.concat())
}

/// What any correct line decoder must produce for `input`, however it is
/// cut: one output per line (the last one may lack its newline), a
/// trailing `\r` stripped, lines over `max` bytes too long, the rest text
/// or invalid UTF-8.
fn model(input: &[u8], max: usize) -> Vec<Out> {
    let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let last = parts.pop().unwrap_or_default();
    if !last.is_empty() {
        parts.push(last);
    }
    parts
        .into_iter()
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > max {
                Out::TooLong
            } else {
                match std::str::from_utf8(line) {
                    Ok(text) => Out::Line(text.to_string()),
                    Err(_) => Out::BadUtf8,
                }
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn both_decoders_match_the_model(
        input in lines_input(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        max in 0usize..24,
    ) {
        let expected = model(&input, max);
        prop_assert_eq!(&run(LinesCodec::with_max_length(max), &input, &cuts), &expected);
        prop_assert_eq!(&run(LinesCodec::shared().max_length(max), &input, &cuts), &expected);
    }

    #[test]
    fn shared_and_string_lines_agree(input in lines_input(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let a = run(LinesCodec::with_max_length(16), &input, &cuts);
        let b = run(LinesCodec::shared().max_length(16), &input, &cuts);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn shared_and_string_agree_on_arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..200), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let a = run(LinesCodec::with_max_length(8), &input, &cuts);
        let b = run(LinesCodec::shared().max_length(8), &input, &cuts);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn a_line_shares_the_read_buffer_and_compares_as_text() {
    let mut codec = LinesCodec::shared();
    let long = "a line longer than thirty bytes, so it is shared";
    let mut buf = BytesMut::from(format!("{long}\nhello\r\nhi\n").as_str());
    let base = buf.as_ptr() as usize;
    let shared: Line = codec.decode(&mut buf).unwrap().unwrap();
    // No copy: a long line points into the buffer it was read into.
    assert_eq!(shared.as_bytes().as_ptr() as usize, base);
    assert_eq!(shared, long);
    let hello: Line = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(hello, "hello");
    assert!("hello" == hello);
    assert_eq!(hello.len(), 5);
    let hi = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(hi.as_str(), "hi");
    assert_eq!(format!("{hi} {hi:?}"), "hi \"hi\"");
    assert!(codec.decode(&mut buf).unwrap().is_none());
    // Short and long lines with the same text are equal and hash alike.
    let mut set = std::collections::HashSet::new();
    set.insert(Line::from(String::from("hello")));
    assert!(set.contains(&hello));
}

#[test]
fn a_line_converts_compares_and_hashes_as_its_text() {
    use std::collections::{BTreeSet, HashSet};

    let short = Line::from("b");
    let long = Line::from("a line longer than sixteen bytes, stored shared");
    let empty = Line::default();
    // Checked construction from bytes.
    let from_bytes = Line::from_utf8(bytes::Bytes::from_static(b"b")).unwrap();
    assert_eq!(from_bytes, short);
    assert!(Line::from_utf8(bytes::Bytes::from_static(b"\xff")).is_err());
    // Emptiness, bytes and `AsRef<str>`, short and long.
    assert!(empty.is_empty());
    assert!(!short.is_empty() && !long.is_empty());
    assert_eq!(short.clone().into_bytes(), &b"b"[..]);
    assert_eq!(long.clone().into_bytes(), long.as_bytes());
    assert_eq!(AsRef::<str>::as_ref(&short), "b");
    assert_eq!(AsRef::<str>::as_ref(&long), long.as_str());
    assert_eq!(AsRef::<[u8]>::as_ref(&short), b"b");
    assert_eq!(AsRef::<[u8]>::as_ref(&long), long.as_str().as_bytes());
    // Equality with text, both ways round.
    assert!(short == *"b" && short != *"c");
    assert!(short == "b" && short != "c");
    let (b, c) = (String::from("b"), String::from("c"));
    assert!(short == b && short != c);
    assert!(*"b" == short && *"c" != short);
    assert!("b" == short && "c" != short);
    // Order: the text's.
    assert_eq!(long.partial_cmp(&short), Some(std::cmp::Ordering::Less));
    assert!(empty < long && long < short);
    // Sets keyed by `Line`, searched with `&str` (hash, order, `Borrow`).
    let hashed: HashSet<Line> = [short.clone(), long.clone()].into_iter().collect();
    assert!(hashed.contains("b"));
    assert!(hashed.contains(long.as_str()));
    assert!(!hashed.contains("c"));
    let ordered: BTreeSet<Line> = [short.clone(), long.clone()].into_iter().collect();
    assert!(ordered.contains("b"));
    assert!(!ordered.contains("a"));
}
