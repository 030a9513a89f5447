//! Wheel tests against an injected clock: exact and instant.

use std::ptr::NonNull;

use super::{LEVELS, Linked, Links, RANGE, level_for};

/// A test node: a value and its links.
struct Node {
    value: u64,
    links: Links<Node>,
}

// SAFETY: `links` always returns the node's own field.
unsafe impl Linked for Node {
    fn links(&self) -> &Links<Node> {
        &self.links
    }
}

/// A wheel plus the nodes it may link, which it keeps alive (and frees on
/// drop), with a value-based API for the tests.
struct Wheel {
    wheel: super::Wheel<Node>,
    nodes: Vec<NonNull<Node>>,
}

type Key = NonNull<Node>;

impl Wheel {
    fn new(now: u64) -> Self {
        Wheel {
            wheel: super::Wheel::new(now),
            nodes: Vec::new(),
        }
    }

    /// A fresh node holding `value`, kept alive until the wheel drops.
    fn node(&mut self, value: u64) -> Key {
        let node = Box::new(Node {
            value,
            links: Links::new(),
        });
        let key = NonNull::from(Box::leak(node));
        self.nodes.push(key);
        key
    }

    /// Inserts a new node; gives the value back if already due.
    fn insert(&mut self, when: u64, value: u64) -> Result<Key, u64> {
        let key = self.node(value);
        // SAFETY: a fresh node, alive until `self` drops.
        if unsafe { self.wheel.insert(when, key) } {
            Ok(key)
        } else {
            Err(value)
        }
    }

    /// Inserts an existing, unlinked node again.
    fn reinsert(&mut self, when: u64, key: Key) -> bool {
        // SAFETY: one of ours, alive until `self` drops.
        unsafe { self.wheel.insert(when, key) }
    }

    fn remove(&mut self, key: Key) -> Option<u64> {
        // SAFETY: one of ours: alive, and linked only in this wheel.
        unsafe { self.wheel.remove(key) }.then(|| value(key))
    }

    fn advance(&mut self, now: u64, mut f: impl FnMut(u64)) {
        self.wheel.advance(now, |k| {
            // SAFETY: test nodes live until their wheel drops.
            let node = unsafe { k.as_ref() };
            assert!(!node.links.is_linked());
            f(value(k));
        });
    }

    fn drain(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        self.wheel.drain(|k| out.push(value(k)));
        out
    }

    fn elapsed(&self) -> u64 {
        self.wheel.elapsed()
    }

    fn len(&self) -> usize {
        self.wheel.len()
    }

    fn is_empty(&self) -> bool {
        self.wheel.is_empty()
    }

    fn next_wakeup(&self) -> Option<u64> {
        self.wheel.next_wakeup()
    }
}

fn value(key: Key) -> u64 {
    // SAFETY: test nodes live until their wheel drops.
    unsafe { key.as_ref() }.value
}

impl Drop for Wheel {
    fn drop(&mut self) {
        for key in self.nodes.drain(..) {
            // SAFETY: leaked from a box in `node`, freed once, here.
            drop(unsafe { Box::from_raw(key.as_ptr()) });
        }
    }
}

/// Advances to `now` and returns what fired.
fn fire(w: &mut Wheel, now: u64) -> Vec<u64> {
    let mut out = Vec::new();
    w.advance(now, |v| out.push(v));
    out
}

/// Advances one tick at a time from the current tick to `to`, checking that
/// every value fires exactly at its deadline. Values are their deadlines.
fn step_to(w: &mut Wheel, to: u64) -> usize {
    let mut fired = 0;
    let mut now = w.elapsed();
    while now < to {
        now += 1;
        for v in fire(w, now) {
            assert_eq!(v, now, "fired at {now}, deadline {v}");
            fired += 1;
        }
    }
    fired
}

