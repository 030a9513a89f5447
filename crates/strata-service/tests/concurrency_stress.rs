//! Concurrency of the shared budgets and stateful middleware (written by a
//! review that found no bug; kept as a regression net).
//!
//! Seeded randomized stress tests: several OS threads share one service
//! (or one pool / bucket / breaker / budget), each thread keeps a set of
//! in-flight call futures that it creates, polls and drops at random.
//! At the end every future is either driven to completion (polling only
//! when woken, so a lost wake-up hangs and trips the guard) or dropped,
//! and invariants are checked. Set `STRESS_SEED=n` to replay one seed.

mod recorder;
mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use strata_service::backoff::Backoff;
use strata_service::circuit::{Accrual, Breaker, CircuitBreaker, CircuitState};
use strata_service::clock::{Clock, ManualClock};
use strata_service::limit::{ConcurrencyLimit, PermitPool, Rate, RateLimit, TokenBucket};
use strata_service::metrics::{ERRORS, IN_FLIGHT, Metrics, REQUESTS};
use strata_service::retry::{Retry, RetryBudget, on_error};
use strata_service::{BoxError, Service, service_fn};
use support::{Flag, Rng, seeds};

const THREADS: usize = 4;

// ---------------------------------------------------------------- helpers

/// Runs `f` on its own thread; fails (naming the seed) if it panics or
/// does not finish within a generous hang guard.
fn guarded(seed: u64, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(e) = handle.join() {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{what}: seed {seed}: {msg}");
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: seed {seed}: hung (> 60 s)"),
    }
}

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

struct Task<'a, T> {
    fut: Fut<'a, T>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl<'a, T> Task<'a, T> {
    fn new(fut: Fut<'a, T>) -> Self {
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        Task { fut, flag, waker }
    }
    fn poll(&mut self) -> Poll<T> {
        self.flag.0.store(false, Ordering::SeqCst);
        self.fut
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }
}

/// Pending `n` times (waking itself each time), then ready.
struct YieldN(u32);

impl Future for YieldN {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[derive(Default)]
struct Inside {
    now: AtomicUsize,
    max: AtomicUsize,
    calls: AtomicUsize,
}

struct InsideGuard<'a>(&'a Inside);

impl<'a> InsideGuard<'a> {
    fn enter(c: &'a Inside) -> Self {
        c.calls.fetch_add(1, Ordering::SeqCst);
        let n = c.now.fetch_add(1, Ordering::SeqCst) + 1;
        c.max.fetch_max(n, Ordering::SeqCst);
        InsideGuard(c)
    }
}

impl Drop for InsideGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Drives every task of this thread to completion, polling only tasks
/// whose waker fired (other threads may be the ones to wake them).
fn drain<T>(tasks: &mut Vec<Task<'_, T>>, on_done: &mut impl FnMut(T)) {
    let mut idle_spins = 0u64;
    while !tasks.is_empty() {
        let mut progressed = false;
        let mut i = 0;
        while i < tasks.len() {
            if tasks[i].flag.0.load(Ordering::SeqCst) {
                progressed = true;
                if let Poll::Ready(v) = tasks[i].poll() {
                    on_done(v);
                    drop(tasks.swap_remove(i));
                    continue;
                }
            }
            i += 1;
        }
        if progressed {
            idle_spins = 0;
        } else {
            idle_spins += 1;
            std::thread::yield_now();
            // A waiter nobody wakes: reported by the hang guard, but say
            // so here first (the pool is still intact to look at).
            assert!(idle_spins < 50_000_000, "{} tasks never woken", tasks.len());
        }
    }
}

// ------------------------------------------------------------ PermitPool

