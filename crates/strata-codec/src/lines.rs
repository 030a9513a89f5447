//! [`LinesCodec`]: newline-terminated UTF-8 text lines.

use std::marker::PhantomData;
use std::{error, fmt, io, str};

use bytes::{Buf, BufMut, BytesMut};

use crate::{Decoder, Encoder, Line, word};

/// The default maximum line length of [`LinesCodec`]: 8 KiB.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 8 * 1024;

/// A codec for lines of UTF-8 text, each ended by `\n` or `\r\n`.
///
/// Decoding yields each line without its line ending: as a `String` from
/// [`LinesCodec::new`], or as a [`Line`] that shares the read buffer from
/// [`LinesCodec::shared`] (no allocation, no copy). Encoding takes anything
/// that is [`AsRef<str>`] (`&str`, `String`, `Line`, ...) and appends `\n`.
/// It refuses (with [`EmbeddedNewline`](LinesCodecError::EmbeddedNewline))
/// a line that contains `\n` or ends in `\r`, which the peer could not read
/// back as sent. Only one `\r` is taken off as part of a line ending, so
/// `x\r\r\n` decodes to `"x\r"`: a server that echoes requests should
/// expect that refusal for such input (it closes that connection only).
///
/// ```text
///   on the wire:  h i \r \n  t h e r e \n  ! \n
///   decoded:      "hi"       "there"       "!"
/// ```
///
/// # Limits
///
/// A line may hold at most [`max_length`](Self::max_length) bytes, not
/// counting its line ending: [`DEFAULT_MAX_LINE_LENGTH`] (8 KiB) unless set
/// with [`with_max_length`](Self::with_max_length). A longer line is a
/// [`LineTooLong`](LinesCodecError::LineTooLong) error as soon as more
/// than that many bytes are buffered without a newline, unless the one
/// byte over is a `\r` (it may begin the line ending; one more byte
/// decides), so a peer that never sends one cannot make the buffer grow
/// past the limit (plus one read). Use `usize::MAX` for no limit, only
/// with trusted input.
///
/// # Errors and what follows them
///
/// - [`LineTooLong`](LinesCodecError::LineTooLong): the codec drops what it
///   has buffered of the line, and if called again, drops the rest of that
///   line up to and including its newline, then goes on with the next one.
/// - [`InvalidUtf8`](LinesCodecError::InvalidUtf8): the bad line is dropped
///   with its newline; the next call decodes the next line.
///
/// A [`Framed`](crate::Framed) ends its stream at the first error, which is
/// usually right: close the connection. A caller driving the codec by hand
/// can go on after either error.
///
/// # End of stream
///
/// A last line without a newline is still a line: `decode_eof` yields it
/// (with a trailing `\r` removed), since tools like `printf` and many
/// clients do not end their last line. It is checked like any other line.
/// A lone `\r` left at the end is not a line (it would read as an empty
/// one, which some protocols take for "end of headers"). A line that was
/// already reported too long yields nothing more.
///
/// # Cost
///
/// The search for a newline resumes where the last call stopped, so a long
/// line that arrives in small pieces is scanned once in total. Each
/// `String` line costs an allocation and a copy; a [`Line`] costs neither.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use strata_codec::{Decoder, LinesCodec, LinesCodecError};
///
/// let mut codec = LinesCodec::with_max_length(4);
/// let mut buf = BytesMut::from("ok\r\ntoo long\nnext\n");
/// assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("ok"));
/// let err = codec.decode(&mut buf).unwrap_err();
/// assert!(matches!(err, LinesCodecError::LineTooLong { limit: 4 }));
/// assert_eq!(err.to_string(), "line too long: exceeds the limit of 4 bytes");
/// assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("next"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinesCodec<L = String> {
    /// Bytes at the front of the buffer already known to hold no `\n`.
    scanned: usize,
    max_length: usize,
    /// Dropping the rest of a line that was too long.
    discarding: bool,
    item: PhantomData<fn() -> L>,
}

