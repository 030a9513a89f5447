//! [`Line`]: a decoded line of UTF-8 text that shares the read buffer.

use std::fmt;
use std::str;

use bytes::{Bytes, BytesMut};

use crate::word;

/// A line of UTF-8 text, without its line ending, that shares the read
/// buffer it was decoded from instead of copying it.
///
/// A short line (up to 31 bytes, the common case for commands) is copied
/// into the `Line` itself; a longer one shares the buffer through a
/// reference count. Either way decoding costs no allocation, where a
/// `String` costs an allocation and a copy. Use
/// [`LinesCodec::shared`](crate::LinesCodec::shared) to get `Line`s.
///
/// A long `Line` keeps its read buffer's allocation alive while it lives,
/// so hold on to lines only briefly, or convert them with [`String::from`]
/// when they must outlive the request.
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
#[derive(Clone)]
pub struct Line {
    // INVARIANT: the bytes are valid UTF-8 (checked by every constructor).
    repr: Repr,
}

/// Bytes a line may have to be stored inline.
const INLINE: usize = 31;

#[derive(Clone)]
enum Repr {
    Inline(InlineBuf),
    Shared(Bytes),
}

/// A short line stored in place: 8-byte aligned, its length in the last
/// byte.
///
/// A `Line` is moved several times on its way from the codec to the
/// service (out of `decode`, into the service future). The layout keeps
/// those moves to whole 8- and 16-byte pieces: with the length beside the
/// enum's tag, or the bytes unaligned, the compiler copies odd-sized
/// pieces, and reading a value back soon after it was stored in different
/// pieces stalls the CPU (the store cannot be forwarded to the load).
#[derive(Clone, Copy)]
#[repr(align(8))]
struct InlineBuf([u8; INLINE + 1]);

impl InlineBuf {
    /// `len` (at most [`INLINE`]) bytes from the front of `head`, the rest
    /// zero. Built from 8-byte pieces, so that it is stored as such.
    #[inline]
    fn new(head: [u8; word::WORD], len: usize) -> InlineBuf {
        debug_assert!(len <= INLINE);
        let mut buf = [0; INLINE + 1];
        buf[..word::WORD].copy_from_slice(&head);
        buf[INLINE + 1 - 8..].copy_from_slice(&((len as u64) << 56).to_le_bytes());
        InlineBuf(buf)
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        // INVARIANT: the last byte is at most `INLINE`. Only the bytes
        // before it, up to that length, are the line; the others are
        // unspecified and never read.
        &self.0[..usize::from(self.0[INLINE])]
    }

    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0[..INLINE]
    }
}

impl Line {
    /// Checks `bytes` and wraps them.
    ///
    /// # Errors
    ///
    /// The UTF-8 error if `bytes` is not valid UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Line, str::Utf8Error> {
        str::from_utf8(&bytes)?;
        Ok(Line {
            repr: Repr::Shared(bytes),
        })
    }

    /// A line from a static string, without copying.
    pub const fn from_static(s: &'static str) -> Line {
        Line {
            repr: Repr::Shared(Bytes::from_static(s.as_bytes())),
        }
    }

    /// The line held in the low `len` (at most 16) bytes of `word`, which
    /// the caller checked are ASCII. The bytes of `word` past `len` are
    /// stored too but never read (see `InlineBuf`).
    #[inline]
    pub(crate) fn from_ascii_word(word: u128, len: usize) -> Line {
        debug_assert!(len <= word::WORD && word.to_le_bytes()[..len].is_ascii());
        Line {
            repr: Repr::Inline(InlineBuf::new(word.to_le_bytes(), len)),
        }
    }

    /// Takes the line `buf[..len]` out of `buf`, removing `consumed` bytes
    /// from its front whatever the result.
    pub(crate) fn take(
        buf: &mut BytesMut,
        len: usize,
        consumed: usize,
    ) -> Result<Line, str::Utf8Error> {
        if len <= word::WORD {
            // A short line as one word (a fixed 16-byte load when the buffer
            // holds that much): ASCII check and copy without a loop or call.
            let w = if buf.len() >= word::WORD {
                word::keep(word::load16(buf), len)
            } else {
                word::load(&buf[..len])
            };
            if w & word::HIGH_BITS == 0 {
                bytes::Buf::advance(buf, consumed);
                return Ok(Line::from_ascii_word(w, len));
            }
        }
        let bytes = &buf[..len];
        // Most lines are ASCII, and the ASCII test is far cheaper than a
        // full UTF-8 validation on short input.
        let checked = if bytes.is_ascii() {
            Ok(())
        } else {
            str::from_utf8(bytes).map(drop)
        };
        if let Err(e) = checked {
            bytes::Buf::advance(buf, consumed);
            return Err(e);
        }
        if len <= INLINE {
            let mut inline = InlineBuf::new([0; word::WORD], len);
            inline.bytes_mut()[..len].copy_from_slice(bytes);
            bytes::Buf::advance(buf, consumed);
            return Ok(Line {
                repr: Repr::Inline(inline),
            });
        }
        let mut line = buf.split_to(consumed);
        line.truncate(len);
        Ok(Line {
            repr: Repr::Shared(line.freeze()),
        })
    }

    /// The text. Re-checks the UTF-8, in time linear in the length.
    pub fn as_str(&self) -> &str {
        str::from_utf8(self.as_bytes()).expect("a Line holds valid UTF-8")
    }

    /// The bytes of the text.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline(buf) => buf.as_bytes(),
            Repr::Shared(b) => b,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the line is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, as `Bytes` (a copy for a short line, none for a long one).
    pub fn into_bytes(self) -> Bytes {
        match self.repr {
            Repr::Inline(_) => Bytes::copy_from_slice(self.as_bytes()),
            Repr::Shared(b) => b,
        }
    }
}

