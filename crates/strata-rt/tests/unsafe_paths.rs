//! Stress on the paths behind strata-rt's `unsafe` code, trying to break
//! the invariants its `// SAFETY:` comments rely on (from an audit of
//! them; they also ran clean under AddressSanitizer). The timing wheel's
//! own cases are its unit tests.

mod support;

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use strata_rt::time::{Sleep, sleep, sleep_until};
use support::{deadline, rounds, rt};

// ---------------------------------------------------------------------------
// JoinHandle: abort / drop / poll racing completion; meta pointer lifetime.

#[test]
fn join_handle_abort_races_completion_across_threads() {
    deadline(120, || {
        let rt = rt(2);
        for i in 0..rounds(2000) {
            let h = Arc::new(Mutex::new(Some(rt.handle().spawn(async move {
                if i % 3 == 0 {
                    strata_rt::yield_now().await;
                }
                vec![i; 4]
            }))));
            let barrier = Arc::new(Barrier::new(3));
            let mut ts = Vec::new();
            for _ in 0..2 {
                let (h, barrier) = (h.clone(), barrier.clone());
                ts.push(std::thread::spawn(move || {
                    barrier.wait();
                    if let Some(h) = &*h.lock().unwrap() {
                        h.abort();
                        let _ = h.is_finished();
                    }
                }));
            }
            barrier.wait();
            let taken = h.lock().unwrap().take().unwrap();
            if i % 2 == 0 {
                // Drop (detach) on this thread while aborts race.
                drop(taken);
            } else {
                match rt.block_on(taken) {
                    Ok(v) => assert_eq!(v, vec![i; 4]),
                    Err(e) => assert!(e.is_cancelled()),
                }
            }
            for t in ts {
                t.join().unwrap();
            }
        }
    });
}

/// A `spawn_local` task whose `JoinHandle` (Send: output is Send) moves to
/// another thread, is aborted and dropped there, racing the runtime's
/// shutdown. The !Send future must only ever be dropped on its worker.
#[test]
fn local_task_handle_crosses_threads_during_shutdown() {
    deadline(120, || {
        for i in 0..rounds(300) {
            let rt = rt(2);
            let (tx, rx) = std::sync::mpsc::channel();
            rt.handle().spawn_on(0, async move {
                for _ in 0..4 {
                    let rc = std::rc::Rc::new(i);
                    let h = strata_rt::spawn_local(async move {
                        sleep(Duration::from_millis(i % 3)).await;
                        *rc
                    });
                    tx.send(h).unwrap();
                }
                std::future::pending::<()>().await;
            });
            let hs: Vec<_> = (0..4).map(|_| rx.recv().unwrap()).collect();
            let t = std::thread::spawn(move || {
                for (k, h) in hs.into_iter().enumerate() {
                    if k % 2 == 0 {
                        h.abort();
                    }
                    drop(h);
                }
            });
            if i % 2 == 0 {
                std::thread::yield_now();
            }
            drop(rt);
            t.join().unwrap();
        }
    });
}

// ---------------------------------------------------------------------------
// Timers: entries moved between threads, reset and dropped everywhere.

#[test]
fn timers_move_between_threads_and_runtimes() {
    deadline(120, || {
        let other = rt(1);
        let rt = rt(2);
        for round in 0..rounds(200) {
            // Register on a worker, then move the Sleep to another thread,
            // reset/poll/drop it there, and to another runtime.
            let (tx, rx) = std::sync::mpsc::channel::<Sleep>();
            let h = rt.handle().spawn(async move {
                for k in 0..8u64 {
                    let mut s = sleep(Duration::from_millis(1 + (k + round) % 4));
                    // Register (poll once).
                    poll_fn(|cx| {
                        let _ = std::pin::Pin::new(&mut s).poll_inner(cx);
                        Poll::Ready(())
                    })
                    .await;
                    tx.send(s).unwrap();
                }
            });
            rt.block_on(h).unwrap();
            let sleeps: Vec<Sleep> = rx.iter().collect();
            let mut it = sleeps.into_iter();
            // Dropped on a plain thread (Cancel op).
            let s0 = it.next().unwrap();
            std::thread::spawn(move || drop(s0)).join().unwrap();
            // Reset on a plain thread (slow path), then awaited on block_on.
            let mut s1 = it.next().unwrap();
            s1.reset(Instant::now() + Duration::from_millis(1));
            rt.block_on(s1);
            // Awaited on the other runtime's block_on thread.
            let s2 = it.next().unwrap();
            other.block_on(s2);
            // Moved into a task of the other runtime, reset there, dropped.
            let mut s3 = it.next().unwrap();
            other
                .block_on(other.handle().spawn(async move {
                    s3.reset(Instant::now() + Duration::from_millis(2));
                    (&mut s3).await;
                    s3.reset(Instant::now() + Duration::from_secs(60));
                }))
                .unwrap();
            // The rest: dropped / awaited back on a worker of `rt`.
            let rest: Vec<Sleep> = it.collect();
            rt.block_on(rt.handle().spawn(async move {
                for (k, mut s) in rest.into_iter().enumerate() {
                    if k % 2 == 0 {
                        s.reset(Instant::now());
                        s.await;
                    }
                }
            }))
            .unwrap();
        }
    });
}

