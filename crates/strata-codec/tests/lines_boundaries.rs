//! Word-boundary checks of LinesCodec (String and Line forms) against a
//! plain reference: lines of length 0..=40 with one special byte sequence
//! at every position, every limit around the length, and the input cut at
//! every boundary that matters (around the special bytes, the line ending,
//! and the 8- and 16-byte word edges).
use bytes::BytesMut;
use strata_codec::{Decoder, LinesCodec, LinesCodecError};

#[derive(Debug, PartialEq, Clone)]
enum Out {
    Line(Vec<u8>),
    None,
    TooLong,
    Utf8,
}

fn reference(max: usize, chunks: &[&[u8]]) -> Vec<Out> {
    let mut buf: Vec<u8> = Vec::new();
    let mut discarding = false;
    let mut outs = Vec::new();
    let take = |buf: &mut Vec<u8>, end: usize, consumed: usize| {
        let mut line = buf[..end].to_vec();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        buf.drain(..consumed);
        if line.len() > max {
            Out::TooLong
        } else if std::str::from_utf8(&line).is_ok() {
            Out::Line(line)
        } else {
            Out::Utf8
        }
    };
    let decode = |buf: &mut Vec<u8>, discarding: &mut bool| -> Out {
        if *discarding {
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    buf.drain(..=i);
                    *discarding = false;
                }
                None => {
                    buf.clear();
                    return Out::None;
                }
            }
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => take(buf, i, i + 1),
            None if buf.len() > max && (buf.len() - max > 1 || buf[max] != b'\r') => {
                buf.clear();
                *discarding = true;
                Out::TooLong
            }
            None => Out::None,
        }
    };
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            let o = decode(&mut buf, &mut discarding);
            let d = o == Out::None;
            outs.push(o);
            if d {
                break;
            }
        }
    }
    loop {
        let mut o = decode(&mut buf, &mut discarding);
        if o == Out::None {
            if discarding {
                buf.clear();
                discarding = false;
            } else if buf[..] == b"\r"[..] {
                // An unfinished line ending, not a line.
                buf.clear();
            } else if !buf.is_empty() {
                let n = buf.len();
                o = take(&mut buf, n, n);
            }
        }
        let d = o == Out::None;
        outs.push(o);
        if d {
            break;
        }
    }
    outs
}

fn conv<T: AsRef<[u8]>>(r: Result<Option<T>, LinesCodecError>) -> Out {
    match r {
        Ok(Some(l)) => Out::Line(l.as_ref().to_vec()),
        Ok(None) => Out::None,
        Err(LinesCodecError::LineTooLong { .. }) => Out::TooLong,
        Err(LinesCodecError::InvalidUtf8(_)) => Out::Utf8,
        Err(e) => panic!("{e:?}"),
    }
}

fn actual<D: Decoder<Error = LinesCodecError>>(mut d: D, chunks: &[&[u8]]) -> Vec<Out>
where
    D::Item: AsRef<[u8]>,
{
    let mut buf = BytesMut::new();
    let mut outs = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            let o = conv(d.decode(&mut buf));
            let x = o == Out::None;
            outs.push(o);
            if x {
                break;
            }
        }
    }
    loop {
        let o = conv(d.decode_eof(&mut buf));
        let x = o == Out::None;
        outs.push(o);
        if x {
            break;
        }
    }
    outs
}

/// Every case with a line of `lens` bytes before the special sequence.
fn check_lengths(lens: std::ops::RangeInclusive<usize>) {
    let specials: &[&[u8]] = &[
        b"\r",
        b"\0",
        b"\xc3\xa9",
        b"\xe2\x82\xac",
        b"\xff",
        b"\x0b",
        b"\x8a",
        b"\r\r",
        b"\n",
    ];
    // What follows the line: nothing, a partial line, an empty line, a
    // partial UTF-8 sequence, a long line.
    let trailers: &[&[u8]] = &[b"", b"x", b"\r\n", b"\xc3", b"0123456789abcdefghij\n"];
    let mut cases = 0u64;
    for len in lens {
        for sp in specials {
            for pos in 0..=len {
                let mut line = vec![b'a'; len];
                line.splice(pos..pos, sp.iter().copied());
                for ending in [&b"\n"[..], b"\r\n", b""] {
                    for tr in trailers {
                        let mut input = line.clone();
                        input.extend_from_slice(ending);
                        input.extend_from_slice(tr);
                        let l = line.len();
                        let mut cuts = vec![0, pos, pos + sp.len(), l, input.len()];
                        cuts.extend([pos + 1, l + 1, 7, 8, 9, 15, 16, 17]);
                        cuts.retain(|&c| c <= input.len());
                        cuts.sort_unstable();
                        cuts.dedup();
                        for max in [l.saturating_sub(2), l.saturating_sub(1), l, l + 1, 8192] {
                            for &cut in &cuts {
                                let chunks = [&input[..cut], &input[cut..]];
                                let want = reference(max, &chunks);
                                let s = actual(LinesCodec::with_max_length(max), &chunks);
                                let sh = actual(LinesCodec::shared().max_length(max), &chunks);
                                assert_eq!(
                                    s, want,
                                    "String: max {max}, input {input:?}, cut {cut}"
                                );
                                assert_eq!(sh, want, "Line: max {max}, input {input:?}, cut {cut}");
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 10_000, "{cases} cases");
}

// Two halves, so the test harness runs them in parallel.
#[test]
fn word_boundaries_against_reference_short_lines() {
    check_lengths(0..=31);
}

#[test]
fn word_boundaries_against_reference_long_lines() {
    check_lengths(32..=40);
}
