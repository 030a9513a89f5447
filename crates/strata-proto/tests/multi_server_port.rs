//! Several servers on one fixed port over time: a restart on the port of a
//! server just stopped, a second live server refused, and the "first
//! listener binds as if alone" check against a server that is starting
//! at the same moment.

mod support;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use strata_service::service_fn;
use support::{TestProto, deadline};

fn echo_on(addr: SocketAddr, threads: usize) -> io::Result<strata_proto::ServerHandle> {
    strata_proto::TcpServer::new(TestProto, addr)
        .threads(threads)
        .shutdown_timeout(Duration::from_secs(10))
        .start(|| {
            Ok(service_fn(
                |req: String| async move { Ok::<_, io::Error>(req) },
            ))
        })
}

fn round_trip(addr: SocketAddr, line: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut got = String::new();
    BufReader::new(c).read_line(&mut got).unwrap();
    got
}

/// A server stopped with connections still open (the server closes them,
/// so their TIME_WAIT is on its side) and one started at once on the same
/// fixed port: the restart binds; and while it lives, a third on the port
/// is refused with `AddrInUse`. Sound behaviour, kept as a regression test.
#[test]
fn a_restart_on_the_same_port_binds_and_a_second_live_server_is_refused() {
    deadline(60, || {
        let first = echo_on("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = first.local_addr();
        // Idle connections, closed by the server at the stop.
        let idle: Vec<TcpStream> = (0..8)
            .map(|i| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                c.write_all(format!("echo {i}\n").as_bytes()).unwrap();
                let mut got = String::new();
                BufReader::new(c.try_clone().unwrap())
                    .read_line(&mut got)
                    .unwrap();
                c
            })
            .collect();
        assert!(first.shutdown());
        for _ in 0..3 {
            let again = echo_on(addr, 2).expect("restart on the port just freed");
            assert_eq!(round_trip(addr, "echo x"), "echo x\n");
            let err = echo_on(addr, 1).expect_err("a second live server shares the port");
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
            // The live one still gets every connection.
            for i in 0..20 {
                assert_eq!(
                    round_trip(addr, &format!("echo {i}")),
                    format!("echo {i}\n")
                );
            }
            assert!(again.shutdown());
        }
        drop(idle);
    });
}

/// Another server starting on the same port at the same moment: its first
/// listener is bound (with `SO_REUSEADDR`, as strata's is) but not yet
/// listening when this server's first listener binds; then it listens and
/// sets `SO_REUSEPORT`, the sequence of strata's first listener. As
/// documented ("an address already in use, even by another strata server,
/// is an error at start, not a silent share"), one of the two fails. (With
/// `SO_REUSEPORT` set between bind and listen, as strata once did, both
/// succeeded and the kernel spread the connections over both servers.)
#[test]
fn two_servers_starting_together_on_one_port_do_not_both_listen() {
    deadline(60, || {
        // The other server's first listener, between its bind and listen.
        let other = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        other.set_reuse_address(true).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        other.bind(&any.into()).unwrap();
        let addr = other.local_addr().unwrap().as_socket().unwrap();
        let ours = echo_on(addr, 1);
        // The other one goes on: listen, then SO_REUSEPORT.
        let listened = other.listen(128);
        if listened.is_ok() {
            other.set_reuse_port(true).unwrap();
        }
        let both = ours.is_ok() && listened.is_ok();
        let mut stolen = 0;
        if both {
            // Where do the connections go? Count those the other one gets.
            other.set_nonblocking(true).unwrap();
            let clients: Vec<TcpStream> =
                (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
            std::thread::sleep(Duration::from_millis(50));
            while other.accept().is_ok() {
                stolen += 1;
            }
            drop(clients);
        }
        if let Ok(s) = ours {
            s.shutdown();
        }
        assert!(
            !both,
            "two servers listen on {addr} at once; the other one took {stolen} of 64 connections"
        );
    });
}

/// The same, with two real `TcpServer::start`s racing on one fixed port
/// (the window is the few system calls between bind and listen, so most
/// rounds do not hit it): never may both start.
#[test]
fn two_concurrent_starts_on_one_port_never_both_succeed() {
    deadline(120, || {
        let mut both = 0;
        let rounds = 300;
        for _ in 0..rounds {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let b = barrier.clone();
            let t = std::thread::spawn(move || {
                b.wait();
                echo_on(port, 1)
            });
            barrier.wait();
            let mine = echo_on(port, 1);
            let theirs = t.join().unwrap();
            if mine.is_ok() && theirs.is_ok() {
                both += 1;
            }
        }
        assert_eq!(
            both, 0,
            "both servers started on one port in {both} of {rounds} rounds"
        );
    });
}

/// A task of another runtime restarts a server on its fixed port: after
/// `shutdown_async().await` the port is free, and the new one binds at
/// once. Sound behaviour (a plain `shutdown` or drop there only begins the
/// stop, as documented, so the port may still be held).
#[test]
fn a_task_restarts_a_server_on_its_port_after_shutdown_async() {
    deadline(60, || {
        let app = strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        app.block_on(async {
            strata_rt::spawn(async {
                let mut s = echo_on("127.0.0.1:0".parse().unwrap(), 2).unwrap();
                let addr = s.local_addr();
                for _ in 0..10 {
                    let c = strata_rt::net::TcpStream::connect(addr).await.unwrap();
                    assert!(s.shutdown_async().await);
                    drop(c);
                    s = echo_on(addr, 2).expect("restart on the port from a task");
                }
                assert!(s.shutdown_async().await);
            })
            .await
            .unwrap();
        });
    });
}

/// `serve` called from a task of an application's runtime (where `start`
/// works) fails with an error, before anything is bound. (It once
/// panicked, "`Runtime::block_on` was called from inside a task", after
/// binding the port.)
#[test]
fn serve_from_a_task_fails_with_an_error_not_a_panic() {
    deadline(60, || {
        let app = strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        let outcome = app.block_on(async {
            strata_rt::spawn(async {
                strata_proto::TcpServer::new(TestProto, "127.0.0.1:0".parse().unwrap())
                    .threads(1)
                    .serve(|| Ok(service_fn(|r: String| async move { Ok::<_, io::Error>(r) })))
                    .map_err(|e| e.kind())
            })
            .await
        });
        assert!(
            matches!(outcome, Ok(Err(_))),
            "serve from a task: {outcome:?} (a panicked task is a JoinError)"
        );
    });
}