/// Many threads share one `ConcurrencyLimit` (and hence one pool); calls
/// are started, polled, cancelled and finished at random, some permits are
/// taken with `try_acquire` or a bare `acquire` directly on the pool.
/// Afterwards: never more than `max` inside, every permit back, nobody
/// queued, every surviving call woken and finished.
#[test]
fn permit_pool_stress_no_leak_no_overadmission_no_lost_wakeup() {
    for seed in seeds(0..40) {
        guarded(seed, "permit pool stress", move || {
            let mut rng = Rng::new(seed);
            let max = 1 + rng.below(3) as usize;
            let inside = Arc::new(Inside::default());
            let pool = PermitPool::new(max);
            let counters = inside.clone();
            let svc = ConcurrencyLimit::with_pool(
                service_fn(move |k: u32| {
                    let c = counters.clone();
                    async move {
                        let _g = InsideGuard::enter(&c);
                        YieldN(k).await;
                        Ok::<_, BoxError>(())
                    }
                }),
                pool.clone(),
            );
            let direct = Arc::new(AtomicUsize::new(0));
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (svc, pool, direct, inside) = (&svc, &pool, &direct, &inside);
                    let mut rng = Rng::new(seed * 1000 + t as u64 + 1);
                    s.spawn(move || {
                        let mut tasks: Vec<Task<'_, ()>> = Vec::new();
                        for _ in 0..3000 {
                            match rng.below(20) {
                                0..=6 => {
                                    let k = rng.below(4) as u32;
                                    let mut t = Task::new(Box::pin(async move {
                                        svc.call(k).await.unwrap();
                                    }));
                                    if t.poll().is_pending() {
                                        tasks.push(t);
                                    }
                                }
                                7..=13 if !tasks.is_empty() => {
                                    let i = rng.below(tasks.len() as u64) as usize;
                                    if tasks[i].poll().is_ready() {
                                        drop(tasks.swap_remove(i));
                                    }
                                }
                                14..=16 if !tasks.is_empty() => {
                                    let i = rng.below(tasks.len() as u64) as usize;
                                    drop(tasks.swap_remove(i));
                                }
                                17 => {
                                    if let Some(p) = pool.try_acquire() {
                                        let n = direct.fetch_add(1, Ordering::SeqCst) + 1;
                                        let total = n + inside.now.load(Ordering::SeqCst);
                                        assert!(total <= max, "{total} permits out of {max}");
                                        direct.fetch_sub(1, Ordering::SeqCst);
                                        drop(p);
                                    }
                                }
                                18 => {
                                    let mut t = Task::new(Box::pin(async move {
                                        let _p = pool.acquire().await;
                                        YieldN(1).await;
                                    }));
                                    if t.poll().is_pending() {
                                        tasks.push(t);
                                    }
                                }
                                _ => std::thread::yield_now(),
                            }
                        }
                        // Drop a random half, drive the rest to the end.
                        let mut i = 0;
                        while i < tasks.len() {
                            if rng.below(2) == 0 {
                                drop(tasks.swap_remove(i));
                            } else {
                                i += 1;
                            }
                        }
                        drain(&mut tasks, &mut |()| {});
                    });
                }
            });
            let seen = inside.max.load(Ordering::SeqCst);
            assert!(seen <= max, "{seen} calls inside at once, limit {max}");
            assert_eq!(inside.now.load(Ordering::SeqCst), 0);
            assert_eq!(pool.waiting(), 0, "waiters left queued: {pool:?}");
            assert_eq!(pool.available(), max, "permits leaked or minted: {pool:?}");
        });
    }
}

