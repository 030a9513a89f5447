//! [`LengthDelimitedCodec`]: frames prefixed by their length.

use bytes::{Buf, BufMut, BytesMut};

use crate::{Decoder, Encoder};

mod error;

use error::HeaderError;
pub use error::LengthDelimitedCodecError;

/// The default value of
/// [`max_frame_length`](LengthDelimitedBuilder::max_frame_length): 8 MiB.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

/// The most bytes a buffer can hold (an allocation is at most
/// `isize::MAX` bytes): a frame or header that needs more can never arrive.
const MAX_BUFFERED: usize = isize::MAX as usize;

/// A codec for frames that announce their length in a header.
///
/// Decoding yields each frame as a [`BytesMut`], by default without its
/// header; encoding takes anything that is `AsRef<[u8]>` (`Bytes`,
/// `&[u8]`, `Vec<u8>`, ...) and writes the length field, then the bytes.
/// [`new`](Self::new) uses a 4-byte big-endian length; the
/// [`builder`](Self::builder) sets up other [layouts](LengthDelimitedCodec#layouts).
///
/// The builder's settings mean what the settings of the same names mean
/// on tokio-util 0.7's `length_delimited::Builder`: a configuration
/// written for tokio-util decodes the same frames here and encodes the
/// same bytes, apart from a few deliberate differences, listed
/// [below](LengthDelimitedCodec#differences-from-tokio-util).
///
/// # How a frame is read
///
/// The settings are `length_field_offset` (default 0),
/// `length_field_length` (1 to 8 bytes, default 4), the byte order
/// (default big-endian), `length_adjustment` (default 0), `num_skip`
/// (default: the whole header) and `max_frame_length` (default 8 MiB).
/// The *header* is the `length_field_offset` bytes before the length field
/// plus the field itself. For each frame, counting from its first byte:
///
/// 1. Wait until the header is there.
/// 2. Read the length field, `length_field_length` bytes at
///    `length_field_offset`, as an unsigned integer: the value `L`.
/// 3. If `L` is over `max_frame_length`, fail with
///    [`FrameTooLarge`](LengthDelimitedCodecError::FrameTooLarge). The
///    limit applies to `L` as read, before the adjustment.
/// 4. The frame length is `N = L + length_adjustment`. If that is
///    negative, or if `num_skip + N` is more than a buffer can hold
///    (`isize::MAX` bytes), fail with
///    [`InvalidLength`](LengthDelimitedCodecError::InvalidLength).
/// 5. Wait until `num_skip + N` bytes are there. Skip `num_skip` bytes
///    from the first byte of the frame; the decoded frame is the `N` bytes
///    that follow. The next frame starts right after them, at
///    `num_skip + N`.
/// 6. If `num_skip + N` is shorter than the header (possible only with
///    `num_skip` below the header length), the next frame would start
///    inside this one's header: fail with
///    [`InvalidLength`](LengthDelimitedCodecError::InvalidLength).
///
/// ```text
///   |<------------------------ num_skip ------------------------>|
///   +---------------------+-----------------------+--------------+-------------------+
///   | length_field_offset | length field: L       | more skipped | decoded frame:    |
///   | bytes               | (length_field_length) | bytes        | L + adjustment    |
///   +---------------------+-----------------------+--------------+-------------------+
///   |<------------------ header ----------------->|                                  ^
///                                                                       next frame starts here
/// ```
///
/// (Drawn with `num_skip` past the header; by default the skipped bytes
/// are exactly the header.)
///
/// `num_skip` may be smaller than the header (the decoded frame then
/// starts with the header bytes after `num_skip`, and `length_adjustment`
/// has to count them), equal to it (the default) or larger (the bytes
/// between the header and `num_skip` are dropped, and the length field
/// does not count them).
///
/// # Layouts
///
/// Each of these is checked by the example at the end of this section.
///
/// The default: a 4-byte big-endian length, then that many bytes. The
/// header is dropped.
///
/// ```text
///   on the wire (4 + 5 bytes)              decoded (5 bytes)
///   +-------------+-------------------+    +-------------------+
///   | 00 00 00 05 | h  e  l  l  o     | -> | h  e  l  l  o     |
///   +-------------+-------------------+    +-------------------+
///     L = 5         body
/// ```
///
/// Keeping the header: a 2-byte length of the body, with `num_skip(0)` so
/// nothing is dropped and `length_adjustment(2)` so the frame also covers
/// the 2 header bytes:
///
/// ```text
///   on the wire                            decoded (2 + 3 bytes)
///   +-------+----------+                   +-------+----------+
///   | 00 03 | a  b  c  |               ->  | 00 03 | a  b  c  |
///   +-------+----------+                   +-------+----------+
///   L = 3, frame = 3 + 2 bytes from byte 0
/// ```
///
/// A 2-byte little-endian length that counts the whole frame, itself
/// included: `length_adjustment(-2)` to get the body with the header
/// dropped (the default `num_skip`), or `num_skip(0)` with no adjustment
/// to keep the header:
///
/// ```text
///   on the wire                 adjustment -2        num_skip 0
///   +-------+----------+        +----------+         +-------+----------+
///   | 05 00 | a  b  c  |   ->   | a  b  c  |    or   | 05 00 | a  b  c  |
///   +-------+----------+        +----------+         +-------+----------+
///   L = 5
/// ```
///
/// A 1-byte message type before a 2-byte length of the body
/// (`length_field_offset(1)`), the whole header kept so the caller can
/// read the type: `num_skip(0)` and `length_adjustment(3)` (type byte and
/// length field):
///
/// ```text
///   on the wire                            decoded (3 + 2 bytes)
///   +----+-------+-------+                 +----+-------+-------+
///   | 07 | 00 02 | o  k  |             ->  | 07 | 00 02 | o  k  |
///   +----+-------+-------+                 +----+-------+-------+
///   type  L = 2   body
/// ```
///
/// A 3-byte length followed by a flags byte the length does not count,
/// dropped with the header: `num_skip(4)`, past the 3-byte header.
///
/// ```text
///   on the wire                            decoded (2 bytes)
///   +----------+-------+-------+           +-------+
///   | 00 00 02 | ff    | h  i  |       ->  | h  i  |
///   +----------+-------+-------+           +-------+
///   L = 2       flags   body
/// ```
///
/// ```
/// use bytes::BytesMut;
/// use strata_codec::{Decoder, LengthDelimitedCodec};
///
/// fn decode_all(codec: &mut LengthDelimitedCodec, wire: &[u8]) -> Vec<Vec<u8>> {
///     let mut buf = BytesMut::from(wire);
///     let mut frames = Vec::new();
///     while let Some(frame) = codec.decode(&mut buf).unwrap() {
///         frames.push(frame.to_vec());
///     }
///     assert!(buf.is_empty());
///     frames
/// }
///
/// let mut default = LengthDelimitedCodec::new();
/// assert_eq!(decode_all(&mut default, b"\x00\x00\x00\x05hello"), [b"hello"]);
///
/// let mut keep_header = LengthDelimitedCodec::builder()
///     .length_field_length(2)
///     .length_adjustment(2)
///     .num_skip(0)
///     .build();
/// assert_eq!(
///     decode_all(&mut keep_header, b"\x00\x03abc\x00\x02hi"),
///     [&b"\x00\x03abc"[..], b"\x00\x02hi"]
/// );
///
/// let mut counts_itself = LengthDelimitedCodec::builder()
///     .length_field_length(2)
///     .little_endian()
///     .length_adjustment(-2)
///     .build();
/// assert_eq!(decode_all(&mut counts_itself, b"\x05\x00abc"), [b"abc"]);
/// let mut counts_itself_kept = LengthDelimitedCodec::builder()
///     .length_field_length(2)
///     .little_endian()
///     .num_skip(0)
///     .build();
/// assert_eq!(decode_all(&mut counts_itself_kept, b"\x05\x00abc"), [b"\x05\x00abc"]);
///
/// let mut typed = LengthDelimitedCodec::builder()
///     .length_field_offset(1)
///     .length_field_length(2)
///     .length_adjustment(3)
///     .num_skip(0)
///     .build();
/// assert_eq!(decode_all(&mut typed, b"\x07\x00\x02ok"), [b"\x07\x00\x02ok"]);
///
/// let mut flags_dropped = LengthDelimitedCodec::builder()
///     .length_field_length(3)
///     .num_skip(4)
///     .build();
/// assert_eq!(decode_all(&mut flags_dropped, b"\x00\x00\x02\xffhi"), [b"hi"]);
/// ```
///
/// # Limits
///
/// [`max_frame_length`](LengthDelimitedBuilder::max_frame_length)
/// (default [`DEFAULT_MAX_FRAME_LENGTH`], 8 MiB) bounds the length field's
/// value `L` as read, before the adjustment, as in tokio-util. A decoded
/// frame is therefore at most `max_frame_length + length_adjustment`
/// bytes, and one frame takes at most `num_skip` more than that off the
/// buffer. The check is made as soon as the header is there, before any
/// more of the frame is buffered, and the codec never reserves memory on
/// the header's word: the buffer grows only with bytes that actually
/// arrive. A value over the limit is a
/// [`FrameTooLarge`](LengthDelimitedCodecError::FrameTooLarge) error.
///
/// So the bytes buffered for one frame are bounded by the settings: the
/// header (`length_field_offset + length_field_length`), or `num_skip`
/// plus `max_frame_length + length_adjustment` once the header is read.
/// The layout settings are the protocol's, not a peer's, but they bound
/// memory too: a `length_field_offset` of a gigabyte buffers a gigabyte
/// before the limit can apply.
///
/// # Errors and what follows them
///
/// A bad header is not skipped: once a frame is found too large or its
/// length invalid, every later call reports the same error, because there
/// is no telling where the next frame would start. Close the connection.
/// A stream that ends in the middle of a frame (its header, its skipped
/// bytes or its body) is an
/// [`UnexpectedEof`](LengthDelimitedCodecError::UnexpectedEof) error.
///
/// # Encoding
///
/// `encode` writes the length field, `length_field_length` bytes in the
/// configured byte order holding the data's length minus
/// `length_adjustment`, followed by the data. Like tokio-util's encoder it
/// writes nothing for `length_field_offset` and ignores `num_skip`, so it
/// is the inverse of `decode` only for layouts where both are left at
/// their defaults (offset 0, the whole header skipped). Frames of other
/// layouts need their header written by hand, or an [`Encoder`] of
/// their own. `encode` fails, writing nothing, when:
///
/// - the data is longer than `max_frame_length`, or than what the length
///   field can express after the adjustment:
///   [`FrameTooLarge`](LengthDelimitedCodecError::FrameTooLarge);
/// - the field value would be negative (data shorter than a positive
///   adjustment), or no data length at all can be expressed (a negative
///   adjustment beyond the field's maximum):
///   [`InvalidLength`](LengthDelimitedCodecError::InvalidLength).
///
/// As in tokio-util, the encoder checks the data's length against
/// `max_frame_length` and the decoder the field value: with a negative
/// adjustment the field value is larger than the data, so data close to
/// the limit can encode to a frame that a decoder with the same limit
/// rejects. Give the decoder a limit of at least
/// `max_frame_length - length_adjustment` if that matters.
///
/// # Differences from tokio-util
///
/// All deliberate. The differential tests (`tests/ld_vs_tokio_util.rs`)
/// check that on the settings and streams they generate, strata and
/// tokio-util 0.7 part only in the first five ways:
///
/// - **A frame must cover its own header.** When `num_skip + N` is
///   smaller than the header (step 6 above), tokio-util yields the short
///   frame and reads the next header from inside the current one; when it
///   is 0, it yields empty frames forever without consuming input. strata
///   reports [`InvalidLength`](LengthDelimitedCodecError::InvalidLength).
/// - **The limit is the one you set.** tokio-util lowers
///   `max_frame_length` to what the length field can express after the
///   adjustment, and applies that lowered limit to decoding too: with a
///   negative adjustment it rejects field values above the field's maximum
///   plus the adjustment even when they are within the limit you set, and
///   its own encoder writes such values. strata checks the field value against
///   `max_frame_length` as set, and
///   [`max_frame_length`](Self::max_frame_length) returns it unchanged; the
///   field's capacity limits encoding only.
/// - **End of stream after the skipped bytes is an error.** tokio-util
///   consumes the skipped bytes as soon as it reads a header, so a stream
///   that ends right after them ends cleanly, and the announced frame is
///   lost.
///   strata keeps them until the frame is complete and reports
///   [`UnexpectedEof`](LengthDelimitedCodecError::UnexpectedEof).
/// - **The header is checked as soon as it is there.** With `num_skip`
///   past the header, tokio-util waits for all the skipped bytes before
///   it reads the length; strata reads it at once, so a value over the
///   limit (or an invalid one) is an error before the skipped bytes are
///   buffered. A stream that ends inside them after such a header ends
///   with that error, where tokio-util reports the early end.
/// - **No unrepresentable field.** When even empty data needs a field
///   value over the field's maximum (a negative adjustment beyond it),
///   tokio-util writes that value cut to the field's width; strata refuses
///   with [`InvalidLength`](LengthDelimitedCodecError::InvalidLength).
/// - **No reservation on the header's word, and no overflow.** tokio-util
///   reserves room for the whole announced frame when it reads a header;
///   strata lets the buffer grow with the bytes that arrive. A frame whose
///   `num_skip + N` is more than a buffer can hold (`isize::MAX` bytes)
///   is an [`InvalidLength`](LengthDelimitedCodecError::InvalidLength)
///   error.
///
/// Errors are typed ([`LengthDelimitedCodecError`]) where tokio-util
/// returns `io::Error`, and stick (see above).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use strata_codec::{Decoder, Encoder, LengthDelimitedCodec};
///
/// let mut codec = LengthDelimitedCodec::builder()
///     .length_field_length(2)
///     .little_endian()
///     .build();
/// let mut buf = BytesMut::new();
/// codec.encode(&b"hello"[..], &mut buf).unwrap();
/// assert_eq!(&buf[..], b"\x05\x00hello");
/// assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"hello");
/// ```
///
/// A length that counts itself: the adjustment applies in both
/// directions, so encoding adds the header length back.
///
/// ```
/// use bytes::BytesMut;
/// use strata_codec::{Decoder, Encoder, LengthDelimitedCodec};
///
/// let mut codec = LengthDelimitedCodec::builder()
///     .length_field_length(2)
///     .length_adjustment(-2)
///     .build();
/// let mut buf = BytesMut::new();
/// codec.encode(&b"hi"[..], &mut buf).unwrap();
/// assert_eq!(&buf[..], b"\x00\x04hi");
/// assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"hi");
/// ```
#[derive(Debug, Clone)]
pub struct LengthDelimitedCodec {
    config: LengthDelimitedBuilder,
    /// The header: the bytes before the length field, and the field.
    header_len: usize,
    /// The bytes dropped from the front of each frame.
    skip: usize,
    /// What the frame being received takes off the buffer (its skipped
    /// bytes, then the frame), once its header has been read.
    frame_len: Option<usize>,
    /// The error found in the current header, reported again on every call.
    poisoned: Option<HeaderError>,
}

