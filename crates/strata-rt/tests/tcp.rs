//! TCP over loopback: echo at scale, edge-triggered correctness, errors,
//! split halves, and sockets moved between threads.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream};
use strata_rt::spawn;
use support::{deadline, raise_fd_limit, rt};

/// Byte `i` of connection `conn`'s payload: distinct per connection, so a
/// byte delivered to the wrong connection or out of order is caught.
fn pattern(conn: usize, i: usize) -> u8 {
    (conn.wrapping_mul(31) ^ i.wrapping_mul(7) ^ (i >> 8)) as u8
}

async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        spawn(async move {
            let (mut r, mut w) = stream.into_split();
            let _ = futures_util::io::copy(&mut r, &mut w).await;
        });
    }
}

#[test]
fn echo_with_1000_concurrent_connections() {
    // Each connection costs two descriptors here (client and server side).
    let limit = raise_fd_limit(4096);
    let conns = if limit >= 2200 {
        1000
    } else {
        ((limit as usize).saturating_sub(100)) / 2
    };
    assert!(
        conns >= 400,
        "open-files limit too low for this test: {limit}"
    );
    deadline(120, move || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            spawn(echo_server(listener));
            let done = Arc::new(AtomicUsize::new(0));
            let clients: Vec<_> = (0..conns)
                .map(|c| {
                    let done = done.clone();
                    // Alternate workers so both reactors carry load.
                    handle.spawn_on(c % 2, async move {
                        let len = 4096 + (c % 7) * 1000;
                        let data: Vec<u8> = (0..len).map(|i| pattern(c, i)).collect();
                        let stream = TcpStream::connect(addr).await.unwrap();
                        let (mut r, mut w) = stream.into_split();
                        let writer = spawn(async move {
                            // Several writes of odd sizes.
                            for chunk in data.chunks(1500) {
                                w.write_all(chunk).await.unwrap();
                            }
                            w.close().await.unwrap();
                        });
                        let mut back = Vec::with_capacity(len);
                        r.read_to_end(&mut back).await.unwrap();
                        writer.await.unwrap();
                        assert_eq!(back.len(), len, "connection {c}: length");
                        for (i, b) in back.iter().enumerate() {
                            assert_eq!(*b, pattern(c, i), "connection {c}: byte {i}");
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for c in clients {
                c.await.unwrap();
            }
            assert_eq!(done.load(Ordering::SeqCst), conns);
        });
    });
}

#[test]
fn data_and_close_arriving_together_are_both_seen() {
    deadline(60, || {
        let rt = rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            for round in 0..200usize {
                let len = 1 + (round * 997) % 70_000;
                // A blocking peer writes everything and closes at once, so the
                // last data and the FIN tend to arrive in one readiness event.
                let peer = std::thread::spawn(move || {
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    let data: Vec<u8> = (0..len).map(|i| pattern(round, i)).collect();
                    s.write_all(&data).unwrap();
                    s.shutdown(Shutdown::Write).unwrap();
                });
                let (mut conn, _) = listener.accept().await.unwrap();
                peer.join().unwrap();
                // Small reads: one event is drained by many short reads, which
                // only works if readiness is not cleared on a short read.
                let mut got = Vec::new();
                let mut buf = [0u8; 7];
                loop {
                    let n = conn.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(got.len(), len, "round {round}");
                assert!(got.iter().enumerate().all(|(i, b)| *b == pattern(round, i)));
            }
        });
    });
}

/// One `poll_read` of `conn` with `waker`.
fn poll_read_with(
    conn: &mut TcpStream,
    waker: &std::task::Waker,
    buf: &mut [u8],
) -> std::task::Poll<std::io::Result<usize>> {
    use futures_util::io::AsyncRead;
    let mut cx = std::task::Context::from_waker(waker);
    std::pin::Pin::new(conn).poll_read(&mut cx, buf)
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A task that keeps the worker's queue non-empty, yielding, until
/// stopped: the condition under which the read after a short read may be
/// deferred.
struct BusyNeighbour {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: strata_rt::JoinHandle<()>,
}

impl BusyNeighbour {
    fn spawn() -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = spawn({
            let stop = stop.clone();
            async move {
                while !stop.load(Ordering::SeqCst) {
                    strata_rt::yield_now().await;
                }
            }
        });
        BusyNeighbour { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
    }
}

#[test]
fn after_a_short_read_the_next_read_yields_once_then_reads_until_would_block() {
    use std::task::{Poll, Waker};
    use std::time::Duration;
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            // The deferral only applies while other tasks wait on the
            // worker: keep one there, yielding, until told to stop.
            let busy = BusyNeighbour::spawn();
            let reader = spawn(async move {
                let mut buf = [0u8; 64];
                // The deferral applies when no event arrived after the
                // short read; an event for the same bytes processed just
                // after the read counts as one, so let the reactor catch up
                // first, and retry in the rare round where it has not.
                for round in 0.. {
                    assert!(
                        round < 100,
                        "the read after a short read was never deferred"
                    );
                    peer.write_all(b"hello").unwrap();
                    strata_rt::time::sleep(Duration::from_millis(2)).await;
                    assert_eq!(conn.read(&mut buf).await.unwrap(), 5, "a short read");

                    let wakes = Arc::new(CountingWaker::default());
                    let waker = Waker::from(wakes.clone());
                    let woken = || wakes.0.load(Ordering::SeqCst);
                    // Deferred: the task is asked to come back, by waking
                    // it now.
                    assert!(poll_read_with(&mut conn, &waker, &mut buf).is_pending());
                    if woken() == 0 {
                        continue; // an event came in between: read at once
                    }
                    assert_eq!(woken(), 1, "the deferral wakes the task at once");
                    // Then the read is made: `WouldBlock`, readiness
                    // cleared, and the task waits for the next event
                    // without being woken.
                    assert!(poll_read_with(&mut conn, &waker, &mut buf).is_pending());
                    assert_eq!(woken(), 1);
                    // The next bytes wake it, and are read.
                    peer.write_all(b"world!").unwrap();
                    while woken() < 2 {
                        strata_rt::time::sleep(Duration::from_millis(5)).await;
                    }
                    match poll_read_with(&mut conn, &waker, &mut buf) {
                        Poll::Ready(Ok(6)) => assert_eq!(&buf[..6], b"world!"),
                        other => panic!("expected the 6 new bytes, got {other:?}"),
                    }
                    break;
                }
                (conn, peer)
            });
            let (mut conn, peer) = reader.await.unwrap();
            busy.stop().await;

            let alone = spawn(async move {
                let mut buf = [0u8; 64];
                // Alone on the worker, the read after a short read is made
                // at once: `WouldBlock`, and no self-wake.
                (&peer).write_all(b"abc").unwrap();
                assert_eq!(conn.read(&mut buf).await.unwrap(), 3, "a short read");
                let wakes = Arc::new(CountingWaker::default());
                let waker = Waker::from(wakes.clone());
                assert!(poll_read_with(&mut conn, &waker, &mut buf).is_pending());
                assert_eq!(
                    wakes.0.load(Ordering::SeqCst),
                    0,
                    "no yield with nothing else to run"
                );
                (conn, peer)
            });
            let (mut conn, peer) = alone.await.unwrap();

            // The peer's close is still seen after a short read.
            drop(peer);
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        });
    });
}

