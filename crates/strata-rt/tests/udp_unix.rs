//! UDP and Unix domain sockets over loopback.

mod support;

use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{UdpSocket, UnixListener, UnixStream};
use strata_rt::spawn;
use support::cancel::poll_once;
use support::{deadline, rt};

#[test]
fn udp_round_trip_unconnected_and_connected() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let server = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let server_addr = server.local_addr().unwrap();
            let s = server.clone();
            let echo = spawn(async move {
                let mut buf = [0u8; 1500];
                for _ in 0..100 {
                    let (n, from) = s.recv_from(&mut buf).await.unwrap();
                    s.send_to(&buf[..n], from).await.unwrap();
                }
            });
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut buf = [0u8; 1500];
            for i in 0..50u32 {
                let msg = i.to_be_bytes();
                client.send_to(&msg, server_addr).await.unwrap();
                let (n, from) = client.recv_from(&mut buf).await.unwrap();
                assert_eq!((&buf[..n], from), (&msg[..], server_addr));
            }
            client.connect(server_addr).unwrap();
            assert_eq!(client.peer_addr().unwrap(), server_addr);
            for i in 50..100u32 {
                let msg = i.to_be_bytes();
                client.send(&msg).await.unwrap();
                let n = client.recv(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], &msg[..]);
            }
            echo.await.unwrap();
        });
    });
}

#[test]
fn set_broadcast_turns_so_broadcast_on_and_off() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let opt = || socket2::SockRef::from(&sock).broadcast().unwrap();
            assert!(!opt());
            sock.set_broadcast(true).unwrap();
            assert!(opt());
            sock.set_broadcast(false).unwrap();
            assert!(!opt());
        });
    });
}

#[test]
fn two_tasks_receiving_on_one_udp_socket_are_both_served() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let addr = sock.local_addr().unwrap();
            let receivers: Vec<_> = (0..2)
                .map(|_| {
                    let s = sock.clone();
                    spawn(async move {
                        let mut buf = [0u8; 16];
                        s.recv_from(&mut buf).await.unwrap().0
                    })
                })
                .collect();
            strata_rt::yield_now().await;
            let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
            sender.send_to(b"one", addr).await.unwrap();
            sender.send_to(b"two", addr).await.unwrap();
            for r in receivers {
                assert_eq!(r.await.unwrap(), 3);
            }
        });
    });
}

#[test]
fn unix_stream_round_trip_and_pair() {
    deadline(30, || {
        let dir = std::env::temp_dir().join(format!("strata-unix-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("echo.sock");
        let _ = std::fs::remove_file(&path);
        let rt = rt(2);
        let p = path.clone();
        rt.block_on(async move {
            let listener = UnixListener::bind(&p).unwrap();
            spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                let (mut r, mut w) = (&s, &s);
                futures_util::io::copy(&mut r, &mut w).await.unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let mut c = UnixStream::connect(&p).await.unwrap();
            let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
            let d = data.clone();
            let writer = async {
                c.write_all(&d).await.unwrap();
                c.shutdown(std::net::Shutdown::Write).unwrap();
                let mut back = Vec::new();
                c.read_to_end(&mut back).await.unwrap();
                back
            };
            assert_eq!(writer.await, data);

            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(b"pair").await.unwrap();
            let mut buf = [0u8; 4];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pair");
        });
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// `close` (`AsyncWrite::poll_close`) shuts down the write direction: the
/// peer reads to the end, and the closing side still reads the reply.
#[test]
fn closing_a_unix_stream_ends_the_peers_reads_but_not_its_own() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(b"bye").await.unwrap();
            a.close().await.unwrap();
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"bye");
            b.write_all(b"ok").await.unwrap();
            let mut reply = [0u8; 2];
            a.read_exact(&mut reply).await.unwrap();
            assert_eq!(&reply, b"ok");
        });
    });
}

