//! Executor behaviour: spawning, joining, aborting, panics, blocking pool,
//! shutdown, and misuse outside a runtime.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_channel::oneshot;
use strata_rt::{Runtime, spawn, spawn_blocking, spawn_local};
use support::{Rng, deadline, rt};

/// Counts drops, to prove futures are dropped (cancelled) rather than leaked.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn hundred_thousand_tasks_all_complete() {
    deadline(120, || {
        let rt = rt(2);
        let total: u64 = rt.block_on(async {
            // Half spawned from the block_on thread (spread over workers)...
            let outer: Vec<_> = (0..50_000u64).map(|i| spawn(async move { i })).collect();
            // ...half spawned from inside a worker (stay on that worker).
            let inner = spawn(async {
                let hs: Vec<_> = (50_000..100_000u64)
                    .map(|i| spawn(async move { i }))
                    .collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            });
            let mut sum = 0;
            for h in outer {
                sum += h.await.unwrap();
            }
            sum + inner.await.unwrap()
        });
        assert_eq!(total, (0..100_000u64).sum::<u64>());
    });
}

#[test]
fn cross_thread_wakeups_under_stress() {
    deadline(120, || {
        let rt = rt(2);
        for round in 0..40u64 {
            let mut rng = Rng::new(round);
            let n = 500;
            let mut senders = Vec::with_capacity(n);
            let mut handles = Vec::with_capacity(n);
            for i in 0..n {
                let (tx, rx) = oneshot::channel::<u64>();
                senders.push((i as u64, tx));
                handles.push(rt.handle().spawn(async move { rx.await.unwrap() * 2 }));
            }
            rng.shuffle(&mut senders);
            // Four OS threads wake the tasks in a random order, while the
            // workers are running, sleeping, or about to sleep.
            let chunks: Vec<Vec<_>> = {
                let mut cs: Vec<Vec<_>> = (0..4).map(|_| Vec::new()).collect();
                for (k, s) in senders.into_iter().enumerate() {
                    cs[k % 4].push(s);
                }
                cs
            };
            let threads: Vec<_> = chunks
                .into_iter()
                .enumerate()
                .map(|(t, chunk)| {
                    let seed = round * 10 + t as u64;
                    std::thread::spawn(move || {
                        let mut rng = Rng::new(seed);
                        for (i, tx) in chunk {
                            if rng.below(8) == 0 {
                                std::thread::yield_now();
                            }
                            tx.send(i).unwrap();
                        }
                    })
                })
                .collect();
            let sum: u64 = rt.block_on(async {
                let mut sum = 0;
                for h in handles {
                    sum += h.await.unwrap();
                }
                sum
            });
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(
                sum,
                (0..n as u64).map(|i| i * 2).sum::<u64>(),
                "round {round}"
            );
        }
    });
}

#[test]
fn abort_cancels_a_pending_task_and_drops_its_future() {
    deadline(30, || {
        let rt = rt(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        rt.block_on(async move {
            let guard = DropCount(d);
            let h = spawn(async move {
                let _g = guard;
                std::future::pending::<()>().await
            });
            strata_rt::yield_now().await;
            h.abort();
            let err = h.await.unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(err.to_string(), "task was cancelled");
        });
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn abort_after_completion_keeps_the_output() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let h = spawn(async { 7 });
            while !h.is_finished() {
                strata_rt::yield_now().await;
            }
            h.abort();
            assert_eq!(h.await.unwrap(), 7);
        });
    });
}

#[test]
fn panic_reaches_join_handle_and_worker_survives() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let err = spawn(async { panic!("boom {}", 42) }).await.unwrap_err();
            assert!(err.is_panic());
            assert_eq!(err.to_string(), "task panicked: boom 42");
            let payload = err.into_panic();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            assert_eq!(text, Some("boom 42"));
            // The single worker is still alive and runs new tasks.
            let sum: u32 = {
                let hs: Vec<_> = (0..100u32).map(|i| spawn(async move { i })).collect();
                let mut s = 0;
                for h in hs {
                    s += h.await.unwrap();
                }
                s
            };
            assert_eq!(sum, 4950);
        });
    });
}

