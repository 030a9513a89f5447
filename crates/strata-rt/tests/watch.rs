//! `sync::watch`: receivers see the newest value, every one of them sees
//! the last value before the sender goes, waits registered from any
//! thread or executor are woken, and `wait_for`, `mark_changed` and
//! panics in `send_modify` behave as documented. Orderings come from `poll_once` and
//! channels, not sleeps; `deadline` is a hang guard only.

mod support;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use strata_rt::sync::watch::{self, RecvError, SendError};
use support::cancel::{poll_once, poll_once_flagged, woken};
use support::{Rng, deadline, rounds, rt};

#[test]
fn changed_waits_for_a_send_and_sees_the_newest_value() {
    deadline(30, || {
        rt(1).block_on(async {
            let (tx, mut rx) = watch::channel(0);
            assert_eq!(
                rx.has_changed(),
                Ok(false),
                "the first value counts as seen"
            );
            {
                let mut changed = pin!(rx.changed());
                let (first, flag) = poll_once_flagged(changed.as_mut()).await;
                assert!(first.is_pending());
                tx.send(1).unwrap();
                woken(&flag).await;
                changed.await.unwrap();
            }
            assert_eq!(*rx.borrow(), 1);
            // Two sends while it looked away: it sees the second, once.
            tx.send(2).unwrap();
            tx.send(3).unwrap();
            assert_eq!(rx.has_changed(), Ok(true));
            let seen = rx.borrow_and_update();
            assert!(seen.has_changed());
            assert_eq!(*seen, 3);
            drop(seen);
            assert!(poll_once(pin!(rx.changed())).await.is_pending());
        });
    });
}

#[test]
fn the_last_value_is_seen_before_the_sender_is_reported_gone() {
    deadline(30, || {
        rt(1).block_on(async {
            let (tx, mut rx) = watch::channel("first");
            tx.send("last").unwrap();
            drop(tx);
            assert_eq!(rx.has_changed(), Err(RecvError), "the sender is gone");
            rx.changed().await.unwrap();
            assert_eq!(*rx.borrow_and_update(), "last");
            assert_eq!(rx.changed().await, Err(RecvError));
            assert_eq!(*rx.borrow(), "last", "the value stays readable");
        });
    });
}

#[test]
fn a_waiting_receiver_is_woken_when_the_sender_goes() {
    deadline(30, || {
        rt(2).block_on(async {
            let (tx, mut rx) = watch::channel(());
            let waiter = strata_rt::spawn(async move { rx.changed().await });
            strata_rt::yield_now().await;
            std::thread::spawn(move || drop(tx)).join().unwrap();
            assert_eq!(waiter.await.unwrap(), Err(RecvError));
        });
    });
}

#[test]
fn send_needs_a_receiver_send_replace_does_not() {
    deadline(30, || {
        rt(1).block_on(async {
            let (tx, rx) = watch::channel(1);
            assert_eq!(tx.receiver_count(), 1);
            drop(rx);
            assert!(tx.is_closed());
            tx.closed().await;
            assert_eq!(tx.send(2), Err(SendError(2)));
            assert_eq!(*tx.borrow(), 1, "a failed send stores nothing");
            assert_eq!(tx.send_replace(3), 1);
            let mut late = tx.subscribe();
            assert_eq!(*late.borrow(), 3);
            assert_eq!(
                late.has_changed(),
                Ok(false),
                "a subscriber has seen the value"
            );
            assert!(!tx.is_closed());
            tx.send(4).unwrap();
            late.changed().await.unwrap();
            assert_eq!(*late.borrow(), 4);
        });
    });
}

#[test]
fn closed_completes_when_the_last_receiver_goes() {
    deadline(30, || {
        rt(2).block_on(async {
            let (tx, rx) = watch::channel(0);
            let second = rx.clone();
            assert!(rx.same_channel(&second));
            assert_eq!(tx.receiver_count(), 2);
            let mut closed = pin!(tx.closed());
            assert!(poll_once(closed.as_mut()).await.is_pending());
            drop(rx);
            let (first, flag) = poll_once_flagged(closed.as_mut()).await;
            assert!(first.is_pending(), "one is left");
            std::thread::spawn(move || drop(second)).join().unwrap();
            woken(&flag).await;
            closed.await;
        });
    });
}

