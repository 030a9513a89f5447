//! LinesCodec (both the `String` and the `Line` form) against a plain
//! reference implementation of its documented behaviour, call by call:
//! the same result (line, `None`, or error kind) and the same buffer
//! contents after every `decode` and `decode_eof`, for arbitrary bytes cut
//! into up to 8 reads at arbitrary points, with a limit picked by the input.
//! Also: the lines and errors (not the `None`s) do not depend on how the
//! input was cut, and match a one-output-per-line model.
#![no_main]

#[path = "common/chunks.rs"]
mod chunks;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strata_codec::{Decoder, Line, LinesCodec, LinesCodecError};

#[derive(Debug, PartialEq)]
enum Out {
    Line(Vec<u8>),
    None,
    TooLong,
    Utf8,
}

/// The documented behaviour, written as simply as possible.
struct Reference {
    max: usize,
    discarding: bool,
}

impl Reference {
    fn take(&mut self, buf: &mut Vec<u8>, end: usize, consumed: usize) -> Out {
        let mut line: Vec<u8> = buf[..end].to_vec();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        buf.drain(..consumed);
        if line.len() > self.max {
            return Out::TooLong;
        }
        match std::str::from_utf8(&line) {
            Ok(_) => Out::Line(line),
            Err(_) => Out::Utf8,
        }
    }

    fn decode(&mut self, buf: &mut Vec<u8>) -> Out {
        if self.discarding {
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    buf.drain(..=i);
                    self.discarding = false;
                }
                None => {
                    buf.clear();
                    return Out::None;
                }
            }
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => self.take(buf, i, i + 1),
            None if buf.len() > self.max
                && (buf.len() - self.max > 1 || buf[self.max] != b'\r') =>
            {
                buf.clear();
                self.discarding = true;
                Out::TooLong
            }
            None => Out::None,
        }
    }

    fn decode_eof(&mut self, buf: &mut Vec<u8>) -> Out {
        match self.decode(buf) {
            Out::None => {}
            other => return other,
        }
        if self.discarding {
            buf.clear();
            self.discarding = false;
            return Out::None;
        }
        // A lone `\r` is an unfinished line ending, not a line.
        if buf.is_empty() || buf[..] == b"\r"[..] {
            buf.clear();
            return Out::None;
        }
        let n = buf.len();
        self.take(buf, n, n)
    }
}

fn out<T: AsRef<[u8]>>(r: Result<Option<T>, LinesCodecError>) -> Out {
    match r {
        Ok(Some(l)) => Out::Line(l.as_ref().to_vec()),
        Ok(None) => Out::None,
        Err(LinesCodecError::LineTooLong { .. }) => Out::TooLong,
        Err(LinesCodecError::InvalidUtf8(_)) => Out::Utf8,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

fn string_out(r: Result<Option<String>, LinesCodecError>) -> Out {
    out(r.map(|o| o.map(String::into_bytes)))
}

fn line_out(r: Result<Option<Line>, LinesCodecError>) -> Out {
    if let Ok(Some(l)) = &r {
        // The invariant every accessor relies on.
        assert_eq!(l.as_str().as_bytes(), l.as_bytes());
    }
    out(r)
}

/// Runs all three on the chunks; returns the reference's outputs.
fn run(max: usize, chunks: &[&[u8]]) -> Vec<Out> {
    let mut reference = Reference {
        max,
        discarding: false,
    };
    let mut string = LinesCodec::with_max_length(max);
    let mut shared = LinesCodec::shared().max_length(max);
    let mut rbuf: Vec<u8> = Vec::new();
    let mut sbuf = BytesMut::new();
    let mut lbuf = BytesMut::new();
    let mut outs = Vec::new();
    for chunk in chunks {
        rbuf.extend_from_slice(chunk);
        sbuf.extend_from_slice(chunk);
        lbuf.extend_from_slice(chunk);
        loop {
            let r = reference.decode(&mut rbuf);
            let s = string_out(string.decode(&mut sbuf));
            let l = line_out(shared.decode(&mut lbuf));
            assert_eq!(
                s, r,
                "String decode vs reference (max {max}, chunks {chunks:?})"
            );
            assert_eq!(
                l, r,
                "Line decode vs reference (max {max}, chunks {chunks:?})"
            );
            assert_eq!(&sbuf[..], &rbuf[..], "String buffer after decode");
            assert_eq!(&lbuf[..], &rbuf[..], "Line buffer after decode");
            let done = r == Out::None;
            outs.push(r);
            if done {
                break;
            }
        }
    }
    for _ in 0..4 {
        let r = reference.decode_eof(&mut rbuf);
        let s = string_out(string.decode_eof(&mut sbuf));
        let l = line_out(shared.decode_eof(&mut lbuf));
        assert_eq!(
            s, r,
            "String decode_eof vs reference (max {max}, chunks {chunks:?})"
        );
        assert_eq!(
            l, r,
            "Line decode_eof vs reference (max {max}, chunks {chunks:?})"
        );
        assert_eq!(&sbuf[..], &rbuf[..]);
        assert_eq!(&lbuf[..], &rbuf[..]);
        let done = r == Out::None;
        outs.push(r);
        if done {
            break;
        }
    }
    outs
}

fuzz_target!(|data: &[u8]| {
    let [m, ncuts, rest @ ..] = data else {
        return;
    };
    let ncuts = usize::from(ncuts % 8).min(rest.len());
    let (cuts, input) = rest.split_at(ncuts);
    // Limits around the 8/16/32-byte word sizes, and the default.
    let max = match m % 40 {
        39 => strata_codec::DEFAULT_MAX_LINE_LENGTH,
        38 => usize::MAX,
        x => usize::from(x),
    };
    let chunks = chunks::cut(input, cuts);
    let cut_outs = run(max, &chunks);
    let whole_outs = run(max, &[input]);
    // Cutting changes nothing but the `None`s.
    let lines = |o: &[Out]| {
        o.iter()
            .filter(|x| **x != Out::None)
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(lines(&cut_outs), lines(&whole_outs));
    // And both match the cut-independent model: one output per line.
    assert_eq!(lines(&cut_outs), lines(&model(input, max)));
});

/// One output per `\n`-separated line (the last may lack its newline, but
/// a lone `\r` there is no line), a trailing `\r` stripped, over-long
/// lines `TooLong`.
fn model(input: &[u8], max: usize) -> Vec<Out> {
    let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let last = parts.pop().unwrap_or_default();
    if !last.is_empty() && last != b"\r" {
        parts.push(last);
    }
    parts
        .into_iter()
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > max {
                Out::TooLong
            } else if std::str::from_utf8(line).is_ok() {
                Out::Line(line.to_vec())
            } else {
                Out::Utf8
            }
        })
        .collect()
}