impl LinesCodec {
    /// A codec that decodes `String`s, with the default maximum line
    /// length of 8 KiB.
    pub fn new() -> Self {
        Self::with_max_length(DEFAULT_MAX_LINE_LENGTH)
    }

    /// A codec that decodes `String`s whose lines may hold at most
    /// `max_length` bytes, not counting the line ending.
    pub fn with_max_length(max_length: usize) -> Self {
        Self::make(max_length)
    }
}

impl LinesCodec<Line> {
    /// A codec that decodes [`Line`]s, which share the read buffer instead
    /// of copying each line into a `String`; default maximum line length
    /// of 8 KiB (change it with [`max_length`](Self::max_length)).
    pub fn shared() -> Self {
        Self::make(DEFAULT_MAX_LINE_LENGTH)
    }
}

impl<L: FromLine> LinesCodec<L> {
    fn make(max_length: usize) -> Self {
        LinesCodec {
            scanned: 0,
            max_length,
            discarding: false,
            item: PhantomData,
        }
    }

    /// Sets the maximum line length, builder style.
    #[must_use]
    pub fn max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    /// The maximum line length, not counting the line ending.
    pub fn get_max_length(&self) -> usize {
        self.max_length
    }

    fn too_long(&self) -> LinesCodecError {
        LinesCodecError::LineTooLong {
            limit: self.max_length,
        }
    }

    /// Checks and copies out the line in `buf[..end]`, dropping `consumed`
    /// bytes (the line and its newline, if any) from `buf` either way.
    #[inline]
    fn take_line(
        &mut self,
        buf: &mut BytesMut,
        end: usize,
        consumed: usize,
    ) -> Result<L, LinesCodecError> {
        let mut len = end;
        if len > 0 && buf[len - 1] == b'\r' {
            len -= 1;
        }
        self.scanned = 0;
        if len > self.max_length {
            buf.advance(consumed);
            return Err(self.too_long());
        }
        L::take(buf, len, consumed).map_err(LinesCodecError::InvalidUtf8)
    }
}

impl Default for LinesCodec {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`LinesCodec`] can decode a line into: `String` (copied) or
/// [`Line`] (shared with the read buffer). Sealed.
pub trait FromLine: Sized + sealed::Sealed {
    /// Takes the line `buf[..len]` out of `buf`, removing exactly
    /// `consumed` bytes from its front whatever the result.
    #[doc(hidden)]
    fn take(buf: &mut BytesMut, len: usize, consumed: usize) -> Result<Self, str::Utf8Error>;

    /// The line held in the low `len` bytes of `word`, all ASCII (the
    /// other bytes are to be ignored).
    #[doc(hidden)]
    fn from_ascii_word(word: u128, len: usize) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for String {}
    impl Sealed for crate::Line {}
}

impl FromLine for String {
    #[inline]
    fn from_ascii_word(word: u128, len: usize) -> String {
        let bytes = word.to_le_bytes();
        debug_assert!(bytes[..len].is_ascii());
        String::from(str::from_utf8(&bytes[..len]).expect("ASCII is UTF-8"))
    }

    #[inline]
    fn take(buf: &mut BytesMut, len: usize, consumed: usize) -> Result<String, str::Utf8Error> {
        let result = str::from_utf8(&buf[..len]).map(String::from);
        buf.advance(consumed);
        result
    }
}

impl FromLine for Line {
    #[inline]
    fn from_ascii_word(word: u128, len: usize) -> Line {
        Line::from_ascii_word(word, len)
    }

    #[inline]
    fn take(buf: &mut BytesMut, len: usize, consumed: usize) -> Result<Line, str::Utf8Error> {
        Line::take(buf, len, consumed)
    }
}

impl<L: FromLine> Decoder for LinesCodec<L> {
    type Item = L;
    type Error = LinesCodecError;

