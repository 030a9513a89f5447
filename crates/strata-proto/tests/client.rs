//! The pipelined client over real TCP on 127.0.0.1: against the test
//! server (`TcpServer`), and against hand-written peers that misbehave on
//! purpose (close early, reset, answer garbage, answer unasked).

mod support;

use std::error::Error;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_codec::LinesCodecError;
use strata_proto::TcpClient;
use strata_proto::pipeline::{ClientErrorKind, ClientProto};
use strata_service::Service;
use strata_service::timeout::{Elapsed, Timeout};
use support::client::{LineClient, Lines, peer, read_line, runtime};
use support::{Fixture, cfg, deadline};

#[test]
fn calls_from_many_tasks_each_get_their_own_response() {
    deadline(120, || {
        let fx = Fixture::start(2, 100, cfg());
        let addr = fx.addr();
        let rt = runtime(2);
        rt.block_on(async move {
            let client = TcpClient::new(Lines)
                .max_in_flight(16)
                .connect(addr)
                .await
                .unwrap();
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let client = client.clone();
                    strata_rt::spawn(async move {
                        for i in 0..150 {
                            // Later requests often finish first on the
                            // server; order must still match them up.
                            let ms = (t * 7 + i * 3) % 4;
                            let want = format!("t{t}-{i}");
                            let got = client.call(format!("sleep {ms} {want}")).await.unwrap();
                            assert_eq!(got, want);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        // The calls overlapped on the one connection.
        assert!(fx.stats.peak.load(Ordering::SeqCst) > 1);
        assert_eq!(fx.stats.started.load(Ordering::SeqCst), 8 * 150);
    });
}

#[test]
fn no_more_than_max_in_flight_requests_are_outstanding() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            for round in 0..3 {
                let batch: Vec<String> = (0..4).map(|_| read_line(&mut r)).collect();
                // Nothing more arrives until these are answered.
                r.get_ref()
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                let mut more = [0; 1];
                let e = r.read(&mut more).unwrap_err();
                assert!(
                    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                    "round {round}: {e}"
                );
                r.get_ref()
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                for line in batch {
                    w.write_all(format!("re {line}\n").as_bytes()).unwrap();
                }
            }
        });
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines)
                .max_in_flight(4)
                .connect(addr)
                .await
                .unwrap();
            let calls: Vec<_> = (0..12)
                .map(|i| {
                    let client = client.clone();
                    strata_rt::spawn(async move { client.call(format!("r{i}")).await.unwrap() })
                })
                .collect();
            let mut answers = Vec::new();
            for c in calls {
                answers.push(c.await.unwrap());
            }
            answers.sort();
            let mut want: Vec<String> = (0..12).map(|i| format!("re r{i}")).collect();
            want.sort();
            assert_eq!(answers, want);
        });
        server.join().unwrap();
    });
}

#[test]
fn a_call_given_up_after_sending_does_not_shift_the_responses_behind_it() {
    deadline(60, || {
        let fx = Fixture::start(1, 100, cfg());
        let addr = fx.addr();
        let gate = fx.gate.clone();
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            // Its request is written, then the timeout gives up on it.
            let timed = Timeout::new(&client, Duration::from_millis(50));
            let e = timed.call("gate first".into()).await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::TimedOut);
            assert!(e.request_sent());
            assert_eq!(e.to_string(), "call timed out");
            assert!(e.source().unwrap().is::<Elapsed>());
            let second = client.call("echo second".into());
            let open = async {
                strata_rt::time::sleep(Duration::from_millis(20)).await;
                gate.open();
            };
            let (answer, ()) = futures_util::future::join(second, open).await;
            // "first" is read and dropped; this call gets its own answer.
            assert_eq!(answer.unwrap(), "second");
            assert_eq!(client.call("echo third".into()).await.unwrap(), "third");
        });
    });
}

#[test]
fn a_call_given_up_before_sending_is_never_sent() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            // Only the call that was kept arrives.
            assert_eq!(read_line(&mut r), "kept");
            w.write_all(b"ok\n").unwrap();
            assert_eq!(
                read_line(&mut r),
                "",
                "end of stream after the last handle went"
            );
        });
        runtime(1).block_on(async move {
            let stream = strata_rt::net::TcpStream::connect(addr).await.unwrap();
            let (client, task) = LineClient::new(stream, Lines.codec(), 4);
            // Queue a call while the connection's task is not running yet,
            // then give it up.
            let mut dropped = Box::pin(client.call("dropped".into()));
            assert!(poll_once(dropped.as_mut()).is_pending());
            drop(dropped);
            let task = strata_rt::spawn(task);
            assert_eq!(client.call("kept".into()).await.unwrap(), "ok");
            drop(client);
            task.await.unwrap().unwrap();
        });
        server.join().unwrap();
    });
}

fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    let waker = std::task::Waker::noop();
    f.poll(&mut std::task::Context::from_waker(waker))
}