#[test]
fn levels_follow_the_highest_differing_digit() {
    assert_eq!(level_for(0, 1), 0);
    assert_eq!(level_for(0, 63), 0);
    assert_eq!(level_for(0, 64), 1);
    assert_eq!(level_for(0, 4095), 1);
    assert_eq!(level_for(0, 4096), 2);
    assert_eq!(level_for(100, 101), 0);
    // 60 -> 70 crosses a level-0 rotation: level 1.
    assert_eq!(level_for(60, 70), 1);
    assert_eq!(level_for(0, RANGE - 1), LEVELS - 1);
    // Beyond the range: clamped to the top level.
    assert_eq!(level_for(0, RANGE * 10), LEVELS - 1);
    assert_eq!(level_for(5, u64::MAX / 2), LEVELS - 1);
}

#[test]
fn fires_at_deadline_not_before() {
    let mut w = Wheel::new(0);
    w.insert(5, 5).unwrap();
    assert!(fire(&mut w, 4).is_empty());
    assert_eq!(fire(&mut w, 5), vec![5]);
    assert!(w.is_empty());
    assert_eq!(w.next_wakeup(), None);
}

#[test]
fn past_and_present_deadlines_are_refused() {
    let mut w = Wheel::new(100);
    assert_eq!(w.insert(99, 1), Err(1));
    assert_eq!(w.insert(100, 2), Err(2));
    assert!(w.insert(101, 3).is_ok());
    fire(&mut w, 200);
    assert_eq!(w.insert(150, 4), Err(4));
}

#[test]
#[cfg_attr(miri, ignore = "300,000 single-tick steps: hours when interpreted")]
fn cascades_across_every_level_exactly() {
    // One value per level boundary, plus odd offsets; step tick by tick
    // through the first levels and check each fires at its own tick.
    let mut w = Wheel::new(0);
    let deadlines = [
        1, 63, 64, 65, 127, 128, 4095, 4096, 4097, 70_000, 262_143, 262_144,
    ];
    for &d in &deadlines {
        w.insert(d, d).unwrap();
    }
    assert_eq!(step_to(&mut w, 300_000), deadlines.len());
    assert!(w.is_empty());
}

#[test]
fn big_jumps_fire_everything_due_in_order() {
    let mut w = Wheel::new(7);
    let mut want = Vec::new();
    for i in 0..2000u64 {
        let d = 8 + (i * 7919) % 1_000_000;
        w.insert(d, d).unwrap();
        want.push(d);
    }
    want.sort_unstable();
    let mut got = Vec::new();
    // Advance in uneven jumps, as a busy worker would.
    let mut now = 7;
    while !w.is_empty() {
        now += 1 + now % 997;
        w.advance(now, |v| {
            assert!(v <= now, "fired early: {v} at {now}");
            got.push(v);
        });
    }
    assert_eq!(got, want);
}

#[test]
fn far_deadlines_days_and_beyond_the_range() {
    const DAY: u64 = 24 * 3600 * 1000;
    let mut w = Wheel::new(12_345);
    let three_days = 12_345 + 3 * DAY;
    let two_years = 12_345 + 2 * 365 * DAY; // beyond the 795-day range
    w.insert(three_days, three_days).unwrap();
    w.insert(two_years, two_years).unwrap();
    // The next wake-up is never after the earliest deadline.
    assert!(w.next_wakeup().unwrap() <= three_days);
    assert!(fire(&mut w, three_days - 1).is_empty());
    assert_eq!(fire(&mut w, three_days), vec![three_days]);
    // Walk towards the far one by following the wheel's own wake-ups, the
    // way a worker does; it must take only a handful of steps.
    let mut steps = 0;
    let mut fired = Vec::new();
    while let Some(t) = w.next_wakeup() {
        assert!(t <= two_years);
        w.advance(t, |v| fired.push((v, t)));
        steps += 1;
        assert!(steps < 50, "too many wake-ups for one far timer");
    }
    assert_eq!(fired, vec![(two_years, two_years)]);
}

#[test]
fn cancel_is_exact_and_frees_the_slot() {
    let mut w = Wheel::new(0);
    let a = w.insert(10, 10).unwrap();
    let b = w.insert(10, 11).unwrap();
    let c = w.insert(10, 12).unwrap();
    let far = w.insert(1_000_000, 13).unwrap();
    // Middle, head and tail of one slot's list, and a lone upper-level one.
    assert_eq!(w.remove(b), Some(11));
    assert_eq!(w.remove(c), Some(12));
    assert_eq!(w.remove(far), Some(13));
    assert_eq!(w.remove(far), None);
    assert_eq!(w.len(), 1);
    assert_eq!(fire(&mut w, 10), vec![10]);
    assert_eq!(w.remove(a), None);
    assert!(w.is_empty());
    assert_eq!(w.next_wakeup(), None);
}