impl LengthDelimitedCodec {
    /// A codec with a 4-byte big-endian length and an 8 MiB limit.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to configure the layout and the limit.
    pub fn builder() -> LengthDelimitedBuilder {
        LengthDelimitedBuilder::new()
    }

    /// The limit on the length field's value when decoding, and on the
    /// data's length when encoding (see [limits](LengthDelimitedCodec#limits)).
    pub fn max_frame_length(&self) -> usize {
        self.config.max_frame_length
    }

    /// Sets the limit. A frame whose header has already been read keeps
    /// the limit it was checked against; the new one applies from the next
    /// header on.
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.config.max_frame_length = max;
    }

    /// Reads the header at the front of `buf` and returns how many bytes
    /// the frame takes off the buffer (its skipped bytes and the frame), or
    /// `None` if the head is not all there yet.
    fn decode_header(&self, buf: &BytesMut) -> Result<Option<usize>, HeaderError> {
        let cfg = &self.config;
        // Only the header: the frame's length, and so its check against
        // the limit, must not wait for skipped bytes after it (`decode`
        // waits for those, as part of the frame).
        if buf.len() < self.header_len {
            return Ok(None);
        }
        // `header_len <= buf.len()`, so the field is in `buf`.
        let mut field = &buf[cfg.length_field_offset..self.header_len];
        let value = if cfg.big_endian {
            field.get_uint(cfg.length_field_length)
        } else {
            field.get_uint_le(cfg.length_field_length)
        };
        let limit = u64::try_from(cfg.max_frame_length).unwrap_or(u64::MAX);
        if value > limit {
            return Err(HeaderError::FrameTooLarge(value, cfg.max_frame_length));
        }
        let invalid = HeaderError::InvalidLength(i128::from(value));
        // Exact in i128: both terms are at most 64 bits wide.
        let frame = i128::from(value) + cfg.length_adjustment as i128;
        let frame = usize::try_from(frame).map_err(|_| invalid)?;
        // Past `isize::MAX` no buffer could ever hold the frame.
        let taken = self
            .skip
            .checked_add(frame)
            .filter(|&n| n <= MAX_BUFFERED)
            .ok_or(invalid)?;
        if taken < self.header_len {
            // The next frame would start inside this one's header (and
            // with `taken == 0`, nothing would ever be consumed).
            return Err(invalid);
        }
        Ok(Some(taken))
    }

    /// The longest data `encode` accepts: the limit, or what the length
    /// field can express after the adjustment, whichever is smaller.
    fn encode_limit(&self) -> Option<usize> {
        let cfg = &self.config;
        let field_max = u64::MAX >> (64 - 8 * cfg.length_field_length);
        let by_field = i128::from(field_max) + cfg.length_adjustment as i128;
        if by_field < 0 {
            // Not even an empty frame fits: its value `-adjustment` is
            // over the field's maximum. Callers check `len > limit`, so
            // report through `None`.
            return None;
        }
        let by_field = usize::try_from(by_field).unwrap_or(usize::MAX);
        Some(by_field.min(cfg.max_frame_length))
    }
}