#[test]
fn dropped_join_handle_detaches() {
    deadline(30, || {
        let rt = rt(2);
        let (tx, rx) = oneshot::channel();
        rt.block_on(async move {
            drop(spawn(async move {
                strata_rt::yield_now().await;
                tx.send("ran").unwrap();
            }));
            assert_eq!(rx.await.unwrap(), "ran");
        });
    });
}

#[test]
fn yielding_tasks_mixed_with_local_and_remote_wakes_all_finish() {
    // Yielded tasks wait in their own list until the worker has looked at
    // I/O; a task lost there, or a worker asleep with one waiting, hangs
    // this test. Each task mixes yields, a wake from a sibling task on its
    // worker, a wake from an OS thread and a short sleep, in an order
    // drawn per task.
    deadline(120, || {
        let rt = rt(2);
        for round in 0..30u64 {
            let n = 200;
            let mut remote_senders = Vec::with_capacity(n);
            let mut handles = Vec::with_capacity(n);
            for i in 0..n {
                let (remote_tx, remote_rx) = oneshot::channel::<u64>();
                remote_senders.push((i as u64, remote_tx));
                let mut rng = Rng::new(round * 1000 + i as u64);
                let steps: Vec<u64> = (0..4).map(|_| rng.below(4)).collect();
                let yields = rng.below(5);
                handles.push(rt.handle().spawn(async move {
                    let mut remote_rx = Some(remote_rx);
                    let mut got = 0;
                    for step in steps {
                        match step {
                            0 => {
                                for _ in 0..yields {
                                    strata_rt::yield_now().await;
                                }
                            }
                            1 => {
                                // Woken by a sibling on this worker.
                                let (tx, rx) = oneshot::channel::<()>();
                                spawn(async move {
                                    strata_rt::yield_now().await;
                                    let _ = tx.send(());
                                });
                                rx.await.unwrap();
                            }
                            2 => {
                                if let Some(rx) = remote_rx.take() {
                                    got = rx.await.unwrap();
                                }
                            }
                            _ => {
                                strata_rt::time::sleep(std::time::Duration::from_micros(
                                    200 * yields,
                                ))
                                .await
                            }
                        }
                    }
                    if let Some(rx) = remote_rx {
                        got = rx.await.unwrap();
                    }
                    got + 1
                }));
            }
            let mut rng = Rng::new(round);
            rng.shuffle(&mut remote_senders);
            let sender = std::thread::spawn(move || {
                for (k, (i, tx)) in remote_senders.into_iter().enumerate() {
                    if k % 16 == 0 {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                    tx.send(i).unwrap();
                }
            });
            let sum: u64 = rt.block_on(async {
                let mut sum = 0;
                for h in handles {
                    sum += h.await.unwrap();
                }
                sum
            });
            sender.join().unwrap();
            assert_eq!(sum, (1..=n as u64).sum::<u64>(), "round {round}");
        }
    });
}

#[test]
fn spawn_local_runs_non_send_futures_on_the_worker() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        let out = rt.block_on(async move {
            handle
                .spawn_local_on(1, || async {
                    let thread = std::thread::current().id();
                    let cell = Rc::new(Cell::new(0));
                    let handles: Vec<_> = (0..100)
                        .map(|_| {
                            let c = cell.clone();
                            spawn_local(async move {
                                strata_rt::yield_now().await;
                                c.set(c.get() + 1);
                                std::thread::current().id()
                            })
                        })
                        .collect();
                    let mut same = true;
                    for h in handles {
                        same &= h.await.unwrap() == thread;
                    }
                    (same, cell.get())
                })
                .await
                .unwrap()
        });
        assert_eq!(out, (true, 100));
    });
}

