//! Telling a panic of the inner service from an unwind that merely drops
//! a call.
//!
//! A middleware's drop guard runs in both cases with
//! [`std::thread::panicking`] true: when the inner service's own code
//! panicked, and when something else in the task panicked and the call's
//! future is dropped while the task unwinds (a cancellation as far as the
//! call is concerned). [`run_inner`] keeps a flag that is true exactly
//! while the inner service's code runs, so the guard can tell them apart.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;

/// Calls `call` and polls the future it returns to its end, with
/// `*running` true while the inner service's code runs (the call and each
/// poll) and false otherwise. A guard that, when dropped while the thread
/// is panicking, finds the flag true knows the inner service panicked.
pub(crate) async fn run_inner<F: Future>(
    running: &mut bool,
    call: impl FnOnce() -> F,
) -> F::Output {
    *running = true;
    let mut future = pin!(call());
    *running = false;
    poll_fn(|cx| {
        *running = true;
        let poll = future.as_mut().poll(cx);
        *running = false;
        poll
    })
    .await
}

/// Whether a guard being dropped now sees a panic of the inner service.
pub(crate) fn inner_panicked(running: bool) -> bool {
    running && std::thread::panicking()
}

/// Drops a caught panic's payload, whose destructor is user code too: if
/// that panics as well, the payload is leaked instead (the second panic
/// would escape whoever caught the first).
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}
