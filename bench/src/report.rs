//! Measuring and printing: wall time, CPU time of this process, ratios.

use std::time::{Duration, Instant};

/// CPU time used by this process so far: (user, system).
pub fn process_cpu() -> (Duration, Duration) {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory of the right size; on
    // success getrusage fully initialises it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    // SAFETY: getrusage returned 0, so the struct is initialised.
    let u = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(u.ru_utime), tv(u.ru_stime))
}

/// One measured run: how many operations, how long, how much CPU.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Operations completed.
    pub ops: u64,
    /// Wall-clock time.
    pub wall: Duration,
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub sys: Duration,
}

impl Sample {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }
}

/// Runs `f` (which returns its operation count) and measures it.
pub fn measure(f: impl FnOnce() -> u64) -> Sample {
    let (u0, s0) = process_cpu();
    let t0 = Instant::now();
    let ops = f();
    let wall = t0.elapsed();
    let (u1, s1) = process_cpu();
    Sample {
        ops,
        wall,
        user: u1.saturating_sub(u0),
        sys: s1.saturating_sub(s0),
    }
}

/// The median of `values` (the mean of the middle two for an even count;
/// 0 for none).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median of the samples' rates.
pub fn median_rate(samples: &[Sample]) -> f64 {
    median(samples.iter().map(Sample::rate))
}

/// Spread of the samples' rates: (min, max) relative to the median.
pub fn spread(samples: &[Sample]) -> (f64, f64) {
    let m = median_rate(samples);
    let min = samples
        .iter()
        .map(Sample::rate)
        .fold(f64::INFINITY, f64::min);
    let max = samples.iter().map(Sample::rate).fold(0.0, f64::max);
    (min / m, max / m)
}

/// The side that runs `k`-th in round `rep` of `n` sides: each round
/// starts with the next side (A B C, B C A, C A B, ...), so that every
/// side runs first equally often when the number of rounds is a multiple
/// of `n` (otherwise the first `rounds % n` sides run first once more: see
/// [`warn_unbalanced`]). The cyclic order stays:
/// a side follows the same one in every round where it is not first, so
/// a carry-over from one run to the next (sockets in TIME_WAIT, caches)
/// is not balanced out.
pub fn rotated(rep: usize, k: usize, n: usize) -> usize {
    (rep + k) % n
}

/// Says on stderr when `reps` rounds of `n` sides are not a multiple of
/// `n`, so that some sides run first in more rounds than others.
pub fn warn_unbalanced(reps: usize, n: usize) {
    if n > 1 && !reps.is_multiple_of(n) {
        let extra = reps % n;
        let sides = if extra == 1 {
            "one side runs".to_string()
        } else {
            format!("{extra} sides run")
        };
        eprintln!(
            "note: with {reps} round{} of {n} sides, {sides} first once more than the \
             others; a multiple of {n} rounds balances the order",
            if reps == 1 { "" } else { "s" }
        );
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::rotated;

    /// How often each side runs first over `reps` rounds.
    fn firsts(reps: usize, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for rep in 0..reps {
            c[rotated(rep, 0, n)] += 1;
        }
        c
    }

    #[test]
    fn every_side_runs_first_equally_often_over_a_multiple_of_n_rounds() {
        assert_eq!(firsts(8, 4), [2, 2, 2, 2]);
        assert_eq!(firsts(9, 3), [3, 3, 3]);
        assert_eq!(firsts(4, 2), [2, 2]);
        // Not a multiple: the first `reps % n` sides once more.
        assert_eq!(firsts(6, 4), [2, 2, 1, 1]);
    }

    #[test]
    fn every_round_runs_every_side_once() {
        for n in 1..6 {
            for rep in 0..12 {
                let mut seen: Vec<usize> = (0..n).map(|k| rotated(rep, k, n)).collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>());
            }
        }
    }
}

/// `first`'s rate over each other side's, round by round (each round ran
/// every side once, back to back, so the machine's drift between rounds
/// cancels out): the median and range of the per-round ratios, and in how
/// many rounds `first` came out ahead. `None` for fewer than two rounds or
/// no other side.
///
/// `first` and `others` are (name, rate per round), the rates in round
/// order.
pub fn per_round(first: (&str, &[f64]), others: &[(&str, &[f64])]) -> Option<String> {
    let (name, rates) = first;
    if others.is_empty() || rates.len() < 2 {
        return None;
    }
    let parts: Vec<String> = others
        .iter()
        .map(|(other, theirs)| {
            let ratios: Vec<f64> = rates.iter().zip(*theirs).map(|(a, b)| a / b).collect();
            let lo = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().cloned().fold(0.0, f64::max);
            let ahead = ratios.iter().filter(|&&r| r > 1.0).count();
            format!(
                "vs {other} {:.2}x ({lo:.2}-{hi:.2}, ahead in {ahead}/{})",
                median(ratios.iter().copied()),
                ratios.len()
            )
        })
        .collect();
    Some(format!("{name} per round: {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_starts_each_round_with_the_next_side() {
        let order = |rep| (0..3).map(|k| rotated(rep, k, 3)).collect::<Vec<_>>();
        assert_eq!(order(0), [0, 1, 2]);
        assert_eq!(order(1), [1, 2, 0]);
        assert_eq!(order(2), [2, 0, 1]);
        assert_eq!(order(3), [0, 1, 2]);
        assert_eq!(
            (0..4).map(|rep| rotated(rep, 0, 2)).collect::<Vec<_>>(),
            [0, 1, 0, 1]
        );
    }

    #[test]
    fn per_round_ratios() {
        let a = [110.0, 90.0, 120.0, 100.0];
        let b = [100.0, 100.0, 100.0, 80.0];
        let c = [55.0, 45.0, 60.0, 50.0];
        let line = per_round(("a", &a), &[("b", &b), ("c", &c)]).expect("four rounds");
        // Ratios to b: 1.1, 0.9, 1.2, 1.25; median (1.1 + 1.2) / 2.
        assert_eq!(
            line,
            "a per round: vs b 1.15x (0.90-1.25, ahead in 3/4); vs c 2.00x (2.00-2.00, ahead in 4/4)"
        );
        assert_eq!(per_round(("a", &a[..1]), &[("b", &b[..1])]), None);
        assert_eq!(per_round(("a", &a), &[]), None);
    }
}