impl Default for Line {
    fn default() -> Line {
        Line::from_static("")
    }
}

impl PartialEq for Line {
    fn eq(&self, other: &Line) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Line {}

impl PartialOrd for Line {
    fn partial_cmp(&self, other: &Line) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Line {
    fn cmp(&self, other: &Line) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for Line {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The same as `str`'s hash, as `Borrow<str>` requires.
        self.as_str().hash(state)
    }
}

/// A map or set keyed by `Line` can be searched with a `&str` (equality,
/// order and hash are `str`'s).
///
/// ```
/// use std::collections::HashMap;
/// use strata_codec::Line;
///
/// let mut seen: HashMap<Line, u32> = HashMap::new();
/// *seen.entry(Line::from("hello")).or_default() += 1;
/// assert_eq!(seen.get("hello"), Some(&1));
/// ```
impl std::borrow::Borrow<str> for Line {
    fn borrow(&self) -> &str {
        self.as_str()
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
        self.as_bytes()
    }
}

impl PartialEq<str> for Line {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Line {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for Line {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
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
            repr: Repr::Shared(Bytes::from(s)),
        }
    }
}

impl From<Line> for String {
    fn from(line: Line) -> String {
        line.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &str) -> Line {
        let mut buf = BytesMut::from(format!("{text}\npadding after the line").as_bytes());
        Line::take(&mut buf, text.len(), text.len() + 1).unwrap()
    }

    #[test]
    fn equality_is_byte_equality_at_every_length_and_position() {
        for n in 0..40 {
            let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let line = decoded(&text);
            assert_eq!(line, text.as_str());
            assert_eq!(line, Line::from(text.clone()));
            assert_ne!(line, format!("{text}x").as_str());
            for at in 0..n {
                let mut other = text.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap();
                assert_ne!(line, other.as_str(), "n = {n}, at = {at}");
                assert_ne!(line, decoded(&other));
            }
        }
    }

    #[test]
    fn a_line_is_five_aligned_words() {
        // The tag and 32 inline bytes; see `InlineBuf` for why the layout
        // matters.
        assert_eq!(std::mem::size_of::<Line>(), 40);
        assert_eq!(std::mem::align_of::<Line>(), 8);
        let longest = "x".repeat(INLINE);
        assert!(matches!(decoded(&longest).repr, Repr::Inline(_)));
        assert!(matches!(
            decoded(&format!("{longest}y")).repr,
            Repr::Shared(_)
        ));
    }

    #[test]
    fn short_lines_are_checked_for_utf8_at_every_length() {
        for n in 1..=17 {
            let mut bytes = vec![b'a'; n];
            bytes[n - 1] = 0xff;
            bytes.push(b'\n');
            let mut buf = BytesMut::from(&bytes[..]);
            assert!(Line::take(&mut buf, n, n + 1).is_err(), "n = {n}");
            assert!(buf.is_empty(), "consumed even on error");
            let text = "é".repeat(n / 2);
            assert_eq!(decoded(&text).as_str(), text);
        }
    }
}