/// Only a short read defers the read after it: a read that filled the
/// buffer (more bytes are probably waiting) and a read of the end of the
/// stream are followed at once by the next read, even with other tasks
/// waiting on the worker.
#[test]
fn a_full_read_or_the_end_of_the_stream_does_not_defer_the_next_read() {
    use std::task::{Poll, Waker};
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            // Another task waits on the worker throughout: the condition
            // under which a deferral would happen.
            let busy = BusyNeighbour::spawn();
            let reader = spawn(async move {
                peer.write_all(b"0123456789").unwrap();
                while conn.unread_bytes().unwrap() < 10 {
                    strata_rt::yield_now().await;
                }
                let mut buf = [0u8; 5];
                assert_eq!(conn.read(&mut buf).await.unwrap(), 5, "a full read");
                let wakes = Arc::new(CountingWaker::default());
                let waker = Waker::from(wakes.clone());
                // No event can arrive between the two reads (the worker
                // is running this task): the second one is made at once.
                match poll_read_with(&mut conn, &waker, &mut buf) {
                    Poll::Ready(Ok(5)) => assert_eq!(&buf, b"56789"),
                    other => panic!("the read after a full read was deferred: {other:?}"),
                }
                assert_eq!(wakes.0.load(Ordering::SeqCst), 0);

                drop(peer);
                assert_eq!(
                    conn.read(&mut buf).await.unwrap(),
                    0,
                    "the end of the stream"
                );
                match poll_read_with(&mut conn, &waker, &mut buf) {
                    Poll::Ready(Ok(0)) => {}
                    other => panic!("the read after the end of the stream was deferred: {other:?}"),
                }
                assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
            });
            reader.await.unwrap();
            busy.stop().await;
        });
    });
}

