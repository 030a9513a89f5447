//! A migrating tokio user's cross-thread program: std threads calling
//! `block_on` on a shared runtime, spawning onto it through its handle,
//! `spawn_blocking` feeding a channel, and dropping the runtime while
//! tasks hold sockets.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use strata::io::{AsyncReadExt, AsyncWriteExt, StreamExt};
use strata::rt::net::{TcpListener, TcpStream};
use strata::rt::sync::mpsc;
use strata::rt::time::timeout;

async fn echo_server(listener: TcpListener) {
    loop {
        let (s, _) = listener.accept().await.unwrap();
        strata::spawn(async move {
            let (mut r, mut w) = s.into_split();
            let mut buf = vec![0u8; 8192];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n]).await.unwrap();
            }
        });
    }
}

/// Hang guard for code that runs outside the runtime's timers.
fn guard<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("hung (or panicked)")
}

#[test]
fn block_on_from_many_std_threads_and_handle_spawn() {
    guard(60, || {
        let rt = Arc::new(
            strata::Runtime::builder()
                .worker_threads(2)
                .build()
                .unwrap(),
        );
        let listener = rt
            .block_on(async { TcpListener::bind("127.0.0.1:0") })
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.handle().spawn(echo_server(listener));

        let mut threads = Vec::new();
        for t in 0..4u8 {
            let rt = rt.clone();
            threads.push(std::thread::spawn(move || {
                rt.block_on(async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let data: Vec<u8> = (0..300_000u32).map(|i| (i as u8) ^ t).collect();
                    let (mut r, mut w) = (&s, &s);
                    let d2 = data.clone();
                    let (wres, got) = strata::future::join(
                        async move {
                            w.write_all(&d2).await.unwrap();
                        },
                        async move {
                            let mut got = vec![0u8; data.len()];
                            r.read_exact(&mut got).await.unwrap();
                            (got, data)
                        },
                    )
                    .await;
                    let () = wres;
                    assert!(got.0 == got.1);
                    s.close().await.unwrap();
                    // timers work in block_on off the workers
                    strata::rt::time::sleep(Duration::from_millis(5)).await;
                    t
                })
            }));
        }
        for (i, th) in threads.into_iter().enumerate() {
            assert_eq!(th.join().unwrap(), i as u8);
        }

        // A std thread spawns onto the runtime via its handle and gets the
        // results back through std channels.
        let handle = rt.handle().clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for i in 0..100u64 {
                let tx = tx.clone();
                handle.spawn(async move {
                    strata::rt::time::sleep(Duration::from_millis(i % 5)).await;
                    tx.send(i * 2).unwrap();
                });
            }
        })
        .join()
        .unwrap();
        let mut got: Vec<u64> = (0..100)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    });
}

#[test]
fn spawn_blocking_feeds_a_channel() {
    guard(60, || {
        let rt = strata::Runtime::builder()
            .worker_threads(2)
            .max_blocking_threads(4)
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, rx) = mpsc::channel::<(u32, u64)>(4);
            for job in 0..32u32 {
                let mut tx = tx.clone();
                strata::spawn_blocking(move || {
                    let sum: u64 = (0..=job as u64 * 1000).sum();
                    std::thread::sleep(Duration::from_millis(1));
                    // from a blocking thread: send through the bounded channel
                    let mut item = Some((job, sum));
                    loop {
                        match tx.try_send(item.take().unwrap()) {
                            Ok(()) => break,
                            Err(e) if e.is_full() => {
                                item = Some(e.into_inner());
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
            drop(tx);
            let consumer = strata::spawn(async move {
                let mut got: Vec<(u32, u64)> = rx.collect().await;
                got.sort();
                got
            });
            let got = timeout(Duration::from_secs(30), consumer)
                .await
                .expect("hung")
                .unwrap();
            assert_eq!(got.len(), 32);
            for (job, sum) in got {
                assert_eq!(sum, (0..=job as u64 * 1000).sum::<u64>());
            }
        });
    });
}

#[test]
fn dropping_the_runtime_closes_sockets_tasks_hold() {
    guard(60, || {
        let rt = strata::Runtime::builder()
            .worker_threads(2)
            .build()
            .unwrap();
        let listener = rt
            .block_on(async { TcpListener::bind("127.0.0.1:0") })
            .unwrap();
        let addr = listener.local_addr().unwrap();
        // A task holding an accepted socket, reading forever.
        let held = rt.handle().spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"hi").await.unwrap();
            let mut buf = [0u8; 16];
            loop {
                if s.read(&mut buf).await.unwrap() == 0 {
                    return;
                }
            }
        });
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut hi = [0u8; 2];
        client.read_exact(&mut hi).unwrap();
        assert_eq!(&hi, b"hi");
        drop(rt);
        // The task was dropped with its socket: the peer sees EOF.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).expect("EOF, not a timeout");
        assert!(rest.is_empty());
        let _ = client.write_all(b"x");
        // Its JoinHandle, awaited on another runtime, says cancelled.
        let other = strata::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        let r = other.block_on(async { timeout(Duration::from_secs(10), held).await });
        let err = r
            .expect("JoinHandle of a dropped runtime hung")
            .unwrap_err();
        assert!(err.is_cancelled(), "{err}");
    });
}

#[test]
fn socket_outliving_its_runtime_errors_instead_of_hanging() {
    guard(60, || {
        let rt1 = strata::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        // Connected (and so registered) on rt1.
        let stream = rt1
            .block_on(async { TcpStream::connect(addr).await })
            .unwrap();
        let (mut peer, _) = std_listener.accept().unwrap();
        drop(rt1);
        peer.write_all(b"after").unwrap();
        let rt2 = strata::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        let r = rt2.block_on(async move {
            let mut s = stream;
            let mut buf = [0u8; 5];
            timeout(Duration::from_secs(5), s.read_exact(&mut buf))
                .await
                .map(|r| r.map(|()| buf))
        });
        match r {
            Ok(Ok(buf)) => assert_eq!(&buf, b"after"),
            Ok(Err(_e)) => {} // an error naming the cause is acceptable
            Err(_) => panic!("read on a socket whose runtime was dropped hung"),
        }
    });
}