#[test]
fn shutting_a_unix_streams_write_direction_fails_a_pending_write() {
    // Unix sockets, unlike TCP, report no event when their own write
    // direction is shut down: the stream must wake its writers itself.
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let (a, _peer_not_reading) = UnixStream::pair().unwrap();
            let a = Arc::new(a);
            let writer = a.clone();
            let h = spawn(async move {
                let chunk = vec![1u8; 65536];
                loop {
                    if let Err(e) = (&*writer).write(&chunk).await {
                        return e;
                    }
                }
            });
            // Time for the writer to fill the buffer and wait.
            strata_rt::time::sleep(Duration::from_millis(200)).await;
            a.shutdown(Shutdown::Write).unwrap();
            let e = h.await.unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        });
    });
}

#[test]
fn unix_connect_to_a_missing_path_fails() {
    deadline(30, || {
        let rt = rt(1);
        let err = rt
            .block_on(UnixStream::connect("/nonexistent/strata/socket"))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    });
}

/// A listener whose backlog is full refuses a connect at once; the caller
/// sees `ConnectionRefused`, never `WouldBlock`.
#[test]
fn unix_connect_to_a_full_backlog_is_refused() {
    use socket2::{Domain, SockAddr, Socket, Type};
    deadline(30, || {
        let dir = std::env::temp_dir().join(format!("strata-backlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let _ = std::fs::remove_file(&path);
        // Never accepts, backlog of one.
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        listener.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        listener.listen(1).unwrap();
        let rt = rt(1);
        let results: Vec<_> = rt.block_on(async {
            futures_util::future::join_all((0..8).map(|_| UnixStream::connect(&path))).await
        });
        let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(!refused.is_empty(), "eight connects fit a backlog of one");
        for e in refused {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
        }
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A read already waiting on a connected UDP socket is woken by a refused
/// datagram (ICMP port unreachable: an error event, with nothing to
/// read) and fails with `ConnectionRefused`.
#[test]
fn a_waiting_read_on_a_connected_udp_socket_sees_a_refused_datagram() {
    use std::future::{Future, poll_fn};
    use std::task::Poll;
    use std::time::Duration;
    use strata_rt::time::timeout;

    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            // A port with nothing behind it: bind, note it, close.
            let dead = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(dead).unwrap();
            let mut buf = [0u8; 16];
            let mut recv = std::pin::pin!(sock.recv(&mut buf));
            // Nothing to read yet: the read waits.
            let first = poll_fn(|cx| Poll::Ready(recv.as_mut().poll(cx))).await;
            assert!(first.is_pending(), "{first:?}");
            sock.send(b"anyone?").await.unwrap();
            let err = timeout(Duration::from_secs(10), recv)
                .await
                .expect("the refusal did not wake the waiting read")
                .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        });
    });
}

/// A connected UDP socket whose datagram was refused (ICMP port
/// unreachable) reports the error once; after it, a read must wait for the
/// next datagram like any other, not find the socket "ready" forever and
/// spin on `WouldBlock`.
#[test]
fn after_a_refused_datagram_a_connected_udp_socket_waits_again() {
    use std::future::{Future, poll_fn};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use strata_rt::time::{sleep, timeout};

    async fn refused() -> UdpSocket {
        // A port with nothing behind it: bind, note it, close.
        let dead = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(dead).unwrap();
        sock.send(b"anyone?").await.unwrap();
        sleep(Duration::from_millis(50)).await;
        let mut buf = [0u8; 16];
        let err = sock.recv(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        sock
    }

    deadline(30, || {
        let rt = rt(1);
        // In a task: count the polls of a read that waits 200 ms for a
        // datagram that never comes.
        let polls = rt.block_on(async {
            spawn(async {
                let sock = refused().await;
                let polls = AtomicUsize::new(0);
                let mut buf = [0u8; 16];
                let mut recv = std::pin::pin!(sock.recv(&mut buf));
                let waited = timeout(
                    Duration::from_millis(200),
                    poll_fn(|cx| {
                        polls.fetch_add(1, Ordering::Relaxed);
                        recv.as_mut().poll(cx)
                    }),
                )
                .await;
                assert!(waited.is_err(), "no datagram was sent: {waited:?}");
                polls.load(Ordering::Relaxed)
            })
            .await
            .unwrap()
        });
        assert!(polls <= 3, "the waiting read was polled {polls} times");
        // Directly under `block_on` (no task budget to break a spin): the
        // timeout must fire.
        rt.block_on(async {
            let sock = refused().await;
            let mut buf = [0u8; 16];
            let waited = timeout(Duration::from_millis(200), sock.recv(&mut buf)).await;
            assert!(waited.is_err(), "no datagram was sent: {waited:?}");
        });
    });
}

/// The reactor wakes waiters only after releasing its source table: a
/// waker (here a foreign one, not a strata task's) that drops a socket
/// registered with the same worker, which needs that table, must not stall
/// the worker.
#[test]
fn a_waker_that_drops_a_socket_does_not_stall_the_reactor() {
    use std::future::Future;
    use std::sync::Mutex;
    use std::sync::mpsc;
    use std::task::{Context, Wake, Waker};
    use std::time::Duration;

    struct DropsSocket(Mutex<Option<UdpSocket>>, Mutex<mpsc::Sender<()>>);
    impl Wake for DropsSocket {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            drop(self.0.lock().unwrap().take());
            let _ = self.1.lock().unwrap().send(());
        }
    }

    deadline(30, || {
        // One worker: both sockets are registered with it.
        let rt = rt(1);
        let (sock, other) = rt.block_on(async {
            let bind = || UdpSocket::bind("127.0.0.1:0").unwrap();
            (bind(), bind())
        });
        let (woken_tx, woken) = mpsc::channel();
        let waker = Waker::from(Arc::new(DropsSocket(
            Mutex::new(Some(other)),
            Mutex::new(woken_tx),
        )));
        // Poll a read by hand, on this thread (outside the runtime), with
        // that waker.
        let mut buf = [0u8; 8];
        let mut recv = std::pin::pin!(sock.recv(&mut buf));
        assert!(
            recv.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"x", sock.local_addr().unwrap()).unwrap();
        woken
            .recv_timeout(Duration::from_secs(5))
            .expect("the waker was not called");
        // The worker still runs tasks.
        let (tx, rx) = mpsc::channel();
        rt.handle().spawn(async move { tx.send(()).unwrap() });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the worker stopped after calling the waker");
    });
}

/// A waker that does nothing.
struct Nop;
impl std::task::Wake for Nop {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn cancelled_waits_do_not_pile_up_wakers_on_an_idle_shared_socket() {
    use std::future::Future;
    use std::task::{Context, Waker};
    deadline(30, || {
        let rt = rt(1);
        let sock = rt.block_on(async { UdpSocket::bind("127.0.0.1:0").unwrap() });
        let mut buf = [0u8; 8];
        // 10,000 tasks (distinct wakers) wait and give up; the first one
        // stays the socket's resident waiter.
        let mut wakers = Vec::new();
        for _ in 0..10_000 {
            let w = Arc::new(Nop);
            let waker = Waker::from(w.clone());
            {
                let mut f = std::pin::pin!(sock.recv_from(&mut buf));
                assert!(
                    f.as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_pending()
                );
            }
            wakers.push(w);
        }
        let held = wakers.iter().filter(|w| Arc::strong_count(w) > 1).count();
        assert!(held <= 1, "{held} wakers of cancelled waits are still held");
    });
}

#[test]
fn a_task_that_drops_one_of_two_waits_still_gets_the_other() {
    use std::future::Future;
    use std::task::Poll;
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            spawn(async {
                let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                let addr = sock.local_addr().unwrap();
                // Another task waits first, so this task's waits queue.
                let s = sock.clone();
                let first = spawn(async move {
                    let mut b = [0u8; 8];
                    s.recv_from(&mut b).await.unwrap().0
                });
                strata_rt::yield_now().await;
                let (mut b1, mut b2) = ([0u8; 8], [0u8; 8]);
                let mut kept = std::pin::pin!(sock.recv_from(&mut b1));
                let mut b2 = Some(&mut b2);
                // One poll: both waits register, the second is dropped, and
                // the kept one is not polled again until the task is woken.
                let waiting = std::future::poll_fn(|cx| {
                    if let Some(b2) = b2.take() {
                        assert!(kept.as_mut().poll(cx).is_pending());
                        let mut dropped = std::pin::pin!(sock.recv_from(b2));
                        assert!(dropped.as_mut().poll(cx).is_pending());
                        std::thread::spawn(move || {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                            peer.send_to(b"one", addr).unwrap();
                            peer.send_to(b"two", addr).unwrap();
                        });
                        return Poll::Pending;
                    }
                    kept.as_mut().poll(cx)
                });
                // The deadline is checked first: a plain `timeout` polls the
                // inner future on expiry and would find the datagram there.
                let mut waiting = std::pin::pin!(waiting);
                let mut limit =
                    std::pin::pin!(strata_rt::time::sleep(std::time::Duration::from_secs(10)));
                let got = std::future::poll_fn(|cx| {
                    if limit.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    waiting.as_mut().poll(cx).map(Some)
                })
                .await
                .expect("the kept wait was never woken")
                .unwrap();
                assert_eq!(got.0, 3);
                first.await.unwrap();
            })
            .await
            .unwrap()
        });
    });
}

