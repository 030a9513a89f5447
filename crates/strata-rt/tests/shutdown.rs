//! Wake-ups that race a runtime's shutdown.
//!
//! While a worker shuts down, a task of its may still be woken from another
//! thread. The task must then be dropped by its own worker, never inside
//! the waker call: the caller may hold a lock that the task's destructor
//! needs. The first two tests hold the worker in its shutdown (a
//! destructor that sleeps) while the wake-up happens; the third races many
//! wake-ups with the runtime's drop, repeatedly. The last has dropping a
//! task at shutdown spawn another, in a chain.

mod support;

use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use strata_rt::Runtime;
use strata_rt::net::UdpSocket;
use support::deadline;

fn one_worker(name: &str) -> Runtime {
    Runtime::builder()
        .worker_threads(1)
        .thread_name(name)
        .build()
        .unwrap()
}

/// Keeps a task queued (it yields forever) and, when dropped at shutdown,
/// runs `on_drop` and then holds the worker for `hold`.
fn spawn_slow_to_drop(rt: &Runtime, hold: Duration, on_drop: impl FnOnce() + Send + 'static) {
    struct SlowDrop<F: FnOnce()>(Option<F>, Duration);
    impl<F: FnOnce()> Drop for SlowDrop<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
            std::thread::sleep(self.1);
        }
    }
    let guard = SlowDrop(Some(on_drop), hold);
    rt.handle().spawn(async move {
        let _guard = guard;
        loop {
            strata_rt::yield_now().await;
        }
    });
}

