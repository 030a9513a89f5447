//! Cancel safety of UDP and Unix sockets: accepts, receives and reads
//! dropped before they complete, at each point of their life (see
//! `cancel_safety_tcp.rs`), lose nothing and duplicate nothing, and the
//! next call works; a UDP socket shared by a task that waits and one that
//! keeps giving up loses no datagram. Every test is under a hang guard.

mod support;

use std::future::{Future, poll_fn};
use std::io::Write;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{UdpSocket, UnixListener, UnixStream};
use strata_rt::spawn;
use strata_rt::sync::Shutdown;
use strata_rt::time::{sleep, timeout};
use support::cancel::{DROP_POINTS, DropAt, poll_once, poll_once_flagged, woken};
use support::on_worker;

#[test]
fn unix_accept_dropped_at_each_point_loses_no_connection() {
    on_worker(30, || async {
        let dir = std::env::temp_dir().join(format!("strata-cancel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("accept.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let mut clients = Vec::new();
        for at in DROP_POINTS {
            {
                let mut acc = pin!(listener.accept());
                match at {
                    DropAt::BeforePoll => {
                        clients.push(std::os::unix::net::UnixStream::connect(&path).unwrap())
                    }
                    DropAt::AfterPending | DropAt::AfterWake => {
                        let (r, flag) = poll_once_flagged(acc.as_mut()).await;
                        assert!(r.is_pending());
                        clients.push(std::os::unix::net::UnixStream::connect(&path).unwrap());
                        if let DropAt::AfterWake = at {
                            woken(&flag).await;
                        }
                    }
                }
            }
            let (mut s, _) = listener.accept().await.unwrap();
            // The accepted stream is the latest client's.
            clients.last_mut().unwrap().write_all(&[7]).unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(b, [7], "{at:?}");
        }
        let mut acc = pin!(listener.accept());
        assert!(poll_once(acc.as_mut()).await.is_pending());
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn udp_recv_from_and_recv_dropped_at_each_point_lose_no_datagram() {
    on_worker(30, || async {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 16];
        for (i, at) in DROP_POINTS.into_iter().enumerate() {
            {
                let mut rx = pin!(sock.recv_from(&mut buf));
                match at {
                    DropAt::BeforePoll => {
                        peer.send_to(&[i as u8], addr).unwrap();
                    }
                    DropAt::AfterPending | DropAt::AfterWake => {
                        let (r, flag) = poll_once_flagged(rx.as_mut()).await;
                        assert!(r.is_pending());
                        peer.send_to(&[i as u8], addr).unwrap();
                        if let DropAt::AfterWake = at {
                            woken(&flag).await;
                        }
                    }
                }
            }
            let (n, from) = sock.recv_from(&mut buf).await.unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&[i as u8][..], peer.local_addr().unwrap())
            );
        }
        // Connected: `recv`.
        sock.connect(peer.local_addr().unwrap()).unwrap();
        peer.connect(addr).unwrap();
        for (i, at) in DROP_POINTS.into_iter().enumerate() {
            {
                let mut rx = pin!(sock.recv(&mut buf));
                if !matches!(at, DropAt::BeforePoll) {
                    let (r, flag) = poll_once_flagged(rx.as_mut()).await;
                    assert!(r.is_pending());
                    peer.send(&[10 + i as u8]).unwrap();
                    if let DropAt::AfterWake = at {
                        woken(&flag).await;
                    }
                } else {
                    peer.send(&[10 + i as u8]).unwrap();
                }
            }
            let n = sock.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &[10 + i as u8], "{at:?}");
        }
        let mut rx = pin!(sock.recv(&mut buf));
        assert!(
            poll_once(rx.as_mut()).await.is_pending(),
            "a datagram twice"
        );
    });
}

#[test]
fn udp_recv_raced_in_a_select_loop_gets_every_datagram_once_in_order() {
    on_worker(30, || async {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        const N: u32 = 300;
        let sender = std::thread::spawn(move || {
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..N {
                peer.send_to(&i.to_be_bytes(), addr).unwrap();
                if i % 7 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        let mut buf = [0u8; 16];
        let mut next = 0u32;
        let mut round = 0u64;
        while next < N {
            round += 1;
            let got = if !round.is_multiple_of(3) {
                // Poll once, drop if not ready.
                let mut rx = pin!(sock.recv_from(&mut buf));
                match poll_once(rx.as_mut()).await {
                    Poll::Ready(r) => Some(r.unwrap().0),
                    Poll::Pending => {
                        strata_rt::yield_now().await;
                        None
                    }
                }
            } else {
                match timeout(Duration::from_millis(1), sock.recv_from(&mut buf)).await {
                    Ok(r) => Some(r.unwrap().0),
                    Err(_) => None,
                }
            };
            if let Some(n) = got {
                assert_eq!(n, 4);
                let v = u32::from_be_bytes(buf[..4].try_into().unwrap());
                assert_eq!(v, next, "a datagram lost or repeated");
                next += 1;
            }
        }
        sender.join().unwrap();
    });
}

#[test]
fn udp_send_to_dropped_before_its_first_poll_sends_nothing() {
    on_worker(30, || async {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_nonblocking(true).unwrap();
        let to = peer.local_addr().unwrap();
        drop(sock.send_to(b"no", to));
        sock.connect(to).unwrap();
        drop(sock.send(b"no"));
        let mut b = [0u8; 4];
        assert_eq!(
            peer.recv_from(&mut b).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        // Completed sends arrive once each.
        assert_eq!(sock.send(b"yes").await.unwrap(), 3);
        assert_eq!(peer.recv(&mut b).unwrap(), 3);
        assert_eq!(
            peer.recv(&mut b).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
    });
}

#[test]
fn unix_read_dropped_after_a_wake_up_loses_no_byte() {
    on_worker(30, || async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 8];
        for at in DROP_POINTS {
            {
                let mut rd = pin!(a.read(&mut buf));
                if matches!(at, DropAt::BeforePoll) {
                    b.write_all(b"abc").await.unwrap();
                } else {
                    let (p, flag) = poll_once_flagged(rd.as_mut()).await;
                    assert!(p.is_pending(), "{at:?}");
                    b.write_all(b"abc").await.unwrap();
                    if let DropAt::AfterWake = at {
                        woken(&flag).await;
                    }
                }
            }
            let n = a.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"abc", "{at:?}");
        }
    });
}

#[test]
fn udp_shared_by_a_waiting_task_and_a_cancelling_task_loses_no_datagram() {
    on_worker(30, || async {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = sock.local_addr().unwrap();
        const N: u32 = 200;
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let done = Shutdown::new();
        let (s2, g2, d2) = (sock.clone(), got.clone(), done.clone());
        // A task that only ever waits.
        let steady = spawn(async move {
            let mut buf = [0u8; 8];
            loop {
                let r = {
                    let mut rx = pin!(s2.recv_from(&mut buf));
                    let mut stop = pin!(d2.wait());
                    poll_fn(|cx| {
                        if let Poll::Ready(r) = rx.as_mut().poll(cx) {
                            return Poll::Ready(Some(r));
                        }
                        stop.as_mut().poll(cx).map(|()| None)
                    })
                    .await
                };
                match r {
                    Some(r) => {
                        let n = r.unwrap().0;
                        g2.lock()
                            .unwrap()
                            .push(u32::from_be_bytes(buf[..n].try_into().unwrap()));
                    }
                    None => return,
                }
            }
        });
        // A task that waits and gives up, over and over.
        let (s3, g3, d3) = (sock.clone(), got.clone(), done.clone());
        let fickle = spawn(async move {
            let mut buf = [0u8; 8];
            while !d3.is_triggered() {
                match timeout(Duration::from_micros(300), s3.recv_from(&mut buf)).await {
                    Ok(r) => {
                        let n = r.unwrap().0;
                        g3.lock()
                            .unwrap()
                            .push(u32::from_be_bytes(buf[..n].try_into().unwrap()));
                    }
                    Err(_) => strata_rt::yield_now().await,
                }
            }
        });
        let sender = std::thread::spawn(move || {
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..N {
                peer.send_to(&i.to_be_bytes(), addr).unwrap();
                std::thread::sleep(Duration::from_micros(150));
            }
        });
        while got.lock().unwrap().len() < N as usize {
            sleep(Duration::from_millis(1)).await;
        }
        done.trigger();
        steady.await.unwrap();
        fickle.await.unwrap();
        sender.join().unwrap();
        let mut v = got.lock().unwrap().clone();
        v.sort();
        assert_eq!(v, (0..N).collect::<Vec<_>>());
    });
}
