use std::fmt;

/// Which calls [`Retry`](super::Retry) may try again: the caller's policy,
/// the mechanism's input.
///
/// The mechanism (attempts, backoff, budget) lives in `Retry`; a policy
/// only answers two questions about a finished attempt.
pub trait Policy<Req, Res, E> {
    /// Whether this outcome should be tried again. `req` is a copy of the
    /// request the attempt was made with. Called for successes too, so a
    /// policy can retry on a response ("try again later").
    fn should_retry(&self, req: &Req, result: &Result<Res, E>) -> bool;

    /// A copy of the request for another attempt, made before the attempt
    /// takes the request; `None` means this request cannot be retried
    /// (a streamed body, say) and the attempt is its only one.
    fn clone_request(&self, req: &Req) -> Option<Req>;
}

/// Retries the errors `f` accepts, for cloneable requests; see
/// [`on_error`].
#[derive(Clone, Copy)]
pub struct OnError<F> {
    f: F,
}

/// A [`Policy`] that retries every error for which `f` returns `true`,
/// cloning the request for each attempt.
///
/// ```
/// use std::io;
/// use strata_service::retry::{Policy, on_error};
///
/// let policy = on_error(|e: &io::Error| e.kind() == io::ErrorKind::ConnectionReset);
/// let reset: Result<(), _> = Err(io::Error::from(io::ErrorKind::ConnectionReset));
/// let denied: Result<(), _> = Err(io::Error::from(io::ErrorKind::PermissionDenied));
/// assert!(policy.should_retry(&"GET /", &reset));
/// assert!(!policy.should_retry(&"GET /", &denied));
/// ```
pub const fn on_error<F>(f: F) -> OnError<F> {
    OnError { f }
}

impl<F, Req, Res, E> Policy<Req, Res, E> for OnError<F>
where
    F: Fn(&E) -> bool,
    Req: Clone,
{
    fn should_retry(&self, _req: &Req, result: &Result<Res, E>) -> bool {
        result.as_ref().err().is_some_and(&self.f)
    }

    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

impl<F> fmt::Debug for OnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnError")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}
