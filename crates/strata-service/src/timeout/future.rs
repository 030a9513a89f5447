//! The future of a [`Timeout`](super::Timeout) call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::Elapsed;
use crate::clock::{Clock, deadline_after};

pin_project_lite::pin_project! {
    /// The future of [`Timeout::call`](super::Timeout): the inner call,
    /// raced against a sleep that is armed only once the inner call has
    /// returned `Pending`. The inner call is dropped as soon as it ends
    /// or times out.
    pub struct ResponseFuture<'a, F, C: Clock> {
        #[pin]
        response: Option<F>,
        clock: &'a C,
        timeout: Duration,
        sleep: Option<C::Sleep>,
    }
}

impl<'a, F, C: Clock> ResponseFuture<'a, F, C> {
    pub(super) fn new(response: F, clock: &'a C, timeout: Duration) -> Self {
        ResponseFuture {
            response: Some(response),
            clock,
            timeout,
            sleep: None,
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<'_, F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Clock,
    E: From<Elapsed>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(response) = this.response.as_mut().as_pin_mut() else {
            panic!("strata: Timeout's future polled after it completed");
        };
        // The response first: an answer that is ready wins over a deadline
        // that passed during the same poll.
        if let Poll::Ready(out) = response.poll(cx) {
            this.response.set(None);
            return Poll::Ready(out);
        }
        let (clock, timeout) = (*this.clock, *this.timeout);
        // A zero timeout has passed without a timer (which would need a
        // runtime to register with).
        let elapsed = timeout.is_zero()
            || Pin::new(
                this.sleep
                    .get_or_insert_with(|| clock.sleep_until(deadline_after(clock, timeout))),
            )
            .poll(cx)
            .is_ready();
        if elapsed {
            // Dropping the inner call cancels it now (its permit goes
            // back), not when the caller drops this future.
            this.response.set(None);
            *this.sleep = None;
            return Poll::Ready(Err(Elapsed::new(timeout).into()));
        }
        Poll::Pending
    }
}

impl<F, C: Clock> fmt::Debug for ResponseFuture<'_, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("timeout", &self.timeout)
            .field("armed", &self.sleep.is_some())
            .finish_non_exhaustive()
    }
}
