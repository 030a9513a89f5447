//! `peek` on TCP streams, their read halves and UDP sockets, over
//! loopback: it waits for bytes, takes none of them, and a peek dropped
//! while it waits loses nothing. Orderings come from `poll_once` (the
//! peek is known to wait before the peer writes); `deadline` is a hang
//! guard only.

mod support;

use std::pin::pin;
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
