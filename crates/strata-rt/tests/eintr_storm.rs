//! The runtime in a process whose threads are signalled all the time by a
//! handler installed WITHOUT `SA_RESTART` (a profiler's SIGPROF, say):
//! every blocking system call may fail with `EINTR`. Each test runs in a
//! child process (the handler is process-wide), with a thread that sends
//! SIGUSR2 to every other thread of the process every 50 µs. Checked: every
//! byte of an echo over many connections, timers and timeouts (no spurious
//! `Elapsed`), `spawn_blocking`, `block_on`, UDP, a runtime's shutdown.
//! Waits are hang guards only. Linux only.
#![cfg(target_os = "linux")]

mod support;

use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream, UdpSocket};
use strata_rt::spawn;
use support::passes_in_child;
use support::storm::Storm;

const CHILD: &str = "STRATA_EINTR_STORM_CHILD";

fn pattern(conn: usize, i: usize) -> u8 {
    (conn.wrapping_mul(31) ^ i.wrapping_mul(7) ^ (i >> 8)) as u8
}

fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        let storm = Storm::start();
        body();
        drop(storm);
        return;
    }
    passes_in_child(name, CHILD, 240);
}

#[test]
fn echo_over_many_connections_under_a_signal_storm() {
    in_child("echo_over_many_connections_under_a_signal_storm", || {
        let rt = strata_rt::Runtime::builder()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.expect("accept failed");
                    spawn(async move {
                        let (mut r, mut w) = stream.into_split();
                        futures_util::io::copy(&mut r, &mut w)
                            .await
                            .expect("echo failed");
                    });
                }
            });
            let clients: Vec<_> = (0..64)
                .map(|c| {
                    spawn(async move {
                        let stream = TcpStream::connect(addr).await.expect("connect failed");
                        let (mut r, mut w) = stream.into_split();
                        let len = 256 * 1024;
                        let writer = spawn(async move {
                            let data: Vec<u8> = (0..len).map(|i| pattern(c, i)).collect();
                            for chunk in data.chunks(1000) {
                                w.write_all(chunk).await.expect("write failed");
                            }
                            w
                        });
                        let mut got = vec![0u8; len];
                        r.read_exact(&mut got).await.expect("read failed");
                        for (i, b) in got.iter().enumerate() {
                            assert_eq!(*b, pattern(c, i), "conn {c} byte {i}");
                        }
                        drop(writer.await.unwrap());
                    })
                })
                .collect();
            for c in clients {
                strata_rt::time::timeout(Duration::from_secs(120), c)
                    .await
                    .expect("echo hung")
                    .unwrap();
            }
        });
    });
}

#[test]
fn timers_blocking_and_block_on_under_a_signal_storm() {
    in_child("timers_blocking_and_block_on_under_a_signal_storm", || {
        let rt = strata_rt::Runtime::builder()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            // Sleeps end no earlier than asked.
            let tasks: Vec<_> = (0..200u64)
                .map(|i| {
                    spawn(async move {
                        let d = Duration::from_millis(1 + i % 30);
                        let start = Instant::now();
                        strata_rt::time::sleep(d).await;
                        assert!(start.elapsed() >= d, "a sleep ended early");
                        // A timeout longer than the work never elapses.
                        let r = strata_rt::time::timeout(
                            Duration::from_secs(30),
                            strata_rt::time::sleep(Duration::from_millis(2)),
                        )
                        .await;
                        assert!(r.is_ok(), "spurious Elapsed");
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            // spawn_blocking with sleeps and condvar waits.
            let blocking: Vec<_> = (0..50u64)
                .map(|i| {
                    strata_rt::spawn_blocking(move || {
                        std::thread::sleep(Duration::from_millis(i % 5));
                        i * 2
                    })
                })
                .collect();
            for (i, b) in blocking.into_iter().enumerate() {
                assert_eq!(b.await.unwrap(), i as u64 * 2);
            }
            // UDP ping-pong with every datagram checked.
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let baddr = b.local_addr().unwrap();

            let echo = spawn(async move {
                let mut buf = [0u8; 64];
                for _ in 0..2000 {
                    let (n, from) = b.recv_from(&mut buf).await.expect("udp recv failed");
                    b.send_to(&buf[..n], from).await.expect("udp send failed");
                }
            });
            let mut buf = [0u8; 64];
            for i in 0..2000u32 {
                a.send_to(&i.to_le_bytes(), baddr)
                    .await
                    .expect("udp send failed");
                let (n, from) =
                    strata_rt::time::timeout(Duration::from_secs(30), a.recv_from(&mut buf))
                        .await
                        .expect("udp hung")
                        .expect("udp recv failed");
                assert_eq!((n, from), (4, baddr));
                assert_eq!(&buf[..4], &i.to_le_bytes());
            }
            echo.await.unwrap();
            // Name look-ups on the blocking pool, then connects.
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let acceptor = spawn(async move {
                for _ in 0..200 {
                    listener.accept().await.expect("accept failed");
                }
            });
            for _ in 0..200 {
                TcpStream::connect(("localhost", port))
                    .await
                    .expect("connect by name failed");
            }
            acceptor.await.unwrap();
        });
        // block_on from a plain thread, repeatedly, with a worker waking it.
        for _ in 0..200 {
            let v = rt.block_on(async {
                spawn(async {
                    strata_rt::time::sleep(Duration::from_micros(300)).await;
                    7
                })
                .await
                .unwrap()
            });
            assert_eq!(v, 7);
        }
        // Shutdown with a blocking closure still running.
        rt.handle()
            .spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)));
        rt.shutdown_timeout(Duration::from_secs(30));
    });
}