#[test]
fn tasks_stay_on_the_worker_that_spawned_them() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            for w in 0..2 {
                let ok = handle
                    .spawn_on(w, async {
                        let me = std::thread::current().id();
                        let child = spawn(async {
                            strata_rt::yield_now().await;
                            std::thread::current().id()
                        });
                        child.await.unwrap() == me
                    })
                    .await
                    .unwrap();
                assert!(ok, "child of a task on worker {w} ran elsewhere");
            }
        });
    });
}

#[test]
fn spawn_blocking_runs_more_jobs_than_threads_and_catches_panics() {
    deadline(60, || {
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_blocking_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let running = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..20)
                .map(|i| {
                    let (running, peak) = (running.clone(), peak.clone());
                    spawn_blocking(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                })
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await.unwrap();
            }
            assert_eq!(sum, (0..20).sum::<i32>());
            assert!(peak.load(Ordering::SeqCst) <= 2, "pool exceeded its bound");
            let err = spawn_blocking(|| panic!("blocking boom"))
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "task panicked: blocking boom");
        });
    });
}

#[test]
fn dropping_the_runtime_drops_pending_tasks_and_returns() {
    deadline(30, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let rt = rt(2);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut senders = Vec::new();
        for _ in 0..50 {
            // A task whose waker sits in a channel that outlives the runtime.
            let (tx, rx) = oneshot::channel::<()>();
            senders.push(tx);
            let g = DropCount(drops.clone());
            rt.handle().spawn(async move {
                let _g = g;
                let _ = rx.await;
            });
            let g = DropCount(drops.clone());
            rt.handle().spawn(async move {
                let _g = g;
                std::future::pending::<()>().await
            });
            let g = DropCount(drops.clone());
            // A task blocked on socket I/O that will never complete.
            rt.handle().spawn(async move {
                let _g = g;
                let mut s = strata_rt::net::TcpStream::connect(addr).await.unwrap();
                let mut buf = [0u8; 1];
                let _ = futures_util::io::AsyncReadExt::read(&mut s, &mut buf).await;
                std::future::pending::<()>().await
            });
        }
        // Let the socket tasks connect and block.
        rt.block_on(async {
            for _ in 0..100 {
                strata_rt::yield_now().await;
            }
        });
        drop(rt);
        // Every future was dropped by the shutdown itself: those parked on
        // `pending()` (no waker anywhere), those blocked on a socket, and
        // those whose waker is held by a channel that is still alive.
        assert_eq!(drops.load(Ordering::SeqCst), 150);
        drop(senders);
        drop(listener);
    });
}

#[test]
fn block_on_inside_a_task_panics_with_a_clear_message() {
    deadline(30, || {
        let rt = rt(1);
        let err = rt.block_on(async {
            spawn(async {
                let inner = Runtime::builder().worker_threads(1).build().unwrap();
                inner.block_on(async {})
            })
            .await
            .unwrap_err()
        });
        assert!(
            err.to_string()
                .contains("`Runtime::block_on` was called from inside a task"),
            "{err}"
        );
    });
}

#[test]
fn handle_block_on_inside_a_task_panics_naming_it() {
    deadline(30, || {
        let rt = rt(1);
        let err = rt.block_on(async {
            spawn(async { strata_rt::Handle::current().block_on(async {}) })
                .await
                .unwrap_err()
        });
        assert!(
            err.to_string()
                .contains("`Handle::block_on` was called from inside a task"),
            "{err}"
        );
    });
}

/// A blocking closure waits for async work through the handle: a timer
/// and a channel fed by a task.
#[test]
fn handle_block_on_in_a_blocking_closure_runs_timers_and_waits_for_tasks() {
    deadline(30, || {
        let rt = rt(2);
        let got = rt.block_on(async {
            let (tx, rx) = oneshot::channel();
            spawn(async move {
                strata_rt::time::sleep(std::time::Duration::from_millis(5)).await;
                let _ = tx.send(7);
            });
            spawn_blocking(move || {
                strata_rt::Handle::current().block_on(async {
                    strata_rt::time::sleep(std::time::Duration::from_millis(1)).await;
                    rx.await.unwrap()
                })
            })
            .await
            .unwrap()
        });
        assert_eq!(got, 7);
    });
}