/// The read after a short read is deferred only if no event has arrived
/// since: bytes that arrived (and were reported) in between are read at
/// once, even with other tasks waiting on the worker.
#[test]
fn bytes_reported_after_a_short_read_are_read_without_deferral() {
    use std::task::{Context, Poll, Waker};
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            // A second source on the same worker: waiting for a datagram
            // that was sent after the peer's bytes proves the worker has
            // looked at I/O since, and seen the bytes' event.
            let udp = strata_rt::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let udp_addr = udp.local_addr().unwrap();
            let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let busy = BusyNeighbour::spawn();
            let reader = spawn(async move {
                let mut buf = [0u8; 64];
                let mut dgram = [0u8; 8];
                // Delivers `bytes` to `conn` and returns once the worker has
                // processed their event.
                let mut deliver = async |bytes: &[u8]| {
                    // Readiness cleared (`WouldBlock`): the next receive
                    // waits for an event.
                    let cleared = udp
                        .poll_recv_from(&mut Context::from_waker(Waker::noop()), &mut dgram)
                        .is_pending();
                    assert!(cleared);
                    peer.write_all(bytes).unwrap();
                    sender.send_to(b"x", udp_addr).unwrap();
                    udp.recv_from(&mut dgram).await.unwrap();
                };
                deliver(b"hello").await;
                assert_eq!(conn.read(&mut buf).await.unwrap(), 5, "a short read");
                // Two events, each processed, before the next read.
                deliver(b"wor").await;
                deliver(b"ld!").await;
                let wakes = Arc::new(CountingWaker::default());
                let waker = Waker::from(wakes.clone());
                match poll_read_with(&mut conn, &waker, &mut buf) {
                    Poll::Ready(Ok(6)) => assert_eq!(&buf[..6], b"world!"),
                    other => panic!("expected the 6 new bytes at once, got {other:?}"),
                }
                assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "the read was deferred");
            });
            reader.await.unwrap();
            busy.stop().await;
        });
    });
}

#[test]
fn connect_to_a_closed_port_fails_with_the_os_error() {
    deadline(30, || {
        let rt = rt(1);
        let addr: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = rt.block_on(TcpStream::connect(addr)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn a_socket_moved_to_another_worker_and_thread_still_works() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // Accept on worker 0: the accepted stream registers there.
            let accepted = handle.spawn_on(0, async move { listener.accept().await.unwrap().0 });
            let mut client = TcpStream::connect(addr).await.unwrap();
            let server = accepted.await.unwrap();
            // Serve it from worker 1.
            let served = handle.spawn_on(1, async move {
                let mut server = server;
                let mut buf = [0u8; 5];
                server.read_exact(&mut buf).await.unwrap();
                server.write_all(&buf).await.unwrap();
                buf
            });
            // And drive the client from the block_on thread.
            client.write_all(b"moved").await.unwrap();
            let mut back = [0u8; 5];
            client.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"moved");
            assert_eq!(&served.await.unwrap(), b"moved");
        });
    });
}

#[test]
fn halves_work_from_different_tasks_and_reunite() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                let (mut r, mut w) = s.into_split();
                let mut total = 0usize;
                let mut buf = vec![0u8; 8192];
                loop {
                    let n = r.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                w.write_all(total.to_string().as_bytes()).await.unwrap();
                let s = r.reunite(w).unwrap();
                assert!(s.peer_addr().is_ok());
            });
            let client = TcpStream::connect(addr).await.unwrap();
            client.set_nodelay(true).unwrap();
            assert!(client.nodelay().unwrap());
            let (mut r, mut w) = client.into_split();
            let writer = spawn(async move {
                let block = vec![0xAB; 64 * 1024];
                for _ in 0..32 {
                    w.write_all(&block).await.unwrap();
                }
                // Dropping the write half sends FIN.
            });
            writer.await.unwrap();
            let mut reply = String::new();
            r.read_to_string(&mut reply).await.unwrap();
            assert_eq!(reply, (32 * 64 * 1024).to_string());
            server.await.unwrap();
        });
    });
}