#[test]
fn a_million_inserts_and_cancels_reuse_the_same_nodes() {
    let mut w = Wheel::new(0);
    // A thousand nodes, each linked and unlinked a thousand times (a
    // twentieth of that under Miri, which interprets every step).
    let (nodes, rounds) = if cfg!(miri) { (50, 50) } else { (1000, 1000) };
    let keys: Vec<Key> = (0..nodes).map(|i| w.node(i)).collect();
    for round in 0..rounds {
        for (i, &k) in keys.iter().enumerate() {
            let when = w.elapsed() + 1 + (round * 31 + i as u64 * 977) % 5_000_000;
            assert!(w.reinsert(when, k));
            // SAFETY: one of ours, alive.
            assert_eq!(unsafe { k.as_ref() }.links.when(), when);
        }
        assert_eq!(w.len(), keys.len());
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(w.remove(k), Some(i as u64));
            assert_eq!(w.remove(k), None);
        }
        if round % (rounds / 10) == 0 {
            fire(&mut w, round * 10);
        }
    }
    assert!(w.is_empty());
    assert_eq!(w.next_wakeup(), None);
}

#[test]
fn next_wakeup_leads_to_every_deadline() {
    // Following only next_wakeup (as the worker's poll timeout does) must
    // reach each deadline exactly, without stepping past it.
    let mut w = Wheel::new(3);
    let ds = [4, 70, 4100, 300_000, 20_000_000];
    for &d in &ds {
        w.insert(d, d).unwrap();
    }
    let mut got = Vec::new();
    while let Some(t) = w.next_wakeup() {
        w.advance(t, |v| got.push((v, t)));
    }
    let want: Vec<_> = ds.iter().map(|&d| (d, d)).collect();
    assert_eq!(got, want);
}

#[test]
fn drain_empties_everything() {
    let mut w = Wheel::new(0);
    for d in [5, 500, 50_000, 5_000_000] {
        w.insert(d, d).unwrap();
    }
    let mut all = w.drain();
    all.sort_unstable();
    assert_eq!(all, vec![5, 500, 50_000, 5_000_000]);
    assert!(w.is_empty());
    assert_eq!(w.next_wakeup(), None);
    assert!(fire(&mut w, 10_000_000).is_empty());
}

/// A `fire` that unwinds must not leave nodes of the slot it was emptying
/// linked to nodes it already handed out: such a node could never come
/// back, and removing it would write through its stale links (found by an
/// audit: `remove` then cut a list the handed-out node had joined since).
#[test]
fn a_panicking_fire_leaves_no_stale_links() {
    let mut w = Wheel::new(0);
    let a0 = w.insert(5, 10).unwrap();
    let a1 = w.insert(5, 11).unwrap();
    let a = w.insert(5, 1).unwrap();
    let b = w.insert(5, 2).unwrap(); // the slot's head, handed out first
    w.insert(700, 3).unwrap();
    let fired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        w.advance(10, |v| panic!("fire panics on {v}"))
    }));
    assert!(fired.is_err());
    // The slot's other nodes, not handed out, were unlinked and forgotten;
    // the rest is intact.
    for k in [a, a0, a1] {
        // SAFETY: test nodes live until their wheel drops.
        assert!(!unsafe { k.as_ref() }.links.is_linked());
    }
    assert_eq!(w.len(), 1);
    // `b` is free to join a list again; removing `a` touches nothing.
    assert!(w.reinsert(20, b));
    assert_eq!(w.remove(a), None);
    assert_eq!(fire(&mut w, 1_000), vec![2, 3]);
    assert!(w.is_empty());
}

