//! Which outcomes count as failures.

use std::fmt;

/// Which outcomes of the inner service count as failures for a
/// [`CircuitBreaker`](super::CircuitBreaker).
///
/// A failure feeds the [`Accrual`](super::Accrual) while the circuit is
/// closed and re-opens it when it is the half-open probe's outcome;
/// anything else counts as a success (it resets a run of consecutive
/// failures, and a probe's success closes the circuit). The breaker's
/// own [`CircuitOpen`](super::CircuitOpen) refusals are never classified:
/// the inner service was not called.
///
/// Implemented by [`AnyError`] (the default: every `Err`), by
/// [`ErrorsWhere`] (see [`errors_where`]), and by every closure
/// `Fn(&Result<Res, E>) -> bool`, which may look at responses too.
pub trait Classify<Res, E> {
    /// Whether `result` counts as a failure.
    fn is_failure(&self, result: &Result<Res, E>) -> bool;
}

/// Every `Err` is a failure, every `Ok` a success: the default
/// [`Classify`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnyError;

impl<Res, E> Classify<Res, E> for AnyError {
    fn is_failure(&self, result: &Result<Res, E>) -> bool {
        result.is_err()
    }
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> bool,
{
    fn is_failure(&self, result: &Result<Res, E>) -> bool {
        self(result)
    }
}

/// Counts as failures the errors `f` accepts; see [`errors_where`].
#[derive(Clone, Copy)]
pub struct ErrorsWhere<F> {
    f: F,
}

/// A [`Classify`] that counts an `Err` as a failure when `f` returns
/// `true` for it; other errors, and every `Ok`, count as successes.
///
/// ```
/// use std::io::{Error, ErrorKind};
/// use strata_service::circuit::{Classify, errors_where};
///
/// // A refused request says the backend is up; a timeout does not.
/// let classify = errors_where(|e: &Error| e.kind() != ErrorKind::InvalidInput);
/// let timed_out: Result<(), _> = Err(Error::from(ErrorKind::TimedOut));
/// let bad_request: Result<(), _> = Err(Error::from(ErrorKind::InvalidInput));
/// assert!(classify.is_failure(&timed_out));
/// assert!(!classify.is_failure(&bad_request));
/// ```
pub const fn errors_where<F>(f: F) -> ErrorsWhere<F> {
    ErrorsWhere { f }
}

impl<F, Res, E> Classify<Res, E> for ErrorsWhere<F>
where
    F: Fn(&E) -> bool,
{
    fn is_failure(&self, result: &Result<Res, E>) -> bool {
        result.as_ref().err().is_some_and(&self.f)
    }
}

impl<F> fmt::Debug for ErrorsWhere<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorsWhere")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}