/// The halves read and write vectored, `close` on the write half shuts
/// the write direction while the half lives, and a forgotten write half
/// leaves it open (a dropped one shuts it).
#[test]
fn halves_read_and_write_vectored_and_close_or_forget_the_write_direction() {
    use std::io::{IoSlice, IoSliceMut};
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // Whether `peer` has seen the end of the stream (a pending FIN
            // is delivered on loopback before `shutdown` returns).
            let at_eof = |peer: &mut std::net::TcpStream| {
                peer.set_nonblocking(true).unwrap();
                let mut b = [0u8; 1];
                let eof = match peer.read(&mut b) {
                    Ok(0) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                    other => panic!("unexpected {other:?}"),
                };
                peer.set_nonblocking(false).unwrap();
                eof
            };

            let mut peer = std::net::TcpStream::connect(addr).unwrap();
            let (r, mut w) = listener.accept().await.unwrap().0.into_split();
            let n = w
                .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
                .await
                .unwrap();
            assert_eq!(n, 4);
            let mut got = [0u8; 4];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"abcd");
            peer.write_all(b"efgh").unwrap();
            let mut r = r;
            let (mut x, mut y) = ([0u8; 2], [0u8; 2]);
            let mut read = 0;
            while read < 4 {
                let n = r
                    .read_vectored(&mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)])
                    .await
                    .unwrap();
                assert!(n > 0, "a false end of stream");
                read += n;
            }
            assert_eq!((&x, &y), (b"ef", b"gh"));
            assert!(!at_eof(&mut peer));
            w.close().await.unwrap();
            assert!(at_eof(&mut peer), "close did not shut the write direction");
            drop((r, w));

            let mut peer = std::net::TcpStream::connect(addr).unwrap();
            let (r, w) = listener.accept().await.unwrap().0.into_split();
            w.forget();
            assert!(
                !at_eof(&mut peer),
                "a forgotten write half shut the write direction"
            );
            drop(r);

            let mut peer = std::net::TcpStream::connect(addr).unwrap();
            let (_r, w) = listener.accept().await.unwrap().0.into_split();
            drop(w);
            assert!(
                at_eof(&mut peer),
                "a dropped write half left the write direction open"
            );
        });
    });
}

/// `readable` waits for bytes to arrive and `writable` for room in a full
/// send buffer.
#[test]
fn readable_and_writable_wait_until_the_socket_is_ready() {
    use std::future::{Future, poll_fn};
    use std::task::Poll;
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            // Nothing to read: `readable` waits (after a read that found
            // the socket empty).
            let mut buf = [0u8; 64 * 1024];
            {
                let mut read = std::pin::pin!(conn.read(&mut buf));
                assert!(
                    poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx)))
                        .await
                        .is_pending()
                );
            }
            {
                let mut ready = std::pin::pin!(conn.readable());
                assert!(
                    poll_fn(|cx| Poll::Ready(ready.as_mut().poll(cx)))
                        .await
                        .is_pending()
                );
                peer.write_all(b"x").unwrap();
                ready.await.unwrap();
            }
            assert_eq!(conn.read(&mut buf).await.unwrap(), 1);
            // Fill the send buffer: `writable` waits until the peer reads.
            loop {
                let mut write = std::pin::pin!(conn.write(&buf));
                match poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
                    Poll::Ready(n) => assert!(n.unwrap() > 0),
                    Poll::Pending => break,
                }
            }
            let drain = {
                let mut ready = std::pin::pin!(conn.writable());
                assert!(
                    poll_fn(|cx| Poll::Ready(ready.as_mut().poll(cx)))
                        .await
                        .is_pending()
                );
                let drain = std::thread::spawn(move || {
                    let mut b = vec![0u8; 1 << 20];
                    while peer.read(&mut b).unwrap() > 0 {}
                });
                ready.await.unwrap();
                drain
            };
            drop(conn);
            drain.join().unwrap();
        });
    });
}

