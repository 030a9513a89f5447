//! `Timeout`: a future with a deadline.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::error::Elapsed;
use super::sleep::{Sleep, sleep_until};

/// Runs `future` with a time limit: `Ok(output)` if it finishes within
/// `duration`, `Err(Elapsed)` otherwise. The future is dropped (cancelled)
/// with the `Timeout`: at once where it is `.await`ed; one kept pinned
/// after `Err(Elapsed)` still holds it (see [`Timeout::into_inner`]).
///
/// The future is polled before the timer, so one that is ready on its first
/// poll wins even with a zero duration, and never registers a timer.
///
/// # Panics
///
/// Polling the returned future outside a strata runtime panics if `future`
/// does not complete on its first poll.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use strata_rt::time::{sleep, timeout};
///
/// strata_rt::run(async {
///     assert_eq!(timeout(Duration::from_secs(1), async { 7 }).await, Ok(7));
///     let slow = sleep(Duration::from_secs(3600));
///     assert!(timeout(Duration::from_millis(10), slow).await.is_err());
/// });
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    timeout_at(super::deadline_after(duration), future)
}

/// Like [`timeout`], with an absolute deadline.
pub fn timeout_at<F: IntoFuture>(deadline: Instant, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        future: future.into_future(),
        sleep: sleep_until(deadline),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`] and [`timeout_at`].
    ///
    /// # Cancel safety
    ///
    /// As cancel-safe as the inner future: dropping the `Timeout` drops it.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F> Timeout<F> {
    /// The inner future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// The inner future, mutably.
    pub fn get_mut(&mut self) -> &mut F {
        &mut self.future
    }

    /// Takes the inner future out, dropping the timer.
    pub fn into_inner(self) -> F {
        self.future
    }

    /// The deadline's timer, e.g. to [`reset`](Sleep::reset) it.
    pub fn sleep_mut(&mut self) -> &mut Sleep {
        &mut self.sleep
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let had_budget = crate::executor::coop::has_budget_remaining();
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        // A completing sleep spends budget. If the inner future spent the
        // last of it in this poll, it must not keep its own deadline from
        // firing: the sleep is then polled without a budget (as in tokio).
        // Otherwise (spent before this poll), the sleep waits its turn, so
        // a loop of expired timeouts still yields.
        let sleep = Pin::new(this.sleep);
        let fired = if had_budget && !crate::executor::coop::has_budget_remaining() {
            crate::executor::coop::unconstrained(|| sleep.poll(cx))
        } else {
            sleep.poll(cx)
        };
        match fired {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed::new())),
            Poll::Pending => Poll::Pending,
        }
    }
}