/// Threads that block on `acquire` (woken only by the pool) while other
/// threads take, release and abandon permits: a waiter whose wake-up is
/// lost (released concurrently with its registration) hangs the guard.
#[test]
fn permit_pool_blocking_waiters_always_woken() {
    for seed in seeds(0..20) {
        guarded(seed, "permit pool blocking", move || {
            let pool = PermitPool::new(1);
            let inside = Inside::default();
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (pool, inside) = (&pool, &inside);
                    let mut rng = Rng::new(seed * 77 + t as u64 + 1);
                    s.spawn(move || {
                        for _ in 0..2000 {
                            if t % 2 == 0 {
                                // Patient: polled only when woken.
                                futures_executor::block_on(async {
                                    let _p = pool.acquire().await;
                                    let _g = InsideGuard::enter(inside);
                                    YieldN(rng.below(3) as u32).await;
                                });
                            } else {
                                // Impatient: registers, then gives up.
                                let mut t = Task::new(Box::pin(pool.acquire()));
                                for _ in 0..rng.below(3) {
                                    if t.poll().is_ready() {
                                        break;
                                    }
                                }
                                drop(t);
                            }
                        }
                    });
                }
            });
            assert!(inside.max.load(Ordering::SeqCst) <= 1);
            assert_eq!(pool.available(), 1, "{pool:?}");
            assert_eq!(pool.waiting(), 0, "{pool:?}");
        });
    }
}

// ------------------------------------------------------------- RateLimit

/// One bucket shared by a waiting and a rejecting `RateLimit`, called
/// from many threads while one thread moves a `ManualClock`; waiting calls
/// are cancelled at random (their tokens refunded). At no point may the
/// inner service have seen more than `burst + elapsed / interval` calls.
#[test]
fn rate_limit_never_exceeds_burst_plus_rate_under_concurrency() {
    for seed in seeds(0..30) {
        guarded(seed, "rate limit stress", move || {
            let mut rng = Rng::new(seed);
            let clock = ManualClock::new();
            let start = clock.now();
            let burst = 1 + rng.below(5) as u32;
            let interval = Duration::from_millis(10);
            let bucket = TokenBucket::with_clock(Rate::new(1, interval), burst, clock.clone());
            let calls = Arc::new(AtomicU64::new(0));
            let c1 = calls.clone();
            let waiting = RateLimit::with_bucket(
                service_fn(move |()| {
                    let c = c1.clone();
                    async move {
                        c.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, BoxError>(())
                    }
                }),
                bucket.clone(),
            );
            let c2 = calls.clone();
            let rejecting = RateLimit::with_bucket(
                service_fn(move |()| {
                    let c = c2.clone();
                    async move {
                        c.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, BoxError>(())
                    }
                }),
                bucket.clone(),
            )
            .reject();
            let check = |clock: &ManualClock| {
                // Read the count first, then the time: the bound only grows.
                let n = calls.load(Ordering::SeqCst);
                let elapsed = clock.now() - start;
                let allowed = u64::from(burst) + (elapsed.as_nanos() / interval.as_nanos()) as u64;
                assert!(
                    n <= allowed,
                    "{n} calls admitted, at most {allowed} allowed"
                );
            };
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (waiting, rejecting, clock, check) = (&waiting, &rejecting, &clock, &check);
                    let mut rng = Rng::new(seed * 31 + t as u64 + 1);
                    s.spawn(move || {
                        let mut tasks: Vec<Task<'_, ()>> = Vec::new();
                        for _ in 0..2000 {
                            match rng.below(20) {
                                0..=5 => {
                                    let mut t = Task::new(Box::pin(async move {
                                        waiting.call(()).await.unwrap();
                                    }));
                                    if t.poll().is_pending() {
                                        tasks.push(t);
                                    }
                                }
                                6..=8 => {
                                    let _ = futures_executor::block_on(rejecting.call(()));
                                }
                                9..=13 if !tasks.is_empty() => {
                                    let i = rng.below(tasks.len() as u64) as usize;
                                    if tasks[i].poll().is_ready() {
                                        drop(tasks.swap_remove(i));
                                    }
                                }
                                14..=16 if !tasks.is_empty() => {
                                    let i = rng.below(tasks.len() as u64) as usize;
                                    drop(tasks.swap_remove(i));
                                }
                                17 if t == 0 => {
                                    clock.advance(Duration::from_millis(rng.below(25)));
                                }
                                _ => std::thread::yield_now(),
                            }
                            check(clock);
                        }
                    });
                }
            });
            check(&clock);
        });
    }
}

// -------------------------------------------------------- CircuitBreaker

