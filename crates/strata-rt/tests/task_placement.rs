//! Where a socket registers, and which worker's reactor wakes the task
//! that uses it.
//!
//! A socket registers with the reactor of the worker that first polls it,
//! so a stream accepted in one place and read by a task on another worker
//! gets its readiness from that task's worker; otherwise every readiness
//! event is a cross-thread wake-up. In the usual accept loop on the
//! `block_on` thread (bind a listener, then accept and spawn a task per
//! stream), that is the worker each task was spread to.
//!
//! The tests count, per connection task, which thread woke it: a waker
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
use support::{deadline, epolls_watching, rt};

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

/// Reads one byte from `stream`, counting itself in `waiting` once it
/// waits; returns the task's thread and the thread whose wake-up ended the
/// wait.
async fn read_one(
    mut stream: strata_rt::net::TcpStream,
    waiting: Arc<AtomicUsize>,
) -> (String, Option<String>) {
    let woke_on = Arc::new(Mutex::new(None));
    let mut buf = [0u8; 8];
    let mut counted = false;
    poll_fn(|cx| {
        let note = Waker::from(Arc::new(Note {
            inner: cx.waker().clone(),
            woke_on: woke_on.clone(),
        }));
        let r = Pin::new(&mut stream).poll_read(&mut Context::from_waker(&note), &mut buf);
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
}

/// `n` clients on a thread of their own that connect, wait until `waiting`
/// reaches `n`, then write a byte each; the thread returns the sockets.
fn clients(
    addr: std::net::SocketAddr,
    n: usize,
    waiting: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<std::net::TcpStream>> {
    std::thread::spawn(move || {
        let mut socks: Vec<_> = (0..n)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        // Write only once every task waits for data (hang guard:
        // `deadline`).
        while waiting.load(Ordering::Acquire) < n {
            std::thread::yield_now();
        }
        for s in &mut socks {
            s.write_all(b"x").unwrap();
        }
        socks
    })
}

/// Awaits the `read_one` tasks, then the clients' thread.
async fn pairs_of(
    handles: Vec<strata_rt::JoinHandle<(String, Option<String>)>>,
    clients: std::thread::JoinHandle<Vec<std::net::TcpStream>>,
) -> Vec<(String, Option<String>)> {
    let mut pairs = Vec::new();
    for h in handles {
        pairs.push(h.await.unwrap());
    }
    drop(clients.join().unwrap());
    pairs
}

/// The (task thread, waking thread) pairs that differ.
fn apart(pairs: &[(String, Option<String>)]) -> Vec<&(String, Option<String>)> {
    pairs
        .iter()
        .filter(|(task, woke)| woke.as_ref().is_some_and(|w| w != task))
        .collect()
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
            let clients = clients(addr, N, waiting.clone());
            let mut handles = Vec::new();
            for _ in 0..N {
                let (stream, _) = listener.accept().await.unwrap();
                let waiting = waiting.clone();
                handles.push(spawn(read_one(stream, waiting)));
            }
            pairs_of(handles, clients).await
        })
    });
    let apart = apart(&pairs);
    assert!(
        apart.is_empty(),
        "{} of {N} connection tasks were woken by another worker's reactor \
         (task thread, waking thread): {apart:?}",
        apart.len()
    );
}

/// Streams accepted one after another with no spawn between, then handed
/// to tasks on chosen workers: each registers with the reactor of the
/// worker that first polls it, so each task is woken by its own worker.
/// (Registered at creation, all of them joined one worker's reactor.)
#[test]
fn streams_accepted_together_register_with_the_worker_that_polls_them() {
    const N: usize = 8;
    let pairs = deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let waiting = Arc::new(AtomicUsize::new(0));
            let clients = clients(addr, N, waiting.clone());
            let mut streams = Vec::new();
            for _ in 0..N {
                streams.push(listener.accept().await.unwrap().0);
            }
            let handles: Vec<_> = streams
                .into_iter()
                .enumerate()
                .map(|(i, s)| handle.spawn_on(i % 2, read_one(s, waiting.clone())))
                .collect();
            pairs_of(handles, clients).await
        })
    });
    let apart = apart(&pairs);
    assert!(
        apart.is_empty(),
        "woken by another worker's reactor: {apart:?}"
    );
}

