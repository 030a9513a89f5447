//! `ClientPool` over real TCP on 127.0.0.1: calls spread over its
//! connections, a connection the server closed is made again, and a
//! server that is down fails calls at once, unsent, until it is back; a
//! server restarted on the same port under load from many tasks, many
//! tasks racing to (re)connect the same slots, the pool used from two
//! runtimes, connect timeouts, the count of open connections under load.
//! `deadline` and the bounded retry loops are hang guards only.

mod support;

use std::error::Error;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use strata_proto::pipeline::{ClientError, ClientErrorKind};
use strata_proto::{ClientPool, ServerHandle, TcpClient, TcpServer};
use strata_service::Service;
use support::client::{Lines, runtime};
use support::{Echo, Fixture, TestProto, cfg, deadline, eventually};

#[test]
fn calls_are_spread_over_the_pools_connections() {
    deadline(60, || {
        let fx = Fixture::start(2, 100, cfg());
        let addr = fx.addr();
        let pool = TcpClient::new(Lines).pool(addr, 3);
        let server = fx.server.as_ref().unwrap();
        let rt = runtime(2);
        rt.block_on(async {
            let calls: Vec<_> = (0..30)
                .map(|i| {
                    let pool = pool.clone();
                    strata_rt::spawn(async move { pool.call(format!("echo {i}")).await })
                })
                .collect();
            for (i, c) in calls.into_iter().enumerate() {
                assert_eq!(c.await.unwrap().unwrap(), i.to_string());
            }
        });
        assert_eq!(pool.open_connections(), 3);
        // (Counted while the pool, whose connections close when it is
        // dropped, and the runtime that runs them, live.)
        assert_eq!(server.connections(), 3);
        drop((pool, rt));
    });
}

#[test]
fn a_connection_the_server_closed_is_made_again() {
    deadline(60, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Each connection gets one answer, then is closed.
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (s, _) = listener.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                (&s).write_all(format!("re {line}").as_bytes()).unwrap();
            }
        });
        runtime(2).block_on(async move {
            let pool = TcpClient::new(Lines).pool(addr, 1);
            assert_eq!(pool.call("a".into()).await.unwrap(), "re a");
            // Wait until the client has seen the close.
            while pool.open_connections() == 1 {
                strata_rt::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(pool.call("b".into()).await.unwrap(), "re b");
        });
        server.join().unwrap();
    });
}

