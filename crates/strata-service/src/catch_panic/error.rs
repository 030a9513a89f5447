use std::any::Any;
use std::fmt;

/// The inner service panicked while handling the request; see
/// [`CatchPanic`](super::CatchPanic).
///
/// It keeps the panic's message when the payload was a string (as with
/// `panic!("...")`, `unwrap` and `expect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panicked {
    message: Option<String>,
}

impl Panicked {
    pub(crate) fn from_payload(payload: Box<dyn Any + Send>) -> Self {
        let message = match payload.downcast::<String>() {
            Ok(s) => Some(*s),
            Err(payload) => payload.downcast_ref::<&str>().map(|s| (*s).to_owned()),
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