impl Default for LengthDelimitedCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for LengthDelimitedCodec {
    type Item = BytesMut;
    type Error = LengthDelimitedCodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, Self::Error> {
        if let Some(err) = self.poisoned {
            return Err(err.into());
        }
        let frame_len = match self.frame_len {
            Some(len) => len,
            None => match self.decode_header(buf) {
                Ok(Some(len)) => {
                    self.frame_len = Some(len);
                    len
                }
                Ok(None) => return Ok(None),
                Err(err) => {
                    self.poisoned = Some(err);
                    return Err(err.into());
                }
            },
        };
        if buf.len() < frame_len {
            return Ok(None);
        }
        self.frame_len = None;
        // One split for the skipped bytes and the frame; dropping the
        // skipped bytes from the front of the split is O(1).
        let mut frame = buf.split_to(frame_len);
        frame.advance(self.skip);
        Ok(Some(frame))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, Self::Error> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => Err(LengthDelimitedCodecError::UnexpectedEof {
                buffered: buf.len(),
            }),
        }
    }
}

impl<B: AsRef<[u8]>> Encoder<B> for LengthDelimitedCodec {
    type Error = LengthDelimitedCodecError;

    fn encode(&mut self, data: B, dst: &mut BytesMut) -> Result<(), Self::Error> {
        let data = data.as_ref();
        let Some(limit) = self.encode_limit() else {
            return Err(LengthDelimitedCodecError::InvalidLength {
                value: data.len() as i128 - self.config.length_adjustment as i128,
            });
        };
        if data.len() > limit {
            return Err(LengthDelimitedCodecError::FrameTooLarge {
                length: data.len() as u64,
                limit,
            });
        }
        // The field value: the data's length minus the adjustment, the
        // inverse of decoding's `L + adjustment`. `len <= limit` keeps it
        // at most the field's maximum; only a positive adjustment larger
        // than the data makes it negative.
        let value = data.len() as i128 - self.config.length_adjustment as i128;
        let value =
            u64::try_from(value).map_err(|_| LengthDelimitedCodecError::InvalidLength { value })?;
        let width = self.config.length_field_length;
        dst.reserve(width + data.len());
        if self.config.big_endian {
            dst.put_uint(value, width);
        } else {
            dst.put_uint_le(value, width);
        }
        dst.extend_from_slice(data);
        Ok(())
    }
}

