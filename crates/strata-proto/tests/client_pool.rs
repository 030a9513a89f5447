//! `ClientPool` over real TCP on 127.0.0.1: calls spread over its
//! connections, a connection the server closed is made again, and a
//! server that is down fails calls at once, unsent, until it is back.

mod support;

use std::error::Error;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpListener;
use std::time::Duration;

use strata_proto::TcpClient;
use strata_proto::pipeline::ClientErrorKind;
use strata_rt::Runtime;
use strata_service::Service;
use support::client::Lines;
use support::{Fixture, cfg, deadline};

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

#[test]
fn calls_are_spread_over_the_pools_connections() {
    deadline(60, || {
        let fx = Fixture::start(2, 100, cfg());
        let addr = fx.addr();
        let pool = TcpClient::new(Lines).pool(addr, 3);
        let rt = runtime();
        let open = rt.block_on(async move {
            let calls: Vec<_> = (0..30)
                .map(|i| {
                    let pool = pool.clone();
                    strata_rt::spawn(async move { pool.call(format!("echo {i}")).await })
                })
                .collect();
            for (i, c) in calls.into_iter().enumerate() {
                assert_eq!(c.await.unwrap().unwrap(), i.to_string());
            }
            pool.open_connections()
        });
        assert_eq!(open, 3);
        // (Counted while the client's runtime, which holds them, lives.)
        assert_eq!(fx.server.as_ref().unwrap().connections(), 3);
        drop(rt);
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
        runtime().block_on(async move {
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
        let rt = runtime();
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
