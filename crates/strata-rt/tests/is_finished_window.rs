//! `JoinHandle::is_finished` against the result: a handle that says its
//! task has finished gives the result at once. In a binary of its own: it
//! installs a `SIGUSR1` handler that stops the worker wherever the signal
//! lands (a stand-in for the OS preempting it there), which a test nearby
//! sending that signal for its own ends would upset.
//!
//! No wall-clock threshold: the loop runs batches for a few seconds (the
//! window it looks for was hit about once per hundred batches, in under a
//! second), and `deadline` is a hang guard.
#![cfg(not(miri))] // signals

mod support;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use support::{deadline, plain_block_on, rt};

static ARMED: AtomicBool = AtomicBool::new(false);
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
static FROZEN: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);

/// While armed, stops the interrupted thread until released, or for a
/// millisecond or so of spinning: a handle polled while the worker is
/// stopped in the window may wait for it to go on (that is the fix), and
/// the thread that would release it is the one polling. Atomics only:
/// async-signal-safe.
extern "C" fn freeze(_: libc::c_int) {
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    if ARMED.load(Ordering::SeqCst) {
        FROZEN.store(true, Ordering::SeqCst);
        let mut spins = 0u64;
        while !RELEASE.load(Ordering::SeqCst) && spins < 2_000_000 {
            std::hint::spin_loop();
            spins += 1;
        }
        RELEASE.store(false, Ordering::SeqCst);
        FROZEN.store(false, Ordering::SeqCst);
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
}

/// A cancelled task is finished once its future has been dropped, which
/// async-task does a few instructions before it clears its scheduled bit;
/// a poll in between waited, so a handle could say finished and then be
/// `Pending` (`if jh.is_finished() { jh.now_or_never().unwrap() }` would
/// panic). Here the worker, dropping a batch of aborted tasks, is stopped
/// at random points, and every handle that says finished is polled once.
#[test]
fn a_handle_that_says_finished_is_ready_at_once() {
    deadline(60, || {
        // SAFETY: installs a handler that only touches atomics.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = freeze as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
        let rt = rt(1);
        let h = rt.handle().clone();
        // SAFETY: pthread_self has no preconditions.
        let worker = plain_block_on(h.spawn(async { unsafe { libc::pthread_self() } })).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let (mut pending, mut polls) = (0u64, 0u64);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(4) && pending == 0 {
            let n = 2000;
            let mut handles: Vec<Option<strata_rt::JoinHandle<()>>> = (0..n)
                .map(|_| Some(h.spawn(std::future::pending::<()>())))
                .collect();
            // Let the worker poll them all once.
            std::thread::sleep(Duration::from_millis(5));
            ARMED.store(true, Ordering::SeqCst);
            for jh in handles.iter().flatten() {
                jh.abort();
            }
            let mut left = n;
            let batch = Instant::now();
            while left > 0 && batch.elapsed() < Duration::from_secs(2) {
                // SAFETY: `worker` is the live worker thread's id.
                unsafe { libc::pthread_kill(worker, libc::SIGUSR1) };
                let sent = Instant::now();
                while !FROZEN.load(Ordering::SeqCst) && sent.elapsed() < Duration::from_micros(200)
                {
                    std::hint::spin_loop();
                }
                if !FROZEN.load(Ordering::SeqCst) {
                    continue;
                }
                // The worker is stopped: no handle changes meanwhile.
                for slot in handles.iter_mut() {
                    let Some(jh) = slot.as_mut() else { continue };
                    if !jh.is_finished() {
                        continue;
                    }
                    polls += 1;
                    match Pin::new(&mut *jh).poll(&mut cx) {
                        Poll::Ready(r) => {
                            assert!(r.unwrap_err().is_cancelled());
                            *slot = None;
                            left -= 1;
                        }
                        Poll::Pending => pending += 1,
                    }
                }
                RELEASE.store(true, Ordering::SeqCst);
                while FROZEN.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
            }
            ARMED.store(false, Ordering::SeqCst);
            while IN_HANDLER.load(Ordering::SeqCst) != 0 {
                RELEASE.store(true, Ordering::SeqCst);
                std::hint::spin_loop();
            }
            RELEASE.store(false, Ordering::SeqCst);
            for jh in handles.into_iter().flatten() {
                assert!(plain_block_on(jh).unwrap_err().is_cancelled());
            }
        }
        assert_eq!(
            pending, 0,
            "Pending {pending} times of {polls} polls after is_finished()"
        );
    });
}
