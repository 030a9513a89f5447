//! Cancel safety of signals, channels, ticks and waits: dropped at each
//! point of their life (before the first poll, after a `Pending`, after
//! a wake-up but before the next poll), they lose nothing and duplicate
//! nothing, and the next call works; what a dropped `WaitGroup::wait`
//! gives up, as documented. Every test is under a hang guard.

mod support;

use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use strata_rt::signal::{Signal, SignalKind};
use strata_rt::spawn;
use strata_rt::sync::{Shutdown, WaitGroup, mpsc};
use strata_rt::time::interval;
use support::cancel::{DROP_POINTS, DropAt, poll_once, poll_once_flagged, woken};
use support::on_worker;
use support::{deadline, rt};

#[test]
fn signal_recv_dropped_at_each_point_loses_and_repeats_no_delivery() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            spawn(async {
                let mut sig = Signal::new(SignalKind::user_defined2()).unwrap();
                let raise = || {
                    // SAFETY: raise(3) with a signal that has a handler.
                    assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
                };
                for at in DROP_POINTS {
                    {
                        let mut r = pin!(sig.recv());
                        match at {
                            DropAt::BeforePoll => raise(),
                            DropAt::AfterPending | DropAt::AfterWake => {
                                let (p, flag) = poll_once_flagged(r.as_mut()).await;
                                assert!(p.is_pending(), "{at:?}");
                                raise();
                                if let DropAt::AfterWake = at {
                                    woken(&flag).await;
                                }
                            }
                        }
                    }
                    sig.recv().await;
                    // Reported once: the next recv waits.
                    let mut r = pin!(sig.recv());
                    assert!(poll_once(r.as_mut()).await.is_pending(), "{at:?}: twice");
                }
            })
            .await
            .unwrap();
        });
    });
}

#[test]
fn mpsc_recv_dropped_at_each_point_loses_no_message() {
    on_worker(30, || async {
        let (mut tx, mut rx) = mpsc::channel::<u32>(4);
        let (utx, mut urx) = mpsc::unbounded::<u32>();
        for (i, at) in DROP_POINTS.into_iter().enumerate() {
            let i = i as u32;
            {
                let mut r = pin!(rx.recv());
                if matches!(at, DropAt::BeforePoll) {
                    tx.try_send(i).unwrap();
                } else {
                    let (p, flag) = poll_once_flagged(r.as_mut()).await;
                    assert!(p.is_pending());
                    tx.try_send(i).unwrap();
                    if let DropAt::AfterWake = at {
                        woken(&flag).await;
                    }
                }
            }
            assert_eq!(rx.recv().await, Ok(i), "{at:?}");
            {
                let mut r = pin!(urx.recv());
                if !matches!(at, DropAt::BeforePoll) {
                    let (p, flag) = poll_once_flagged(r.as_mut()).await;
                    assert!(p.is_pending());
                    utx.unbounded_send(i).unwrap();
                    if let DropAt::AfterWake = at {
                        woken(&flag).await;
                    }
                } else {
                    utx.unbounded_send(i).unwrap();
                }
            }
            assert_eq!(urx.recv().await, Ok(i), "{at:?}");
        }
        assert!(rx.try_recv().is_err() && urx.try_recv().is_err());
    });
}

#[test]
fn interval_tick_dropped_after_its_wake_up_loses_no_tick() {
    on_worker(30, || async {
        let period = Duration::from_millis(100);
        let start = Instant::now();
        let mut every = strata_rt::time::interval_at(start, period);
        // Burst: every due instant is returned whatever the load, so the
        // checks below do not depend on how late the task runs.
        every.set_missed_tick_behavior(strata_rt::time::MissedTickBehavior::Burst);
        assert_eq!(every.tick().await, start);
        {
            let mut t = pin!(every.tick());
            let (p, flag) = poll_once_flagged(t.as_mut()).await;
            assert!(p.is_pending());
            woken(&flag).await;
        }
        // The tick whose wake-up the dropped future got is still the next.
        assert_eq!(every.tick().await, start + period);
        // Dropped after one poll (Pending, or Ready if late: that tick was
        // then taken, and the next due is one period on).
        let early = {
            let mut t = pin!(every.tick());
            poll_once(t.as_mut()).await
        };
        match early {
            Poll::Ready(due) => assert_eq!(due, start + 2 * period),
            Poll::Pending => assert_eq!(every.tick().await, start + 2 * period),
        }
        // Dropped before its first poll: nothing happens.
        drop(every.tick());
        assert_eq!(every.tick().await, start + 3 * period);
        let _ = interval(period);
    });
}

#[test]
fn wait_group_and_shutdown_waits_dropped_after_a_wake_up_complete_next_time() {
    on_worker(30, || async {
        let group = WaitGroup::new();
        let guard = group.add();
        {
            let mut w = pin!(group.wait());
            let (p, flag) = poll_once_flagged(w.as_mut()).await;
            assert!(p.is_pending());
            drop(guard);
            woken(&flag).await;
        }
        let mut w = pin!(group.wait());
        assert!(poll_once(w.as_mut()).await.is_ready());

        let shutdown = Shutdown::new();
        {
            let mut w = pin!(shutdown.wait());
            let (p, flag) = poll_once_flagged(w.as_mut()).await;
            assert!(p.is_pending());
            shutdown.trigger();
            woken(&flag).await;
        }
        let mut w = pin!(shutdown.wait());
        assert!(poll_once(w.as_mut()).await.is_ready());
    });
}

/// What a dropped `WaitGroup::wait` gives up, as documented: the zero it
/// was woken for is its own. Kept (pinned, polled again) it completes;
/// dropped, a new wait made once the count has risen again waits for the
/// next zero.
#[test]
fn a_dropped_wait_group_wait_takes_the_zero_it_saw_with_it_and_a_kept_one_completes() {
    on_worker(30, || async {
        // Kept: the zero it saw completes it, though the count rose since.
        let group = WaitGroup::new();
        let first = group.add();
        let mut kept = pin!(group.wait());
        let (p, flag) = poll_once_flagged(kept.as_mut()).await;
        assert!(p.is_pending());
        drop(first);
        woken(&flag).await;
        let _second = group.add();
        assert!(poll_once(kept.as_mut()).await.is_ready());

        // Dropped at the same point: a new wait looks for zeros from its
        // own first poll.
        let group = WaitGroup::new();
        let first = group.add();
        {
            let mut w = pin!(group.wait());
            let (p, flag) = poll_once_flagged(w.as_mut()).await;
            assert!(p.is_pending());
            drop(first);
            woken(&flag).await;
        }
        let second = group.add();
        let mut again = pin!(group.wait());
        assert!(poll_once(again.as_mut()).await.is_pending());
        drop(second);
        again.await;
    });
}