/// Through a handle whose runtime is gone, a timer panics saying so
/// rather than hang.
#[test]
fn handle_block_on_after_the_runtime_is_gone_does_not_hang() {
    deadline(30, || {
        let handle = rt(1).handle().clone();
        let err = std::panic::catch_unwind(|| {
            handle.block_on(strata_rt::time::sleep(std::time::Duration::from_millis(1)))
        })
        .unwrap_err();
        let msg = err
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| err.downcast_ref::<&str>().copied())
            .unwrap_or("");
        assert!(msg.contains("shut down"), "{msg}");
    });
}

#[test]
fn block_on_works_repeatedly_and_from_several_threads() {
    deadline(30, || {
        let rt = Arc::new(rt(2));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let rt = rt.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            rt.block_on(async move { spawn(async move { t * i }).await.unwrap() })
                        })
                        .sum::<i32>()
                })
            })
            .collect();
        let total: i32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(
            total,
            (0..4).map(|t| (0..50).map(|i| t * i).sum::<i32>()).sum()
        );
    });
}

#[test]
fn runtime_apis_outside_a_runtime_panic_with_a_clear_message() {
    let msg = |r: std::thread::Result<()>| -> String {
        let p = r.unwrap_err();
        p.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let m = msg(std::panic::catch_unwind(|| {
        drop(spawn(async {}));
    }));
    assert!(
        m.contains("`strata_rt::spawn` was called outside a strata runtime"),
        "{m}"
    );
    let m = msg(std::panic::catch_unwind(|| {
        drop(spawn_local(async {}));
    }));
    assert!(m.contains("outside a strata runtime"), "{m}");
    let m = msg(std::panic::catch_unwind(|| {
        drop(strata_rt::net::TcpListener::bind("127.0.0.1:0"));
    }));
    assert!(
        m.contains("`TcpListener::bind` was called outside a strata runtime"),
        "{m}"
    );

    // On the block_on thread, spawn_local explains that it is not a worker.
    let rt = rt(1);
    let m = msg(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        || {
            rt.block_on(async {
                drop(spawn_local(async {}));
            })
        },
    )));
    assert!(m.contains("is not one of its workers"), "{m}");
}

