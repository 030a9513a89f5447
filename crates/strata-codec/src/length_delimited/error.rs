//! The error type of [`LengthDelimitedCodec`](super::LengthDelimitedCodec).

use std::{error, fmt, io};

/// An error from [`LengthDelimitedCodec`](super::LengthDelimitedCodec).
///
/// Its `Display` states what went wrong at this layer; for [`Io`](Self::Io)
/// the `io::Error` is its [`source()`](error::Error::source), not part of
/// the message (a reporter that walks the chain prints it once).
#[derive(Debug)]
#[non_exhaustive]
pub enum LengthDelimitedCodecError {
    /// Over the limit. When decoding: the length field's value, before the
    /// adjustment, is over the codec's `max_frame_length`. When encoding:
    /// the data is longer than `max_frame_length`, or than what the length
    /// field can express after the adjustment.
    FrameTooLarge {
        /// The length field's value (decoding) or the data's length
        /// (encoding).
        length: u64,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A length that gives no valid frame. When decoding: the length field
    /// value plus the adjustment is negative or does not fit in memory, or
    /// the frame would end inside its own header (possible only with
    /// `num_skip` below the header length). When encoding: the value the
    /// length field would need is out of its range (a positive adjustment
    /// larger than the data, or a negative one beyond the field's
    /// maximum).
    InvalidLength {
        /// The length field value (when encoding, the one that would be
        /// needed).
        value: i128,
    },
    /// The stream ended in the middle of a frame.
    UnexpectedEof {
        /// How many bytes of the unfinished frame had arrived.
        buffered: usize,
    },
    /// Reading or writing the underlying I/O object failed.
    Io(io::Error),
}

/// A bad header, kept to be reported again.
#[derive(Debug, Clone, Copy)]
pub(super) enum HeaderError {
    FrameTooLarge(u64, usize),
    InvalidLength(i128),
}

impl From<HeaderError> for LengthDelimitedCodecError {
    fn from(err: HeaderError) -> Self {
        match err {
            HeaderError::FrameTooLarge(length, limit) => Self::FrameTooLarge { length, limit },
            HeaderError::InvalidLength(value) => Self::InvalidLength { value },
        }
    }
}

impl fmt::Display for LengthDelimitedCodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameTooLarge { length, limit } => write!(
                f,
                "frame too large: {length} bytes exceeds the limit of {limit} bytes"
            ),
            Self::InvalidLength { value } => write!(
                f,
                "invalid frame length: a length field of {value} gives no valid frame"
            ),
            Self::UnexpectedEof { buffered } => write!(
                f,
                "stream ended in the middle of a frame ({buffered} bytes of it had arrived)"
            ),
            Self::Io(_) => f.write_str("I/O error"),
        }
    }
}

impl error::Error for LengthDelimitedCodecError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            Self::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for LengthDelimitedCodecError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}