#[test]
fn two_listeners_share_a_port_with_reuse_port() {
    // The first listener sets SO_REUSEPORT before or after its bind; either
    // way the second joins it and the kernel spreads connections over both.
    for after_listen in [false, true] {
        deadline(30, move || {
            let rt = rt(2);
            rt.block_on(async move {
                let a = TcpListener::builder("127.0.0.1:0".parse().unwrap())
                    .reuse_port(true)
                    .reuse_port_after_listen(after_listen)
                    .bind()
                    .unwrap();
                let addr = a.local_addr().unwrap();
                let b = TcpListener::builder(addr).reuse_port(true).bind().unwrap();
                let accepted: [Arc<AtomicUsize>; 2] = Default::default();
                for (l, accepted) in [a, b].into_iter().zip(accepted.clone()) {
                    spawn(async move {
                        loop {
                            let (mut s, _) = l.accept().await.unwrap();
                            accepted.fetch_add(1, Ordering::SeqCst);
                            spawn(async move {
                                let _ = s.write_all(b"x").await;
                            });
                        }
                    });
                }
                for _ in 0..64 {
                    let mut c = TcpStream::connect(addr).await.unwrap();
                    let mut b = [0u8; 1];
                    c.read_exact(&mut b).await.unwrap();
                }
                let counts = accepted.map(|n| n.load(Ordering::SeqCst));
                assert_eq!(counts[0] + counts[1], 64);
                assert!(
                    counts.iter().all(|&n| n > 0),
                    "after_listen {after_listen}: connections not spread: {counts:?}"
                );
            });
        });
    }
}

#[test]
fn sockets_fail_instead_of_hanging_after_the_runtime_shuts_down() {
    deadline(30, || {
        let first = rt(1);
        let (client, server) = first.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let c = TcpStream::connect(addr).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            (c, s)
        });
        drop(first);
        // A second runtime drives a read on a socket whose reactor is gone.
        let rt2 = rt(1);
        let err = rt2
            .block_on(async move {
                let mut c = client;
                let mut buf = [0u8; 1];
                c.read(&mut buf).await
            })
            .unwrap_err();
        assert!(err.to_string().contains("has shut down"), "{err}");
        drop(server);
    });
}

/// After the runtime shuts down, every operation on its sockets fails,
/// also one whose socket the reactor last reported ready (bytes waiting to
/// be read, room to write).
#[test]
fn operations_on_ready_sockets_fail_after_the_runtime_shuts_down() {
    deadline(30, || {
        let first = rt(1);
        let (client, server) = first.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"waiting").await.unwrap();
            // Reported readable (and writable, since the connect).
            c.readable().await.unwrap();
            (c, s)
        });
        drop(first);
        let rt2 = rt(1);
        let (read, write) = rt2.block_on(async move {
            let mut c = client;
            let mut buf = [0u8; 16];
            (c.read(&mut buf).await, c.write(b"more").await)
        });
        for res in [read, write] {
            let err = res.unwrap_err();
            assert!(err.to_string().contains("has shut down"), "{err}");
        }
        drop(server);
    });
}

#[test]
fn std_interop_from_std() {
    deadline(30, || {
        let rt = rt(1);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            b
        });
        rt.block_on(async move {
            let l = TcpListener::from_std(std_listener).unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(b"pong").await.unwrap();
        });
        assert_eq!(&peer.join().unwrap(), b"pong");
    });
}

#[test]
fn a_self_waking_task_does_not_starve_sockets_on_its_worker() {
    deadline(60, || {
        // One worker: the spinner and the sockets share it.
        let rt = rt(1);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s = stop.clone();
            let spins = Arc::new(AtomicUsize::new(0));
            let sp = spins.clone();
            let spinner = handle.spawn_on(0, async move {
                while !s.load(Ordering::SeqCst) {
                    sp.fetch_add(1, Ordering::Relaxed);
                    strata_rt::yield_now().await;
                }
            });
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let io = handle.spawn_on(0, async move {
                let server = spawn(echo_server(listener));
                for round in 0..50u8 {
                    let mut c = TcpStream::connect(addr).await.unwrap();
                    c.write_all(&[round; 100]).await.unwrap();
                    let mut back = [0u8; 100];
                    c.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, [round; 100]);
                }
                server.abort();
            });
            io.await.unwrap();
            stop.store(true, Ordering::SeqCst);
            spinner.await.unwrap();
            // The spinner really was running the whole time.
            assert!(spins.load(Ordering::Relaxed) > 50);
        });
    });
}