#[test]
fn a_server_that_is_down_fails_calls_unsent_until_it_is_back() {
    deadline(60, || {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let rt = runtime(2);
        let pool = TcpClient::new(Lines).pool(addr, 1);
        let e = rt.block_on(pool.call("a".into())).unwrap_err();
        assert_eq!(e.kind(), ClientErrorKind::Connect);
        assert!(!e.request_sent());
        assert_eq!(e.to_string(), "could not connect; the request was not sent");
        let io = e
            .source()
            .unwrap()
            .downcast_ref::<std::io::Error>()
            .unwrap();
        assert_eq!(io.kind(), ErrorKind::ConnectionRefused);

        // The server comes up on that port: calls get through again once
        // the slot's wait after the failure is over.
        let listener = TcpListener::bind(addr).unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            (&s).write_all(b"up\n").unwrap();
        });
        let answer = rt.block_on(async {
            loop {
                match pool.call("b".into()).await {
                    Ok(answer) => break answer,
                    Err(e) => {
                        assert_eq!(e.kind(), ClientErrorKind::Connect, "{e:?}");
                        strata_rt::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
        assert_eq!(answer, "up");
        server.join().unwrap();
    });
}

/// An echo server on `addr` with two workers.
fn echo_server(addr: SocketAddr) -> ServerHandle {
    TcpServer::new(TestProto, addr)
        .threads(2)
        .shutdown_timeout(Duration::from_secs(10))
        .start(|| Ok::<_, std::io::Error>(Echo))
        .expect("server starts")
}

/// Calls until one succeeds (each slot in turn, so up to `size` in a
/// row); a failure must be a connect failure, unsent. Bounded: the
/// longest backoff is 2 s.
async fn until_ok(pool: &ClientPool<Lines>, what: &str) -> String {
    for _ in 0..2000 {
        match pool.call(what.to_string()).await {
            Ok(answer) => return answer,
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        ClientErrorKind::Connect | ClientErrorKind::Closed | ClientErrorKind::Io
                    ),
                    "{e:?}"
                );
                strata_rt::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    panic!("never answered: {what}");
}

/// A server stopped and another started on the same
/// port while 16 tasks on 2 workers keep calling through a pool of 4:
/// every call ends, with its own answer or a clear error (Connect
/// unsent; Closed or Io); afterwards every slot answers again, with one
/// connection per slot and none leaked on the new server.
#[test]
fn a_server_restarted_on_the_same_port_under_load() {
    deadline(120, || {
        let first = echo_server("127.0.0.1:0".parse().unwrap());
        let addr = first.local_addr();
        let rt = runtime(2);
        let pool = TcpClient::new(Lines).pool(addr, 4);
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let (pool, stop, ok, failed) =
                    (pool.clone(), stop.clone(), ok.clone(), failed.clone());
                rt.handle().spawn(async move {
                    let mut k = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let req = format!("{t}-{k}");
                        match pool.call(req.clone()).await {
                            Ok(answer) => {
                                assert_eq!(answer, req);
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => {
                                check_clear(&e);
                                failed.fetch_add(1, Ordering::SeqCst);
                                strata_rt::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                        k += 1;
                    }
                })
            })
            .collect();
        eventually(30, "calls before the restart", || {
            ok.load(Ordering::SeqCst) > 200
        });
        assert!(first.shutdown());
        // Down for a moment: calls fail (Connect), none hangs.
        let before = failed.load(Ordering::SeqCst);
        eventually(30, "failures while down", || {
            failed.load(Ordering::SeqCst) > before + 20
        });
        let second = echo_server(addr);
        let after = ok.load(Ordering::SeqCst);
        eventually(30, "calls after the restart", || {
            ok.load(Ordering::SeqCst) > after + 200
        });
        stop.store(true, Ordering::SeqCst);
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
            for i in 0..8 {
                assert_eq!(
                    until_ok(&pool, &format!("last {i}")).await,
                    format!("last {i}")
                );
            }
        });
        assert_eq!(pool.open_connections(), 4);
        // The pool's connections are open on the new server, one per slot.
        eventually(30, "one connection per slot", || second.connections() == 4);
        drop(pool);
        drop(rt);
        eventually(30, "the pool's connections closed", || {
            second.connections() == 0
        });
        assert!(second.shutdown());
    });
}

fn check_clear(e: &ClientError) {
    match e.kind() {
        ClientErrorKind::Connect => assert!(!e.request_sent(), "{e:?}"),
        ClientErrorKind::Closed | ClientErrorKind::Io => {}
        other => panic!("unexpected error kind {other:?}: {e:?}"),
    }
}

/// 64 tasks on 2 workers make the first calls of a
/// pool of 3 at once, then the server restarts and 64 more race to
/// reconnect: exactly one connection per slot each time.
#[test]
fn many_tasks_racing_to_connect_a_slot_make_one_connection() {
    deadline(120, || {
        let first = echo_server("127.0.0.1:0".parse().unwrap());
        let addr = first.local_addr();
        let rt = runtime(2);
        let pool = TcpClient::new(Lines).pool(addr, 3);
        let burst = |pool: &ClientPool<Lines>| {
            let calls: Vec<_> = (0..64)
                .map(|i| {
                    let pool = pool.clone();
                    rt.handle()
                        .spawn(async move { pool.call(format!("r{i}")).await })
                })
                .collect();
            rt.block_on(async {
                for (i, c) in calls.into_iter().enumerate() {
                    match c.await.unwrap() {
                        Ok(a) => assert_eq!(a, format!("r{i}")),
                        Err(e) => check_clear(&e),
                    }
                }
            });
        };
        burst(&pool);
        assert_eq!(pool.open_connections(), 3);
        eventually(30, "3 connections", || first.connections() == 3);
        assert!(first.shutdown());
        let second = echo_server(addr);
        // Let the pool see the old connections closed, and any backoff
        // pass, then race.
        rt.block_on(async {
            while pool.open_connections() > 0 {
                strata_rt::time::sleep(Duration::from_millis(5)).await;
            }
        });
        burst(&pool);
        rt.block_on(async {
            for i in 0..6 {
                until_ok(&pool, &format!("x{i}")).await;
            }
        });
        assert_eq!(pool.open_connections(), 3);
        eventually(30, "3 connections on the new server", || {
            second.connections() == 3
        });
        // None beyond them, either (none closed since: all are counted).
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(second.connections(), 3);
        drop(rt);
        assert!(second.shutdown());
    });
}

/// A pool used on one runtime, that runtime dropped
/// (its connection tasks with it), then the pool used on another: the
/// slots see their connections ended and connect again.
#[test]
fn a_pool_outlives_the_runtime_that_made_its_connections() {
    deadline(60, || {
        let server = echo_server("127.0.0.1:0".parse().unwrap());
        let pool = TcpClient::new(Lines).pool(server.local_addr(), 2);
        let first = runtime(2);
        first.block_on(async {
            assert_eq!(pool.call("a".into()).await.unwrap(), "a");
            assert_eq!(pool.call("b".into()).await.unwrap(), "b");
        });
        assert_eq!(pool.open_connections(), 2);
        drop(first);
        assert_eq!(pool.open_connections(), 0);
        let second = runtime(2);
        second.block_on(async {
            assert_eq!(pool.call("c".into()).await.unwrap(), "c");
            assert_eq!(pool.call("d".into()).await.unwrap(), "d");
        });
        assert_eq!(pool.open_connections(), 2);
        eventually(30, "2 connections", || server.connections() == 2);
        drop(second);
        assert!(server.shutdown());
    });
}

/// Two runtimes call through one pool at once; one of
/// them is dropped midway: the other's calls fail clearly or succeed,
/// and then all succeed.
#[test]
fn a_pool_shared_by_two_runtimes_survives_one_of_them() {
    deadline(60, || {
        let server = echo_server("127.0.0.1:0".parse().unwrap());
        let pool = TcpClient::new(Lines).pool(server.local_addr(), 2);
        let (a, b) = (runtime(1), runtime(1));
        let stop = Arc::new(AtomicBool::new(false));
        let spawn_on = |rt: &strata_rt::Runtime, tag: &'static str| {
            let (pool, stop) = (pool.clone(), stop.clone());
            rt.handle().spawn(async move {
                let mut k = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let req = format!("{tag}{k}");
                    match pool.call(req.clone()).await {
                        Ok(answer) => assert_eq!(answer, req),
                        Err(e) => check_clear(&e),
                    }
                    k += 1;
                }
                k
            })
        };
        let on_a = spawn_on(&a, "a");
        let on_b = spawn_on(&b, "b");
        std::thread::sleep(Duration::from_millis(100));
        drop(on_a);
        drop(a);
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::SeqCst);
        let calls = b.block_on(on_b).unwrap();
        assert!(calls > 0);
        b.block_on(async {
            for i in 0..4 {
                assert_eq!(pool.call(format!("z{i}")).await.unwrap(), format!("z{i}"));
            }
        });
        drop(b);
        assert!(server.shutdown());
    });
}

