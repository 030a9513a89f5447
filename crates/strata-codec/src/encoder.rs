//! The [`Encoder`] trait: items in, bytes out.

use std::io;

use bytes::BytesMut;

/// Turns items into bytes to be written to a stream.
///
/// [`FramedWrite`](crate::FramedWrite) and [`Framed`](crate::Framed) call
/// [`encode`](Encoder::encode) for each item sent into them, collecting the
/// bytes of many items in one buffer, and write that buffer out in as few
/// calls as possible. An encoder does no I/O itself.
///
/// One type may encode several item types (`LinesCodec` encodes both
/// `String` and `&str`), which is why the item is a type parameter here and
/// an associated type on [`Decoder`](crate::Decoder).
///
/// ```
/// use bytes::BytesMut;
/// use strata_codec::{Encoder, LinesCodec};
///
/// let mut codec = LinesCodec::new();
/// let mut buf = BytesMut::new();
/// codec.encode("hello", &mut buf).unwrap();
/// codec.encode(String::from("world"), &mut buf).unwrap();
/// assert_eq!(&buf[..], b"hello\nworld\n");
/// ```
///
/// # Contract
///
/// - **Append, never rewrite.** `dst` may already hold the bytes of earlier
///   items that have not been written yet. `encode` appends the bytes of
///   `item` after them and leaves the existing bytes untouched.
/// - **All or nothing.** On error, `dst` should be left as it was, so that a
///   failed item does not put half a frame on the wire. Check the item
///   first, then write it.
/// - **Reserve up front** when the encoded size is known
///   ([`BytesMut::reserve`]), so a frame costs at most one reallocation.
pub trait Encoder<Item> {
    /// The error this encoder reports.
    ///
    /// It must be constructible from [`io::Error`], so a framed sink can
    /// report write errors and encode errors through one type.
    type Error: From<io::Error>;

    /// Appends the encoded form of `item` to `dst`.
    ///
    /// # Errors
    ///
    /// Returns an error when `item` cannot be encoded, for example because
    /// it is larger than the codec allows.
    fn encode(&mut self, item: Item, dst: &mut BytesMut) -> Result<(), Self::Error>;
}
