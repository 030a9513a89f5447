//! `peek` on TCP streams, their read halves and UDP sockets, over
//! loopback: it waits for bytes, takes none of them, a peek dropped while
//! it waits loses nothing, a peek loop spends its budget, and a reset goes
//! to the peek. Orderings come from `poll_once` (the
//! peek is known to wait before the peer writes); `deadline` is a hang
//! guard only.

mod support;

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream, UdpSocket};
use support::cancel::{poll_once, poll_once_flagged, woken};
use support::{deadline, rt};

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[test]
fn tcp_peek_waits_for_bytes_and_leaves_them_for_the_read() {
    deadline(30, || {
        rt(1).block_on(async {
            let (mut client, mut server) = pair().await;
            let mut buf = [0u8; 16];
            let n = {
                let mut peek = pin!(server.peek(&mut buf));
                let (first, flag) = poll_once_flagged(peek.as_mut()).await;
                assert!(first.is_pending(), "nothing was sent yet");
                client.write_all(b"hello").await.unwrap();
                woken(&flag).await;
                peek.await.unwrap()
            };
            assert_eq!(&buf[..n], b"hello");
            // Peeked twice: still there.
            let mut again = [0u8; 2];
            assert_eq!(server.peek(&mut again).await.unwrap(), 2);
            assert_eq!(&again, b"he");
            let mut read = [0u8; 5];
            server.read_exact(&mut read).await.unwrap();
            assert_eq!(&read, b"hello");
        });
    });
}

#[test]
fn tcp_peek_sees_bytes_before_the_close_then_the_end() {
    deadline(30, || {
        rt(1).block_on(async {
            let (mut client, mut server) = pair().await;
            client.write_all(b"last words").await.unwrap();
            drop(client);
            let mut buf = [0u8; 64];
            let n = server.peek(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &b"last words"[..n]);
            let mut all = Vec::new();
            server.read_to_end(&mut all).await.unwrap();
            assert_eq!(all, b"last words");
            assert_eq!(server.peek(&mut buf).await.unwrap(), 0, "end of stream");
        });
    });
}

#[test]
fn a_peek_dropped_while_waiting_loses_nothing() {
    deadline(30, || {
        rt(1).block_on(async {
            let (mut client, server) = pair().await;
            let (mut read, _write) = server.into_split();
            {
                let mut buf = [0u8; 4];
                let mut peek = pin!(read.peek(&mut buf));
                assert!(poll_once(peek.as_mut()).await.is_pending());
            }
            client.write_all(b"kept").await.unwrap();
            let mut buf = [0u8; 4];
            assert_eq!(read.peek(&mut buf).await.unwrap(), 4, "the read half peeks");
            let mut got = [0u8; 4];
            read.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"kept");
        });
    });
}

#[test]
fn tcp_poll_peek_is_pending_until_bytes_arrive() {
    deadline(30, || {
        rt(1).block_on(async {
            let (mut client, server) = pair().await;
            let mut buf = [0u8; 8];
            let mut polled = std::future::poll_fn(|cx| server.poll_peek(cx, &mut buf));
            assert!(poll_once(pin!(&mut polled)).await.is_pending());
            client.write_all(b"x").await.unwrap();
            assert_eq!(polled.await.unwrap(), 1);
        });
    });
}

#[test]
fn udp_peek_from_leaves_the_datagram_for_recv_from() {
    deadline(30, || {
        rt(1).block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let a_addr = a.local_addr().unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = {
                let mut peek = pin!(b.peek_from(&mut buf));
                assert!(matches!(poll_once(peek.as_mut()).await, Poll::Pending));
                a.send_to(b"datagram", b.local_addr().unwrap())
                    .await
                    .unwrap();
                peek.await.unwrap()
            };
            assert_eq!((&buf[..n], from), (&b"datagram"[..], a_addr));
            // A short buffer gets the datagram's start, which stays queued.
            let mut short = [0u8; 4];
            let (n, _) = b.peek_from(&mut short).await.unwrap();
            assert_eq!(&short[..n], b"data");
            let (n, from) = b.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"datagram"[..], a_addr));
            // Connected: `peek` then `recv`.
            b.connect(a_addr).unwrap();
            a.send_to(b"two", b.local_addr().unwrap()).await.unwrap();
            assert_eq!(b.peek(&mut buf).await.unwrap(), 3);
            assert_eq!(b.recv(&mut buf).await.unwrap(), 3);
            assert_eq!(&buf[..3], b"two");
        });
    });
}