/// Configures a [`LengthDelimitedCodec`]; see
/// [how a frame is read](LengthDelimitedCodec#how-a-frame-is-read) and the
/// [layouts](LengthDelimitedCodec#layouts). Each setting means what the
/// setting of the same name on tokio-util 0.7's builder means.
///
/// ```
/// use strata_codec::LengthDelimitedCodec;
///
/// let codec = LengthDelimitedCodec::builder()
///     .length_field_length(2)
///     .little_endian()
///     .max_frame_length(64 * 1024)
///     .build();
/// assert_eq!(codec.max_frame_length(), 64 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthDelimitedBuilder {
    length_field_offset: usize,
    length_field_length: usize,
    length_adjustment: isize,
    num_skip: Option<usize>,
    max_frame_length: usize,
    big_endian: bool,
}

impl LengthDelimitedBuilder {
    /// The default layout: a 4-byte big-endian length at the start, no
    /// adjustment, the header dropped, an 8 MiB limit.
    pub fn new() -> Self {
        LengthDelimitedBuilder {
            length_field_offset: 0,
            length_field_length: 4,
            length_adjustment: 0,
            num_skip: None,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            big_endian: true,
        }
    }

    /// The number of header bytes before the length field (default 0).
    ///
    /// Decoding only: `encode` writes the length field first.
    pub fn length_field_offset(&mut self, bytes: usize) -> &mut Self {
        self.length_field_offset = bytes;
        self
    }

