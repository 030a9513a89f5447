use std::any::Any;
use std::fmt;
use std::io;

/// The inner service panicked while handling the request; see
/// [`CatchPanic`](super::CatchPanic).
///
/// It keeps the panic's message when the payload was a string (as with
/// `panic!("...")`, `unwrap` and `expect`).
///
/// It converts into an [`io::Error`] of kind
/// [`Other`](io::ErrorKind::Other) (as [`Elapsed`](crate::timeout::Elapsed)
/// does, of kind `TimedOut`), so a service failing with `io::Error` can
/// take this layer as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panicked {
    message: Option<String>,
}

impl Panicked {
    pub(crate) fn from_payload(payload: Box<dyn Any + Send>) -> Self {
        let message = match payload.downcast::<String>() {
            Ok(s) => Some(*s),
            Err(payload) => {
                let text = payload.downcast_ref::<&str>().map(|s| (*s).to_owned());
                crate::inner_panic::drop_payload(payload);
                text
            }
        };
        Panicked { message }
    }

    /// The panic message, if the payload was a string.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "service panicked: {m}"),
            None => f.write_str("service panicked"),
        }
    }
}

impl std::error::Error for Panicked {}

impl From<Panicked> for io::Error {
    fn from(e: Panicked) -> io::Error {
        io::Error::other(e)
    }
}
