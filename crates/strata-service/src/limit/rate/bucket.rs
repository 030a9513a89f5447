//! The token bucket, kept as one instant (GCRA).
//!
//! A bucket of `burst` tokens refilled at one token per `interval` is the
//! same thing as the generic cell rate algorithm's "theoretical arrival
//! time" `tat`: the instant at which the bucket would be full again if
//! nothing else arrived. A call at `now` may go at
//! `max(tat, now) - (burst - 1) * interval`; taking its token pushes `tat`
//! one interval further. The bucket is that one number (`tat`, in
//! nanoseconds since the bucket was made) behind a mutex held for a few
//! instructions. It is 128 bits wide so that no rate and burst overflow it
//! (`(burst - 1) * interval` alone can exceed 584 years); integer
//! arithmetic only, so tests under a manual clock are exact.
//!
//! Booking a slot is not going: a waiter goes when it is next polled after
//! its slot, which may be long after (a busy worker, a clock that jumped),
//! together with every other waiter whose slot passed meanwhile. So the
//! calls that actually go are counted too, by a second such instant,
//! `gone`: a call may go at `now` only if `gone - allowance <= now`,
//! where the allowance is the burst's tolerance or [`BUNCH`], whichever is
//! larger; a late waiter that may not goes a little later.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};

/// How fast tokens come back: `n` per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    interval: Duration,
}

impl Rate {
    /// `n` tokens per `period`.
    ///
    /// The interval between tokens is `period / n` rounded up to a whole
    /// nanosecond (never more than `n` tokens per `period`), and at least
    /// one nanosecond: a faster rate (or a zero `period`) means one token
    /// per nanosecond, never an unlimited bucket.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    pub fn new(n: u32, period: Duration) -> Rate {
        assert!(n > 0, "a rate needs at least one token per period");
        let interval = period.as_nanos().div_ceil(u128::from(n)).max(1);
        Rate {
            interval: nanos(interval),
        }
    }

    /// `n` tokens per second.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    pub fn per_second(n: u32) -> Rate {
        Rate::new(n, Duration::from_secs(1))
    }

    /// The time one token takes to come back.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// A token bucket: `burst` tokens, refilled at a [`Rate`]; shareable.
///
/// Clones share the tokens (an `Arc` around a `Mutex` held for a few
/// instructions), so one bucket can limit a whole server across workers.
#[derive(Clone)]
pub struct TokenBucket<C = SystemClock> {
    shared: Arc<Shared>,
    clock: C,
}

struct Shared {
    /// The instant nanosecond 0 stands for.
    base: Instant,
    /// One token's time, in nanoseconds.
    interval: u128,
    /// `(burst - 1) * interval`: how far `tat` may run ahead of now.
    tolerance: u128,
    /// How far `gone` may run ahead of now: `tolerance`, at least
    /// [`BUNCH`].
    allowance: u128,
    state: Mutex<State>,
}

/// The time within which calls may go together beyond the burst: the
/// timer's resolution, at which waiters whose slots fall within one tick
/// wake together. (Without it, a rate above one call per millisecond with a
/// small burst could not be met on a millisecond timer.)
const BUNCH: u128 = 1_000_000;

/// Given-up reservations remembered for reuse, at most; past this many
/// a given-up token is lost (fewer calls, never more).
const MAX_HOLES: usize = 4096;

struct State {
    /// The theoretical arrival time, in nanoseconds since `base`
    /// (u128: `tolerance` alone may exceed u64 nanoseconds).
    tat: u128,
    /// Reservations given up before they were due, by the `tat` their
    /// booking left (a slot's start is `hole - interval - tolerance`): the
    /// next waiting call takes the earliest that is not yet due.
    holes: BTreeSet<u128>,
    /// The theoretical arrival time of the calls that went (see the module
    /// docs), in nanoseconds since `base`.
    gone: u128,
}

/// What the bucket says to a caller.
/// What a reservation left in the bucket: its theoretical arrival time
/// right after the booking.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Booking(u128);

pub(crate) enum Decision {
    /// Go now.
    Go,
    /// A token is reserved for you; at this instant, ask
    /// [`TokenBucket::depart`] whether you may go. Hand the [`Booking`] to
    /// [`TokenBucket::refund`] if you give up before you go.
    GoAt(Instant, Booking),
    /// No token; one would be free after this long.
    Refused(Duration),
}

impl TokenBucket {
    /// A full bucket of `burst` tokens (at least one), on the system clock.
    pub fn new(rate: Rate, burst: u32) -> Self {
        TokenBucket::with_clock(rate, burst, SystemClock)
    }
}

impl<C: Clock> TokenBucket<C> {
    /// A full bucket of `burst` tokens (at least one), on `clock`.
    pub fn with_clock(rate: Rate, burst: u32, clock: C) -> Self {
        let interval = rate.interval.as_nanos();
        let tolerance = interval * u128::from(burst.max(1) - 1);
        TokenBucket {
            shared: Arc::new(Shared {
                base: clock.now(),
                interval,
                tolerance,
                allowance: tolerance.max(BUNCH),
                state: Mutex::new(State {
                    tat: 0,
                    holes: BTreeSet::new(),
                    gone: 0,
                }),
            }),
            clock,
        }
    }