#[test]
fn send_if_modified_wakes_only_for_a_change() {
    deadline(30, || {
        rt(1).block_on(async {
            let (tx, mut rx) = watch::channel(vec![1]);
            assert!(!tx.send_if_modified(|_| false));
            assert_eq!(rx.has_changed(), Ok(false));
            tx.send_modify(|v| v.push(2));
            rx.changed().await.unwrap();
            assert_eq!(*rx.borrow(), [1, 2]);
            rx.mark_changed();
            rx.changed().await.unwrap();
            tx.send_modify(|v| v.push(3));
            rx.mark_unchanged();
            assert_eq!(rx.has_changed(), Ok(false));
        });
    });
}

#[test]
fn a_panic_in_send_modify_still_publishes_and_leaves_the_channel_usable() {
    deadline(30, || {
        rt(1).block_on(async {
            let (tx, mut rx) = watch::channel(0);
            let tx = std::panic::AssertUnwindSafe(tx);
            let r = std::panic::catch_unwind(|| {
                tx.send_modify(|v| {
                    *v = 5;
                    panic!("half way");
                })
            });
            assert!(r.is_err());
            rx.changed().await.unwrap();
            assert_eq!(*rx.borrow_and_update(), 5, "the partial change is visible");
            tx.send(6).unwrap();
            rx.changed().await.unwrap();
            assert_eq!(*rx.borrow(), 6);
        });
    });
}

#[test]
fn wait_for_returns_the_value_it_checked() {
    deadline(30, || {
        rt(2).block_on(async {
            let (tx, mut rx) = watch::channel(0u32);
            let tx = Arc::new(tx);
            let feeder = std::thread::spawn({
                let tx = tx.clone();
                move || {
                    for i in 1..=1000 {
                        tx.send_replace(i);
                    }
                }
            });
            fn is_send<F: Send>(f: F) -> F {
                f
            }
            let got = is_send(rx.wait_for(|v| *v >= 500)).await.unwrap();
            assert!(*got >= 500, "{}", *got);
            drop(got);
            feeder.join().unwrap();
            assert_eq!(*rx.wait_for(|v| *v == 1000).await.unwrap(), 1000);
            // Already satisfied, sender gone: still Ok.
            drop(tx);
            assert_eq!(*rx.wait_for(|v| *v == 1000).await.unwrap(), 1000);
            assert_eq!(rx.wait_for(|v| *v == 7).await.err(), Some(RecvError));
        });
    });
}

#[test]
fn changed_works_under_another_executor() {
    deadline(30, || {
        let (tx, mut rx) = watch::channel(0);
        let sender = std::thread::spawn(move || {
            for i in 1..=100 {
                tx.send(i).unwrap();
            }
        });
        let last = support::plain_block_on(async move {
            while rx.changed().await.is_ok() {}
            *rx.borrow()
        });
        sender.join().unwrap();
        assert_eq!(last, 100);
    });
}

