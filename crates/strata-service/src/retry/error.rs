use std::fmt;
use std::io;

/// A retry was refused because the [`RetryBudget`](super::RetryBudget) is
/// spent; returned only by a [`Retry`](super::Retry) built with
/// [`report_budget_exhausted`](super::Retry::report_budget_exhausted).
///
/// The request *was* sent: it carries how many attempts were made and
/// the message of the last attempt's error (none if the last attempt
/// succeeded with a response the policy wanted to retry). Convert it into
/// your error type with a `From` impl (see
/// [the error scheme](crate#errors-one-type-per-stack)); it also converts
/// into an [`io::Error`] of kind [`Other`](io::ErrorKind::Other), as every
/// layer's error does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetExhausted {
    attempts: u32,
    last_error: Option<String>,
}

impl BudgetExhausted {
    pub(crate) const fn new(attempts: u32, last_error: Option<String>) -> Self {
        BudgetExhausted {
            attempts,
            last_error,
        }
    }

    /// How many attempts the request made before the budget refused the
    /// next one (at least 1).
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's error, as its `Display` text; `None` if the last
    /// attempt was a success the policy wanted to retry.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "retries refused by the retry budget after {} attempt{s}",
            self.attempts
        )?;
        if let Some(e) = &self.last_error {
            write!(f, "; last error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BudgetExhausted {}

impl From<BudgetExhausted> for io::Error {
    fn from(e: BudgetExhausted) -> io::Error {
        io::Error::other(e)
    }
}
