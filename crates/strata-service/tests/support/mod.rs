//! Helpers shared by the test files: a yield point, a log that services
//! and layers write into so tests can check the order of events, and a
//! seeded generator for the randomized runs.

#![allow(dead_code)] // each test file uses a different part

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// Returns `Pending` once (after waking itself), then `Ready`: a point
/// where other calls in flight get to run.
pub(crate) fn yield_once() -> YieldOnce {
    YieldOnce { yielded: false }
}

pub(crate) struct YieldOnce {
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            Poll::Ready(())
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// An append-only list of events, shared by clones.
#[derive(Clone, Default, Debug)]
pub(crate) struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub(crate) fn push(&self, event: impl Into<String>) {
        self.0.borrow_mut().push(event.into());
    }

    /// Returns the events so far and clears the log.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// A small deterministic PRNG (xorshift64), seeded per run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seeds of a randomized run: `STRESS_SEED` alone if set (to replay
/// one), else `default`.
pub(crate) fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("STRESS_SEED") {
        Ok(s) => vec![s.parse().expect("STRESS_SEED is a number")],
        Err(_) => default.collect(),
    }
}

/// A waker that records that it was woken (for tests that poll futures
/// by hand and poll again only what was woken).
#[derive(Default)]
pub(crate) struct Flag(pub(crate) std::sync::atomic::AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
