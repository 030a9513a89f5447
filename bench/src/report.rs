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