    /// Takes a token if one is there now (and the calls that went just
    /// before, waiters polled late, say, leave room); `false` if not.
    pub fn try_take(&self) -> bool {
        matches!(self.decide(false), Decision::Go)
    }

    pub(crate) fn clock(&self) -> &C {
        &self.clock
    }

    /// Takes a token now, or (with `wait`) reserves the next free one.
    pub(crate) fn decide(&self, wait: bool) -> Decision {
        let shared = &*self.shared;
        let now = self.now();
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if wait && !state.holes.is_empty() {
            // A slot given up earlier and not yet due comes first (it is
            // before every slot the bucket would book now). One already
            // due is gone: taken late, it could crowd the slots after it.
            while let Some(&hole) = state.holes.first() {
                let go_at = shared.slot_start(hole);
                state.holes.pop_first();
                if go_at >= now {
                    return shared.reserved(&mut state, go_at, now, hole);
                }
            }
        }
        let start = state.tat.max(now);
        let go_at = start.saturating_sub(shared.tolerance);
        if !wait {
            // Going now needs a slot now and room among the calls gone.
            let go_at = go_at.max(shared.may_go_at(&state));
            if go_at > now {
                return Decision::Refused(nanos(go_at - now));
            }
        }
        let next = start.saturating_add(shared.interval);
        state.tat = next;
        shared.reserved(&mut state, go_at, now, next)
    }

    /// Counts a call that waited for its slot as gone, if the calls that
    /// went let it go now (see the module docs). Otherwise books it the
    /// next time they do and returns it: the call goes then, without
    /// asking again, so that late waiters go in the order they asked and
    /// a call booked later cannot overtake them. (A call dropped before
    /// that time leaves its booking unused: fewer calls, never more.)
    pub(crate) fn depart(&self) -> Result<(), Instant> {
        let shared = &*self.shared;
        let now = self.now();
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let at = shared.may_go_at(&state);
        shared.went(&mut state, at.max(now));
        if at <= now {
            Ok(())
        } else {
            Err(shared.instant(now, at))
        }
    }

    /// Now, in nanoseconds since the bucket's `base`.
    fn now(&self) -> u128 {
        self.clock
            .now()
            .saturating_duration_since(self.shared.base)
            .as_nanos()
    }

    /// Gives back a token reserved by a caller that gave up waiting. The
    /// last one booked moves the bucket back; one that others booked
    /// after is kept as a hole for the next waiting call to take (moving
    /// the bucket back would hand a later caller a start time that a
    /// waiting caller already holds: two calls in one slot). Past
    /// `MAX_HOLES` holes the token is lost, which errs towards fewer
    /// calls, never more.
    pub(crate) fn refund(&self, booking: Booking) {
        let Booking(booked) = booking;
        let shared = &*self.shared;
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.tat == booked {
            state.tat = booked.saturating_sub(shared.interval);
            // Holes now at the end are free time too.
            while let Some(&last) = state.holes.last()
                && last == state.tat
            {
                state.holes.pop_last();
                state.tat = last.saturating_sub(shared.interval);
            }
        } else if state.holes.len() < MAX_HOLES {
            state.holes.insert(booked);
        }
    }
}

impl Shared {
    /// When the slot whose booking left `tat` may start.
    fn slot_start(&self, tat: u128) -> u128 {
        tat.saturating_sub(self.interval)
            .saturating_sub(self.tolerance)
    }

    /// The earliest instant at which the calls gone let another go.
    fn may_go_at(&self, state: &State) -> u128 {
        state.gone.saturating_sub(self.allowance)
    }

    /// Counts a call that goes at `now`.
    fn went(&self, state: &mut State, now: u128) {
        state.gone = state.gone.max(now).saturating_add(self.interval);
    }

    /// The decision for a slot starting at `go_at` (nanoseconds), booked
    /// as `booking`: go now if it has started and the calls gone leave
    /// room; otherwise wait (for the slot, or for room), then
    /// [`depart`](TokenBucket::depart).
    fn reserved(&self, state: &mut State, go_at: u128, now: u128, booking: u128) -> Decision {
        let go_at = go_at.max(self.may_go_at(state));
        if go_at <= now {
            self.went(state, now);
            return Decision::Go;
        }
        Decision::GoAt(self.instant(now, go_at), Booking(booking))
    }

    /// The `Instant` of `at` (nanoseconds since `base`), `now` being now.
    fn instant(&self, now: u128, at: u128) -> Instant {
        // From now, not from `base`: a "never" that overflowed `base + at`
        // must still lie ahead of now (30 years on, or the end of
        // `Instant`'s range).
        let now_at = crate::clock::later(self.base, nanos(now));
        crate::clock::later(now_at, nanos(at.saturating_sub(now)))
    }
}

fn nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (n % 1_000_000_000) as u32)
}

impl<C: fmt::Debug> fmt::Debug for TokenBucket<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("interval_ns", &self.shared.interval)
            .field("tolerance_ns", &self.shared.tolerance)
            .field("clock", &self.clock)
            .finish()
    }
}