#[test]
fn a_waker_that_polls_its_socket_inline_does_not_deadlock_the_reactor() {
    use std::future::Future;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Wake, Waker};
    /// Polls the socket from inside `wake` (unusual, but allowed).
    struct Inline {
        sock: Arc<UdpSocket>,
        got: Mutex<Option<std::sync::mpsc::Sender<usize>>>,
    }
    impl Wake for Inline {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            let waker = Waker::from(self.clone());
            let mut cx = Context::from_waker(&waker);
            let mut n = 0;
            loop {
                let mut buf = [0u8; 16];
                let mut f = std::pin::pin!(self.sock.recv_from(&mut buf));
                match f.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok(_)) => n += 1,
                    _ => break,
                }
            }
            if let Some(tx) = self.got.lock().unwrap().as_ref() {
                let _ = tx.send(n);
            }
        }
    }
    deadline(30, || {
        let rt = rt(1);
        let sock = Arc::new(rt.block_on(async { UdpSocket::bind("127.0.0.1:0").unwrap() }));
        let (tx, rx) = std::sync::mpsc::channel();
        let inline = Arc::new(Inline {
            sock: sock.clone(),
            got: Mutex::new(Some(tx)),
        });
        let waker = Waker::from(inline.clone());
        let mut buf = [0u8; 16];
        assert!(
            sock.poll_recv_from(&mut Context::from_waker(&waker), &mut buf)
                .is_pending()
        );
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"hi", sock.local_addr().unwrap()).unwrap();
        let Ok(n) = rx.recv_timeout(std::time::Duration::from_secs(5)) else {
            std::mem::forget(rt); // its worker is deadlocked: joining would hang
            panic!("the waker never finished: the worker deadlocked");
        };
        assert_eq!(n, 1);
        let alive = rt.block_on(async {
            strata_rt::time::timeout(std::time::Duration::from_secs(5), spawn(async { 7 })).await
        });
        assert!(matches!(alive, Ok(Ok(7))), "worker stalled");
        inline.got.lock().unwrap().take();
    });
}