/// A connect that times out (a listener whose accept
/// queue is full and never accepted: SYNs are dropped) fails the call
/// with Connect, unsent, the source an io::Error of kind TimedOut; a
/// call on that slot right after fails with Connect too, unsent.
#[test]
fn a_connect_timeout_is_a_connect_error_and_backs_off() {
    deadline(60, || {
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Fill the accept queue.
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            let _ = s.connect(&addr.into());
            fillers.push(s);
        }
        std::thread::sleep(Duration::from_millis(200));
        let pool = TcpClient::new(Lines)
            .connect_timeout(Some(Duration::from_millis(300)))
            .pool(addr, 1);
        runtime(2).block_on(async {
            let e = pool.call("a".into()).await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Connect, "{e:?}");
            assert!(!e.request_sent());
            let io = std::error::Error::source(&e)
                .unwrap()
                .downcast_ref::<std::io::Error>()
                .unwrap();
            assert_eq!(io.kind(), std::io::ErrorKind::TimedOut, "{io:?}");
            let again = pool.call("b".into()).await.unwrap_err();
            assert_eq!(again.kind(), ClientErrorKind::Connect);
            assert!(!again.request_sent());
        });
        drop(fillers);
    });
}

/// With every connection open and staying open, `open_connections()`
/// says so while other threads call. (It counted a slot whose lock a
/// caller held at that instant as not open, for it used `try_lock`; now
/// a call takes the slot's connection under a lock held only to clone
/// it.) Sampled while the calls run: a wrong count fails it, never
/// timing.
#[test]
fn open_connections_under_load_counts_every_open_connection() {
    deadline(120, || {
        let server = echo_server("127.0.0.1:0".parse().unwrap());
        let rt = runtime(2);
        let pool = TcpClient::new(Lines).pool(server.local_addr(), 4);
        rt.block_on(async {
            for i in 0..4 {
                pool.call(format!("w{i}")).await.unwrap();
            }
        });
        assert_eq!(pool.open_connections(), 4);
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let (pool, stop, calls) = (pool.clone(), stop.clone(), calls.clone());
                rt.handle().spawn(async move {
                    let mut k = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let req = format!("{t}-{k}");
                        assert_eq!(pool.call(req.clone()).await.unwrap(), req);
                        calls.fetch_add(1, Ordering::SeqCst);
                        k += 1;
                    }
                })
            })
            .collect();
        let mut wrong = Vec::new();
        // Sampled while the tasks make 20 000 calls (a count of work,
        // not a time).
        while calls.load(Ordering::SeqCst) < 20_000 {
            let n = pool.open_connections();
            if n != 4 {
                wrong.push(n);
            }
            if wrong.len() >= 10 {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        // The connections were open all along (the server never closed
        // one and every call succeeded).
        assert_eq!(pool.open_connections(), 4);
        assert_eq!(server.connections(), 4);
        assert!(wrong.is_empty(), "open_connections() said {wrong:?}, not 4");
        drop(rt);
        assert!(server.shutdown());
    });
}

/// A call held up on one connection (its answer, and so every answer
/// behind it, waits for a gate) takes that connection out of the way:
/// the calls after it go to the other, and all are answered while the
/// gate is shut. (Taken in turn, every other call would wait behind it;
/// and while a connection gave its slots back only after the answers
/// went out, a caller quick to call again could find both connections
/// equally busy and pick the held one: a hang the deadline reports.)
#[test]
fn calls_go_around_a_connection_held_up_by_a_slow_answer() {
    deadline(60, || {
        let fx = Fixture::start(2, 100, cfg());
        let addr = fx.addr();
        let pool = TcpClient::new(Lines).pool(addr, 2);
        let rt = runtime(2);
        rt.block_on(async {
            let held = {
                let pool = pool.clone();
                strata_rt::spawn(async move { pool.call("gate held".into()).await })
            };
            while fx.stats.started.load(Ordering::SeqCst) == 0 {
                strata_rt::time::sleep(Duration::from_millis(2)).await;
            }
            for i in 0..200 {
                assert_eq!(pool.call(format!("echo {i}")).await.unwrap(), i.to_string());
            }
            fx.gate.open();
            assert_eq!(held.await.unwrap().unwrap(), "held");
        });
        drop((pool, rt));
    });
}