/// Calls through one breaker from many threads, succeeding and failing at
/// random, cancelled at random, while one thread moves the clock. The
/// inner service counts how many calls are inside while the breaker says
/// half-open *and* no closed-period call is left; at the end, with every
/// future gone and the open period passed, one good call must close the
/// circuit (not be refused by a probe that never reports).
#[test]
fn circuit_breaker_stays_consistent_under_concurrent_probes() {
    for seed in seeds(0..40) {
        guarded(seed, "breaker stress", move || {
            let mut rng = Rng::new(seed);
            let clock = ManualClock::new();
            let accrual = if rng.below(2) == 0 {
                Accrual::ConsecutiveFailures(1 + rng.below(3) as u32)
            } else {
                Accrual::FailureRate {
                    rate: 0.5,
                    min_calls: 1 + rng.below(4),
                    window: Duration::from_secs(10),
                }
            };
            let breaker = Breaker::with_clock(accrual, clock.clone())
                .backoff(Backoff::constant(Duration::from_millis(20)));
            let svc = CircuitBreaker::new(
                service_fn(|(k, fail): (u32, bool)| async move {
                    YieldN(k).await;
                    if fail {
                        Err(BoxError::from("down"))
                    } else {
                        Ok(())
                    }
                }),
                breaker.clone(),
            );
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (svc, clock) = (&svc, &clock);
                    let mut rng = Rng::new(seed * 13 + t as u64 + 1);
                    s.spawn(move || {
                        let mut tasks: Vec<Task<'_, ()>> = Vec::new();
                        for _ in 0..3000 {
                            match rng.below(20) {
                                0..=6 => {
                                    let req = (rng.below(3) as u32, rng.below(3) == 0);
                                    let mut t = Task::new(Box::pin(async move {
                                        let _ = svc.call(req).await;
                                    }));
                                    if t.poll().is_pending() {
                                        tasks.push(t);
                                    }
                                }
                                7..=14 if !tasks.is_empty() => {
                                    let i = rng.below(tasks.len() as u64) as usize;
                                    if tasks[i].poll().is_ready() {
                                        drop(tasks.swap_remove(i));
                                    }
                                }
                                15..=16 if !tasks.is_empty() => {
                                    let i = rng.below(tasks.len() as u64) as usize;
                                    drop(tasks.swap_remove(i));
                                }
                                17 if t == 0 => clock.advance(Duration::from_millis(rng.below(15))),
                                _ => std::thread::yield_now(),
                            }
                        }
                        drop(tasks);
                    });
                }
            });
            clock.advance(Duration::from_secs(3600));
            let r = futures_executor::block_on(svc.call((0, false)));
            assert!(
                r.is_ok(),
                "good call refused after everything ended: {r:?} ({breaker:?})"
            );
            assert_eq!(breaker.state(), CircuitState::Closed);
        });
    }
}

// ------------------------------------------------------------------ Retry

/// Retries from many threads against a backend that always fails, with one
/// shared budget and a clock that stands still: retries actually made may
/// never exceed `floor(reserve + ratio * requests)`.
#[test]
fn retry_budget_holds_across_threads() {
    for seed in seeds(0..10) {
        guarded(seed, "retry budget", move || {
            let clock = ManualClock::new();
            let budget = RetryBudget::with_clock(Duration::from_secs(10), 1, 0.2, clock);
            let attempts = Arc::new(AtomicU64::new(0));
            let a = attempts.clone();
            let svc = Retry::with_budget(
                service_fn(move |k: u32| {
                    let a = a.clone();
                    async move {
                        a.fetch_add(1, Ordering::SeqCst);
                        YieldN(k).await;
                        Err::<(), _>(BoxError::from("down"))
                    }
                }),
                on_error(|_: &BoxError| true),
                budget,
            )
            .backoff(Backoff::none())
            .max_retries(5);
            let requests = AtomicU64::new(0);
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (svc, requests) = (&svc, &requests);
                    let mut rng = Rng::new(seed * 7 + t as u64 + 1);
                    s.spawn(move || {
                        for _ in 0..300 {
                            requests.fetch_add(1, Ordering::SeqCst);
                            let mut t = Task::new(Box::pin(svc.call(rng.below(2) as u32)));
                            for _ in 0..rng.below(12) {
                                if t.poll().is_ready() {
                                    break;
                                }
                            }
                        }
                    });
                }
            });
            let (r, a) = (
                requests.load(Ordering::SeqCst),
                attempts.load(Ordering::SeqCst),
            );
            let retries = a.saturating_sub(r);
            let allowed = (10.0 + 0.2 * r as f64).floor() as u64;
            assert!(
                retries <= allowed,
                "{retries} retries for {r} requests, budget {allowed}"
            );
        });
    }
}

