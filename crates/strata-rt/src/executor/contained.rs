//! [`ContainedWaker`]: hands other executors' wakers to code that wakes
//! them where a panic must not escape.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Wake, Waker};

use super::task;

/// For a future polled by other executors too: the waker to register with
/// code that wakes (or clones, or drops) it where a panic must not escape,
/// such as async-task (under its abort-on-panic guard: the process would
/// end) or event-listener (under its lock: its list would be left broken,
/// and the waiters after the panicking one unwoken). A strata task's own
/// waker is handed over as it is; any other is wrapped in a waker that
/// forwards to it and catches and logs its panics. One wrapper per future,
/// made on its first poll by another executor and then reused.
#[derive(Debug, Default)]
pub(crate) struct ContainedWaker(Option<Arc<Contained>>);

impl ContainedWaker {
    /// Runs `poll` with `cx`, or, when `cx`'s waker is not the polling
    /// strata task's own, with the wrapper forwarding to it.
    #[inline]
    pub(crate) fn poll_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> R,
    ) -> R {
        if task::is_polling_task(cx.waker()) {
            return poll(cx);
        }
        let waker = self.forwarding_to(cx.waker());
        poll(&mut Context::from_waker(&waker))
    }

    #[cold]
    fn forwarding_to(&mut self, target: &Waker) -> Waker {
        match &self.0 {
            Some(contained) => {
                let mut current = contained.0.lock().unwrap_or_else(PoisonError::into_inner);
                if !current.will_wake(target) {
                    *current = target.clone();
                }
                drop(current);
                Waker::from(contained.clone())
            }
            None => {
                let contained = Arc::new(Contained(Mutex::new(target.clone())));
                self.0 = Some(contained.clone());
                Waker::from(contained)
            }
        }
    }
}

/// Passes a wake-up on to another executor's waker, containing a panic
/// (from its wake, clone or drop).
#[derive(Debug)]
struct Contained(Mutex<Waker>);

impl Wake for Contained {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Cloning another executor's waker runs its code too.
        super::contain("a waker panicked", || {
            let waker = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            // Woken with the lock released: it may poll the future again.
            waker.wake();
        });
    }
}

impl Drop for Contained {
    /// The last copy may be dropped where a panic must not escape too (a
    /// wake-up consumes the waker); the waker's own destructor may panic.
    fn drop(&mut self) {
        let slot = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        let waker = std::mem::replace(slot, Waker::noop().clone());
        super::contain("a waker panicked while dropped", move || drop(waker));
    }
}