/// A `drain` callback that unwinds leaves the wheel holding exactly the
/// nodes it had not handed out yet.
#[test]
fn a_panicking_drain_keeps_the_rest() {
    let mut w = Wheel::new(0);
    for d in [5, 6, 500, 50_000] {
        w.insert(d, d).unwrap();
    }
    let mut seen = Vec::new();
    let drained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        w.wheel.drain(|k| {
            seen.push(value(k));
            if seen.len() == 2 {
                panic!("drain callback panics");
            }
        })
    }));
    assert!(drained.is_err());
    assert_eq!(w.len(), 2);
    let mut rest = w.drain();
    rest.extend(seen);
    rest.sort_unstable();
    assert_eq!(rest, vec![5, 6, 500, 50_000]);
    assert!(w.is_empty());
}

/// A deadline beyond the range clamped into the top level's current slot
/// (where it waits a whole rotation) does not hide an earlier timer in
/// another top-level slot: that slot is scanned last. It used to be
/// scanned first, and a 1-second timer across a top-level boundary waited
/// for the far one, about 795 days.
#[test]
fn a_far_timer_in_the_current_top_slot_does_not_hide_nearer_top_level_ones() {
    // Half a second before a top-level (2^30 ms) slot boundary.
    let start = (1 << 30) - 500;
    let mut w = Wheel::new(start);
    let far = start + RANGE + 100;
    let soon = start + 1_000;
    w.insert(far, far).unwrap();
    w.insert(soon, soon).unwrap();
    let next = w.next_wakeup().unwrap();
    assert!(next <= soon, "next wake-up {next}, {} ms late", next - soon);
    assert_eq!(fire(&mut w, soon), vec![soon]);
    // The far one still fires at its own deadline, not before.
    assert!(fire(&mut w, far - 1).is_empty());
    assert_eq!(fire(&mut w, far), vec![far]);
}

/// The top level is scanned from the slot after the current one round to
/// the current one: a deadline beyond the range clamped into a top slot
/// *before* the current one (one rotation ahead) comes after a nearer
/// timer in a later top slot, not before it.
#[test]
fn a_far_timer_in_an_earlier_top_slot_does_not_hide_a_later_top_level_one() {
    const TOP: u32 = 30; // the top level's digit starts at bit 6 * 5
    // In top slot 5.
    let start = (5 << TOP) + 1_000;
    let mut w = Wheel::new(start);
    // Beyond the range, clamped into top slot 2: a rotation ahead.
    let far = RANGE + (2 << TOP) + 7;
    // Top slot 7, two top slots ahead.
    let soon = (7 << TOP) + 3;
    w.insert(far, far).unwrap();
    w.insert(soon, soon).unwrap();
    let next = w.next_wakeup().unwrap();
    assert!(next <= soon, "next wake-up {next}, {} ms late", next - soon);
    let mut got = Vec::new();
    while let Some(t) = w.next_wakeup() {
        w.advance(t, |v| got.push((v, t)));
    }
    assert_eq!(got, vec![(soon, soon), (far, far)]);
}

// ---------------------------------------------------------------------------
// Model-based randomized test: the wheel against a plain map.

/// A xorshift64* generator: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A tick near `base` chosen to hit the wheel's edges: the next tick, a few
/// ticks on, a level boundary `64^k` (absolute, or relative to `base`) give
/// or take one, the top level's range and beyond, and the past and present.
fn interesting_tick(rng: &mut Rng, base: u64) -> u64 {
    let k = rng.below(LEVELS as u64 + 1) as u32; // 64^6 = RANGE
    let span = 1u64 << (6 * k);
    // -1, 0 or +1, saturating: ticks near u64::MAX are tested too.
    let j = rng.below(3) as i64 - 1;
    let jitter = |t: u64| t.saturating_add_signed(j);
    let b = |n: u64| base.saturating_add(n);
    match rng.below(12) {
        0 => base,
        1 => base.saturating_sub(rng.below(100)),
        2 => b(1),
        3 => b(1 + rng.below(70)),
        // An absolute boundary of level k at or after base.
        4 => {
            let next = (base / span)
                .saturating_add(1 + rng.below(3))
                .saturating_mul(span);
            jitter(next)
        }
        // A boundary relative to base.
        5 => jitter(b(span * (1 + rng.below(3)))),
        6 => b(1 + rng.below(span.max(2))),
        // Beyond the range: one to a few rotations away.
        7 => jitter(b(RANGE * (1 + rng.below(3)))).saturating_add(rng.below(1 << 31)),
        // Just across the next absolute top-level rotation.
        8 => jitter((base / RANGE + 1).saturating_mul(RANGE)).saturating_add(rng.below(3)),
        9 => b(rng.below(1 << 20)),
        // Far beyond: hundreds of rotations, and the largest ticks.
        10 => b(RANGE * (10 + rng.below(200)) + rng.below(RANGE)),
        _ => u64::MAX - rng.below(8),
    }
}