// ---------------------------------------------------------------- Metrics

/// One `Metrics` service called from many threads, calls finishing, failing
/// and being cancelled at random: the in-flight gauge returns to zero and
/// errors never exceed requests.
#[test]
fn metrics_gauge_returns_to_zero_across_threads() {
    for seed in seeds(0..10) {
        guarded(seed, "metrics", move || {
            let rec = recorder::TestRecorder::default();
            let svc = metrics::with_local_recorder(&rec, || {
                Metrics::new(
                    service_fn(|(k, fail): (u32, bool)| async move {
                        YieldN(k).await;
                        if fail {
                            Err(BoxError::from("x"))
                        } else {
                            Ok(())
                        }
                    }),
                    "review",
                )
            });
            let completed = AtomicU64::new(0);
            let started = Mutex::new(0u64);
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (svc, completed, started) = (&svc, &completed, &started);
                    let mut rng = Rng::new(seed * 3 + t as u64 + 1);
                    s.spawn(move || {
                        let mut tasks: Vec<Task<'_, ()>> = Vec::new();
                        for _ in 0..2000 {
                            match rng.below(6) {
                                0..=1 => {
                                    let req = (rng.below(3) as u32, rng.below(2) == 0);
                                    let mut t = Task::new(Box::pin(async move {
                                        let _ = svc.call(req).await;
                                        completed.fetch_add(1, Ordering::SeqCst);
                                    }));
                                    *started.lock().unwrap() += 1;
                                    if t.poll().is_pending() {
                                        tasks.push(t);
                                    }
                                }
                                2..=4 if !tasks.is_empty() => {
                                    let i = rng.below(tasks.len() as u64) as usize;
                                    if tasks[i].poll().is_ready() {
                                        drop(tasks.swap_remove(i));
                                    }
                                }
                                _ if !tasks.is_empty() => {
                                    let i = rng.below(tasks.len() as u64) as usize;
                                    drop(tasks.swap_remove(i));
                                }
                                _ => {}
                            }
                        }
                    });
                }
            });
            let started = *started.lock().unwrap();
            assert_eq!(rec.get(IN_FLIGHT, "review").gauge(), 0.0);
            assert_eq!(rec.get(REQUESTS, "review").count(), started);
            assert!(rec.get(ERRORS, "review").count() <= completed.load(Ordering::SeqCst));
        });
    }
}

