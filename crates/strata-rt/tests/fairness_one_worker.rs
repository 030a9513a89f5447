//! Fairness on one worker: a task that is always ready (it yields, or its
//! I/O, channel or interval always has something) must not starve what
//! shares its worker: a timer, a socket read, a wake-up from another
//! thread, a spawn from another thread, `block_on`'s own future, and the
//! runtime's shutdown.
//!
//! Each hog runs until told to stop, or gives up by itself after
//! `HOG_LIMIT` (a hang guard, never reached when the worker is fair); the
//! victims must all be done while the hog still runs. Progress is asserted
//! by ordering ("done before the hog gave up"), never by speed.

mod support;

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{AsyncReadExt, StreamExt};
use strata_rt::net::{TcpStream, UdpSocket};
use support::{deadline, rt};

/// How long a hog runs at most before it gives up by itself.
const HOG_LIMIT: Duration = Duration::from_secs(20);

type BoxFut = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a hog shares with the test: told to stop, counts its rounds, and
/// says whether it gave up at `HOG_LIMIT` (the victims were starved).
#[derive(Default)]
struct HogState {
    stop: AtomicBool,
    rounds: AtomicU64,
    gave_up: AtomicBool,
}

impl HogState {
    /// One round of the hog; `false` when it must end.
    fn round(&self, started: Instant) -> bool {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if started.elapsed() > HOG_LIMIT {
            self.gave_up.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }
}

/// Waits (on the test thread) until the hog has run a few rounds.
fn wait_started(h: &HogState) {
    let t = Instant::now();
    while h.rounds.load(Ordering::Relaxed) < 10 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the hog never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The victims, all on (or driven by) the one worker the hog runs on.
async fn victims() {
    let handle = strata_rt::Handle::current();
    // 1. A timer of a task on the worker.
    let timer = strata_rt::spawn(async {
        strata_rt::time::sleep(Duration::from_millis(5)).await;
    });
    // 2. A socket read of a task on the worker; a plain thread writes the
    // byte.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let writer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        s.write_all(b"x").unwrap();
        // Kept open until the reader has its byte.
        let mut rest = [0u8; 1];
        let _ = s.read(&mut rest);
    });
    let read = strata_rt::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        b[0]
    });
    // 3. A wake-up from another thread.
    let (tx, rx) = strata_rt::sync::oneshot::channel::<u32>();
    let woken = strata_rt::spawn(async move { rx.await.unwrap() });
    let waker_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        tx.send(7).unwrap();
    });
    // 4. A spawn from another thread.
    let (stx, srx) = std::sync::mpsc::channel();
    let spawner = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        stx.send(handle.spawn(async { 9u32 })).unwrap();
    });
    // 5. `block_on`'s own future: a timer it polls itself.
    strata_rt::time::sleep(Duration::from_millis(5)).await;

    timer.await.unwrap();
    assert_eq!(read.await.unwrap(), b'x');
    assert_eq!(woken.await.unwrap(), 7);
    spawner.join().unwrap();
    let remote = srx.recv().unwrap();
    assert_eq!(remote.await.unwrap(), 9);
    waker_thread.join().unwrap();
    writer.join().unwrap();
}

/// Runs `make_hog` on a one-worker runtime, then the victims; they must be
/// done while the hog still runs. Then, with the hog still running, the
/// runtime is shut down: that must not wait for the hog to give up.
fn hog_vs_victims(name: &str, make_hog: impl FnOnce(Arc<HogState>) -> BoxFut + Send + 'static) {
    let name = name.to_string();
    deadline(120, move || {
        let rt = rt(1);
        let h = Arc::new(HogState::default());
        let hog = rt.handle().spawn(make_hog(h.clone()));
        wait_started(&h);
        rt.block_on(victims());
        assert!(
            !h.gave_up.load(Ordering::SeqCst),
            "{name}: the victims were done only once the hog gave up"
        );
        // Shutdown while the hog runs.
        let rounds = h.rounds.load(Ordering::Relaxed);
        assert!(rt.shutdown_timeout(Duration::from_secs(60)));
        assert!(
            !h.gave_up.load(Ordering::SeqCst),
            "{name}: the runtime stopped only once the hog gave up"
        );
        drop(hog);
        eprintln!("{name}: hog ran {rounds} rounds while the victims ran");
    });
}

/// A task that yields in a loop.
#[test]
fn a_yielding_loop_starves_nothing() {
    hog_vs_victims("yield_now loop", |h| {
        Box::pin(async move {
            let t = Instant::now();
            while h.round(t) {
                strata_rt::yield_now().await;
            }
        })
    });
}

/// A future that wakes itself on every poll.
#[test]
fn a_self_waking_future_starves_nothing() {
    hog_vs_victims("self-waking future", |h| {
        Box::pin(async move {
            let t = Instant::now();
            std::future::poll_fn(|cx| {
                if h.round(t) {
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(())
                }
            })
            .await
        })
    });
}