/// A starting tick: zero, near a level boundary, or near a top-level
/// rotation of the range, so that sequences cross them.
fn interesting_start(rng: &mut Rng) -> u64 {
    let k = rng.below(LEVELS as u64 + 1) as u32;
    let span = 1u64 << (6 * k);
    match rng.below(5) {
        0 => 0,
        1 => rng.below(1 << 40),
        2 => ((1 + rng.below(5)) * span).saturating_sub(1 + rng.below(3)),
        3 => (1 + rng.below(5)) * RANGE - rng.below(100),
        // Near the end of time: a few rotations before u64::MAX.
        4 if rng.below(2) == 0 => u64::MAX - RANGE * rng.below(4) - rng.below(RANGE),
        _ => rng.below(100),
    }
}

/// Does one random sequence; panics (with what went wrong) on a
/// disagreement between the wheel and the model.
fn model_sequence(seed: u64, ops: usize) {
    use std::collections::BTreeMap;

    let mut rng = Rng::new(seed);
    let start = interesting_start(&mut rng);
    let mut w = Wheel::new(start);
    // Node index (= value) -> its key; model: pending index -> deadline.
    let mut keys: Vec<Key> = Vec::new();
    let mut pending: BTreeMap<u64, u64> = BTreeMap::new();
    let mut elapsed = start;
    // Never advance past this: a deadline near u64::MAX takes 2^28
    // rotations to reach, and stepping to it would not end.
    // (Near u64::MAX, every tick is within a few rotations: no limit.)
    let limit = if start > u64::MAX / 2 {
        u64::MAX
    } else {
        u64::MAX / 4
    };
    let check = |w: &Wheel, pending: &BTreeMap<u64, u64>, elapsed: u64, op: &str| {
        assert_eq!(w.elapsed(), elapsed, "elapsed after {op}");
        assert_eq!(w.len(), pending.len(), "len after {op}");
        assert_eq!(w.is_empty(), pending.is_empty(), "is_empty after {op}");
        let min = pending.values().copied().min();
        match (w.next_wakeup(), min) {
            (None, None) => {}
            (Some(t), Some(m)) => {
                assert!(
                    t <= m,
                    "next_wakeup {t} after the earliest deadline {m} ({op})"
                );
                assert!(
                    t > elapsed,
                    "next_wakeup {t} not after elapsed {elapsed} ({op})"
                );
            }
            (t, m) => panic!("next_wakeup {t:?} with earliest deadline {m:?} ({op})"),
        }
    };
    for _ in 0..ops {
        let op = rng.below(100);
        let desc;
        match op {
            // Insert a fresh node.
            0..=29 => {
                let when = interesting_tick(&mut rng, elapsed);
                let v = keys.len() as u64;
                desc = format!("insert({when}) #{v}");
                match w.insert(when, v) {
                    Ok(k) => {
                        assert!(when > elapsed, "{desc}: accepted, elapsed {elapsed}");
                        keys.push(k);
                        pending.insert(v, when);
                    }
                    Err(got) => {
                        assert_eq!(got, v);
                        assert!(when <= elapsed, "{desc}: refused, elapsed {elapsed}");
                        // Keep the node (unlinked) for reinsert/remove.
                        let k = *w.nodes.last().unwrap();
                        keys.push(k);
                    }
                }
            }
            // Reinsert an unlinked node.
            30..=44 => {
                if keys.is_empty() {
                    continue;
                }
                let i = rng.below(keys.len() as u64);
                if pending.contains_key(&i) {
                    // Linked: the contract forbids inserting it again.
                    continue;
                }
                let when = interesting_tick(&mut rng, elapsed);
                desc = format!("reinsert({when}) #{i}");
                let ok = w.reinsert(when, keys[i as usize]);
                assert_eq!(ok, when > elapsed, "{desc}, elapsed {elapsed}");
                if ok {
                    pending.insert(i, when);
                }
            }
            // Remove any node, linked or not.
            45..=59 => {
                if keys.is_empty() {
                    continue;
                }
                let i = rng.below(keys.len() as u64);
                desc = format!("remove #{i}");
                let want = pending.remove(&i).map(|_| i);
                assert_eq!(w.remove(keys[i as usize]), want, "{desc}");
            }
            // Advance by a random step.
            60..=84 => {
                let k = rng.below(LEVELS as u64 + 1) as u32;
                let step = match rng.below(8) {
                    0 => 0,
                    1 => 1,
                    2 => rng.below(70),
                    3 => (1u64 << (6 * k)).saturating_add_signed(rng.below(3) as i64 - 1),
                    4 => rng.below(1 << (6 * k)),
                    5 => RANGE * (1 + rng.below(3)) + rng.below(RANGE),
                    // Back in time: no effect.
                    6 => {
                        let now = elapsed.saturating_sub(rng.below(100));
                        fire_checked(&mut w, &mut pending, &mut elapsed, now);
                        check(&w, &pending, elapsed, "advance backwards");
                        continue;
                    }
                    // To the earliest deadline exactly, or one before.
                    _ => match pending.values().copied().min() {
                        Some(m) => (m - elapsed).saturating_sub(rng.below(2)),
                        None => 1,
                    },
                };
                let now = elapsed.saturating_add(step);
                if now > limit {
                    continue;
                }
                desc = format!("advance({now}) from {elapsed}");
                fire_checked(&mut w, &mut pending, &mut elapsed, now);
            }
            // Follow next_wakeup a few times, as a worker does.
            85..=94 => {
                desc = "follow next_wakeup".to_string();
                for _ in 0..1 + rng.below(8) {
                    let Some(t) = w.next_wakeup() else { break };
                    if t > limit {
                        break;
                    }
                    let min = *pending.values().min().unwrap();
                    assert!(t <= min, "next_wakeup {t} > earliest {min}");
                    let fired = fire_checked(&mut w, &mut pending, &mut elapsed, t);
                    // next_wakeup never steps past a deadline: whatever
                    // fires at `t` was due at `t` exactly.
                    for (v, when) in fired {
                        assert_eq!(when, t, "#{v} due at {when} fired at wake-up {t}");
                    }
                }
            }
            // Advance with a `fire` that unwinds after a few nodes: the
            // rest of the slot being emptied is forgotten (unlinked, not
            // handed out), the rest of the wheel stays intact.
            95 => {
                let span = 1 << (6 * rng.below(4));
                let now = elapsed.saturating_add(rng.below(span));
                let after = rng.below(3) as usize;
                desc = format!("advance({now}) unwinding after {after}");
                let mut got = Vec::new();
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    w.advance(now, |v| {
                        got.push(v);
                        if got.len() > after {
                            // No panic hook: thousands of these stay quiet.
                            std::panic::resume_unwind(Box::new("fire unwinds"));
                        }
                    })
                }));
                for &v in &got {
                    let when = pending.remove(&v).expect("handed out twice");
                    assert!(when <= now, "{desc}: #{v} due at {when} handed out");
                }
                let new_elapsed = w.elapsed();
                assert!(
                    (elapsed..=now.max(elapsed)).contains(&new_elapsed),
                    "{desc}: elapsed {new_elapsed}"
                );
                elapsed = new_elapsed;
                pending.retain(|&i, &mut when| {
                    // SAFETY: test nodes live until their wheel drops.
                    let linked = unsafe { keys[i as usize].as_ref() }.links.is_linked();
                    if linked {
                        assert!(when > elapsed, "{desc}: #{i} due at {when} left linked");
                    }
                    linked
                });
            }
            // Drain everything.
            96 => {
                desc = "drain".to_string();
                let mut got = w.drain();
                got.sort_unstable();
                let want: Vec<u64> = pending.keys().copied().collect();
                assert_eq!(got, want, "drain");
                pending.clear();
            }
            // Check the nodes' own link marks.
            _ => {
                desc = "links".to_string();
                for (i, &k) in keys.iter().enumerate() {
                    // SAFETY: test nodes live until their wheel drops.
                    let l = &unsafe { k.as_ref() }.links;
                    let want = pending.get(&(i as u64));
                    assert_eq!(l.is_linked(), want.is_some(), "#{i} linked");
                    if let Some(&when) = want {
                        assert_eq!(l.when(), when, "#{i} when");
                    }
                }
            }
        }
        check(&w, &pending, elapsed, &desc);
    }
    // Reaching every deadline by next_wakeup alone (up to a few hundred
    // rotations on), then the farthest by drain. The earliest deadline
    // takes at most a wake-up per level to cascade through, plus, per
    // top-level rotation it waits, one for each timer beyond the range
    // (each is filed again once a rotation): no wake-up storms.
    let bound = elapsed.saturating_add(RANGE * 300);
    while let Some((&key, &m)) = pending.iter().min_by_key(|&(_, &when)| when) {
        if m > bound {
            break;
        }
        let (from, mut steps) = (elapsed, 0u64);
        let most = LEVELS as u64 + 1 + ((m - from) / RANGE + 1) * pending.len() as u64;
        while pending.contains_key(&key) {
            let t = w.next_wakeup().expect("a pending deadline, no wake-up");
            let fired = fire_checked(&mut w, &mut pending, &mut elapsed, t);
            for (v, when) in fired {
                assert_eq!(when, t, "#{v} due at {when} fired at wake-up {t}");
            }
            steps += 1;
            assert!(
                steps <= most,
                "{steps} wake-ups from {from} towards the deadline {m}"
            );
        }
    }
    let mut got = w.drain();
    got.sort_unstable();
    assert_eq!(got, pending.keys().copied().collect::<Vec<_>>());
}