/// FIFO across threads: one thread queues waiters w1..wn on a pool of one
/// permit, in order, while other threads churn (try_acquire, acquire and
/// drop, cancel). With one permit, once wi holds it no earlier wj may
/// still be waiting: the permit would have gone to wj first.
#[test]
fn permit_pool_serves_a_threads_waiters_in_order() {
    for seed in seeds(0..20) {
        guarded(seed, "permit pool fifo", move || {
            let pool = PermitPool::new(1);
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                for t in 1..THREADS {
                    let (pool, stop) = (&pool, &stop);
                    let mut rng = Rng::new(seed * 91 + t as u64);
                    s.spawn(move || {
                        while !stop.load(Ordering::SeqCst) {
                            match rng.below(3) {
                                0 => drop(pool.try_acquire()),
                                1 => drop(futures_executor::block_on(pool.acquire())),
                                _ => {
                                    let mut t = Task::new(Box::pin(pool.acquire()));
                                    let _ = t.poll();
                                }
                            }
                        }
                    });
                }
                let mut rng = Rng::new(seed);
                for _round in 0..300 {
                    let mut waiters: Vec<Option<Task<'_, _>>> = Vec::new();
                    for _ in 0..(2 + rng.below(6)) {
                        let mut t = Task::new(Box::pin(pool.acquire()));
                        match t.poll() {
                            Poll::Ready(p) => drop(p),
                            Poll::Pending => waiters.push(Some(t)),
                        }
                    }
                    let mut spins = 0u64;
                    while waiters.iter().any(Option::is_some) {
                        for i in 0..waiters.len() {
                            let Some(w) = waiters[i].as_mut() else {
                                continue;
                            };
                            if !w.flag.0.load(Ordering::SeqCst) {
                                continue;
                            }
                            if let Poll::Ready(permit) = w.poll() {
                                let earlier = waiters[..i].iter().filter(|w| w.is_some()).count();
                                assert_eq!(
                                    earlier, 0,
                                    "waiter {i} served before {earlier} earlier ones"
                                );
                                drop(permit);
                                waiters[i] = None;
                            }
                        }
                        spins += 1;
                        assert!(spins < 50_000_000, "waiters never woken: {pool:?}");
                        std::thread::yield_now();
                    }
                }
                stop.store(true, Ordering::SeqCst);
            });
            assert_eq!(pool.available(), 1, "{pool:?}");
            assert_eq!(pool.waiting(), 0, "{pool:?}");
        });
    }
}

/// The same on a strata runtime with two workers and real timers: a shared
/// `Timeout<Metrics<ConcurrencyLimit<_>>>` called from tasks spawned
/// round-robin on both workers, many of them timing out while queued or
/// inside. Afterwards every permit is back and the gauge is at zero.
#[test]
fn runtime_two_workers_timeouts_return_every_permit() {
    use strata_service::timeout::Timeout;
    for seed in seeds(0..4) {
        guarded(seed, "runtime permits", move || {
            let rt = strata_rt::Runtime::builder()
                .worker_threads(2)
                .build()
                .unwrap();
            let mut rng = Rng::new(seed);
            let max = 1 + rng.below(3) as usize;
            let pool = PermitPool::new(max);
            let inside = Arc::new(Inside::default());
            let rec = recorder::TestRecorder::default();
            let counters = inside.clone();
            let svc = Arc::new(metrics::with_local_recorder(&rec, || {
                Timeout::new(
                    Metrics::new(
                        ConcurrencyLimit::with_pool(
                            service_fn(move |us: u64| {
                                let c = counters.clone();
                                async move {
                                    let _g = InsideGuard::enter(&c);
                                    strata_rt::time::sleep(Duration::from_micros(us)).await;
                                    strata_rt::yield_now().await;
                                    Ok::<_, BoxError>(())
                                }
                            }),
                            pool.clone(),
                        ),
                        "rt",
                    ),
                    Duration::from_millis(3),
                )
            }));
            let handles: Vec<_> = (0..400)
                .map(|_| {
                    let svc = svc.clone();
                    let us = rng.below(2000);
                    rt.handle().spawn(async move { svc.call(us).await.is_ok() })
                })
                .collect();
            let ok = rt.block_on(async {
                let mut ok = 0;
                for h in handles {
                    ok += usize::from(h.await.unwrap());
                }
                ok
            });
            eprintln!("seed {seed}: {ok}/400 finished in time, max {max}");
            let seen = inside.max.load(Ordering::SeqCst);
            assert!(seen <= max, "{seen} inside, limit {max}");
            assert_eq!(pool.available(), max, "{pool:?}");
            assert_eq!(pool.waiting(), 0, "{pool:?}");
            assert_eq!(rec.get(IN_FLIGHT, "rt").gauge(), 0.0);
        });
    }
}