/// A task of runtime 1 waits on a socket registered with runtime 2's
/// worker. Data for it arrives while runtime 1 shuts down, so runtime 2's
/// reactor wakes a task whose worker is stopping. Dropping that task drops
/// the socket, which deregisters from runtime 2's reactor: were the task
/// dropped inside the wake-up, runtime 2's worker would wait on its own
/// reactor's lock forever.
#[test]
fn a_reactor_waking_a_task_of_a_stopping_runtime_carries_on() {
    deadline(30, || {
        let r1 = one_worker("shutdown-r1");
        let r2 = one_worker("shutdown-r2");
        // Registered with r2's worker.
        let sock = r2
            .block_on(
                r2.handle()
                    .spawn(async { UdpSocket::bind("127.0.0.1:0").unwrap() }),
            )
            .unwrap();
        let addr = sock.local_addr().unwrap();
        // Waits on it from r1.
        r1.handle().spawn(async move {
            let mut buf = [0u8; 8];
            let _ = sock.recv(&mut buf).await;
        });
        // While r1 shuts down: a datagram for the waiting task.
        spawn_slow_to_drop(&r1, Duration::from_millis(300), move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(b"x", addr).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(r1);
        // r2's worker still runs tasks.
        let (tx, rx) = mpsc::channel();
        r2.handle().spawn(async move { tx.send(()).unwrap() });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("runtime 2's worker stopped running tasks");
    });
}

/// Stores the waker it is polled with, and never finishes.
struct Parked(Arc<Mutex<Option<Waker>>>);

impl Future for Parked {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A thread wakes a task of a stopping runtime while holding a lock that
/// the task's destructor takes. Were the task dropped inside `wake`, that
/// thread would deadlock on its own lock.
#[test]
fn waking_a_task_of_a_stopping_runtime_never_runs_its_destructor_in_the_waker() {
    deadline(30, || {
        let rt = one_worker("shutdown-user-lock");
        let lock = Arc::new(Mutex::new(()));
        let slot = Arc::new(Mutex::new(None::<Waker>));

        // The task: parks its waker; its destructor takes `lock`.
        struct TakesLock(Arc<Mutex<()>>);
        impl Drop for TakesLock {
            fn drop(&mut self) {
                drop(self.0.lock().unwrap());
            }
        }
        let guard = TakesLock(lock.clone());
        let parked = Parked(slot.clone());
        rt.handle().spawn(async move {
            let _guard = guard;
            parked.await;
            pending::<()>().await;
        });
        while slot.lock().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }

        // While the runtime shuts down: wake the task under `lock`.
        let (tx, rx) = mpsc::channel();
        spawn_slow_to_drop(&rt, Duration::from_millis(300), move || {
            std::thread::spawn(move || {
                let held = lock.lock().unwrap();
                let waker = slot.lock().unwrap().take().unwrap();
                waker.wake();
                drop(held);
                tx.send(()).unwrap();
            });
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(rt);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the waking thread never returned from `wake`");
    });
}

/// Records, when dropped, whether that happened on a worker thread.
struct DropsWhere(Arc<std::sync::atomic::AtomicUsize>);
impl Drop for DropsWhere {
    fn drop(&mut self) {
        let on_worker = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("shutdown-stress"));
        if !on_worker {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Many wake-ups from other threads racing the runtime's drop, repeated:
/// every task is dropped on its worker, never in a waker's caller, also a
/// task whose wake-up had begun (marked it scheduled) but not yet reached
/// the worker's queue when the worker went through its shutdown.
#[test]
fn wake_ups_racing_shutdown_never_drop_a_task_in_the_waker() {
    deadline(120, || {
        let off_worker = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..200 {
            let rt = one_worker("shutdown-stress");
            let slots: Vec<Arc<Mutex<Option<Waker>>>> =
                (0..16).map(|_| Arc::new(Mutex::new(None))).collect();
            for slot in &slots {
                let guard = DropsWhere(off_worker.clone());
                let parked = Arc::clone(slot);
                rt.handle().spawn(async move {
                    let _guard = guard;
                    loop {
                        Parked(parked.clone()).await;
                    }
                });
            }
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let wakers: Vec<_> = (0..3)
                .map(|_| {
                    let slots = slots.clone();
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            for slot in &slots {
                                let w = slot.lock().unwrap().clone();
                                if let Some(w) = w {
                                    w.wake();
                                }
                            }
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(1));
            drop(rt);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for w in wakers {
                w.join().unwrap();
            }
            drop(slots);
        }
        assert_eq!(
            off_worker.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "tasks dropped off their worker"
        );
    });
}

/// When dropped, spawns a task holding the next link of the chain (on the
/// current worker, at shutdown); the last link records whether it was
/// dropped while its runtime was still the thread's current one.
struct SpawnsOnDrop {
    left: u32,
    last_in_runtime: mpsc::Sender<bool>,
}
impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let tx = self.last_in_runtime.clone();
        if self.left == 0 {
            let _ = tx.send(strata_rt::runtime::Handle::try_current().is_some());
            return;
        }
        let next = SpawnsOnDrop {
            left: self.left - 1,
            last_in_runtime: tx,
        };
        strata_rt::spawn(async move {
            let _next = next;
            pending::<()>().await
        });
    }
}

/// Dropping a task at shutdown may spawn another, whose drop spawns
/// another: the worker drops its queue until it stays empty, so every
/// task of the chain is dropped by the worker's shutdown, inside the
/// runtime, not left in the queue for the worker's thread to drop after
/// it has left the runtime.
#[test]
fn a_chain_of_tasks_spawned_by_destructors_at_shutdown_is_dropped_inside_the_runtime() {
    deadline(20, || {
        let rt = one_worker("shutdown-chain");
        let (tx, rx) = mpsc::channel();
        let (polled_tx, polled_rx) = mpsc::channel();
        let first = SpawnsOnDrop {
            left: 3,
            last_in_runtime: tx,
        };
        rt.handle().spawn(async move {
            let _first = first;
            let _ = polled_tx.send(());
            pending::<()>().await
        });
        polled_rx.recv().unwrap();
        drop(rt);
        let in_runtime = rx.recv().expect("the last task of the chain was dropped");
        assert!(
            in_runtime,
            "the last task of the chain was dropped outside its runtime"
        );
    });
}
