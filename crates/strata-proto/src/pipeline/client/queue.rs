//! [`CallQueue`]: the calls on their way to a client's connection task,
//! and the bound on the calls a connection holds.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::ClientError;
use super::reply::ReplyTo;
use event_listener::{Event, IntoNotification};

/// A call on its way to the connection task.
pub(super) struct Call<Req, Resp> {
    pub(super) request: Req,
    pub(super) reply: ReplyTo<Result<Resp, ClientError>>,
}

/// The calls queued for one connection, shared by its handles and its
/// task.
///
/// Each call holds one of `max` slots from the moment it is queued until
/// the task is done with it (answered it, or found it given up), so the
/// calls queued and unanswered together stay within `max` whatever the
/// callers do. The task takes every queued call in one lock, and gives
/// back the slots of a batch of answered calls in one lock: the costs per
/// call are the caller's one lock and the wake-up, when the task sleeps.
pub(super) struct CallQueue<Req, Resp> {
    state: Mutex<State<Req, Resp>>,
    /// Callers waiting for a slot.
    room: Event,
}

struct State<Req, Resp> {
    calls: VecDeque<Call<Req, Resp>>,
    /// Slots in use: calls queued, plus calls taken and not yet done with.
    held: usize,
    max: usize,
    /// The task, when it waits for calls.
    task: Option<Waker>,
    /// No handle is left: no call will come.
    abandoned: bool,
    /// The connection has ended, and why: calls are refused.
    end: Option<ClientError>,
}

impl<Req, Resp> CallQueue<Req, Resp> {
    pub(super) fn new(max: usize) -> Self {
        CallQueue {
            state: Mutex::new(State {
                calls: VecDeque::new(),
                held: 0,
                max,
                task: None,
                abandoned: false,
                end: None,
            }),
            room: Event::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<Req, Resp>> {
        // Nothing runs user code under the lock; a poisoned lock's state
        // is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `call` once a slot is free, waking the task. Hands the call
    /// back if the connection has ended (also while waiting for a slot).
    ///
    /// Cancel-safe: dropped while it waits, nothing was queued, and a
    /// slot that was freed for it goes to the next waiter (a listener
    /// dropped after its wake-up passes it on).
    pub(super) async fn push(&self, call: Call<Req, Resp>) -> Result<(), Call<Req, Resp>> {
        loop {
            let listener = {
                let mut s = self.lock();
                if s.end.is_some() {
                    return Err(call);
                }
                if s.held < s.max {
                    s.held += 1;
                    s.calls.push_back(call);
                    let task = s.task.take();
                    drop(s);
                    if let Some(task) = task {
                        task.wake();
                    }
                    return Ok(());
                }
                // Listening under the lock: a slot given back after this
                // notifies this listener.
                self.room.listen()
            };
            listener.await;
        }
    }

    /// How the connection ended, if it has.
    pub(super) fn end(&self) -> Option<ClientError> {
        self.lock().end.clone()
    }

    /// Calls queued or unanswered now; `None` once the connection ended.
    pub(super) fn load(&self) -> Option<usize> {
        let s = self.lock();
        s.end.is_none().then_some(s.held)
    }

    /// The task takes every queued call into `into`. `Ready(false)`: none
    /// was queued and no handle is left, so none will be. `Pending`: none
    /// is queued; the task is woken when one is.
    pub(super) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        into: &mut VecDeque<Call<Req, Resp>>,
    ) -> Poll<bool> {
        let mut s = self.lock();
        if !s.calls.is_empty() {
            if into.is_empty() {
                std::mem::swap(&mut s.calls, into);
            } else {
                into.append(&mut s.calls);
            }
            return Poll::Ready(true);
        }
        if s.abandoned {
            return Poll::Ready(false);
        }
        match &mut s.task {
            Some(w) => w.clone_from(cx.waker()),
            None => s.task = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The task is done with `n` calls (answered, failed, or given up by
    /// their callers): their slots are free.
    pub(super) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.lock().held -= n;
        // `additional`: wake `n` more waiters, whatever number were woken
        // before and have not run yet (those may all be waiting for the
        // slots freed before these).
        self.room.notify(n.additional());
    }

    /// The last handle is gone: the task finishes once the calls already
    /// made are answered.
    pub(super) fn abandon(&self) {
        let task = {
            let mut s = self.lock();
            s.abandoned = true;
            s.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }

    /// The connection has ended (`end` says how; the first end recorded
    /// stays): refuses new calls, wakes every caller waiting for a slot
    /// (they find it closed), and returns the calls still queued, to be
    /// failed.
    pub(super) fn close(&self, end: &ClientError) -> VecDeque<Call<Req, Resp>> {
        let calls = {
            let mut s = self.lock();
            if s.end.is_none() {
                s.end = Some(end.clone());
            }
            s.task = None;
            std::mem::take(&mut s.calls)
        };
        self.room.notify(usize::MAX);
        calls
    }
}
