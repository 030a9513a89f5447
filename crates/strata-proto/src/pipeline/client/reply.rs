//! [`reply`]: where a call's answer goes, a one-use channel from the
//! connection task to the caller.
//!
//! Lighter than a general oneshot channel for this one use: one lock per
//! side and no lock at all to see whether the caller gave up (the task
//! asks that of every call before writing its request).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

enum State<T> {
    /// No answer yet; the caller's waker, once it has waited.
    Waiting(Option<Waker>),
    /// The answer, not yet taken.
    Answered(T),
    /// The answer was taken, or the task dropped its end without one.
    Over,
}

type Slot<T> = Arc<Mutex<State<T>>>;

fn lock<T>(slot: &Slot<T>) -> MutexGuard<'_, State<T>> {
    // No user code runs under the lock: a poisoned lock's state is whole.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new reply channel: the task's end and the caller's.
pub(super) fn reply<T>() -> (ReplyTo<T>, Answer<T>) {
    let slot = Arc::new(Mutex::new(State::Waiting(None)));
    let to = ReplyTo {
        slot: slot.clone(),
        sent: false,
    };
    (to, Answer { slot })
}

/// The task's end: answers once.
pub(super) struct ReplyTo<T> {
    slot: Slot<T>,
    sent: bool,
}

impl<T> ReplyTo<T> {
    /// Whether the caller gave up (dropped its [`Answer`]).
    pub(super) fn is_canceled(&self) -> bool {
        // Only the two ends hold the slot, and neither is cloned: once the
        // count is 1 the caller is gone for good.
        Arc::strong_count(&self.slot) == 1
    }

    /// Hands the caller its answer (dropped if the caller gave up).
    pub(super) fn send(mut self, value: T) {
        self.set(Some(value));
        self.sent = true;
    }

    fn set(&self, value: Option<T>) {
        let waker = {
            let mut state = lock(&self.slot);
            let next = match value {
                Some(v) => State::Answered(v),
                None => State::Over,
            };
            match std::mem::replace(&mut *state, next) {
                State::Waiting(waker) => waker,
                // Answered already: keep that answer.
                other => {
                    *state = other;
                    None
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for ReplyTo<T> {
    fn drop(&mut self) {
        // Dropped without an answer: the caller must not wait forever.
        if !self.sent && !self.is_canceled() {
            self.set(None);
        }
    }
}

/// The caller's end: resolves with the answer, or `None` if the task
/// dropped its end without one.
pub(super) struct Answer<T> {
    slot: Slot<T>,
}

impl<T> Future for Answer<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.slot);
        match &mut *state {
            State::Waiting(waker) => {
                match waker {
                    Some(w) => w.clone_from(cx.waker()),
                    None => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Answered(_) => match std::mem::replace(&mut *state, State::Over) {
                State::Answered(v) => Poll::Ready(Some(v)),
                _ => unreachable!("matched as answered under the same lock"),
            },
            State::Over => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<T>(a: &mut Answer<T>, waker: &Waker) -> Poll<Option<T>> {
        Pin::new(a).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn an_answer_sent_before_or_after_the_wait_arrives_once() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let (to, mut answer) = reply();
        assert!(poll(&mut answer, &waker).is_pending());
        to.send(7);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut answer, &waker), Poll::Ready(Some(7)));

        let (to, mut answer) = reply();
        to.send("early");
        assert_eq!(poll(&mut answer, &waker), Poll::Ready(Some("early")));
    }

    #[test]
    fn a_task_end_dropped_without_an_answer_wakes_the_caller_with_none() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let (to, mut answer) = reply::<u32>();
        assert!(poll(&mut answer, &waker).is_pending());
        drop(to);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut answer, &waker), Poll::Ready(None));
    }

    #[test]
    fn a_caller_that_gives_up_is_seen_and_its_answer_dropped() {
        let (to, answer) = reply::<Arc<()>>();
        assert!(!to.is_canceled());
        drop(answer);
        assert!(to.is_canceled());
        let value = Arc::new(());
        to.send(value.clone());
        assert_eq!(Arc::strong_count(&value), 1, "the answer was dropped");
    }

    #[test]
    fn an_answer_sent_from_another_thread_while_the_caller_polls_is_never_lost() {
        for _ in 0..2_000 {
            let count = Arc::new(Count(AtomicUsize::new(0)));
            let waker = Waker::from(count.clone());
            let (to, mut answer) = reply::<u32>();
            assert!(poll(&mut answer, &waker).is_pending());
            let t = std::thread::spawn(move || to.send(1));
            loop {
                match poll(&mut answer, &waker) {
                    Poll::Ready(v) => {
                        assert_eq!(v, Some(1));
                        break;
                    }
                    Poll::Pending => std::thread::yield_now(),
                }
            }
            t.join().unwrap();
        }
    }
}