#[test]
fn a_task_retrying_failed_io_in_a_loop_cannot_hang_runtime_shutdown() {
    // Regression: a loop that ignores accept errors on a listener whose
    // reactor (another worker's) had shut down got `Err` at once, forever,
    // never yielded, and kept its own worker from ever seeing the shutdown.
    // The cooperative budget makes such a task yield.
    deadline(60, || {
        for _ in 0..20 {
            let rt = rt(2);
            let handle = rt.handle().clone();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                for w in 0..2 {
                    let l = std::sync::Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
                    let l2 = l.clone();
                    drop(handle.spawn_on(w, async move {
                        loop {
                            let _ = l2.accept().await;
                        }
                    }));
                    drop(l);
                }
                drop(listener);
            });
            drop(rt);
        }
    });
}

#[test]
fn a_task_whose_io_is_always_ready_still_lets_others_run() {
    deadline(60, || {
        let rt = rt(1);
        rt.block_on(async {
            // 32 KiB waiting in a socket, read one byte at a time: the
            // reader finds its socket ready 32,768 times in a row and never
            // returns Pending by itself.
            const TOTAL: usize = 32 * 1024;
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut peer = std::net::TcpStream::connect(addr).unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            // On loopback the write hands the bytes to the receiving
            // socket before it returns.
            peer.write_all(&[7u8; TOTAL]).unwrap();
            let received = Arc::new(AtomicUsize::new(0));
            let r = received.clone();
            let reader = spawn(async move {
                let mut buf = [0u8; 1];
                while r.load(Ordering::SeqCst) < TOTAL {
                    assert_eq!(conn.read(&mut buf).await.unwrap(), 1);
                    r.fetch_add(1, Ordering::SeqCst);
                }
            });
            // Spawned after the reader on the same (only) worker: it runs
            // when the reader yields, which its budget forces long before
            // the data is drained.
            let r = received.clone();
            let seen = spawn(async move { r.load(Ordering::SeqCst) })
                .await
                .unwrap();
            assert!(
                seen < TOTAL,
                "the reader made {seen} reads without yielding"
            );
            reader.await.unwrap();
            drop(peer);
        });
    });
}

/// With transmit timestamps on, the socket's error queue makes epoll report
/// EPOLLERR with EPOLLOUT, which mio calls "write closed". That bit stayed
/// set, so a write blocked on a full send buffer was polled in a loop.
#[cfg(target_os = "linux")]
#[test]
fn a_blocked_write_on_a_socket_with_an_error_queue_waits_instead_of_spinning() {
    use std::future::{Future, poll_fn};
    use std::os::fd::AsRawFd;
    use std::time::Duration;
    deadline(60, || {
        let rt = rt(1);
        let polls = rt.block_on(async {
            spawn(async {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let std_c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (peer, _) = l.accept().unwrap(); // never reads
                // SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
                let val: libc::c_int = (1 << 1) | (1 << 4);
                // SAFETY: a valid socket and a c_int option buffer of the
                // length passed.
                let rc = unsafe {
                    libc::setsockopt(
                        std_c.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_TIMESTAMPING,
                        (&raw const val).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                assert_eq!(rc, 0);
                let mut c = TcpStream::from_std(std_c).unwrap();
                let chunk = vec![0u8; 64 * 1024];
                let polls = AtomicUsize::new(0);
                loop {
                    let mut w = std::pin::pin!(c.write(&chunk));
                    let r = strata_rt::time::timeout(
                        Duration::from_millis(200),
                        poll_fn(|cx| {
                            polls.fetch_add(1, Ordering::Relaxed);
                            w.as_mut().poll(cx)
                        }),
                    )
                    .await;
                    match r {
                        Ok(n) => {
                            n.unwrap();
                            polls.store(0, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
                drop(peer);
                polls.load(Ordering::Relaxed)
            })
            .await
            .unwrap()
        });
        assert!(
            polls <= 3,
            "the waiting write was polled {polls} times in 200 ms"
        );
    });
}

/// `unread_bytes` reports what waits in the kernel's receive queue (what
/// a graceful stop must still read), and `unsent_bytes` what the peer has
/// not acknowledged.
#[test]
fn unread_bytes_counts_the_receive_queue() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            assert_eq!(server.unread_bytes().unwrap(), 0);
            client.write_all(&[7; 1000]).unwrap();
            // Loopback delivers at once; poll only as a guard.
            while server.unread_bytes().unwrap() < 1000 {
                strata_rt::yield_now().await;
            }
            assert_eq!(server.unread_bytes().unwrap(), 1000);
            let mut buf = [0; 400];
            server.read_exact(&mut buf).await.unwrap();
            assert_eq!(server.unread_bytes().unwrap(), 600);
            assert_eq!(server.unsent_bytes().unwrap(), 0);
        });
    });
}

/// The owned halves report the same kernel queues as the whole stream:
/// the read half what waits unread, the write half what the peer has not
/// acknowledged, falling to 0 once the peer reads it all.
#[test]
fn split_halves_report_unread_and_unsent_bytes() {
    deadline(60, || {
        let rt = rt(1);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = server.into_split();
            assert_eq!(r.unread_bytes().unwrap(), 0);
            assert_eq!(w.unsent_bytes().unwrap(), 0);

            peer.write_all(&[3; 1500]).unwrap();
            // Loopback delivers at once; poll only as a guard.
            while r.unread_bytes().unwrap() < 1500 {
                strata_rt::yield_now().await;
            }
            assert_eq!(r.unread_bytes().unwrap(), 1500);
            let mut buf = [0; 500];
            r.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, [3; 500]);
            assert_eq!(r.unread_bytes().unwrap(), 1000);

            // The peer does not read: the send queue fills and stays.
            let written = support::fill_send_queue(&mut w, |w| w.unsent_bytes().unwrap()).await;
            let unsent = w.unsent_bytes().unwrap();
            assert!(unsent > 0 && unsent <= written, "{unsent} of {written}");
            // Drain the peer (plain blocking reads on this thread: the
            // kernel moves the queued bytes with no help from the runtime).
            let mut got = vec![0; written];
            peer.read_exact(&mut got).unwrap();
            assert!(got.iter().all(|&b| b == 0x5a));
            while w.unsent_bytes().unwrap() > 0 {
                strata_rt::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert_eq!(w.unsent_bytes().unwrap(), 0);
            // The read half still sees its own queue.
            assert_eq!(r.unread_bytes().unwrap(), 1000);
        });
    });
}

