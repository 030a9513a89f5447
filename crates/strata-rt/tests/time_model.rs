//! Randomized timer tests at the public API: many sleeps, timeouts and
//! intervals with random durations (0..50 ms), random resets and
//! cancellations, on one and two workers, off the workers (in `block_on`)
//! and on a thread outside any runtime.
//!
//! The checks are one-sided: nothing fires before its deadline, a
//! cancelled timer never wakes its waker after it is dropped, every other
//! one completes. Lateness is never asserted; the only upper bound is the
//! hang guard of `support::deadline`.

// Sleeps move between threads as the outputs of tasks and `block_on`.
#![allow(clippy::async_yields_async)]

mod support;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use strata_rt::Handle;
use strata_rt::time::{MissedTickBehavior, Sleep, interval_at, sleep, sleep_until, timeout};
use support::{Rng, deadline, plain_block_on, rounds, rt};

/// A random duration in 0..50 ms, in whole microseconds (so that deadlines
/// fall between milliseconds too).
fn dur(rng: &mut Rng) -> Duration {
    Duration::from_micros(rng.below(50_000))
}

/// A waker that records when it was woken, to check a timer's wake-ups
/// against its deadline and its cancellation.
#[derive(Default)]
struct Probe {
    wakes: Mutex<Vec<Instant>>,
}

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.lock().unwrap().push(Instant::now());
    }
}

/// Polls `s` once with `probe`'s waker; `true` if it completed. Checks
/// that neither the poll nor `is_elapsed` says it completed early.
fn poll_with(s: &mut Sleep, probe: &Arc<Probe>) -> bool {
    let w = Waker::from(probe.clone());
    let at = s.deadline();
    let done = Pin::new(&mut *s)
        .poll(&mut Context::from_waker(&w))
        .is_ready();
    let now = Instant::now();
    assert!(!done || now >= at, "completed {:?} early", at - now);
    assert!(
        !s.is_elapsed() || now >= at,
        "is_elapsed {:?} early",
        at - now
    );
    done
}

/// Checks the wake-ups of a sleep dropped at `dropped_at` (just after its
/// drop returned), with `probe` its last waker: none before its deadline
/// `at`, and none at all if it was dropped before `at` (a sleep dropped
/// after its deadline may have fired first, racing with the drop).
fn check_cancelled(probe: &Probe, at: Instant, dropped_at: Instant, what: &str) {
    let wakes = probe.wakes.lock().unwrap().clone();
    for &w in &wakes {
        assert!(w >= at, "{what}: woken {:?} before its deadline", at - w);
    }
    assert!(
        dropped_at >= at || wakes.is_empty(),
        "{what}: dropped {:?} before its deadline, woken {} times",
        at - dropped_at,
        wakes.len()
    );
}

/// Awaits `s` and checks it completed no earlier than its deadline.
async fn await_not_early(s: &mut Sleep, what: &str) {
    let d = s.deadline();
    poll_fn(|cx| Pin::new(&mut *s).poll(cx)).await;
    let now = Instant::now();
    assert!(now >= d, "{what}: completed {:?} early", d - now);
    assert!(s.is_elapsed(), "{what}: completed but not is_elapsed");
}

