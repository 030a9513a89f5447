//! [`LengthDelimitedCodec`]: frames prefixed by their length.

use bytes::{Buf, BufMut, BytesMut};

use crate::{Decoder, Encoder};

mod error;

use error::HeaderError;
pub use error::LengthDelimitedCodecError;

/// The default maximum body length of [`LengthDelimitedCodec`]: 8 MiB.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

/// A codec for frames that announce their length in a header.
///
/// Decoding yields each frame as a [`BytesMut`], without its header by
/// default; encoding takes anything that is `AsRef<[u8]>` (`Bytes`,
/// `&[u8]`, `Vec<u8>`, ...) and writes the length field, then the bytes.
/// [`new`](Self::new) uses a 4-byte big-endian length; the
/// [`builder`](Self::builder) sets up other [layouts](LengthDelimitedCodec#layouts).
///
/// # Layouts
///
/// The default layout: a 4-byte big-endian length, then that many bytes.
/// Decoding strips the header.
///
/// ```text
///   on the wire (4 + 5 bytes)              decoded (5 bytes)
///   +-------------+-------------------+    +-------------------+
///   | 00 00 00 05 | h  e  l  l  o     | -> | h  e  l  l  o     |
///   +-------------+-------------------+    +-------------------+
///     length = 5    body
/// ```
///
/// A 2-byte little-endian length that counts itself, so
/// `length_adjustment(-2)`; `num_skip(0)` keeps the header in the frame:
///
/// ```text
///   on the wire (2 + 3 bytes)              decoded (5 bytes)
///   +-------+----------+                   +-------+----------+
///   | 05 00 | a  b  c  |               ->  | 05 00 | a  b  c  |
///   +-------+----------+                   +-------+----------+
///   length = 5, body = 5 - 2 = 3
/// ```
///
/// A 1-byte message type before a 2-byte length (`length_field_offset(1)`);
/// `num_skip(0)` keeps the whole header so the caller can read the type
/// (`num_skip(1)` would drop just the type byte):
///
/// ```text
///   on the wire                            decoded with num_skip(0)
///   +----+-------+-------+                 +----+-------+-------+
///   | 07 | 00 02 | o  k  |             ->  | 07 | 00 02 | o  k  |
///   +----+-------+-------+                 +----+-------+-------+
///   type  length  body
/// ```
///
/// In general a frame is:
///
/// ```text
///   |<- length_field_offset ->|<- length_field_length ->|<- body ->|
///   +-------------------------+-------------------------+----------+
///   |   leading header bytes  |      length field L     |   body   |
///   +-------------------------+-------------------------+----------+
///   |<----- num_skip bytes dropped (default: all) ----->|
///
///   body length = L + length_adjustment   (at most max_frame_length)
/// ```
///
/// # Limits
///
/// A body may hold at most [`DEFAULT_MAX_FRAME_LENGTH`] (8 MiB) bytes
/// unless set with
/// [`max_frame_length`](LengthDelimitedBuilder::max_frame_length). The
/// check is made on the header, before any of the body is buffered, and
/// the codec never reserves memory on the header's word: the buffer grows
/// only with bytes that actually arrive. A header over the limit is a
/// [`FrameTooLarge`](LengthDelimitedCodecError::FrameTooLarge) error.
///
/// # Errors and what follows them
///
/// A bad header is not skipped: once a frame is found too large or its
/// length invalid, every later call reports the same error, because there
/// is no telling where the next frame would start. Close the connection.
/// A stream that ends in the middle of a frame is an
/// [`UnexpectedEof`](LengthDelimitedCodecError::UnexpectedEof) error.
///
/// # Encoding
///
/// `encode` writes the length field (the data's length minus
/// `length_adjustment`) followed by the data. It writes no leading header
/// bytes, so it is the inverse of `decode` when `length_field_offset` is 0
/// and `num_skip` is left at its default.
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
#[derive(Debug, Clone)]
pub struct LengthDelimitedCodec {
    config: LengthDelimitedBuilder,
    /// The total length (header and body) of the frame being received,
    /// once its header has been read.
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

    /// The maximum body length.
    pub fn max_frame_length(&self) -> usize {
        self.config.max_frame_length
    }

    /// Sets the maximum body length.
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.config.max_frame_length = max;
    }

    fn header_len(&self) -> usize {
        self.config.length_field_offset + self.config.length_field_length
    }

    /// Reads the header at the front of `buf` and returns the total frame
    /// length, or `None` if the header is not all there yet.
    fn decode_header(&self, buf: &BytesMut) -> Result<Option<usize>, HeaderError> {
        let cfg = &self.config;
        let header_len = self.header_len();
        if buf.len() < header_len {
            return Ok(None);
        }
        let mut field = &buf[cfg.length_field_offset..header_len];
        let value = if cfg.big_endian {
            field.get_uint(cfg.length_field_length)
        } else {
            field.get_uint_le(cfg.length_field_length)
        };
        let body = i128::from(value) + cfg.length_adjustment as i128;
        if body < 0 {
            return Err(HeaderError::InvalidLength(i128::from(value)));
        }
        let too_large = || {
            HeaderError::FrameTooLarge(
                u64::try_from(body).unwrap_or(u64::MAX),
                cfg.max_frame_length,
            )
        };
        let body = usize::try_from(body).map_err(|_| too_large())?;
        if body > cfg.max_frame_length {
            return Err(too_large());
        }
        let total = header_len.checked_add(body).ok_or_else(too_large)?;
        Ok(Some(total))
    }

    /// The longest data `encode` accepts: the limit, or what the length
    /// field can express, whichever is smaller.
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
        let mut frame = buf.split_to(frame_len);
        frame.advance(self.config.num_skip.unwrap_or(self.header_len()));
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

/// Configures a [`LengthDelimitedCodec`]; see the [layouts](LengthDelimitedCodec#layouts).
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
    /// adjustment, the header stripped, an 8 MiB limit.
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

    /// Added to the length field's value to get the body length (default
    /// 0). Use a negative value when the length counts header bytes, for
    /// example `-2` for a 2-byte length that counts itself.
    pub fn length_adjustment(&mut self, adjustment: isize) -> &mut Self {
        self.length_adjustment = adjustment;
        self
    }

    /// How many bytes to drop from the start of each decoded frame
    /// (default: the whole header, `length_field_offset` plus
    /// `length_field_length`). At most the header length.
    pub fn num_skip(&mut self, bytes: usize) -> &mut Self {
        self.num_skip = Some(bytes);
        self
    }

    /// The maximum body length in bytes (default 8 MiB).
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
    /// Panics if `num_skip` is larger than the header
    /// (`length_field_offset + length_field_length`).
    pub fn build(&self) -> LengthDelimitedCodec {
        let header_len = self.length_field_offset + self.length_field_length;
        if let Some(skip) = self.num_skip {
            assert!(
                skip <= header_len,
                "num_skip ({skip}) must not exceed the header length ({header_len})"
            );
        }
        LengthDelimitedCodec {
            config: self.clone(),
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