/// A task that peeks in a loop at bytes that never go away still lets
/// the other tasks of its worker run (the peek spends budget).
#[test]
fn a_peek_loop_yields_to_the_worker_s_other_tasks() {
    deadline(60, || {
        rt(1).block_on(async {
            strata_rt::spawn(async {
                let (mut client, server) = pair().await;
                client.write_all(b"x").await.unwrap();
                let mut b = [0u8; 1];
                // Data has arrived.
                server.peek(&mut b).await.unwrap();
                let other_ran = Arc::new(AtomicBool::new(false));
                let o = other_ran.clone();
                let other = strata_rt::spawn(async move { o.store(true, Ordering::SeqCst) });
                let mut peeks = 0u64;
                while !other_ran.load(Ordering::SeqCst) {
                    assert_eq!(server.peek(&mut b).await.unwrap(), 1);
                    peeks += 1;
                    assert!(peeks < 1_000_000, "the peek loop never yielded");
                }
                other.await.unwrap();
                // poll_peek too.
                let other_ran = Arc::new(AtomicBool::new(false));
                let o = other_ran.clone();
                let other = strata_rt::spawn(async move { o.store(true, Ordering::SeqCst) });
                let mut peeks = 0u64;
                while !other_ran.load(Ordering::SeqCst) {
                    let n = std::future::poll_fn(|cx| server.poll_peek(cx, &mut b)).await;
                    assert_eq!(n.unwrap(), 1);
                    peeks += 1;
                    assert!(peeks < 1_000_000, "the poll_peek loop never yielded");
                }
                other.await.unwrap();
            })
            .await
            .unwrap();
        });
    });
}

/// After a short read (the deferral's mark set), a peek and the read
/// after it get the next bytes; a peek that found nothing waits and is
/// woken by them; the read after a peek that returned data does not wait.
#[test]
fn peek_and_reads_after_a_short_read() {
    deadline(60, || {
        rt(1).block_on(async {
            strata_rt::spawn(async {
                let (mut client, mut server) = pair().await;
                client.write_all(b"abc").await.unwrap();
                let mut big = [0u8; 1024];
                let mut n = 0;
                while n < 3 {
                    n += server.read(&mut big[n..]).await.unwrap();
                }
                let mut b = [0u8; 8];
                {
                    let mut peek = pin!(server.peek(&mut b));
                    assert!(poll_once(peek.as_mut()).await.is_pending());
                    client.write_all(b"de").await.unwrap();
                    assert_eq!(peek.await.unwrap(), 2);
                }
                assert_eq!(&b[..2], b"de");
                let mut got = [0u8; 2];
                server.read_exact(&mut got).await.unwrap();
                assert_eq!(&got, b"de");
                // A peek after everything was read waits again.
                {
                    let mut peek = pin!(server.peek(&mut b));
                    assert!(poll_once(peek.as_mut()).await.is_pending());
                    client.shutdown(std::net::Shutdown::Write).unwrap();
                    assert_eq!(peek.await.unwrap(), 0, "end of stream");
                }
                assert_eq!(server.read(&mut big).await.unwrap(), 0);
            })
            .await
            .unwrap();
        });
    });
}

/// Two tasks wait on one stream: one in `peek`, one in `readable`. The
/// bytes wake both (each `async fn` call has its own wait).
#[test]
fn a_peek_and_a_readable_waiting_together_are_both_woken() {
    deadline(60, || {
        rt(2).block_on(async {
            let (mut client, server) = pair().await;
            let server = Arc::new(server);
            let (s1, s2) = (server.clone(), server.clone());
            let peeker = strata_rt::spawn(async move {
                let mut b = [0u8; 4];
                s1.peek(&mut b).await.unwrap()
            });
            let reader = strata_rt::spawn(async move { s2.readable().await.unwrap() });
            // Both have had time to wait (no assertion depends on it).
            strata_rt::yield_now().await;
            client.write_all(b"wxyz").await.unwrap();
            assert!(peeker.await.unwrap() > 0);
            reader.await.unwrap();
        });
    });
}

/// UDP: a zero-length datagram is peeked as `(0, from)` and still
/// received; a peek that waits is woken by a datagram.
#[test]
fn udp_peek_of_an_empty_datagram() {
    deadline(30, || {
        rt(1).block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            a.send_to(b"", b.local_addr().unwrap()).await.unwrap();
            let mut buf = [0u8; 8];
            let (n, from) = b.peek_from(&mut buf).await.unwrap();
            assert_eq!((n, from), (0, a.local_addr().unwrap()));
            let (n, _) = b.recv_from(&mut buf).await.unwrap();
            assert_eq!(n, 0);
            let mut peek = pin!(b.peek_from(&mut buf));
            assert!(poll_once(peek.as_mut()).await.is_pending());
            a.send_to(b"q", b.local_addr().unwrap()).await.unwrap();
            assert_eq!(peek.await.unwrap().0, 1);
        });
    });
}

/// A peer's reset is a pending error, which the OS hands to one receive
/// call, a peek included: the peek reports it, and the read after it may
/// see only the end of the stream (as the docs say: a peek's error is
/// the connection's).
#[test]
fn a_peek_meeting_a_reset_reports_it() {
    deadline(30, || {
        rt(1).block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            socket2::SockRef::from(&client)
                .set_linger(Some(std::time::Duration::ZERO))
                .unwrap();
            drop(client);
            let mut b = [0u8; 4];
            let peeked = server.peek(&mut b).await;
            assert_eq!(
                peeked.map_err(|e| e.kind()),
                Err(std::io::ErrorKind::ConnectionReset)
            );
            // Taken by the peek: the read finds the stream ended.
            assert_eq!(server.read(&mut b).await.unwrap(), 0);
        });
    });
}