/// A task that polls a socket's async fn from inside its own `poll`
/// (creating and dropping the future each time, a common adapter pattern)
/// while another task is the socket's resident waiter: its dropped calls
/// withdraw their entries, and nothing wakes it over and over. (Dropping
/// the call each time also drops its wait, as in tokio; the `poll_*`
/// methods are the way to wait from a hand-written `poll`.)
#[test]
fn a_wait_created_and_dropped_per_poll_does_not_spin() {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            strata_rt::spawn(async {
                let sock = Arc::new(strata_rt::net::UdpSocket::bind("127.0.0.1:0").unwrap());
                // R waits first: the resident.
                let s = sock.clone();
                let r = strata_rt::spawn(async move {
                    let mut b = [0u8; 8];
                    s.recv_from(&mut b).await.map(|x| x.0)
                });
                strata_rt::yield_now().await;
                let polls = Arc::new(AtomicUsize::new(0));
                let p = polls.clone();
                let s = sock.clone();
                let t = strata_rt::spawn(async move {
                    std::future::poll_fn(|cx| {
                        p.fetch_add(1, Ordering::SeqCst);
                        let mut b = [0u8; 8];
                        let f = std::pin::pin!(s.recv_from(&mut b));
                        f.poll(cx).map(|r| r.map(|x| x.0))
                    })
                    .await
                });
                strata_rt::time::sleep(std::time::Duration::from_millis(200)).await;
                let n = polls.load(Ordering::SeqCst);
                t.abort();
                r.abort();
                assert!(n < 10, "an idle waiter was polled {n} times in 200 ms");
            })
            .await
            .unwrap()
        });
    });
}