trait PollInner {
    fn poll_inner(self, cx: &mut Context<'_>) -> Poll<()>;
}
impl PollInner for std::pin::Pin<&mut Sleep> {
    fn poll_inner(self, cx: &mut Context<'_>) -> Poll<()> {
        std::future::Future::poll(self, cx)
    }
}

/// A waker that, when the worker fires it, resets and drops the very timer
/// it was registered by, synchronously on the worker thread, while the
/// worker's `finish_all` still holds the wheel's reference to the entry.
static REENTRANT_FIRED: AtomicUsize = AtomicUsize::new(0);

struct ReentrantWaker {
    sleep: Mutex<Option<Sleep>>,
    fired: AtomicUsize,
    reset_first: bool,
}

impl Wake for ReentrantWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.fetch_add(1, Ordering::SeqCst);
        let s = self.sleep.lock().unwrap().take();
        if let Some(mut s) = s {
            if self.reset_first {
                s.reset(Instant::now() + Duration::from_secs(3600));
            }
            drop(s);
        }
    }
}

#[test]
fn timer_waker_resets_and_drops_its_own_timer_while_firing() {
    deadline(120, || {
        let rt = rt(1);
        rt.block_on(rt.handle().spawn(async {
            for i in 0..rounds(500) {
                let w = Arc::new(ReentrantWaker {
                    sleep: Mutex::new(None),
                    fired: AtomicUsize::new(0),
                    reset_first: i % 2 == 0,
                });
                let mut s = sleep_until(Instant::now() + Duration::from_millis(1));
                let ready = {
                    let waker = Waker::from(w.clone());
                    let mut cx = Context::from_waker(&waker);
                    std::pin::Pin::new(&mut s).poll_inner(&mut cx).is_ready()
                };
                if ready {
                    continue;
                }
                *w.sleep.lock().unwrap() = Some(s);
                // Let the worker fire it (and run the waker) while we wait.
                sleep(Duration::from_millis(2)).await;
                // Also pool churn: arm and cancel on the owner.
                for _ in 0..4 {
                    let mut t = sleep(Duration::from_secs(10));
                    poll_fn(|cx| {
                        let _ = std::pin::Pin::new(&mut t).poll_inner(cx);
                        Poll::Ready(())
                    })
                    .await;
                }
                drop(w.sleep.lock().unwrap().take());
                REENTRANT_FIRED.fetch_add(w.fired.load(Ordering::SeqCst), Ordering::SeqCst);
            }
        }))
        .unwrap();
        let fired = REENTRANT_FIRED.load(Ordering::SeqCst);
        eprintln!("re-entrant wakes run by the worker: {fired}");
        assert!(fired > 0, "the worker never ran the re-entrant waker");
    });
}

/// Timers registered from `block_on` threads on workers that are shutting
/// down; the entries are dropped/polled on many threads during shutdown.
#[test]
fn timers_racing_runtime_shutdown() {
    deadline(120, || {
        for i in 0..rounds(200) {
            let rt = rt(2);
            let handle = rt.handle().clone();
            let mut sleeps: Vec<Sleep> = Vec::new();
            for k in 0..6u64 {
                let mut s = sleep(Duration::from_millis((i + k) % 3));
                rt.block_on(poll_fn(|cx| {
                    let _ = std::pin::Pin::new(&mut s).poll_inner(cx);
                    Poll::Ready(())
                }));
                sleeps.push(s);
            }
            let half: Vec<Sleep> = sleeps.drain(..3).collect();
            let t = std::thread::spawn(move || {
                for mut s in half {
                    s.reset(Instant::now() + Duration::from_millis(5));
                    drop(s);
                }
                drop(handle);
            });
            drop(rt);
            t.join().unwrap();
            // Polled after shutdown, outside any runtime: panics by design.
            for mut s in sleeps {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let w = Waker::noop();
                    let _ = std::pin::Pin::new(&mut s).poll_inner(&mut Context::from_waker(w));
                }));
                let _ = r;
            }
        }
    });
}

// ---------------------------------------------------------------------------
// Panics in drop / waker while the runtime shuts down.

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("PanicOnDrop");
        }
    }
}

#[test]
fn task_future_panicking_drop_at_shutdown_and_abort() {
    deadline(120, || {
        for _ in 0..rounds(50) {
            let rt = rt(2);
            let mut hs = Vec::new();
            for k in 0..8 {
                hs.push(rt.handle().spawn(async move {
                    let _p = PanicOnDrop;
                    sleep(Duration::from_millis(k)).await;
                    std::future::pending::<()>().await;
                }));
            }
            hs[0].abort();
            hs.truncate(4);
            drop(rt);
            for h in hs {
                let _ = h.is_finished();
                drop(h);
            }
        }
    });
}

// ---------------------------------------------------------------------------
// Signals: the handler must not block when the pipe is full.

#[test]
#[cfg_attr(miri, ignore = "Miri runs no signal handlers")]
fn signal_handler_never_blocks_on_a_full_pipe() {
    use strata_rt::signal::{Signal, SignalKind};
    deadline(60, || {
        let mut sig = Signal::new(SignalKind::user_defined2()).unwrap();
        // Far more than a socket buffer's worth of bytes, raised while
        // nobody reads fast enough: every write past the buffer fails with
        // EAGAIN instead of blocking inside the handler.
        for _ in 0..200_000 {
            // SAFETY: raising a signal that has a handler installed.
            unsafe { libc::raise(libc::SIGUSR2) };
        }
        strata_rt::run(async move { sig.recv().await });
    });
}
