//! Edges of the mpsc receivers' budget, vectored writes, `Handle::is_worker_thread`
//! and accepting off a runtime.
//! No wall-clock thresholds: events are counted; `deadline` is a hang guard.

mod support;

use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures_core::Stream;
use strata_rt::sync::mpsc;
use strata_rt::{spawn, time};
use support::{deadline, rt};

/// Each message taken spends one unit of the task's budget; a poll that
/// finds the queue empty takes no message and (as in tokio, whose coop
/// guard is restored on `Pending`) spends nothing: after 200 empty polls
/// the message queued next is still taken in the same task poll. (The
/// empty polls used to exhaust the budget.)
#[test]
fn mpsc_poll_of_an_empty_queue_does_not_spend_the_budget() {
    deadline(30, || {
        let rt = rt(1);
        let got = rt.block_on(async {
            spawn(async {
                let mut idle: Vec<_> = (0..200).map(|_| mpsc::unbounded::<u32>()).collect();
                let (tx, mut rx) = mpsc::unbounded::<u32>();
                poll_fn(move |cx| {
                    for (_, r) in idle.iter_mut() {
                        assert!(Pin::new(r).poll_next(cx).is_pending());
                    }
                    tx.unbounded_send(7).unwrap();
                    Poll::Ready(Pin::new(&mut rx).poll_next(cx))
                })
                .await
            })
            .await
            .unwrap()
        });
        assert_eq!(
            got,
            Poll::Ready(Some(7)),
            "a queued message was refused after polls that took nothing"
        );
    });
}

/// A task that waits on more than 128 idle receivers at once (a
/// hand-written select over many channels) is polled once, not spun: it
/// used to spend its whole budget on `Pending` polls and wake itself,
/// again and again, while no message ever arrived.
#[test]
fn mpsc_task_waiting_on_many_idle_receivers_does_not_spin() {
    deadline(60, || {
        let rt = rt(1);
        rt.block_on(async {
            let polls = Arc::new(AtomicUsize::new(0));
            let mut chans: Vec<_> = (0..200).map(|_| mpsc::unbounded::<u32>()).collect();
            let tx0 = chans[0].0.clone();
            let p = polls.clone();
            let task = spawn(async move {
                poll_fn(move |cx| {
                    p.fetch_add(1, Ordering::SeqCst);
                    for (_, r) in chans.iter_mut() {
                        if let Poll::Ready(v) = Pin::new(r).poll_next(cx) {
                            return Poll::Ready(v);
                        }
                    }
                    Poll::Pending
                })
                .await
            });
            // Give a spinning task room to show itself; not a threshold.
            time::sleep(Duration::from_millis(100)).await;
            tx0.unbounded_send(1).unwrap();
            assert_eq!(task.await.unwrap(), Some(1));
            let n = polls.load(Ordering::SeqCst);
            assert!(
                n <= 4,
                "the task was polled {n} times while all its channels were idle"
            );
        });
    });
}

/// `poll_write_vectored` skips leading empty slices before its 1,024-slice
/// cap: with 1,024 empty slices in front of the data it used to send
/// nothing and report `Ok(0)`, which `AsyncWrite` callers read as "the
/// writer accepts no more" (`WriteZero`).
#[test]
fn vectored_write_with_many_leading_empty_slices_writes_the_data() {
    use futures_util::AsyncWriteExt;
    use std::io::Read;
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let listener = strata_rt::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                let mut got = Vec::new();
                c.read_to_end(&mut got).unwrap();
                got
            });
            let (mut s, _) = listener.accept().await.unwrap();
            let empty: &[u8] = b"";
            let mut bufs = vec![IoSlice::new(empty); 1024];
            bufs.push(IoSlice::new(b"x"));
            let n = s.write_vectored(&bufs).await.unwrap();
            s.close().await.unwrap();
            drop(s);
            let got = client.join().unwrap();
            assert_eq!(
                (n, got),
                (1, b"x".to_vec()),
                "wrote nothing and reported 0 with data left and room in the socket"
            );
        });
    });
}

/// `is_worker_thread` is true in a task, false in `block_on`, on the
/// blocking pool and on another runtime's worker.
#[test]
fn is_worker_thread_where_documented() {
    deadline(30, || {
        let a = rt(1);
        let b = rt(1);
        let ha = a.handle().clone();
        let hb = b.handle().clone();
        a.block_on(async move {
            assert!(!ha.is_worker_thread());
            let h = ha.clone();
            assert!(spawn(async move { h.is_worker_thread() }).await.unwrap());
            let h = ha.clone();
            assert!(
                !strata_rt::spawn_blocking(move || h.is_worker_thread())
                    .await
                    .unwrap()
            );
            let h = ha.clone();
            assert!(!hb.spawn(async move { h.is_worker_thread() }).await.unwrap());
        });
    });
}

/// Accept on a plain thread keeps the connection, the stream works
/// on the listener's reactor, and its descriptor is usable via AsFd.
#[test]
fn accept_off_runtime_and_as_fd() {
    use std::io::{Read, Write};
    use std::os::fd::{AsFd, AsRawFd};
    deadline(30, || {
        let rt = rt(1);
        let listener = rt
            .block_on(async { strata_rt::net::TcpListener::bind("127.0.0.1:0") })
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"ping").unwrap();
            let mut got = [0u8; 4];
            c.read_exact(&mut got).unwrap();
            got
        });
        let (s, _) = futures_executor_block_on(listener.accept()).unwrap();
        assert_eq!(s.as_fd().as_raw_fd(), s.as_raw_fd());
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::from_secs(0)))
            .unwrap();
        let mut buf = [0u8; 4];
        let s2 = &s;
        futures_executor_block_on(async move {
            use futures_util::{AsyncReadExt, AsyncWriteExt};
            let mut r = s2;
            r.read_exact(&mut buf).await.unwrap();
            r.write_all(b"pong").await.unwrap();
        });
        assert_eq!(&client.join().unwrap(), b"pong");
    });
}

/// A minimal thread-parking `block_on`, outside any runtime.
fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
