//! The error type of [`LengthDelimitedCodec`](super::LengthDelimitedCodec).

use std::{error, fmt, io};

/// An error from [`LengthDelimitedCodec`](super::LengthDelimitedCodec).
#[derive(Debug)]
#[non_exhaustive]
pub enum LengthDelimitedCodecError {
    /// A frame's body is longer than the codec's limit (or, when encoding,
    /// than its length field can express).
    FrameTooLarge {
        /// The body length, in bytes.
        length: u64,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A length field value gives a negative body length after the
    /// adjustment (or, when encoding, the value the length field would need
    /// is out of its range: a positive adjustment larger than the data, or
    /// a negative one beyond the field's maximum).
    InvalidLength {
        /// The length field value.
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
                "invalid frame length: a length field of {value} gives no valid body length"
            ),
            Self::UnexpectedEof { buffered } => write!(
                f,
                "stream ended in the middle of a frame ({buffered} bytes of it had arrived)"
            ),
            Self::Io(err) => write!(f, "I/O error: {err}"),
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
