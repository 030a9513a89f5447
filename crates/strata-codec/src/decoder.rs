//! The [`Decoder`] trait: bytes in, frames out.

use std::io;

use bytes::BytesMut;

/// Turns bytes read from a stream into frames.
///
/// A decoder is handed the bytes received so far and takes one frame off
/// the front of them, or reports that the frame is not complete yet.
/// [`FramedRead`](crate::FramedRead) and [`Framed`](crate::Framed) drive a
/// decoder over an [`AsyncRead`](futures_io::AsyncRead); a decoder itself
/// does no I/O and knows no runtime, which makes it easy to test by hand:
///
/// ```
/// use bytes::BytesMut;
/// use strata_codec::{Decoder, LinesCodec};
///
/// let mut codec = LinesCodec::new();
/// let mut buf = BytesMut::from("hel");
/// assert_eq!(codec.decode(&mut buf).unwrap(), None); // not a whole line yet
/// buf.extend_from_slice(b"lo\nwor");
/// assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("hello"));
/// assert_eq!(&buf[..], b"wor"); // the rest stays for the next call
/// ```
///
/// # Contract
///
/// An implementation of [`decode`](Decoder::decode) must:
///
/// - **Return `Ok(Some(frame))`** after removing exactly that frame's bytes
///   from the front of `src` (with [`BytesMut::split_to`] or
///   [`bytes::Buf::advance`]). Bytes after the frame belong to the next one
///   and must stay in place. The caller calls `decode` again right away, so
///   one call yields at most one frame.
/// - **Return `Ok(None)`** when `src` does not hold a complete frame yet.
///   The caller then reads more bytes, appends them to `src` and calls
///   `decode` again. `Ok(None)` is *not* an error: a frame may arrive one
///   byte at a time. A decoder may keep private state between calls (for
///   example how far it has already scanned) so that it does not redo work,
///   but it must not consume bytes it still needs.
/// - **Accept an empty buffer.** `decode` is called whenever a frame *might*
///   be available, including with an empty `src`; return `Ok(None)` then.
/// - **Return `Err(_)`** when the input can never form a valid frame: a
///   frame over its size limit, malformed bytes. After an error,
///   [`Framed`](crate::Framed) ends its stream; the connection is normally
///   closed. Each codec documents the state it is left in, for callers who
///   drive it by hand and want to go on.
///
/// # End of stream
///
/// When the reader reports end of stream, the caller stops calling `decode`
/// and calls [`decode_eof`](Decoder::decode_eof) until it returns
/// `Ok(None)`. This gives the decoder a chance to turn what is left into
/// a final frame, or to complain that the stream stopped in the middle of
/// one. The default implementation calls `decode`, and if that finds no
/// frame while the stream is [in a frame](Decoder::in_frame) (bytes
/// remain, by default), returns an [`io::ErrorKind::UnexpectedEof`]
/// error: a partial frame at the end of a stream is corrupt input, not
/// something to drop silently.
///
/// # Between frames or in one
///
/// Code that drives a decoder sometimes needs to know whether the stream
/// stopped between two frames or partway through one: the default
/// `decode_eof`, and strata-proto's read timeout, which closes a
/// connection that leaves a request unfinished for too long (an idle one
/// gets the longer idle timeout). [`in_frame`](Decoder::in_frame) answers;
/// by default, "bytes are buffered". A decoder that moves the frame in
/// progress out of `src` into its own state (a chunked body collected as
/// its chunks arrive) overrides it to say so.
///
/// # Buffer management
///
/// `src` is the reader's buffer. The caller grows it as bytes arrive and
/// takes care of releasing memory when the connection goes idle, so a
/// decoder usually does not touch its capacity. A decoder that knows the
/// size of the frame in progress *may* call [`BytesMut::reserve`] to avoid
/// regrowth, but it must never reserve on the word of a peer beyond its own
/// size limit: check the limit first, then reserve (or do not reserve at
/// all, and let the buffer grow with the bytes that actually arrive).
/// `Framed` keeps such a reservation while the frame arrives.
///
/// A frame taken with `split_to` (or a `Bytes` frozen from it) shares the
/// buffer's allocation, without a copy: the allocation lives as long as
/// the frame, or any slice of it, does. A frame kept long (a value stored
/// in a cache, say) holds the whole read buffer it was cut from; copy
/// such parts out (`Bytes::copy_from_slice`, `to_vec`).
pub trait Decoder {
    /// The frame this decoder produces.
    type Item;

    /// The error this decoder reports.
    ///
    /// It must be constructible from [`io::Error`], so a framed stream can
    /// report read errors and decode errors through one type.
    type Error: From<io::Error>;

    /// Takes one frame from the front of `src`, if a whole one is there.
    ///
    /// See the [trait documentation](Decoder#contract) for the contract.
    ///
    /// # Errors
    ///
    /// Returns an error when `src` holds bytes that cannot form a valid
    /// frame.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error>;

    /// Takes one frame from `src` after the stream has ended.
    ///
    /// Called repeatedly once the reader reports end of stream, until it
    /// returns `Ok(None)`. The default implementation returns the frames
    /// [`decode`](Decoder::decode) finds, then `Ok(None)` if `src` is empty.
    ///
    /// # Errors
    ///
    /// The default implementation returns an
    /// [`io::ErrorKind::UnexpectedEof`] error if the stream ends
    /// [in a frame](Decoder::in_frame) (bytes remain that do not form a
    /// complete one), and passes on any error from `decode`.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if !self.in_frame(src) => Ok(None),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "stream ended in the middle of a frame ({} bytes left over)",
                    src.len()
                ),
            )
            .into()),
        }
    }

    /// Whether the stream is partway through a frame: `src` (the bytes not
    /// decoded yet) plus what this decoder holds of the frame in progress.
    /// See [Between frames or in one](Decoder#between-frames-or-in-one).
    ///
    /// The default, `!src.is_empty()`, is right for a decoder that leaves
    /// a frame's bytes in `src` until the whole frame is there, as every
    /// codec of this crate does.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use strata_codec::{Decoder, LinesCodec};
    ///
    /// let mut codec = LinesCodec::new();
    /// let mut buf = BytesMut::from("hello\nwor");
    /// codec.decode(&mut buf).unwrap();
    /// assert!(codec.in_frame(&buf)); // "wor" of the next line
    /// buf.clear();
    /// assert!(!codec.in_frame(&buf));
    /// ```
    #[inline]
    fn in_frame(&self, src: &BytesMut) -> bool {
        !src.is_empty()
    }
}
