//! [`BytesCodec`]: raw bytes, no framing.

use std::io;

use bytes::BytesMut;

use crate::{Decoder, Encoder};

/// A codec that passes bytes through unchanged.
///
/// Decoding yields whatever is buffered, as one [`BytesMut`] chunk, each
/// time bytes arrive; chunk boundaries follow the reads and carry no
/// meaning. Encoding appends anything that is `AsRef<[u8]>` (`Bytes`,
/// `BytesMut`, `&[u8]`, `Vec<u8>`, ...).
///
/// Since every byte is taken as it arrives, the read buffer holds no more
/// than one read's worth, except what was buffered ahead
/// ([`Framed::poll_read_ahead`](crate::Framed::poll_read_ahead), or the
/// read buffer of [`FramedParts`](crate::FramedParts)), which the next
/// frame takes whole.
///
/// ```
/// use bytes::BytesMut;
/// use strata_codec::{BytesCodec, Decoder, Encoder};
///
/// let mut codec = BytesCodec::new();
/// let mut buf = BytesMut::new();
/// codec.encode(&b"raw "[..], &mut buf).unwrap();
/// codec.encode(b"bytes".to_vec(), &mut buf).unwrap();
/// assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"raw bytes");
/// assert_eq!(codec.decode(&mut buf).unwrap(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BytesCodec {
    _private: (),
}

impl BytesCodec {
    /// A new `BytesCodec`.
    pub fn new() -> Self {
        BytesCodec { _private: () }
    }
}

impl Decoder for BytesCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        if buf.is_empty() {
            Ok(None)
        } else {
            Ok(Some(buf.split()))
        }
    }
}

impl<B: AsRef<[u8]>> Encoder<B> for BytesCodec {
    type Error = io::Error;

    fn encode(&mut self, data: B, buf: &mut BytesMut) -> io::Result<()> {
        buf.extend_from_slice(data.as_ref());
        Ok(())
    }
}