/// Advances the wheel and the model to `now` and checks the wheel handed
/// out exactly the due nodes, each once, unlinked, in deadline order.
/// Returns what fired, as (value, deadline).
fn fire_checked(
    w: &mut Wheel,
    pending: &mut std::collections::BTreeMap<u64, u64>,
    elapsed: &mut u64,
    now: u64,
) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    w.advance(now, |v| got.push(v));
    let mut fired = Vec::new();
    let mut last = 0;
    for &v in &got {
        let when = pending
            .remove(&v)
            .unwrap_or_else(|| panic!("#{v} fired at {now} but is not pending (or twice)"));
        assert!(when <= now, "#{v} due at {when} fired early at {now}");
        assert!(
            when >= last,
            "#{v} due at {when} fired after one due at {last}"
        );
        last = when;
        fired.push((v, when));
    }
    if let Some((v, when)) = pending.iter().find(|&(_, &when)| when <= now) {
        panic!("#{v} due at {when} not fired at {now}; fired {got:?}");
    }
    *elapsed = (*elapsed).max(now);
    fired
}

#[test]
fn model_random_sequences() {
    // Seeds 0.., or STRATA_WHEEL_SEED=<seed> to rerun one sequence.
    if let Ok(s) = std::env::var("STRATA_WHEEL_SEED") {
        let seed = s.parse().expect("STRATA_WHEEL_SEED: a u64");
        model_sequence(seed, 200);
        return;
    }
    // STRATA_WHEEL_SEQUENCES=<n> for a longer run.
    let sequences = match std::env::var("STRATA_WHEEL_SEQUENCES") {
        Ok(n) => n.parse().expect("STRATA_WHEEL_SEQUENCES: a u64"),
        Err(_) if cfg!(miri) => 5,
        Err(_) => 2500,
    };
    for seed in 0..sequences {
        let run = std::panic::catch_unwind(|| model_sequence(seed, 200));
        if let Err(e) = run {
            eprintln!("wheel model: failed with seed {seed} (STRATA_WHEEL_SEED={seed})");
            std::panic::resume_unwind(e);
        }
    }
}