/// A socket API called outside a runtime panics before it does anything:
/// it used to bind (a Unix listener left its socket file behind), connect
/// (the peer saw a connection come and go) or resolve the address (a bad
/// one gave an `Err` instead of the documented panic) first.
#[test]
fn socket_apis_outside_a_runtime_panic_before_touching_the_system() {
    use std::future::Future;
    use std::task::{Context, Waker};
    use strata_rt::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

    fn panics_outside<R>(what: &str, f: impl FnOnce() -> R) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(f())));
        let p = r.expect_err(what);
        let m = p.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(m.contains("outside a strata runtime"), "{what}: {m}");
    }
    fn first_poll<F: Future>(f: F) {
        let mut f = std::pin::pin!(f);
        let _ = f.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    }

    let dir = std::env::temp_dir().join(format!("strata-outside-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("never-bound.sock");
    let _ = std::fs::remove_file(&path);
    panics_outside("UnixListener::bind", || UnixListener::bind(&path));
    assert!(!path.exists(), "a socket file was left at {path:?}");

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let addr = tcp.local_addr().unwrap();
    panics_outside("TcpStream::connect", || {
        first_poll(TcpStream::connect(addr))
    });
    let unix_path = dir.join("listening.sock");
    let _ = std::fs::remove_file(&unix_path);
    let unix = std::os::unix::net::UnixListener::bind(&unix_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    panics_outside("UnixStream::connect", || {
        first_poll(UnixStream::connect(&unix_path))
    });
    // Give a connection that was made time to reach the listeners.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let tcp_got = tcp.accept().map(|_| ());
    assert_eq!(
        tcp_got.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock)
    );
    let unix_got = unix.accept().map(|_| ());
    assert_eq!(
        unix_got.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock)
    );

    panics_outside("TcpListener::bind", || TcpListener::bind("not an address"));
    panics_outside("UdpSocket::bind", || UdpSocket::bind("not an address"));
    panics_outside("TcpStream::connect", || {
        first_poll(TcpStream::connect("not an address"))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// `block_on` inside a blocking-pool closure, doing more I/O than a task's
/// budget allows in one poll: it runs to the end (it spun forever once
/// the closure's budget was spent).
#[test]
fn block_on_in_a_blocking_closure_is_not_limited_by_a_task_budget() {
    use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    use strata_rt::net::UnixStream;
    deadline(30, || {
        let rt = Arc::new(rt(1));
        let (mut a, mut b) = rt.block_on(async { UnixStream::pair().unwrap() });
        let rt2 = rt.clone();
        let writer = rt.handle().spawn_blocking(move || {
            rt2.block_on(async move {
                // One byte per write: 200 writes, more than a task's
                // budget (each costs a small socket buffer entry, so read
                // concurrently below).
                for _ in 0..200 {
                    a.write_all(b"x").await.unwrap();
                }
            })
        });
        rt.block_on(async move {
            let mut got = [0u8; 200];
            b.read_exact(&mut got).await.unwrap();
            assert!(got.iter().all(|&c| c == b'x'));
            writer.await.unwrap();
        });
    });
}

/// A blocking closure runs inside its runtime: it can find the runtime and
/// spawn a task on it.
#[test]
fn a_blocking_closure_can_spawn_onto_its_runtime() {
    deadline(30, || {
        let rt = rt(1);
        let answer = rt.block_on(async {
            let inner = spawn_blocking(|| {
                assert!(strata_rt::runtime::Handle::try_current().is_some());
                spawn(async { 6 * 7 })
            })
            .await
            .unwrap();
            inner.await.unwrap()
        });
        assert_eq!(answer, 42);
    });
}

/// Panics when dropped (outside an unwind).
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("asked to panic when dropped");
        }
    }
}

#[test]
fn a_future_that_panics_when_dropped_takes_down_neither_worker_nor_process() {
    deadline(30, || {
        let rt = rt(1);
        let h = rt.handle().clone();
        rt.block_on(async move {
            // Aborted while pending: async-task drops the future.
            let t = h.spawn(async {
                let _g = PanicOnDrop;
                std::future::pending::<()>().await
            });
            strata_rt::yield_now().await;
            t.abort();
            assert!(t.await.unwrap_err().is_cancelled());
            assert_eq!(h.spawn(async { 7 }).await.unwrap(), 7);
        });
        // Pending at shutdown: dropped with the runtime.
        drop(rt.handle().spawn(async {
            let _g = PanicOnDrop;
            std::future::pending::<()>().await
        }));
        drop(rt);
    });
}

#[test]
fn block_on_survives_a_future_that_parks_its_thread_inside_poll() {
    // A wake arriving while the future itself parks (a std channel) used to
    // be consumed by that park, and block_on then slept forever.
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut first = true;
            std::future::poll_fn(|cx| {
                if !first && woken.load(Ordering::SeqCst) {
                    return std::task::Poll::Ready(());
                }
                first = false;
                let (w, flag) = (cx.waker().clone(), woken.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    flag.store(true, Ordering::SeqCst);
                    w.wake();
                });
                let (_tx, rx) = std::sync::mpsc::channel::<()>();
                let _ = rx.recv_timeout(std::time::Duration::from_millis(100));
                std::task::Poll::Pending
            })
            .await
        });
    });
}