    /// The width of the length field in bytes, 1 to 8 (default 4).
    ///
    /// # Panics
    ///
    /// Panics if `bytes` is not between 1 and 8.
    pub fn length_field_length(&mut self, bytes: usize) -> &mut Self {
        assert!(
            (1..=8).contains(&bytes),
            "length_field_length must be between 1 and 8 bytes, got {bytes}"
        );
        self.length_field_length = bytes;
        self
    }

    /// Added to the length field's value to get the length of the decoded
    /// frame, the bytes taken after the `num_skip` skipped ones (default
    /// 0). Encoding subtracts it from the data's length.
    ///
    /// Use a negative value when the length counts bytes that are skipped,
    /// for example `-2` for a 2-byte length that counts itself with the
    /// header dropped; a positive one when the frame holds bytes the
    /// length does not count, for example `2` to keep a 2-byte length of
    /// the body in front of the body with `num_skip(0)`.
    pub fn length_adjustment(&mut self, adjustment: isize) -> &mut Self {
        self.length_adjustment = adjustment;
        self
    }

    /// How many bytes to skip, counting from the first byte of each frame,
    /// before the decoded frame begins (default: the whole header,
    /// `length_field_offset + length_field_length`).
    ///
    /// It may be smaller than the header (the decoded frame then starts
    /// with the rest of the header, which `length_adjustment` must count)
    /// or larger (the bytes after the header up to `num_skip` are dropped
    /// and not counted by the length field). Decoding only: `encode`
    /// ignores it.
    pub fn num_skip(&mut self, bytes: usize) -> &mut Self {
        self.num_skip = Some(bytes);
        self
    }