/// `UnixStream::unread_bytes` counts exactly the bytes waiting unread;
/// `unsent_bytes` is positive while the peer leaves written bytes unread
/// and falls to 0 once it has read them all.
#[test]
fn unix_stream_reports_unread_and_unsent_bytes() {
    deadline(60, || {
        let rt = rt(1);
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            assert_eq!(b.unread_bytes().unwrap(), 0);
            assert_eq!(a.unsent_bytes().unwrap(), 0);

            a.write_all(&[9; 1500]).await.unwrap();
            // A Unix socket delivers at once; poll only as a guard.
            while b.unread_bytes().unwrap() < 1500 {
                strata_rt::yield_now().await;
            }
            assert_eq!(b.unread_bytes().unwrap(), 1500);
            let mut buf = [0; 500];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, [9; 500]);
            assert_eq!(b.unread_bytes().unwrap(), 1000);
            let mut rest = [0; 1000];
            b.read_exact(&mut rest).await.unwrap();
            assert_eq!(b.unread_bytes().unwrap(), 0);

            // `b` does not read: `a`'s bytes stay queued.
            let written = support::fill_send_queue(&mut a, |a| a.unsent_bytes().unwrap()).await;
            assert!(a.unsent_bytes().unwrap() > 0);
            assert_eq!(b.unread_bytes().unwrap(), written);
            let mut got = vec![0; written];
            b.read_exact(&mut got).await.unwrap();
            assert!(got.iter().all(|&x| x == 0x5a));
            while a.unsent_bytes().unwrap() > 0 {
                strata_rt::yield_now().await;
            }
            assert_eq!(a.unsent_bytes().unwrap(), 0);
            assert_eq!(b.unread_bytes().unwrap(), 0);
        });
    });
}

/// A socket's waiters hold wakers that are not strata's; dropping one may
/// drop the future it belongs to (an executor that has gone away leaves a
/// pending task owned only by its wakers), and that future may be waiting
/// on the very same socket: dropping its `async fn` call withdraws its
/// wait, which takes the waiters' lock. A waiter that displaces such a
/// waker must drop it after releasing that lock; it used to drop it under
/// the lock, and the thread deadlocked on itself. (Found by a review.)
#[test]
fn a_displaced_waker_that_drops_a_wait_on_the_same_socket_does_not_deadlock() {
    use futures_util::FutureExt;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};

    /// A task of an executor that has gone away: only its wakers own it,
    /// and a wake-up has no queue left to go to.
    struct Abandoned {
        future: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
        woken: Arc<AtomicBool>,
    }
    impl Wake for Abandoned {
        fn wake(self: Arc<Self>) {
            self.woken.store(true, Ordering::SeqCst);
        }
    }
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    deadline(20, || {
        let rt = rt(1);
        rt.block_on(async {
            let server = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let addr = server.local_addr().unwrap();
            let dropped = Arc::new(AtomicUsize::new(0));
            let woken = Arc::new(AtomicBool::new(false));

            // The abandoned task: an `async fn` recv on `server`.
            let s = server.clone();
            let guard = CountDrop(dropped.clone());
            let task = Arc::new(Abandoned {
                future: Mutex::new(Some(Box::pin(async move {
                    let _guard = guard;
                    let mut buf = [0u8; 64];
                    let _ = s.recv_from(&mut buf).await;
                }))),
                woken: woken.clone(),
            });
            {
                let waker = Waker::from(task.clone());
                let mut cx = Context::from_waker(&waker);
                let mut slot = task.future.lock().unwrap();
                let fut = slot.as_mut().unwrap();
                assert!(fut.as_mut().poll(&mut cx).is_pending());
            }
            // From now on the socket's stored waker is the task's only owner.
            drop(task);

            // An event: the worker wakes the stored waker (the wake-up goes
            // nowhere), which stays stored, no longer waiting.
            let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            client.send_to(b"ping", addr).unwrap();
            while !woken.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }

            // Another waiter reads the datagram, then waits: it takes the
            // old waker's place, and dropping that drops the abandoned task.
            let mut buf = [0u8; 64];
            let (n, _) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"ping");
            assert!(server.recv_from(&mut buf).now_or_never().is_none());
            assert_eq!(
                dropped.load(Ordering::SeqCst),
                1,
                "the abandoned future was not dropped"
            );
        });
    });
}