#[test]
fn a_server_that_closes_fails_the_waiting_call_and_every_later_one() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s);
            assert_eq!(read_line(&mut r), "one");
            // Closes without answering.
        });
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            let e = client.call("one".into()).await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Closed);
            assert!(e.request_sent());
            assert_eq!(
                e.to_string(),
                "connection closed before the response arrived"
            );
            assert!(client.is_closed());
            let later = client.call("two".into()).await.unwrap_err();
            assert_eq!(later.kind(), ClientErrorKind::Closed);
            assert!(!later.request_sent());
        });
        server.join().unwrap();
    });
}

#[test]
fn a_reset_fails_the_waiting_call_with_the_io_error() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            assert_eq!(read_line(&mut r), "one");
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        });
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            let e = client.call("one".into()).await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Io, "{e:?}");
            assert!(e.request_sent());
            let io = e.source().unwrap().downcast_ref::<LinesCodecError>();
            assert!(
                matches!(io, Some(LinesCodecError::Io(io)) if io.kind() == ErrorKind::ConnectionReset)
                    || e.source().unwrap().downcast_ref::<std::io::Error>().map(std::io::Error::kind)
                        == Some(ErrorKind::ConnectionReset),
                "{e:?}"
            );
        });
        server.join().unwrap();
    });
}

#[test]
fn a_bad_response_fails_with_the_codec_error_and_closes() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            assert_eq!(read_line(&mut r), "one");
            assert_eq!(read_line(&mut r), "two");
            w.write_all(b"\xff\xfe not utf-8\n").unwrap();
            // The client closes after it: end of stream here.
            assert_eq!(read_line(&mut r), "");
        });
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            let (one, two) =
                futures_util::future::join(client.call("one".into()), client.call("two".into()))
                    .await;
            for e in [one.unwrap_err(), two.unwrap_err()] {
                assert_eq!(e.kind(), ClientErrorKind::Decode);
                assert!(e.request_sent());
                let codec = e.source().unwrap().downcast_ref::<LinesCodecError>();
                assert!(
                    matches!(codec, Some(LinesCodecError::InvalidUtf8(_))),
                    "{e:?}"
                );
            }
            assert!(client.is_closed());
            assert_eq!(client.end().unwrap().kind(), ClientErrorKind::Decode);
            drop(client);
        });
        server.join().unwrap();
    });
}

#[test]
fn an_over_long_response_is_a_decode_error_not_unbounded_memory() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            assert_eq!(read_line(&mut r), "one");
            // Far past the codec's 64 bytes, and no newline.
            let _ = w.write_all(&vec![b'x'; 1 << 20]);
        });
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            let e = client.call("one".into()).await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Decode);
            let codec = e.source().unwrap().downcast_ref::<LinesCodecError>();
            assert!(
                matches!(codec, Some(LinesCodecError::LineTooLong { limit: 64 })),
                "{e:?}"
            );
        });
        server.join().unwrap();
    });
}

#[test]
fn a_response_nobody_asked_for_closes_the_connection() {
    deadline(60, || {
        let (addr, server) = peer(|mut s| {
            s.write_all(b"surprise\n").unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        });
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            while !client.is_closed() {
                strata_rt::time::sleep(Duration::from_millis(5)).await;
            }
            let end = client.end().unwrap();
            assert_eq!(end.kind(), ClientErrorKind::Decode);
            assert_eq!(
                end.source().unwrap().to_string(),
                "a response arrived with no request waiting for it"
            );
            let e = client.call("late".into()).await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Decode);
            assert!(!e.request_sent());
        });
        server.join().unwrap();
    });
}

#[test]
fn a_request_that_cannot_be_encoded_fails_alone() {
    deadline(60, || {
        let fx = Fixture::start(1, 100, cfg());
        let addr = fx.addr();
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            let e = client.call("echo two\nlines".into()).await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Encode);
            assert!(!e.request_sent());
            assert_eq!(e.to_string(), "request could not be encoded");
            assert!(matches!(
                e.source().unwrap().downcast_ref::<LinesCodecError>(),
                Some(LinesCodecError::EmbeddedNewline)
            ));
            assert_eq!(
                client.call("echo still here".into()).await.unwrap(),
                "still here"
            );
        });
    });
}

#[test]
fn dropping_the_last_handle_closes_the_connection_after_the_answers() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let lines: Vec<String> = (0..3).map(|_| read_line(&mut r)).collect();
            std::thread::sleep(Duration::from_millis(50));
            for l in &lines {
                w.write_all(format!("{l}!\n").as_bytes()).unwrap();
            }
            // Then the client closes its side.
            assert_eq!(read_line(&mut r), "");
        });
        runtime(2).block_on(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            let calls: Vec<_> = (0..3)
                .map(|i| {
                    let client = client.clone();
                    strata_rt::spawn(async move { client.call(format!("c{i}")).await })
                })
                .collect();
            drop(client);
            for (i, c) in calls.into_iter().enumerate() {
                // Each got its answer, though no handle outlived its call.
                assert_eq!(c.await.unwrap().unwrap(), format!("c{i}!"));
            }
        });
        server.join().unwrap();
    });
}