    // Always inlined: the fast path is a few dozen instructions, and in a
    // caller's decode loop (the pipelined dispatcher's) the call itself
    // cost a tenth of them (callgrind, BENCHMARKS.md, eighth session).
    #[inline(always)]
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<L>, LinesCodecError> {
        if buf.is_empty() {
            // Nothing to decode (and nothing to discard), in any state.
            self.scanned = 0;
            return Ok(None);
        }
        // Fast path: a short ASCII line at the front of the buffer, found,
        // checked and copied in one 16-byte word.
        if !self.discarding && self.scanned == 0 {
            let w = if buf.len() >= word::WORD {
                word::load16(buf)
            } else {
                word::load(buf)
            };
            if let Some((newline, before)) = word::find_with_prefix(w, b'\n')
                && w & before & word::HIGH_BITS == 0
            {
                let len = if newline > 0 && buf[newline - 1] == b'\r' {
                    newline - 1
                } else {
                    newline
                };
                if len <= self.max_length {
                    if newline + 1 == buf.len() {
                        // The whole buffer (always so with one request
                        // at a time): cheaper than moving its start.
                        buf.clear();
                    } else {
                        buf.advance(newline + 1);
                    }
                    return Ok(Some(L::from_ascii_word(w, len)));
                }
            }
        }
        self.decode_slow(buf)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<L>, LinesCodecError> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if self.discarding {
            buf.clear();
            self.discarding = false;
            return Ok(None);
        }
        // A lone `\r` is the start of a line ending the peer never
        // finished, not an empty line (as in tokio-util).
        if buf.is_empty() || buf[..] == b"\r"[..] {
            buf.clear();
            self.scanned = 0;
            return Ok(None);
        }
        let len = buf.len();
        self.take_line(buf, len, len).map(Some)
    }

    /// Bytes buffered, or the rest of an over-long line still to be
    /// discarded (its bytes so far are dropped as they come).
    #[inline]
    fn in_frame(&self, buf: &BytesMut) -> bool {
        self.discarding || !buf.is_empty()
    }
}

impl<L: FromLine> LinesCodec<L> {
    /// Everything but the fast path of `decode`: long or non-ASCII lines,
    /// partial lines, over-long input and recovery after it.
    #[inline(never)]
    fn decode_slow(&mut self, buf: &mut BytesMut) -> Result<Option<L>, LinesCodecError> {
        if self.discarding {
            match memchr::memchr(b'\n', buf) {
                Some(newline) => {
                    buf.advance(newline + 1);
                    self.discarding = false;
                    self.scanned = 0;
                }
                None => {
                    buf.clear();
                    return Ok(None);
                }
            }
        }
        let start = self.scanned.min(buf.len());
        match find_newline(&buf[start..]) {
            Some(offset) => {
                let newline = start + offset;
                self.take_line(buf, newline, newline + 1).map(Some)
            }
            // Over the limit, unless by one `\r` that may begin a line
            // ending.
            None if over_limit(buf, self.max_length) => {
                buf.clear();
                self.scanned = 0;
                self.discarding = true;
                Err(self.too_long())
            }
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }
}

/// Whether `buf`, which holds no newline, is already more than a line of
/// `max` bytes: longer than `max`, and not by a single `\r` that may begin
/// the line ending.
fn over_limit(buf: &[u8], max: usize) -> bool {
    buf.len() > max && (buf.len() - max > 1 || buf[max] != b'\r')
}

impl<L, S: AsRef<str>> Encoder<S> for LinesCodec<L> {
    type Error = LinesCodecError;

