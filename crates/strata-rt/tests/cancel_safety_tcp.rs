//! Cancel safety of TCP: accepts, reads (plain, deferred after a short
//! read, through a split half) and readiness waits dropped before they
//! complete (as `select!`, timeouts and aborts do) at each point of their
//! life (before the first poll, after a `Pending`, after a wake-up but
//! before the next poll, after readiness came with data) lose nothing,
//! duplicate nothing, and leave the next call working: no lost wake-up,
//! no readiness left cleared while data waits. Loopback only; every test
//! is under a hang guard.

mod support;

use std::io::{Read, Write};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream};
use strata_rt::spawn;
use strata_rt::sync::Shutdown;
use strata_rt::time::timeout;
use support::cancel::{DROP_POINTS, DropAt, poll_once, poll_once_flagged, woken};
use support::on_worker;

#[test]
fn tcp_accept_dropped_at_each_point_loses_no_connection() {
    on_worker(30, || async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        for at in DROP_POINTS {
            {
                let mut acc = pin!(listener.accept());
                match at {
                    DropAt::BeforePoll => {
                        clients.push(std::net::TcpStream::connect(addr).unwrap());
                    }
                    DropAt::AfterPending => {
                        let (r, _) = poll_once_flagged(acc.as_mut()).await;
                        assert!(r.is_pending(), "{at:?}: nothing queued yet");
                        clients.push(std::net::TcpStream::connect(addr).unwrap());
                    }
                    DropAt::AfterWake => {
                        let (r, flag) = poll_once_flagged(acc.as_mut()).await;
                        assert!(r.is_pending(), "{at:?}: nothing queued yet");
                        clients.push(std::net::TcpStream::connect(addr).unwrap());
                        woken(&flag).await;
                    }
                }
            }
            // The connection waits in the kernel's queue: the next accept
            // takes it, from the right peer.
            let (_s, peer) = listener.accept().await.unwrap();
            assert_eq!(
                peer,
                clients.last().unwrap().local_addr().unwrap(),
                "{at:?}"
            );
        }
        // Nothing extra is queued: a fresh accept waits.
        let mut acc = pin!(listener.accept());
        assert!(poll_once(acc.as_mut()).await.is_pending());
    });
}

#[test]
fn tcp_accept_raced_in_a_select_loop_counts_every_connection_once() {
    on_worker(30, || async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        const N: usize = 40;
        let connector = std::thread::spawn(move || {
            (0..N)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect::<Vec<_>>()
        });
        let mut peers = std::collections::HashSet::new();
        let mut round = 0u64;
        while peers.len() < N {
            round += 1;
            let mut acc = pin!(listener.accept());
            // Every other round the accept loses against a ready future
            // after one poll.
            if round.is_multiple_of(2) {
                if let Poll::Ready(r) = poll_once(acc.as_mut()).await {
                    assert!(peers.insert(r.unwrap().1), "a connection accepted twice");
                }
                continue;
            }
            let (_s, peer) = acc.await.unwrap();
            assert!(peers.insert(peer), "a connection accepted twice");
        }
        let clients = connector.join().unwrap();
        assert_eq!(clients.len(), N);
    });
}

#[test]
fn tcp_readable_dropped_at_each_point_leaves_the_data_readable() {
    on_worker(30, || async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        // Empty it first (an accepted stream starts optimistically ready).
        let mut buf = [0u8; 64];
        {
            let mut r = pin!(s.read(&mut buf));
            assert!(poll_once(r.as_mut()).await.is_pending());
        }
        for (i, at) in DROP_POINTS.into_iter().enumerate() {
            {
                let mut r = pin!(s.readable());
                match at {
                    DropAt::BeforePoll => peer.write_all(&[i as u8]).unwrap(),
                    DropAt::AfterPending | DropAt::AfterWake => {
                        let (p, flag) = poll_once_flagged(r.as_mut()).await;
                        assert!(p.is_pending(), "{at:?}");
                        peer.write_all(&[i as u8]).unwrap();
                        if let DropAt::AfterWake = at {
                            woken(&flag).await;
                        }
                    }
                }
            }
            // Readiness came with data and the call that saw it was
            // dropped: the next one must see it at once, not wait for an
            // edge that will not come.
            s.readable().await.unwrap();
            {
                let mut again = pin!(s.readable());
                assert!(
                    poll_once(again.as_mut()).await.is_ready(),
                    "{at:?}: cleared"
                );
            }
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &[i as u8], "{at:?}");
            let mut r = pin!(s.read(&mut buf));
            assert!(poll_once(r.as_mut()).await.is_pending());
        }
    });
}