    /// The largest length field value `decode` accepts, compared before
    /// the adjustment, and the largest data `encode` accepts (default
    /// 8 MiB). See [limits](LengthDelimitedCodec#limits).
    pub fn max_frame_length(&mut self, bytes: usize) -> &mut Self {
        self.max_frame_length = bytes;
        self
    }

    /// The length field is big-endian, most significant byte first (the
    /// default).
    pub fn big_endian(&mut self) -> &mut Self {
        self.big_endian = true;
        self
    }

    /// The length field is little-endian, least significant byte first.
    pub fn little_endian(&mut self) -> &mut Self {
        self.big_endian = false;
        self
    }

    /// The length field is in the machine's byte order.
    pub fn native_endian(&mut self) -> &mut Self {
        self.big_endian = cfg!(target_endian = "big");
        self
    }

    /// Builds the codec.
    ///
    /// # Panics
    ///
    /// If the header (`length_field_offset + length_field_length`) or
    /// `num_skip` is over `isize::MAX` bytes: no buffer can hold that
    /// much, so no frame could ever arrive, and the codec would buffer its
    /// input forever without an error.
    pub fn build(&self) -> LengthDelimitedCodec {
        let header_len = self
            .length_field_offset
            .checked_add(self.length_field_length)
            .filter(|&n| n <= MAX_BUFFERED)
            .unwrap_or_else(|| {
                panic!(
                    "LengthDelimitedCodec: a header of length_field_offset ({}) + \
                     length_field_length ({}) bytes can never be buffered",
                    self.length_field_offset, self.length_field_length
                )
            });
        let skip = self.num_skip.unwrap_or(header_len);
        assert!(
            skip <= MAX_BUFFERED,
            "LengthDelimitedCodec: num_skip ({skip}) bytes can never be buffered"
        );
        LengthDelimitedCodec {
            config: self.clone(),
            header_len,
            skip,
            frame_len: None,
            poisoned: None,
        }
    }
}

impl Default for LengthDelimitedBuilder {
    fn default() -> Self {
        Self::new()
    }
}