/// One random timer scenario; the seed decides everything. Runs in any
/// context where timers may be polled (a task, `block_on`).
async fn scenario(seed: u64) {
    let mut rng = Rng::new(seed);
    match rng.below(10) {
        // A plain sleep.
        0 => {
            let d = dur(&mut rng);
            let mut s = sleep(d);
            await_not_early(&mut s, &format!("sleep({d:?}) #{seed}")).await;
        }
        // sleep_until, the deadline possibly in the past.
        1 => {
            let d = dur(&mut rng);
            let at = if rng.below(4) == 0 {
                Instant::now() - d
            } else {
                Instant::now() + d
            };
            let mut s = sleep_until(at);
            await_not_early(&mut s, &format!("sleep_until #{seed}")).await;
        }
        // Resets: earlier, later, past, after completion; then await.
        2 => {
            let mut s = sleep(dur(&mut rng));
            let probe = Arc::new(Probe::default());
            poll_with(&mut s, &probe);
            for _ in 0..1 + rng.below(4) {
                if rng.below(2) == 0 {
                    sleep(dur(&mut rng) / 4).await;
                }
                if rng.below(3) == 0 {
                    // Complete it first: reset after completion.
                    await_not_early(&mut s, &format!("reset chain #{seed}")).await;
                }
                let at = if rng.below(5) == 0 {
                    Instant::now() - dur(&mut rng)
                } else {
                    Instant::now() + dur(&mut rng)
                };
                s.reset(at);
                if rng.below(2) == 0 {
                    poll_with(&mut s, &probe);
                }
            }
            await_not_early(&mut s, &format!("reset #{seed}")).await;
            // The probe was the waker of some registrations: none woke it
            // before the deadline it was registered for; the final await
            // replaced it, so anything after that is stale but harmless.
        }
        // Cancelled: polled with a probe, dropped before (or after) its
        // deadline; no wake-up before the deadline, none after the drop.
        3 => {
            let d = dur(&mut rng);
            let mut s = sleep(d);
            let at = s.deadline();
            let probe = Arc::new(Probe::default());
            let done = poll_with(&mut s, &probe);
            let wait = dur(&mut rng) / 2;
            if !wait.is_zero() {
                sleep(wait).await;
            }
            drop(s);
            let dropped_at = Instant::now();
            // Past the deadline, then a little more: a leftover wake-up
            // would have come by then.
            sleep_until(at.max(dropped_at) + Duration::from_millis(5)).await;
            assert!(
                !done || probe.wakes.lock().unwrap().is_empty(),
                "#{seed}: woken after completing"
            );
            check_cancelled(&probe, at, dropped_at, &format!("cancelled #{seed}"));
        }
        // timeout around a sleep: whichever wins, not early.
        4 => {
            let (d1, d2) = (dur(&mut rng), dur(&mut rng));
            let start = Instant::now();
            let r = timeout(d1, sleep(d2)).await;
            let el = start.elapsed();
            match r {
                Ok(()) => assert!(el >= d2, "#{seed}: inner sleep({d2:?}) done after {el:?}"),
                Err(_) => assert!(el >= d1, "#{seed}: timeout({d1:?}) elapsed after {el:?}"),
            }
        }
        // Interval: ticks due on or after the grid, never returned early.
        5 => {
            let period = Duration::from_micros(500 + rng.below(15_000));
            let start = Instant::now() + dur(&mut rng) / 4;
            let mut iv = interval_at(start, period);
            iv.set_missed_tick_behavior(match rng.below(3) {
                0 => MissedTickBehavior::Burst,
                1 => MissedTickBehavior::Delay,
                _ => MissedTickBehavior::Skip,
            });
            let mut last: Option<Instant> = None;
            for _ in 0..1 + rng.below(5) {
                let due = iv.tick().await;
                let now = Instant::now();
                assert!(
                    now >= due,
                    "#{seed}: tick due {:?} later returned",
                    due - now
                );
                if let Some(l) = last {
                    assert!(due >= l + period, "#{seed}: ticks {:?} apart", due - l);
                } else {
                    assert_eq!(due, start, "#{seed}: first tick");
                }
                last = Some(due);
                if rng.below(3) == 0 {
                    // Busy for a while: missed ticks.
                    std::thread::sleep(dur(&mut rng) / 10);
                }
            }
        }
        // A sleep bounced between workers, reset or polled on each.
        7 => {
            let mut s = sleep(dur(&mut rng));
            let probe = Arc::new(Probe::default());
            poll_with(&mut s, &probe);
            let workers = Handle::current().worker_count() as u64;
            for _ in 0..1 + rng.below(4) {
                let (w, reset, poll, to) = (
                    rng.below(workers) as usize,
                    rng.below(2) == 0,
                    rng.below(2) == 0,
                    dur(&mut rng),
                );
                let probe = probe.clone();
                s = Handle::current()
                    .spawn_on(w, async move {
                        if reset {
                            s.reset(Instant::now() + to);
                        }
                        if poll {
                            poll_with(&mut s, &probe);
                        }
                        s
                    })
                    .await
                    .unwrap();
            }
            await_not_early(&mut s, &format!("bounced #{seed}")).await;
        }
        // Many sleeps sharing a few deadlines (one wheel slot's list), a
        // random half of them dropped; the rest complete, none early.
        8 => {
            let ats: Vec<Instant> = (0..3).map(|_| Instant::now() + dur(&mut rng)).collect();
            let all: Vec<(Sleep, Arc<Probe>, bool)> = (0..20)
                .map(|_| {
                    let mut s = sleep_until(ats[rng.below(3) as usize]);
                    let probe = Arc::new(Probe::default());
                    poll_with(&mut s, &probe);
                    (s, probe, rng.below(2) == 0)
                })
                .collect();
            let (gone, mut all): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| e.2);
            let dropped: Vec<_> = gone
                .into_iter()
                .map(|(s, probe, _)| {
                    let at = s.deadline();
                    drop(s);
                    (at, probe, Instant::now())
                })
                .collect();
            for (s, _, _) in &mut all {
                await_not_early(s, &format!("shared slot #{seed}")).await;
            }
            let last = ats.iter().max().unwrap();
            sleep_until(*last + Duration::from_millis(5)).await;
            for (at, probe, dropped_at) in dropped {
                check_cancelled(&probe, at, dropped_at, &format!("shared slot #{seed}"));
            }
        }
        // Interval ticks, some abandoned after one poll (cancel-safe: no
        // tick lost), the schedule restarted by `reset` now and then: Burst
        // returns exactly the grid, Skip points of the grid, Delay ticks at
        // least a period apart; none returned before it is due.
        9 => {
            let period = Duration::from_micros(200 + rng.below(8_000));
            let mut base = Instant::now() + dur(&mut rng) / 8;
            let mut iv = interval_at(base, period);
            let missed = match rng.below(3) {
                0 => MissedTickBehavior::Burst,
                1 => MissedTickBehavior::Delay,
                _ => MissedTickBehavior::Skip,
            };
            iv.set_missed_tick_behavior(missed);
            let probe = Arc::new(Probe::default());
            let mut n = 0u32; // ticks taken since `base`
            let mut last: Option<Instant> = None;
            for _ in 0..2 + rng.below(8) {
                let due = if rng.below(3) == 0 {
                    // One poll of a tick, then dropped.
                    let w = Waker::from(probe.clone());
                    let mut tick = Box::pin(iv.tick());
                    match tick.as_mut().poll(&mut Context::from_waker(&w)) {
                        Poll::Ready(due) => due,
                        Poll::Pending => continue,
                    }
                } else if rng.below(6) == 0 {
                    let before = Instant::now();
                    iv.reset();
                    // The next tick is one period from the reset; the
                    // grid starts over there.
                    let due = iv.tick().await;
                    assert!(due >= before + period, "#{seed}: tick after reset too soon");
                    assert!(Instant::now() >= due, "#{seed}: tick after reset early");
                    base = due;
                    n = 1;
                    last = Some(due);
                    continue;
                } else {
                    iv.tick().await
                };
                let now = Instant::now();
                assert!(
                    now >= due,
                    "#{seed}: tick due {:?} later returned",
                    due - now
                );
                match missed {
                    MissedTickBehavior::Burst => {
                        assert_eq!(due, base + period * n, "#{seed}: burst tick {n}");
                    }
                    MissedTickBehavior::Skip => {
                        let off = (due - base).as_nanos();
                        assert_eq!(off % period.as_nanos(), 0, "#{seed}: skip off the grid");
                        assert!(off >= (period * n).as_nanos(), "#{seed}: skip went back");
                        n = (off / period.as_nanos()) as u32;
                    }
                    _ => {}
                }
                if let Some(l) = last {
                    assert!(due >= l + period, "#{seed}: ticks {:?} apart", due - l);
                }
                n += 1;
                last = Some(due);
                if rng.below(3) == 0 {
                    std::thread::sleep(period * rng.below(3) as u32);
                }
            }
        }
        // A sleep moved: polled here, then awaited or dropped in a task
        // on a random worker.
        _ => {
            let d = dur(&mut rng);
            let mut s = sleep(d);
            let probe = Arc::new(Probe::default());
            poll_with(&mut s, &probe);
            let reset = rng.below(3) == 0;
            let keep = rng.below(3) != 0;
            let extra = dur(&mut rng);
            let w = rng.below(Handle::current().worker_count() as u64) as usize;
            let h = Handle::current().spawn_on(w, async move {
                if reset {
                    s.reset(Instant::now() + extra);
                }
                if keep {
                    await_not_early(&mut s, &format!("moved #{seed}")).await;
                }
            });
            h.await.unwrap();
        }
    }
}

