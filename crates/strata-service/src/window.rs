//! A sliding window of two counts, in ten slots; shared by the retry
//! budget (requests, retries) and the circuit breaker (calls, failures).

use std::time::{Duration, Instant};

const SLOTS: usize = 10;

/// Counts `a` and `b` over the last `len`, in slots of `len / 10`. The
/// oldest slot is dropped whole, so the window is between 90 % and 100 %
/// of `len` long.
#[derive(Debug)]
pub(crate) struct Window {
    slot_len: Duration,
    /// Start of the current slot.
    slot_start: Instant,
    current: usize,
    a: [u64; SLOTS],
    b: [u64; SLOTS],
}

impl Window {
    /// An empty window of length `len` (at least ten nanoseconds) starting
    /// at `now`.
    pub(crate) fn new(len: Duration, now: Instant) -> Self {
        Window {
            slot_len: (len / SLOTS as u32).max(Duration::from_nanos(1)),
            slot_start: now,
            current: 0,
            a: [0; SLOTS],
            b: [0; SLOTS],
        }
    }

    /// Moves the window up to `now`, clearing the slots it leaves behind.
    pub(crate) fn advance(&mut self, now: Instant) {
        let passed =
            now.saturating_duration_since(self.slot_start).as_nanos() / self.slot_len.as_nanos();
        if passed == 0 {
            return;
        }
        if passed >= SLOTS as u128 {
            self.clear();
            self.slot_start = now;
            return;
        }
        for _ in 0..passed {
            self.current = (self.current + 1) % SLOTS;
            self.a[self.current] = 0;
            self.b[self.current] = 0;
        }
        // `passed < SLOTS` here.
        self.slot_start += self.slot_len * passed as u32;
    }

    pub(crate) fn add_a(&mut self) {
        self.a[self.current] += 1;
    }

    pub(crate) fn add_b(&mut self) {
        self.b[self.current] += 1;
    }

    /// The sums of `a` and `b` over the window.
    pub(crate) fn sums(&self) -> (u64, u64) {
        (self.a.iter().sum(), self.b.iter().sum())
    }

    pub(crate) fn clear(&mut self) {
        self.a = [0; SLOTS];
        self.b = [0; SLOTS];
    }
}