/// A Unix stream's `readable` waits until the peer sends, and `writable`
/// until the peer makes room in a full buffer (as `TcpStream`'s do).
#[test]
fn unix_stream_readable_and_writable_wait_for_the_peer() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            // A new socket is taken for ready until a read finds it empty.
            let mut got = [0u8; 1];
            assert!(
                poll_once(std::pin::pin!(a.read(&mut got)))
                    .await
                    .is_pending()
            );
            let waiting = spawn(async move {
                a.readable().await.unwrap();
                a
            });
            strata_rt::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiting.is_finished(), "readable before any data");
            b.write_all(b"x").await.unwrap();
            let mut a = waiting.await.unwrap();
            a.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"x");

            // Fill `a`'s send buffer until a write would block.
            a.writable().await.unwrap();
            let chunk = [7u8; 16 * 1024];
            let mut filled = 0usize;
            loop {
                let mut write = std::pin::pin!(a.write(&chunk));
                let once =
                    std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx)));
                match once.await {
                    std::task::Poll::Ready(n) => filled += n.unwrap(),
                    std::task::Poll::Pending => break,
                }
            }
            let waiting = spawn(async move {
                a.writable().await.unwrap();
                a
            });
            strata_rt::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiting.is_finished(), "writable with a full buffer");
            let mut sink = vec![0u8; filled];
            b.read_exact(&mut sink).await.unwrap();
            waiting.await.unwrap();
        });
    });
}

/// `try_read` and `try_write` on a Unix stream: nothing to read is
/// `WouldBlock`; what the peer writes without waiting is read once
/// `readable` says so.
#[test]
fn unix_try_read_and_try_write() {
    deadline(30, || {
        rt(1).block_on(async {
            let (a, b) = UnixStream::pair().unwrap();
            let mut buf = [0u8; 16];
            let e = b.try_read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
            a.writable().await.unwrap();
            assert_eq!(a.try_write(b"ping").unwrap(), 4);
            let n = loop {
                b.readable().await.unwrap();
                match b.try_read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("{e}"),
                }
            };
            assert_eq!(&buf[..n], b"ping");
        });
    });
}

/// UDP's `try_*` with `readable`/`writable`: nothing waiting is
/// `WouldBlock`, and leaves `readable` waiting until a datagram comes;
/// `try_send_to` and `try_send` go out at once, and each datagram is
/// taken whole, with its sender.
#[test]
fn udp_try_send_and_try_recv_pair_with_readable() {
    deadline(30, || {
        rt(1).block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            let mut buf = [0u8; 16];
            b.readable().await.unwrap();
            let e = b.try_recv_from(&mut buf).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
            let readable = b.readable();
            let mut readable = std::pin::pin!(readable);
            assert!(poll_once(readable.as_mut()).await.is_pending());
            a.writable().await.unwrap();
            assert_eq!(a.try_send_to(b"one", b_addr).unwrap(), 3);
            readable.await.unwrap();
            assert_eq!(b.try_recv_from(&mut buf).unwrap(), (3, a_addr));
            assert_eq!(&buf[..3], b"one");

            a.connect(b_addr).unwrap();
            b.connect(a_addr).unwrap();
            assert_eq!(a.try_send(b"two").unwrap(), 3);
            let n = loop {
                b.readable().await.unwrap();
                match b.try_recv(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("{e}"),
                }
            };
            assert_eq!(&buf[..n], b"two");
        });
    });
}