#[test]
fn tcp_writable_dropped_after_a_wake_up_leaves_the_socket_writable() {
    on_worker(30, || async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (s, _) = listener.accept().await.unwrap();
        let mut sw = &s;
        // Fill the send path until a write would block.
        let chunk = vec![0xabu8; 64 * 1024];
        let mut written = 0usize;
        loop {
            let mut w = pin!(sw.write(&chunk));
            match poll_once(w.as_mut()).await {
                Poll::Ready(r) => written += r.unwrap(),
                Poll::Pending => break,
            }
        }
        // The future lives in this block: it is dropped at its end.
        let drain = {
            let mut wr = pin!(s.writable());
            let (p, flag) = poll_once_flagged(wr.as_mut()).await;
            assert!(p.is_pending());
            // Drain it all from the peer.
            let drain = std::thread::spawn(move || {
                let mut b = vec![0u8; 64 * 1024];
                let mut got = 0usize;
                while got < written {
                    // Exactly `written`: the byte written after must stay.
                    let room = (written - got).min(b.len());
                    got += peer.read(&mut b[..room]).unwrap();
                }
                peer
            });
            woken(&flag).await;
            drain
        };
        s.writable().await.unwrap();
        let n = sw.write(b"x").await.unwrap();
        assert_eq!(n, 1);
        let mut peer = drain.join().unwrap();
        let mut b = [0u8; 1];
        peer.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    });
}

#[test]
fn tcp_read_dropped_or_timed_out_loses_no_byte() {
    on_worker(60, || tcp_read_race(false));
}

/// The same with a busy sibling task, so that reads after a short read
/// are deferred once (see `PollEvented::poll_read`) and dropped then.
#[test]
fn tcp_read_dropped_while_deferred_after_a_short_read_loses_no_byte() {
    on_worker(60, || tcp_read_race(true));
}

#[test]
fn split_read_half_read_dropped_or_timed_out_loses_no_byte() {
    on_worker(60, || async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        const LEN: usize = 100_000;
        let (s, _) = {
            let c = spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                let (_r, mut w) = s.into_split();
                let data = pattern(LEN);
                for piece in data.chunks(1201) {
                    w.write_all(piece).await.unwrap();
                    strata_rt::yield_now().await;
                }
                w.close().await.unwrap();
                _r
            });
            let a = listener.accept().await.unwrap();
            (a, c)
        };
        let (mut rh, _wh) = s.0.into_split();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 700];
        let mut round = 0u64;
        loop {
            round += 1;
            let r = if round.is_multiple_of(2) {
                match timeout(Duration::from_millis(1), rh.read(&mut buf)).await {
                    Ok(r) => Some(r.unwrap()),
                    Err(_) => None,
                }
            } else {
                let mut rd = pin!(rh.read(&mut buf));
                match poll_once(rd.as_mut()).await {
                    Poll::Ready(r) => Some(r.unwrap()),
                    Poll::Pending => {
                        strata_rt::yield_now().await;
                        None
                    }
                }
            };
            match r {
                Some(0) => break,
                Some(n) => got.extend_from_slice(&buf[..n]),
                None => {}
            }
        }
        check_stream(&got, LEN);
    });
}

/// A byte stream read through futures that are polled once and dropped,
/// or lose to a timeout, arrives whole and in order.
fn check_stream(got: &[u8], len: usize) {
    assert_eq!(got.len(), len, "bytes lost or duplicated");
    for (i, b) in got.iter().enumerate() {
        assert_eq!(*b, (i % 251) as u8, "byte {i} wrong");
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn tcp_read_race(busy: bool) {
    let stop = Shutdown::new();
    let spinner = busy.then(|| {
        let stop = stop.clone();
        spawn(async move {
            while !stop.is_triggered() {
                strata_rt::yield_now().await;
            }
        })
    });
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        const LEN: usize = 200_000;
        let writer = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let data = pattern(LEN);
            for (i, piece) in data.chunks(997).enumerate() {
                c.write_all(piece).unwrap();
                if i % 17 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        });
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1500];
        let mut round = 0u64;
        loop {
            round += 1;
            let r = match round % 3 {
                0 => match timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                    Ok(r) => Some(r.unwrap()),
                    Err(_) => None,
                },
                1 => {
                    let mut rd = pin!(s.read(&mut buf));
                    match poll_once(rd.as_mut()).await {
                        Poll::Ready(r) => Some(r.unwrap()),
                        Poll::Pending => {
                            strata_rt::yield_now().await;
                            None
                        }
                    }
                }
                _ => Some(s.read(&mut buf).await.unwrap()),
            };
            match r {
                Some(0) => break,
                Some(n) => got.extend_from_slice(&buf[..n]),
                None => {}
            }
        }
        writer.join().unwrap();
        check_stream(&got, LEN);
    }
    stop.trigger();
    if let Some(s) = spinner {
        s.await.unwrap();
    }
}