/// Many receivers on two workers follow a sender on another thread that
/// sends as fast as it can: each sees values in increasing order (never
/// an older one after a newer one) and ends on the last one. Random
/// pauses in the receivers vary the interleavings.
#[test]
fn stress_every_receiver_ends_on_the_last_value() {
    deadline(120, || {
        let rt = rt(2);
        let mut rng = Rng::new(0x5eed_0a7c);
        for round in 0..rounds(200) {
            let (tx, rx) = watch::channel(0u64);
            let last = 2_000 + rng.below(2_000);
            let receivers: Vec<_> = (0..8)
                .map(|i| {
                    let mut rx = rx.clone();
                    let pause = rng.below(4);
                    rt.handle().spawn(async move {
                        let mut prev = 0;
                        let mut seen = 0u64;
                        while rx.changed().await.is_ok() {
                            let v = *rx.borrow_and_update();
                            assert!(v >= prev, "receiver {i}: {v} after {prev}");
                            prev = v;
                            seen += 1;
                            if seen.is_multiple_of(pause + 1) {
                                strata_rt::yield_now().await;
                            }
                        }
                        prev
                    })
                })
                .collect();
            drop(rx);
            let started = Arc::new(AtomicBool::new(false));
            let sender = std::thread::spawn({
                let started = started.clone();
                move || {
                    started.store(true, Ordering::SeqCst);
                    for v in 1..=last {
                        tx.send(v).unwrap();
                    }
                }
            });
            sender.join().unwrap();
            assert!(started.load(Ordering::SeqCst));
            for (i, r) in receivers.into_iter().enumerate() {
                let end = rt.block_on(r).unwrap();
                assert_eq!(end, last, "round {round}, receiver {i}");
            }
        }
    });
}

fn assert_send<T: Send>(_: &T) {}

/// The futures of `changed`, `wait_for` and `closed` are `Send` for a
/// `Send + Sync` value, so a task using them can be spawned.
#[test]
fn the_futures_are_send() {
    let (tx, mut rx) = watch::channel(0u32);
    assert_send(&rx.changed());
    assert_send(&rx.wait_for(|v| *v > 0));
    assert_send(&tx.closed());
}

/// `wait_for` checks the current value even when the sender is gone
/// (tokio does), and fails only if that does not satisfy it.
#[test]
fn wait_for_after_the_sender_is_gone() {
    deadline(30, || {
        rt(1).block_on(async {
            let (tx, mut rx) = watch::channel(1u32);
            tx.send(5).unwrap();
            drop(tx);
            {
                let r = rx.wait_for(|v| *v == 5).await.unwrap();
                assert!(r.has_changed());
            }
            assert!(rx.wait_for(|v| *v == 6).await.is_err());
            // Satisfied by a value already seen: still Ok.
            assert!(!rx.wait_for(|v| *v == 5).await.unwrap().has_changed());
        });
    });
}

/// `mark_changed`: `changed` completes at once, even after the sender is
/// gone (tokio); `has_changed` reports the close first.
#[test]
fn mark_changed_semantics() {
    deadline(30, || {
        rt(1).block_on(async {
            let (tx, mut rx) = watch::channel(1u32);
            rx.mark_changed();
            assert!(rx.has_changed().unwrap());
            assert!(rx.borrow().has_changed());
            rx.changed().await.unwrap();
            assert!(!rx.has_changed().unwrap());
            rx.mark_changed();
            rx.mark_unchanged();
            assert!(!rx.has_changed().unwrap());
            rx.mark_changed();
            drop(tx);
            assert!(rx.has_changed().is_err());
            rx.changed().await.unwrap();
            assert!(rx.changed().await.is_err());
        });
    });
}

/// A clone made after `mark_changed` has not seen the value either.
#[test]
fn a_clone_inherits_what_was_seen() {
    let (tx, mut rx) = watch::channel(1u32);
    tx.send(2).unwrap();
    let c1 = rx.clone();
    assert!(c1.has_changed().unwrap());
    rx.borrow_and_update();
    let c2 = rx.clone();
    assert!(!c2.has_changed().unwrap());
    rx.mark_changed();
    let c3 = rx.clone();
    assert!(c3.has_changed().unwrap());
}

/// A panic in `send_modify` leaves the channel usable from another
/// thread too (the poisoned lock is read through), and a later `send`
/// wakes receivers again.
#[test]
fn after_a_panic_in_send_modify_sends_and_borrows_go_on() {
    deadline(30, || {
        let (tx, mut rx) = watch::channel(0u32);
        let tx = Arc::new(tx);
        let t2 = tx.clone();
        let r = std::thread::spawn(move || {
            t2.send_modify(|v| {
                *v = 7;
                panic!("in send_modify");
            })
        })
        .join();
        assert!(r.is_err());
        assert_eq!(*rx.borrow_and_update(), 7);
        rt(2).block_on(async {
            let waiter = strata_rt::spawn(async move {
                rx.changed().await.unwrap();
                *rx.borrow_and_update()
            });
            strata_rt::yield_now().await;
            tx.send(8).unwrap();
            assert_eq!(waiter.await.unwrap(), 8);
        });
    });
}

