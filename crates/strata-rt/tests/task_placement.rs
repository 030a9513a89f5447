//! Where a stream accepted in `block_on` and the task spawned for it run.
//!
//! In the usual accept loop on the `block_on` thread (bind a listener,
//! then accept and spawn a task per stream), each stream must be
//! registered with the reactor of the worker its task runs on, or every
//! readiness event is a cross-thread wake-up. Placement by separate
//! round-robin counts for spawning and for sockets put, after the bind
//! took a socket slot, every stream on the other worker from its task
//! (two workers); sockets now follow the spawn count.
//!
//! The test counts, per connection task, which thread woke it: a waker
//! that forwards to the task's waker and records the waking thread.

mod support;

use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::poll_fn;
use futures_util::io::AsyncRead;
use strata_rt::net::TcpListener;
use strata_rt::spawn;
use support::{deadline, rt};

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

/// Forwards to the task's waker, noting the thread of the first wake.
struct Note {
    inner: Waker,
    woke_on: Arc<Mutex<Option<String>>>,
}

impl Wake for Note {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woke_on.lock().unwrap().get_or_insert_with(thread_name);
        self.inner.wake_by_ref();
    }
}

#[test]
fn accepted_stream_and_its_task_share_a_worker_in_the_block_on_accept_loop() {
    const N: usize = 8;
    let pairs = deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let waiting = Arc::new(AtomicUsize::new(0));
            let w = waiting.clone();
            let clients = std::thread::spawn(move || {
                let mut socks: Vec<_> = (0..N)
                    .map(|_| std::net::TcpStream::connect(addr).unwrap())
                    .collect();
                // Write only once every task waits for data (hang guard:
                // `deadline`).
                while w.load(Ordering::Acquire) < N {
                    std::thread::yield_now();
                }
                for s in &mut socks {
                    s.write_all(b"x").unwrap();
                }
                socks
            });
            let mut handles = Vec::new();
            for _ in 0..N {
                let (mut stream, _) = listener.accept().await.unwrap();
                let waiting = waiting.clone();
                handles.push(spawn(async move {
                    let woke_on = Arc::new(Mutex::new(None));
                    let mut buf = [0u8; 8];
                    let mut counted = false;
                    poll_fn(|cx| {
                        let note = Waker::from(Arc::new(Note {
                            inner: cx.waker().clone(),
                            woke_on: woke_on.clone(),
                        }));
                        let r = Pin::new(&mut stream)
                            .poll_read(&mut Context::from_waker(&note), &mut buf);
                        if r.is_pending() && !counted {
                            counted = true;
                            waiting.fetch_add(1, Ordering::AcqRel);
                        }
                        match r {
                            Poll::Ready(r) => Poll::Ready(r.unwrap()),
                            Poll::Pending => Poll::Pending,
                        }
                    })
                    .await;
                    let woke = woke_on.lock().unwrap().clone();
                    (thread_name(), woke)
                }));
            }
            let mut pairs = Vec::new();
            for h in handles {
                pairs.push(h.await.unwrap());
            }
            drop(clients.join().unwrap());
            pairs
        })
    });
    let apart: Vec<_> = pairs
        .iter()
        .filter(|(task, woke)| woke.as_ref().is_some_and(|w| w != task))
        .collect();
    assert!(
        apart.is_empty(),
        "{} of {N} connection tasks were woken by another worker's reactor \
         (task thread, waking thread): {apart:?}",
        apart.len()
    );
}
