//! A scripted inner service for the middleware tests: each request says
//! what the service does with it, and the service counts calls, calls in
//! flight and the most in flight at once.

#![allow(dead_code)] // each test file uses a different part

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use strata_service::clock::{Clock, ManualClock};
use strata_service::{BoxError, Service};

/// What the scripted service does with a request.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Answer `Ok(n)` at once.
    Ok(u32),
    /// Fail at once with the message.
    Fail(&'static str),
    /// Sleep on the service's clock, then answer `Ok(n)`.
    Delay(Duration, u32),
    /// Sleep on the service's clock, then fail with the message.
    FailAfter(Duration, &'static str),
    /// Never answer.
    Pending,
    /// Panic inside `call`, before any future exists.
    PanicInCall,
    /// Panic on the future's first poll.
    PanicInFuture,
}

#[derive(Default, Debug)]
pub(crate) struct Counts {
    pub(crate) calls: AtomicUsize,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) max_in_flight: AtomicUsize,
}

impl Counts {
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

/// The scripted service, on clock `C`.
#[derive(Clone, Debug)]
pub(crate) struct Scripted<C = ManualClock> {
    pub(crate) clock: C,
    pub(crate) counts: Arc<Counts>,
}

impl<C: Clock> Scripted<C> {
    pub(crate) fn new(clock: C) -> Self {
        Scripted {
            clock,
            counts: Arc::default(),
        }
    }
}

struct InFlight(Arc<Counts>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<C: Clock> Service<Step> for Scripted<C> {
    type Response = u32;
    type Error = BoxError;

    fn call(&self, step: Step) -> impl Future<Output = Result<u32, BoxError>> {
        self.counts.calls.fetch_add(1, Ordering::SeqCst);
        if let Step::PanicInCall = step {
            panic!("scripted panic in call");
        }
        let counts = Arc::clone(&self.counts);
        async move {
            let now = counts.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            counts.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let _guard = InFlight(Arc::clone(&counts));
            match step {
                Step::Ok(n) => Ok(n),
                Step::Fail(msg) => Err(msg.into()),
                Step::Delay(d, n) => {
                    let at = self.clock.now() + d;
                    self.clock.sleep_until(at).await;
                    Ok(n)
                }
                Step::FailAfter(d, msg) => {
                    let at = self.clock.now() + d;
                    self.clock.sleep_until(at).await;
                    Err(msg.into())
                }
                Step::Pending => std::future::pending().await,
                Step::PanicInCall => unreachable!(),
                Step::PanicInFuture => panic!("scripted panic in future"),
            }
        }
    }
}

/// Polls `fut` once with a no-op waker.
pub(crate) fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let waker = futures_util::task::noop_waker();
    fut.poll(&mut Context::from_waker(&waker))
}

/// Silences the default panic hook for the scripted panics.
pub(crate) fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(install_quiet_hook);
}

fn install_quiet_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
        if !msg.starts_with("scripted panic") && !msg.starts_with("a custom payload") {
            default(info);
        }
    }));
}