/// Many tasks that yield in a loop, more than one turn's worth.
#[test]
fn many_yielding_loops_starve_nothing() {
    hog_vs_victims("300 yield_now loops", |h| {
        Box::pin(async move {
            let t = Instant::now();
            let mut all = Vec::new();
            for _ in 0..300 {
                let h = h.clone();
                all.push(strata_rt::spawn(async move {
                    while h.round(t) {
                        strata_rt::yield_now().await;
                    }
                }));
            }
            for j in all {
                let _ = j.await;
            }
        })
    });
}

/// A plain thread that writes to `s` until it fails (the reader is gone).
fn firehose(mut s: std::net::TcpStream, chunk: &'static [u8]) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || while s.write_all(chunk).is_ok() {})
}

/// A loopback pair: the strata end's std socket, and the std peer.
fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (a, _) = l.accept().unwrap();
    a.set_nonblocking(true).unwrap();
    (a, c)
}

/// A task reading a socket whose peer never stops writing.
#[test]
fn a_tcp_read_loop_over_a_firehose_starves_nothing() {
    let (ours, peer) = tcp_pair();
    let hose = firehose(peer, &[b'z'; 64 * 1024]);
    hog_vs_victims("TcpStream read loop", move |h| {
        Box::pin(async move {
            let mut s = TcpStream::from_std(ours).unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let t = Instant::now();
            while h.round(t) {
                if s.read(&mut buf).await.unwrap() == 0 {
                    break;
                }
            }
        })
    });
    hose.join().unwrap();
}

/// A task reading a socket with a tiny buffer (one byte a read): many
/// reads per event.
#[test]
fn a_one_byte_tcp_read_loop_over_a_firehose_starves_nothing() {
    let (ours, peer) = tcp_pair();
    let hose = firehose(peer, &[b'z'; 64 * 1024]);
    hog_vs_victims("TcpStream 1-byte read loop", move |h| {
        Box::pin(async move {
            let mut s = TcpStream::from_std(ours).unwrap();
            let mut buf = [0u8; 1];
            let t = Instant::now();
            while h.round(t) {
                if s.read(&mut buf).await.unwrap() == 0 {
                    break;
                }
            }
        })
    });
    hose.join().unwrap();
}

/// A task receiving datagrams from a flood.
#[test]
fn a_udp_recv_loop_under_a_flood_starves_nothing() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let addr = sock.local_addr().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let flooder = std::thread::spawn(move || {
        let out = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let t = Instant::now();
        while !d2.load(Ordering::Relaxed) && t.elapsed() < HOG_LIMIT * 2 {
            let _ = out.send_to(b"datagram", addr);
        }
    });
    hog_vs_victims("UdpSocket recv_from loop", move |h| {
        Box::pin(async move {
            let s = UdpSocket::from_std(sock).unwrap();
            let mut buf = [0u8; 64];
            let t = Instant::now();
            while h.round(t) {
                s.recv_from(&mut buf).await.unwrap();
            }
        })
    });
    done.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
}

/// A task draining a channel a fast producer on another thread fills.
#[test]
fn a_channel_recv_loop_with_a_fast_producer_starves_nothing() {
    let (tx, rx) = strata_rt::sync::mpsc::unbounded::<u64>();
    // Keep a backlog so that the receiver always finds one.
    for i in 0..10_000 {
        tx.unbounded_send(i).unwrap();
    }
    let producer = std::thread::spawn(move || {
        let t = Instant::now();
        let mut i = 0u64;
        while tx.unbounded_send(i).is_ok() && t.elapsed() < HOG_LIMIT * 2 {
            i += 1;
            if i.is_multiple_of(1024) {
                std::thread::yield_now();
            }
        }
    });
    hog_vs_victims("mpsc recv loop", move |h| {
        Box::pin(async move {
            let mut rx = rx;
            let t = Instant::now();
            while h.round(t) {
                if rx.next().await.is_none() {
                    break;
                }
            }
        })
    });
    producer.join().unwrap();
}

/// An interval far behind (Burst): every tick is due at once.
#[test]
fn an_interval_far_behind_starves_nothing() {
    hog_vs_victims("interval far behind", move |h| {
        Box::pin(async move {
            let mut iv = strata_rt::time::interval(Duration::from_micros(1));
            iv.set_missed_tick_behavior(strata_rt::time::MissedTickBehavior::Burst);
            iv.tick().await;
            // Blocks the worker so that the interval falls far behind.
            std::thread::sleep(Duration::from_millis(200));
            let t = Instant::now();
            while h.round(t) {
                iv.tick().await;
            }
        })
    });
}

/// An accept loop under a flood of connections.
#[test]
fn an_accept_loop_under_a_connection_flood_starves_nothing() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let d = done.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                while !d.load(Ordering::Relaxed) && t.elapsed() < HOG_LIMIT * 2 {
                    if let Ok(s) = std::net::TcpStream::connect(addr) {
                        drop(s);
                    } else {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    hog_vs_victims("accept loop", move |h| {
        Box::pin(async move {
            let l = strata_rt::net::TcpListener::from_std(l).unwrap();
            let t = Instant::now();
            while h.round(t) {
                let _ = l.accept().await;
            }
        })
    });
    done.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
}