/// A stream accepted by a task on worker 0 and handed to a task on worker
/// 1 before its first read is woken by worker 1.
#[test]
fn stream_accepted_on_one_worker_and_read_on_another_is_woken_there() {
    const N: usize = 4;
    let pairs = deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let waiting = Arc::new(AtomicUsize::new(0));
            let clients = clients(addr, N, waiting.clone());
            let h = handle.clone();
            let acceptor = handle.spawn_on(0, async move {
                let mut handles = Vec::new();
                for _ in 0..N {
                    let (s, _) = listener.accept().await.unwrap();
                    handles.push(h.spawn_on(1, read_one(s, waiting.clone())));
                }
                handles
            });
            pairs_of(acceptor.await.unwrap(), clients).await
        })
    });
    assert!(
        pairs.iter().all(|(task, _)| task.ends_with('1')),
        "{pairs:?}"
    );
    let apart = apart(&pairs);
    assert!(
        apart.is_empty(),
        "woken by another worker's reactor: {apart:?}"
    );
}

/// The two halves of a stream no one has polled yet, first polled at the
/// same time on two workers: the stream is registered once, with one
/// worker's epoll, and both halves work. (Without the registration lock
/// both first polls registered it, each with its own worker's epoll.)
/// Many rounds, so the two first polls often overlap.
#[test]
fn halves_first_polled_on_two_workers_at_once_register_the_stream_once() {
    use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    use std::io::Read;
    const ROUNDS: usize = 1000;
    deadline(60, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            for round in 0..ROUNDS {
                let mut client = std::net::TcpStream::connect(addr).unwrap();
                client.write_all(b"ping").unwrap();
                let (stream, _) = listener.accept().await.unwrap();
                let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
                let (mut r, mut w) = stream.into_split();
                // Both tasks leave the barrier together (each holds its
                // worker for that moment, which a test may do).
                let start = Arc::new(std::sync::Barrier::new(2));
                let go = start.clone();
                let reader = handle.spawn_on(round % 2, async move {
                    go.wait();
                    let mut buf = [0u8; 4];
                    r.read_exact(&mut buf).await.map(|()| (r, buf))
                });
                let writer = handle.spawn_on((round + 1) % 2, async move {
                    start.wait();
                    w.write_all(b"pong").await?;
                    w.flush().await.map(|()| w)
                });
                let (r, got) = reader.await.unwrap().unwrap();
                assert_eq!(&got, b"ping", "round {round}");
                let w = writer.await.unwrap().unwrap();
                assert_eq!(epolls_watching(fd), 1, "round {round}");
                drop((r, w));
                let mut buf = [0u8; 4];
                client.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"pong", "round {round}");
            }
        })
    });
}

/// A socket created under a runtime that is gone before the socket's first
/// use: used off the workers, where it would register with that runtime's
/// reactor, it fails with the shutdown error instead of hanging; used by a
/// task of another runtime, it registers there and works.
#[test]
fn a_socket_first_used_after_its_runtime_is_gone() {
    use strata_rt::net::UdpSocket;
    deadline(30, || {
        let first = rt(1);
        let (a, b) = first.block_on(async {
            (
                UdpSocket::bind("127.0.0.1:0").unwrap(),
                UdpSocket::bind("127.0.0.1:0").unwrap(),
            )
        });
        drop(first);
        let to = b.local_addr().unwrap();
        let e = support::plain_block_on(a.send_to(b"x", to)).expect_err("sent");
        assert!(e.to_string().contains("shut down"), "{e}");
        let second = rt(1);
        let handle = second.handle().clone();
        second.block_on(async move {
            let got = handle
                .spawn_on(0, async move {
                    let mut buf = [0u8; 4];
                    let from = b.local_addr().unwrap();
                    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
                    sender.send_to(b"hi", from).await.unwrap();
                    let (n, _) = b.recv_from(&mut buf).await.unwrap();
                    buf[..n].to_vec()
                })
                .await
                .unwrap();
            assert_eq!(got, b"hi");
        });
    });
}