/// An offset for every seed, from STRATA_TIME_SEED (0 if unset), to run
/// other sequences; a failure names its scenario's seed (`#seed`), the
/// offset included.
fn seed_base() -> u64 {
    std::env::var("STRATA_TIME_SEED").map_or(0, |s| s.parse().expect("STRATA_TIME_SEED: a u64"))
}

/// Runs `n` scenarios from `base` as tasks on a runtime of `workers`.
fn on_workers(workers: usize, base: u64, n: u64) {
    let base = base + seed_base();
    deadline(60, move || {
        let rt = rt(workers);
        rt.block_on(async move {
            let hs: Vec<_> = (base..base + n)
                .map(|seed| Handle::current().spawn_on(seed as usize % workers, scenario(seed)))
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        });
    });
}

#[test]
fn random_timers_on_one_worker() {
    on_workers(1, 0, rounds(300));
}

#[test]
fn random_timers_on_two_workers() {
    on_workers(2, 10_000, rounds(300));
}

/// The same scenarios off the workers, all polled by `block_on`'s thread:
/// registrations, resets and cancellations go through the owners' queues.
#[test]
fn random_timers_off_the_workers() {
    for workers in [1, 2] {
        deadline(60, move || {
            let rt = rt(workers);
            rt.block_on(async move {
                let mut all: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = (0..rounds(150))
                    .map(|i| {
                        Box::pin(scenario(seed_base() + 20_000 + 1000 * workers as u64 + i)) as _
                    })
                    .collect();
                // A hand-made join: poll every unfinished one on each wake.
                poll_fn(|cx| {
                    all.retain_mut(|f| f.as_mut().poll(cx).is_pending());
                    if all.is_empty() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            });
        });
    }
}

/// Sleeps registered on a worker, then reset, awaited or dropped on a
/// thread outside any runtime (the reset registers with the old owner).
#[test]
fn random_resets_outside_any_runtime() {
    deadline(60, || {
        let rt = rt(2);
        let mut rng = Rng::new(77 + seed_base());
        for round in 0..rounds(60) {
            let d = dur(&mut rng);
            let mut s = rt.block_on(async move {
                let mut s = sleep(d);
                poll_fn(|cx| {
                    let _ = Pin::new(&mut s).poll(cx);
                    Poll::Ready(())
                })
                .await;
                s
            });
            let (reset, keep, to) = (rng.below(2) == 0, rng.below(4) != 0, dur(&mut rng));
            let probe = Arc::new(Probe::default());
            let at = if reset {
                let at = Instant::now() + to;
                s.reset(at);
                at
            } else {
                s.deadline()
            };
            if keep {
                plain_block_on(async { await_not_early(&mut s, &format!("plain #{round}")).await });
            } else {
                poll_with(&mut s, &probe);
                drop(s);
                let dropped_at = Instant::now();
                std::thread::sleep(
                    at.saturating_duration_since(Instant::now()) + Duration::from_millis(5),
                );
                check_cancelled(&probe, at, dropped_at, &format!("plain #{round}"));
            }
        }
    });
}

/// Resets racing with the owner's firing: `block_on`'s thread moves
/// sleeps owned by the workers back and forth around their deadlines
/// (later: postponed in place; earlier: re-registered), busy-waiting so
/// that the moves land while the owner fires. None completes early.
#[test]
fn resets_racing_with_the_owner_off_the_workers() {
    deadline(60, || {
        let rt = rt(2);
        rt.block_on(async {
            let mut rng = Rng::new(4242 + seed_base());
            for round in 0..rounds(300) {
                let mut s = sleep(Duration::from_micros(rng.below(3_000)));
                let probe = Arc::new(Probe::default());
                poll_with(&mut s, &probe);
                for _ in 0..rng.below(6) {
                    let spin = Instant::now() + Duration::from_micros(rng.below(1_500));
                    while Instant::now() < spin {
                        std::hint::spin_loop();
                    }
                    let d = s.deadline();
                    let step = Duration::from_micros(rng.below(2_000));
                    s.reset(if rng.below(4) == 0 {
                        d.checked_sub(step).unwrap_or(d)
                    } else {
                        d + step
                    });
                    if rng.below(2) == 0 {
                        poll_with(&mut s, &probe);
                    }
                }
                await_not_early(&mut s, &format!("racing reset #{round}")).await;
            }
        });
    });
}

/// Sleeps registered with a runtime (from tasks on its workers and from
/// `block_on`, some reset, some already fired) outlive it: awaited in a
/// second runtime, each completes, none early; dropped, none panics.
#[test]
fn random_sleeps_outlive_their_runtime() {
    deadline(60, || {
        let mut rng = Rng::new(99 + seed_base());
        for round in 0..rounds(20) {
            let workers = 1 + rng.below(2) as usize;
            let first = rt(workers);
            let seeds: Vec<u64> = (0..20).map(|_| rng.next()).collect();
            let make = |seed: u64| {
                let mut rng = Rng::new(seed);
                let mut s = sleep(dur(&mut rng));
                let probe = Arc::new(Probe::default());
                poll_with(&mut s, &probe);
                if rng.below(3) == 0 {
                    let to = Instant::now() + dur(&mut rng);
                    s.reset(to);
                    poll_with(&mut s, &probe);
                }
                s
            };
            let mut sleeps: Vec<Sleep> = first.block_on(async {
                let mut all: Vec<Sleep> = seeds[..10].iter().map(|&seed| make(seed)).collect();
                for (i, &seed) in seeds[10..].iter().enumerate() {
                    let h = Handle::current().spawn_on(i % workers, async move { make(seed) });
                    all.push(h.await.unwrap());
                }
                // Let some fire, or not.
                sleep(dur(&mut Rng::new(round)) / 2).await;
                all
            });
            drop(first);
            let second = rt(1);
            let keep = rng.below(4) != 0;
            second.block_on(async {
                for (i, s) in sleeps.iter_mut().enumerate() {
                    if keep || i % 2 == 0 {
                        await_not_early(s, &format!("outlived #{round}/{i}")).await;
                    }
                }
            });
            drop(sleeps);
        }
    });
}