/// `try_read` and `try_write`, as a tokio user pairs them with `readable`
/// and `writable`: a read of an empty socket is `WouldBlock` and leaves
/// `readable` waiting (its readiness cleared) until bytes come; writes fill
/// the send buffer until `WouldBlock`, and `writable` waits until the peer
/// takes some; every byte arrives, in order.
#[test]
fn try_read_and_try_write_pair_with_readable_and_writable() {
    use support::cancel::poll_once;
    deadline(60, || {
        rt(1).block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut peer = std::net::TcpStream::connect(addr).unwrap();
            let (stream, _) = listener.accept().await.unwrap();

            let mut buf = [0u8; 64];
            stream.readable().await.unwrap();
            let e = stream.try_read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
            let readable = stream.readable();
            let mut readable = std::pin::pin!(readable);
            assert!(poll_once(readable.as_mut()).await.is_pending());
            peer.write_all(b"hello").unwrap();
            readable.await.unwrap();
            assert_eq!(stream.try_read(&mut buf).unwrap(), 5);
            assert_eq!(&buf[..5], b"hello");

            // Fill the send buffer, then let the peer take it all.
            peer.set_nonblocking(false).unwrap();
            let chunk = vec![7u8; 64 * 1024];
            let mut sent = 0usize;
            loop {
                match stream.try_write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            let writable = stream.writable();
            let mut writable = std::pin::pin!(writable);
            assert!(poll_once(writable.as_mut()).await.is_pending());
            let reader = std::thread::spawn(move || {
                let mut got = vec![0u8; sent];
                peer.read_exact(&mut got).unwrap();
                assert!(got.iter().all(|&b| b == 7));
                peer
            });
            writable.await.unwrap();
            assert!(stream.try_write(b"more").unwrap() > 0);
            let mut peer = reader.join().unwrap();
            let mut more = [0u8; 4];
            peer.read_exact(&mut more).unwrap();
            assert_eq!(&more, b"more");
            drop(peer);
            // The end of the stream, once readable.
            stream.readable().await.unwrap();
            loop {
                match stream.try_read(&mut buf) {
                    Ok(0) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        stream.readable().await.unwrap()
                    }
                    other => panic!("{other:?}"),
                }
            }
        });
    });
}