#[test]
fn a_runtime_that_shuts_down_fails_the_calls_waiting_on_its_connections() {
    deadline(60, || {
        let fx = Fixture::start(1, 100, cfg());
        let addr = fx.addr();
        let owner = runtime(1);
        let client =
            owner.block_on(async move { TcpClient::new(Lines).connect(addr).await.unwrap() });
        let caller = runtime(1);
        let waiting = {
            let client = client.clone();
            caller
                .handle()
                .spawn(async move { client.call("gate never".into()).await })
        };
        // Wait until the request is in the server's hands.
        while fx.stats.started.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(owner);
        let e = caller.block_on(waiting).unwrap().unwrap_err();
        assert_eq!(e.kind(), ClientErrorKind::Closed);
        assert!(e.request_sent());
        assert!(
            e.source().unwrap().to_string().contains("task was dropped"),
            "{e:?}"
        );
        let later = caller
            .block_on(client.call("echo late".into()))
            .unwrap_err();
        assert!(!later.request_sent());
        fx.gate.open();
    });
}

#[test]
fn connecting_to_a_closed_port_is_the_os_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = runtime(1)
        .block_on(async move { TcpClient::new(Lines).connect(port).await })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}

/// Many rounds of calls that overlap, finish out of order on the server,
/// and are given up at random points, on two workers: every call that
/// completes has its own answer.
#[test]
fn stress_random_cancellations_never_mismatch_answers() {
    deadline(300, || {
        let fx = Fixture::start(2, 100, cfg());
        let addr = fx.addr();
        let rt = runtime(2);
        let seed = std::env::var("STRATA_CLIENT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_c11e_u64);
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for round in 0..20u64 {
            let answered = answered.clone();
            rt.block_on(async move {
                let client = TcpClient::new(Lines)
                    .max_in_flight(1 + (round as usize % 8))
                    .connect(addr)
                    .await
                    .unwrap();
                let tasks: Vec<_> = (0..6u64)
                    .map(|t| {
                        let client = client.clone();
                        let answered = answered.clone();
                        let mut rng = seed ^ (round << 32) ^ (t << 8) ^ 1;
                        strata_rt::spawn(async move {
                            for i in 0..40 {
                                rng ^= rng << 13;
                                rng ^= rng >> 7;
                                rng ^= rng << 17;
                                let want = format!("r{round}t{t}i{i}");
                                let call = client.call(format!("sleep {} {want}", rng % 3));
                                if rng.is_multiple_of(4) {
                                    let limit = Duration::from_micros(rng % 3000);
                                    if let Ok(got) = strata_rt::time::timeout(limit, call).await {
                                        assert_eq!(got.unwrap(), want);
                                        answered.fetch_add(1, Ordering::Relaxed);
                                    }
                                } else {
                                    assert_eq!(call.await.unwrap(), want);
                                    answered.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            });
        }
        // At least the calls that were never given up were answered.
        assert!(answered.load(Ordering::Relaxed) >= 20 * 6 * 30 / 2);
    });
}

#[test]
fn callers_waiting_for_a_slot_fail_unsent_when_the_connection_ends() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s);
            assert_eq!(read_line(&mut r), "first");
            // Closes with "first" unanswered and "second" never sent.
        });
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines)
                .max_in_flight(1)
                .connect(addr)
                .await
                .unwrap();
            let (first, second) = futures_util::future::join(
                client.call("first".into()),
                client.call("second".into()),
            )
            .await;
            let (first, second) = (first.unwrap_err(), second.unwrap_err());
            assert_eq!(first.kind(), ClientErrorKind::Closed);
            assert!(first.request_sent());
            assert_eq!(second.kind(), ClientErrorKind::Closed);
            assert!(!second.request_sent());
        });
        server.join().unwrap();
    });
}

#[test]
fn a_caller_that_gives_up_waiting_for_a_slot_passes_the_slot_on() {
    deadline(60, || {
        let fx = Fixture::start(1, 100, cfg());
        let addr = fx.addr();
        let gate = fx.gate.clone();
        runtime(1).block_on(async move {
            let client = TcpClient::new(Lines)
                .max_in_flight(1)
                .connect(addr)
                .await
                .unwrap();
            // "a" holds the only slot until the gate opens.
            let a = client.call("gate a".into());
            let mut a = std::pin::pin!(a);
            assert!(poll_once(a.as_mut()).is_pending());
            // "b" and "c" wait for the slot; "b" gives up.
            let mut b = Box::pin(client.call("echo b".into()));
            let mut c = Box::pin(client.call("echo c".into()));
            assert!(poll_once(b.as_mut()).is_pending());
            assert!(poll_once(c.as_mut()).is_pending());
            gate.open();
            assert_eq!(a.await.unwrap(), "a");
            drop(b);
            assert_eq!(c.await.unwrap(), "c");
        });
    });
}