    // Always inlined, as `decode` above: one short line per response.
    #[inline(always)]
    fn encode(&mut self, line: S, buf: &mut BytesMut) -> Result<(), LinesCodecError> {
        let line = line.as_ref().as_bytes();
        let len = line.len();
        if len >= word::WORD {
            return encode_long(line, buf);
        }
        // A short line and its newline fit one word: check it, then append
        // all 16 bytes, put the newline and cut back to the real length (a
        // fixed-size copy instead of a `memcpy` call).
        let w = word::load(line);
        if word::contains(w, b'\n') || line.last() == Some(&b'\r') {
            return Err(LinesCodecError::EmbeddedNewline);
        }
        let start = buf.len();
        buf.extend_from_slice(&w.to_le_bytes());
        buf[start + len] = b'\n';
        buf.truncate(start + len + 1);
        Ok(())
    }
}

/// `encode` for lines of 16 bytes or more. The embedded-newline check is
/// two (possibly overlapping) word tests up to 32 bytes, `memchr` beyond.
#[inline(never)]
fn encode_long(line: &[u8], buf: &mut BytesMut) -> Result<(), LinesCodecError> {
    let n = line.len();
    let newline = if n <= 2 * word::WORD {
        word::contains(word::load16(line), b'\n')
            || word::contains(word::load16(&line[n - word::WORD..]), b'\n')
    } else {
        memchr::memchr(b'\n', line).is_some()
    };
    if newline || line[n - 1] == b'\r' {
        return Err(LinesCodecError::EmbeddedNewline);
    }
    buf.reserve(n + 1);
    buf.extend_from_slice(line);
    buf.put_u8(b'\n');
    Ok(())
}

/// The position of the first `\n` in `bytes`.
///
/// Decoded lines are often short, so the first 16 bytes are searched as
/// one word before handing the rest to `memchr`.
#[inline]
fn find_newline(bytes: &[u8]) -> Option<usize> {
    if bytes.len() >= word::WORD {
        if let Some(i) = word::find(word::load16(bytes), b'\n') {
            return Some(i);
        }
        return memchr::memchr(b'\n', &bytes[word::WORD..]).map(|i| i + word::WORD);
    }
    // A short request: one word, no call and no loop to mispredict.
    word::find(word::load(bytes), b'\n')
}

/// An error from [`LinesCodec`].
///
/// Its `Display` states what went wrong at this layer; the error it wraps,
/// if any, is its [`source()`](error::Error::source), as the Rust API
/// guidelines ask (a reporter that walks the chain prints each cause once).
///
/// ```
/// use std::error::Error;
/// use std::io;
/// use strata_codec::LinesCodecError;
///
/// let e = LinesCodecError::Io(io::Error::other("boom"));
/// assert_eq!(e.to_string(), "I/O error");
/// assert_eq!(e.source().unwrap().to_string(), "boom");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LinesCodecError {
    /// A line was longer than the codec's maximum line length.
    LineTooLong {
        /// The maximum line length, in bytes.
        limit: usize,
    },
    /// A line was not valid UTF-8.
    InvalidUtf8(str::Utf8Error),
    /// A line to encode contained `\n`, which would have sent two lines,
    /// or ended in `\r`, which the peer would have read as part of the
    /// line ending (`"ab\r"` would arrive as `"ab"`).
    EmbeddedNewline,
    /// Reading or writing the underlying I/O object failed.
    Io(io::Error),
}

impl fmt::Display for LinesCodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinesCodecError::LineTooLong { limit } => {
                write!(f, "line too long: exceeds the limit of {limit} bytes")
            }
            LinesCodecError::InvalidUtf8(_) => f.write_str("line is not valid UTF-8"),
            LinesCodecError::EmbeddedNewline => f.write_str(
                "cannot encode a line that contains a newline or ends in a carriage return",
            ),
            LinesCodecError::Io(_) => f.write_str("I/O error"),
        }
    }
}

impl error::Error for LinesCodecError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            LinesCodecError::InvalidUtf8(err) => Some(err),
            LinesCodecError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for LinesCodecError {
    fn from(err: io::Error) -> Self {
        LinesCodecError::Io(err)
    }
}
