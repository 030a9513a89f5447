//! Whole middleware stacks under cancellation, panics and races:
//! randomized single-worker runs (calls created, polled when woken,
//! dropped at random points, panicking), with the invariants checked
//! along the way and at the end: never more calls inside than the limit,
//! every permit back, no inner call alive, the in-flight gauge at zero, a
//! breaker that closes again on a healthy backend, and a later call that
//! works. Seeded; `STRESS_SEED=n` replays one seed. (From a review.)

mod recorder;
mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use recorder::TestRecorder;
use strata_service::backoff::Backoff;
use strata_service::catch_panic::CatchPanicLayer;
use strata_service::circuit::{Accrual, Breaker, CircuitBreakerLayer, CircuitState};
use strata_service::clock::{Clock, ManualClock};
use strata_service::limit::{PermitPool, Rate, RateLimitLayer, TokenBucket};
use strata_service::metrics::{ERRORS, IN_FLIGHT, REQUESTS};
use strata_service::retry::{RetryBudget, RetryLayer, on_error};
use strata_service::timeout::TimeoutLayer;
use strata_service::{BoxError, Service, ServiceBuilder};
use support::{Flag, Rng, seeds};

// ---------------------------------------------------------------- harness

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

struct Task<'a, T> {
    fut: Fut<'a, T>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl<'a, T> Task<'a, T> {
    fn new(fut: Fut<'a, T>) -> Self {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        Task { fut, flag, waker }
    }
    /// `None` if the poll panicked.
    fn poll(&mut self) -> Option<Poll<T>> {
        self.flag.0.store(false, Ordering::SeqCst);
        let waker = self.waker.clone();
        let fut = &mut self.fut;
        catch_unwind(AssertUnwindSafe(|| {
            fut.as_mut().poll(&mut Context::from_waker(&waker))
        }))
        .ok()
    }
}

fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
            if !msg.starts_with("review panic") {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------- inner service

#[derive(Clone, Copy, Debug)]
enum Step {
    Ok,
    Fail,
    Delay(u64),
    FailAfter(u64),
    Pending,
    PanicInCall,
    PanicInFuture,
    PanicAfter(u64),
}

/// Counts live inner calls, the most at once, and when each started.
#[derive(Clone)]
struct Inner {
    clock: ManualClock,
    live: Rc<Cell<usize>>,
    max_live: Rc<Cell<usize>>,
    starts: Rc<RefCell<Vec<Instant>>>,
}

struct Live(Rc<Cell<usize>>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl Inner {
    fn new(clock: &ManualClock) -> Self {
        Inner {
            clock: clock.clone(),
            live: Rc::default(),
            max_live: Rc::default(),
            starts: Rc::default(),
        }
    }
}

impl Service<Step> for Inner {
    type Response = u32;
    type Error = BoxError;

    fn call(&self, step: Step) -> impl Future<Output = Result<u32, BoxError>> {
        self.starts.borrow_mut().push(self.clock.now());
        if std::env::var("REVIEW_LOG").is_ok() {
            eprintln!("inner start #{} {step:?}", self.starts.borrow().len());
        }
        if let Step::PanicInCall = step {
            panic!("review panic in call");
        }
        self.live.set(self.live.get() + 1);
        self.max_live.set(self.max_live.get().max(self.live.get()));
        let guard = Live(self.live.clone());
        let clock = self.clock.clone();
        async move {
            let _guard = guard;
            match step {
                Step::Ok => Ok(1),
                Step::Fail => Err("review failure".into()),
                Step::Delay(ms) => {
                    clock
                        .sleep_until(clock.now() + Duration::from_millis(ms))
                        .await;
                    Ok(2)
                }
                Step::FailAfter(ms) => {
                    clock
                        .sleep_until(clock.now() + Duration::from_millis(ms))
                        .await;
                    Err("review late failure".into())
                }
                Step::Pending => std::future::pending().await,
                Step::PanicInCall => unreachable!(),
                Step::PanicInFuture => panic!("review panic in future"),
                Step::PanicAfter(ms) => {
                    clock
                        .sleep_until(clock.now() + Duration::from_millis(ms))
                        .await;
                    panic!("review panic after a sleep")
                }
            }
        }
    }
}

fn random_step(rng: &mut Rng, panics: bool) -> Step {
    let n = if panics { 10 } else { 7 };
    match rng.below(n) {
        0 | 1 => Step::Ok,
        2 => Step::Fail,
        3 => Step::Delay(rng.below(3000)),
        4 => Step::FailAfter(rng.below(3000)),
        5 | 6 => Step::Pending,
        7 => Step::PanicInCall,
        8 => Step::PanicInFuture,
        _ => Step::PanicAfter(rng.below(2000)),
    }
}

thread_local! {
    /// Move the clock 1 ms at a time, polling every woken call in between.
    static PROMPT: Cell<bool> = const { Cell::new(false) };
}

fn poll_woken<T>(tasks: &mut Vec<Task<'_, T>>, done: &mut usize, panicked: &mut usize) {
    let mut i = 0;
    while i < tasks.len() {
        if tasks[i].flag.0.load(Ordering::SeqCst) {
            match tasks[i].poll() {
                Some(Poll::Pending) => {}
                Some(Poll::Ready(_)) => {
                    *done += 1;
                    drop(tasks.swap_remove(i));
                    continue;
                }
                None => {
                    *panicked += 1;
                    drop(tasks.swap_remove(i));
                    continue;
                }
            }
        }
        i += 1;
    }
}

/// Runs `ops` random operations on a set of call futures made by `make`:
/// start a call, poll the woken ones, drop one, move the clock.
fn run_random<'a, T>(
    rng: &mut Rng,
    clock: &ManualClock,
    ops: usize,
    mut make: impl FnMut(&mut Rng) -> Fut<'a, T>,
    mut check: impl FnMut(),
) -> (usize, usize) {
    let mut tasks: Vec<Task<'a, T>> = Vec::new();
    let (mut done, mut panicked) = (0, 0);
    for _ in 0..ops {
        match rng.below(10) {
            0..=2 => {
                tasks.push(Task::new(make(rng)));
                if std::env::var("REVIEW_LOG").is_ok() {
                    eprintln!("new task {}", tasks.len() - 1);
                }
            }
            3..=5 => {
                let mut i = 0;
                while i < tasks.len() {
                    if tasks[i].flag.0.load(Ordering::SeqCst) {
                        match tasks[i].poll() {
                            Some(Poll::Pending) => {}
                            Some(Poll::Ready(_)) => {
                                done += 1;
                                drop(tasks.swap_remove(i));
                                continue;
                            }
                            None => {
                                panicked += 1;
                                drop(tasks.swap_remove(i));
                                continue;
                            }
                        }
                    }
                    i += 1;
                }
            }
            6 | 7 => {
                if !tasks.is_empty() {
                    let i = rng.below(tasks.len() as u64) as usize;
                    if std::env::var("REVIEW_LOG").is_ok() {
                        eprintln!("drop task {i}");
                    }
                    drop(tasks.swap_remove(i));
                }
            }
            _ => {
                let ms = rng.below(700);
                if std::env::var("REVIEW_LOG").is_ok() {
                    eprintln!("advance {ms} ms");
                }
                if PROMPT.get() {
                    for _ in 0..ms {
                        clock.advance(Duration::from_millis(1));
                        // Until nothing is woken: a call that goes wakes
                        // nothing else, but be thorough.
                        for _ in 0..3 {
                            poll_woken(&mut tasks, &mut done, &mut panicked);
                        }
                    }
                } else {
                    clock.advance(Duration::from_millis(ms));
                }
            }
        }
        check();
    }
    drop(tasks);
    (done, panicked)
}

// ---------------------------------------------------------- server stack

/// The builder's recommended server stack, with panics caught innermost or
/// not at all, under random cancellation: the pool comes back whole, the
/// gauge to zero, nothing inner stays alive, never more than N inside, the
/// rate never exceeded by the inner starts.
fn server_stack_run(seed: u64, catch: bool) {
    quiet_panics();
    let slack = if PROMPT.get() {
        Duration::from_millis(1)
    } else {
        Duration::ZERO
    };
    let mut rng = Rng::new(seed);
    let clock = ManualClock::new();
    let pool = PermitPool::new(3);
    let interval = Duration::from_millis(200);
    let burst = 2u32;
    let bucket = TokenBucket::with_clock(Rate::new(1, interval), burst, clock.clone());
    let recorder = TestRecorder::default();
    let inner = Inner::new(&clock);
    let svc = metrics::with_local_recorder(&recorder, || {
        ServiceBuilder::new()
            .metrics("srv")
            .layer(
                strata_service::load_shed::LoadShedLayer::new(pool.clone())
                    .max_waiting(rng.below(3) as usize),
            )
            .layer(TimeoutLayer::with_clock(
                Duration::from_secs(3),
                clock.clone(),
            ))
            .concurrency_limit_shared(pool.clone())
            .layer(RateLimitLayer::with_bucket(bucket.clone()))
            .option_layer(catch.then(CatchPanicLayer::new))
            .service(inner.clone())
    });
    let inside = inner.live.clone();
    let (done, panicked) = run_random(
        &mut rng,
        &clock,
        3000,
        |rng| Box::pin(svc.call(random_step(rng, true))),
        || assert!(inside.get() <= 3, "seed {seed}: more than 3 inside"),
    );
    assert!(done > 0, "seed {seed}: nothing finished");
    if catch {
        assert_eq!(panicked, 0, "seed {seed}: a panic escaped CatchPanic");
    }
    assert_eq!(
        (pool.available(), pool.waiting(), inner.live.get()),
        (3, 0, 0),
        "seed {seed}: (free permits, waiters, live inner calls) after all dropped"
    );
    assert!(inner.max_live.get() <= 3);
    assert_eq!(recorder.get(IN_FLIGHT, "srv").gauge(), 0.0, "seed {seed}");
    // The rate: any j - i + 1 calls (sorted) span at least
    // (j - i + 1 - burst) intervals.
    let mut starts = inner.starts.borrow().clone();
    if std::env::var("REVIEW_LOG").is_ok() {
        let base = starts[0];
        for (k, t) in starts.iter().enumerate() {
            eprintln!("start #{} at {:?}", k + 1, *t - base);
        }
    }
    starts.sort();
    // Late polls bunch waiters (see the dedicated test below); the rate
    // is checked here only with prompt polling.
    for i in 0..if PROMPT.get() { starts.len() } else { 0 } {
        for j in i + 1..starts.len().min(i + 40) {
            let n = (j - i + 1) as u32;
            if n > burst {
                let need = (interval * (n - burst)).saturating_sub(slack);
                assert!(
                    starts[j] - starts[i] >= need,
                    "seed {seed}: {n} calls within {:?} (< {need:?})",
                    starts[j] - starts[i]
                );
            }
        }
    }
    // And the stack still works.
    clock.advance(Duration::from_secs(10));
    let mut last = Task::new(Box::pin(svc.call(Step::Ok)));
    assert!(
        matches!(last.poll(), Some(Poll::Ready(Ok(1)))),
        "seed {seed}: a later call fails"
    );
    let _ = recorder.get(REQUESTS, "srv");
}

#[test]
fn server_stack_with_catch_panic_random_cancellation_leaks_nothing() {
    for seed in seeds(1..31) {
        server_stack_run(seed, true);
    }
}

/// As above, with every waiter polled within 1 ms of being woken.
#[test]
fn server_stack_prompt_polling_never_exceeds_the_rate() {
    PROMPT.set(true);
    for seed in seeds(1..21) {
        server_stack_run(seed, true);
    }
}

#[test]
fn server_stack_without_catch_panic_random_cancellation_leaks_nothing() {
    for seed in seeds(1..31) {
        server_stack_run(seed, false);
    }
}

// ---------------------------------------------------------- client stack

/// The builder's recommended client stack (metrics, retry, breaker,
/// per-attempt timeout) under random cancellation and panics: the gauge
/// comes back to zero, nothing inner stays alive, and the breaker is not
/// left half-open with a probe slot nobody holds (a healthy backend closes
/// it again).
fn client_stack_run(seed: u64, catch: bool) {
    quiet_panics();
    let mut rng = Rng::new(seed);
    let clock = ManualClock::new();
    let recorder = TestRecorder::default();
    let breaker = Breaker::with_clock(
        if rng.below(2) == 0 {
            Accrual::ConsecutiveFailures(3)
        } else {
            Accrual::FailureRate {
                rate: 0.5,
                min_calls: 4,
                window: Duration::from_secs(10),
            }
        },
        clock.clone(),
    )
    .backoff(Backoff::constant(Duration::from_secs(2)));
    let budget = RetryBudget::with_clock(Duration::from_secs(10), 1, 0.2, clock.clone());
    let inner = Inner::new(&clock);
    let svc = metrics::with_local_recorder(&recorder, || {
        ServiceBuilder::new()
            .option_layer(catch.then(CatchPanicLayer::new))
            .metrics("cli")
            .layer(
                RetryLayer::with_budget(on_error(|_: &BoxError| true), budget.clone())
                    .backoff(Backoff::constant(Duration::from_millis(300)))
                    .max_retries(2),
            )
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .layer(TimeoutLayer::with_clock(
                Duration::from_secs(1),
                clock.clone(),
            ))
            .service(inner.clone())
    });
    let (_done, panicked) = run_random(
        &mut rng,
        &clock,
        3000,
        |rng| Box::pin(svc.call(random_step(rng, true))),
        || {},
    );
    if catch {
        assert_eq!(panicked, 0, "seed {seed}");
    }
    assert_eq!(inner.live.get(), 0, "seed {seed}: live inner calls");
    assert_eq!(recorder.get(IN_FLIGHT, "cli").gauge(), 0.0, "seed {seed}");
    let requests = recorder.get(REQUESTS, "cli").count();
    let errors = recorder.get(ERRORS, "cli").count();
    assert!(
        errors <= requests,
        "seed {seed}: {errors} errors > {requests} requests"
    );
    // A healthy backend closes the breaker within a few calls.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(30));
        let mut t = Task::new(Box::pin(svc.call(Step::Ok)));
        let _ = t.poll();
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "seed {seed}: breaker stuck after all calls were dropped"
    );
}

#[test]
fn client_stack_with_catch_panic_random_cancellation_leaves_breaker_sane() {
    for seed in seeds(1..31) {
        client_stack_run(seed, true);
    }
}

#[test]
fn client_stack_without_catch_panic_random_cancellation_leaves_breaker_sane() {
    for seed in seeds(1..31) {
        client_stack_run(seed, false);
    }
}
