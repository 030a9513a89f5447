//! [`Line`]: a decoded line of UTF-8 text that shares the read buffer.

use std::fmt;
use std::str;

use bytes::{Bytes, BytesMut};

/// A line of UTF-8 text, without its line ending, that shares the read
/// buffer it was decoded from instead of copying it.
///
/// Decoding a `Line` costs a reference-count increment and a UTF-8 check;
/// decoding a `String` costs an allocation and a copy on top. Use
/// [`LinesCodec::shared`](crate::LinesCodec::shared) to get `Line`s.
///
/// A `Line` keeps its read buffer's allocation alive while it lives, so
/// hold on to lines only briefly, or convert them with
/// [`String::from`] when they must outlive the request.
///
/// Comparing with `==` against `str`, `&str` or `String` compares bytes and
/// is as cheap as it gets. [`as_str`](Self::as_str) re-checks the UTF-8
/// (the crate uses no `unsafe`), which costs time linear in the length.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use strata_codec::{Decoder, Line, LinesCodec};
///
/// let mut codec = LinesCodec::shared();
/// let mut buf = BytesMut::from("hello\r\nwörld\n");
/// let first: Line = codec.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(first, "hello");
/// let second = codec.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(second.as_str(), "wörld");
/// assert_eq!(String::from(second), "wörld");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Line {
    // INVARIANT: valid UTF-8 (checked by every constructor).
    bytes: Bytes,
}

impl Line {
    /// Checks `bytes` and wraps them.
    ///
    /// # Errors
    ///
    /// The UTF-8 error if `bytes` is not valid UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Line, str::Utf8Error> {
        str::from_utf8(&bytes)?;
        Ok(Line { bytes })
    }

    /// A line from a static string, without copying.
    pub const fn from_static(s: &'static str) -> Line {
        Line {
            bytes: Bytes::from_static(s.as_bytes()),
        }
    }

    pub(crate) fn from_buf(buf: BytesMut) -> Result<Line, str::Utf8Error> {
        // Most lines are ASCII, and the ASCII test is far cheaper than a
        // full UTF-8 validation on short input.
        if !buf.is_ascii() {
            str::from_utf8(&buf)?;
        }
        Ok(Line {
            bytes: buf.freeze(),
        })
    }

    /// The text. Re-checks the UTF-8, in time linear in the length.
    pub fn as_str(&self) -> &str {
        str::from_utf8(&self.bytes).expect("a Line holds valid UTF-8")
    }

    /// The bytes of the text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the line is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Line {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Line {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl PartialEq<str> for Line {
    fn eq(&self, other: &str) -> bool {
        self.bytes == other.as_bytes()
    }
}

impl PartialEq<&str> for Line {
    fn eq(&self, other: &&str) -> bool {
        self.bytes == other.as_bytes()
    }
}

impl PartialEq<String> for Line {
    fn eq(&self, other: &String) -> bool {
        self.bytes == other.as_bytes()
    }
}

impl PartialEq<Line> for str {
    fn eq(&self, other: &Line) -> bool {
        other == self
    }
}

impl PartialEq<Line> for &str {
    fn eq(&self, other: &Line) -> bool {
        other == *self
    }
}

impl From<&'static str> for Line {
    fn from(s: &'static str) -> Line {
        Line::from_static(s)
    }
}

impl From<String> for Line {
    fn from(s: String) -> Line {
        Line {
            bytes: Bytes::from(s),
        }
    }
}

impl From<Line> for String {
    fn from(line: Line) -> String {
        line.as_str().to_owned()
    }
}