/// `wait_for`'s predicate panicking leaves no poisoned lock behind.
#[test]
fn a_panic_in_wait_for_s_predicate_does_not_poison() {
    deadline(30, || {
        let (tx, mut rx) = watch::channel(0u32);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt(1).block_on(async {
                let _ = rx.wait_for(|_| panic!("in wait_for")).await;
            })
        }));
        assert!(r.is_err());
        tx.send(3).unwrap();
        assert_eq!(*tx.borrow(), 3);
    });
}

/// Values and versions agree: a receiver that follows a counter through
/// `changed` + `borrow_and_update` sees it strictly increase at each
/// change, and ends on the last one.
#[test]
fn versions_and_values_agree_under_a_racing_sender() {
    deadline(60, || {
        rt(2).block_on(async {
            const N: u64 = 20_000;
            let (tx, rx) = watch::channel(0u64);
            let mut followers = Vec::new();
            for _ in 0..3 {
                let mut rx = rx.clone();
                followers.push(strata_rt::spawn(async move {
                    let mut last = 0;
                    loop {
                        if rx.changed().await.is_err() {
                            return last;
                        }
                        let r = rx.borrow_and_update();
                        // `changed` saw a version newer than the one read
                        // last: its value is newer too.
                        assert!(*r > last, "from {last} to {} after a change", *r);
                        last = *r;
                    }
                }));
            }
            let mut waiter = rx.clone();
            let w = strata_rt::spawn(async move { *waiter.wait_for(|v| *v == N).await.unwrap() });
            drop(rx);
            let sender = std::thread::spawn(move || {
                for i in 1..=N {
                    tx.send_replace(i);
                }
            });
            for f in followers {
                assert_eq!(f.await.unwrap(), N);
            }
            assert_eq!(w.await.unwrap(), N);
            sender.join().unwrap();
        });
    });
}

/// `closed` races receivers dropped on other threads and clones made
/// meanwhile: it completes once the count reaches zero, never before.
#[test]
fn closed_races_receiver_drops() {
    deadline(60, || {
        for _ in 0..200 {
            let (tx, rx) = watch::channel(0u8);
            let clones: Vec<_> = (0..4).map(|_| rx.clone()).collect();
            let done = Arc::new(AtomicBool::new(false));
            let d = done.clone();
            let t = std::thread::spawn(move || {
                for c in clones {
                    let c2 = c.clone();
                    drop(c);
                    drop(c2);
                }
                d.store(true, Ordering::SeqCst);
                drop(rx);
            });
            support::plain_block_on(tx.closed());
            assert!(done.load(Ordering::SeqCst), "closed before the last drop");
            assert_eq!(tx.receiver_count(), 0);
            t.join().unwrap();
        }
    });
}

/// A task that loops on `changed` over a value that is always new (here:
/// `mark_changed` before each wait) still lets the other tasks of its
/// worker run: each completed wait spends its cooperative budget.
#[test]
fn a_changed_loop_yields_to_the_worker_s_other_tasks() {
    deadline(60, || {
        rt(1).block_on(async {
            strata_rt::spawn(async {
                let (_tx, mut rx) = watch::channel(0u8);
                let other_ran = Arc::new(AtomicBool::new(false));
                let o = other_ran.clone();
                let other = strata_rt::spawn(async move { o.store(true, Ordering::SeqCst) });
                let mut waits = 0u64;
                while !other_ran.load(Ordering::SeqCst) {
                    rx.mark_changed();
                    rx.changed().await.unwrap();
                    waits += 1;
                    assert!(waits < 1_000_000, "the changed loop never yielded");
                }
                other.await.unwrap();
            })
            .await
            .unwrap();
        });
    });
}
