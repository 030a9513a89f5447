//! The pipelined client (`pipeline::Client`, `TcpClient`) at its edges,
//! over real sockets (loopback TCP or a Unix socket pair), with peers that
//! misbehave or hold answers back on purpose: slots freed and given up
//! while woken callers have not run yet, cancellations at every stage,
//! answers byte by byte or too many, half-closes and resets mid-batch,
//! callers on other runtimes, large requests to a peer that answers
//! before it reads on.

mod support;

use std::future::Future;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_codec::LinesCodec;
use strata_proto::TcpClient;
use strata_proto::pipeline::{ClientErrorKind, ClientProto};
use strata_rt::net::UnixStream;
use strata_service::Service;
use support::client::{LineClient, Lines, peer, read_line, runtime};
use support::{Fixture, cfg, deadline, on_a_worker};

/// Polls `f` once with the current task's context.
fn poll_here<F: Future + Unpin>(f: &mut F) -> impl Future<Output = Poll<F::Output>> + '_ {
    std::future::poll_fn(move |cx| Poll::Ready(Pin::new(&mut *f).poll(cx)))
}

/// Two slots are freed one after the other while the caller woken for the
/// first has not run yet: the second wakes another caller. (Woken with
/// `Event::notify(n)`, which only makes sure *at least* n listeners are
/// notified, counting those notified already that have not run, the
/// second release woke nobody, and "b" waited with a slot free: forever,
/// with a server that answers "a" only after "b" arrives.)
#[test]
fn a_slot_freed_while_the_first_woken_waiter_has_not_run_yet_wakes_the_next() {
    deadline(60, || {
        on_a_worker(async {
            let (ours, mut peer) = UnixStream::pair().unwrap();
            let (client, task) = LineClient::new(ours, LinesCodec::new(), 2);
            let _task = strata_rt::spawn(task);
            let mut x1 = Box::pin(client.call("x1".into()));
            let mut x2 = Box::pin(client.call("x2".into()));
            assert!(poll_here(&mut x1).await.is_pending());
            assert!(poll_here(&mut x2).await.is_pending());
            let mut sent = [0; 6];
            peer.read_exact(&mut sent).await.unwrap();
            assert_eq!(&sent, b"x1\nx2\n");
            // Both slots are held: "a" and "b" wait for one.
            let mut a = Box::pin(client.call("a".into()));
            let mut b = Box::pin(client.call("b".into()));
            assert!(poll_here(&mut a).await.is_pending());
            assert!(poll_here(&mut b).await.is_pending());
            // x1's answer frees a slot ("a" is woken, and runs later);
            // then x2's frees the other.
            peer.write_all(b"r1\n").await.unwrap();
            assert_eq!(x1.await.unwrap(), "r1");
            peer.write_all(b"r2\n").await.unwrap();
            assert_eq!(x2.await.unwrap(), "r2");
            // Two free slots, two callers: both requests must go out.
            let serve = async {
                let mut got = [0; 4];
                let r = strata_rt::time::timeout(Duration::from_secs(5), peer.read_exact(&mut got))
                    .await;
                assert!(
                    r.is_ok(),
                    "\"b\" was never sent though both slots were free (got {:?})",
                    String::from_utf8_lossy(&got)
                );
                assert_eq!(&got, b"a\nb\n");
                peer.write_all(b"ra\nrb\n").await.unwrap();
            };
            let (ra, rb, ()) = futures_util::future::join3(a, b, serve).await;
            assert_eq!(ra.unwrap(), "ra");
            assert_eq!(rb.unwrap(), "rb");
        });
    });
}

#[test]
fn slots_given_back_exactly_after_many_cancellations_at_every_stage() {
    // After calls are given up while waiting for a slot, while
    // queued but not taken, and after being written (answers discarded),
    // the connection still allows exactly max_in_flight calls at once.
    const MAX: usize = 3;
    const FINAL: usize = 10;
    deadline(120, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            // Phase 1: answer every request as it comes, until a "c" one.
            let mut held = Vec::new();
            loop {
                let l = read_line(&mut r);
                if l.starts_with('c') {
                    held.push(l);
                    break;
                }
                w.write_all(format!("re {l}\n").as_bytes()).unwrap();
            }
            // Phase 2: hold the "c" calls back until MAX are outstanding.
            let mut answered = 0;
            while answered < FINAL {
                let want = MAX.min(FINAL - answered);
                while held.len() < want {
                    let l = read_line(&mut r);
                    assert!(l.starts_with('c'), "{l}");
                    held.push(l);
                }
                r.get_ref()
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                if r.buffer().is_empty() {
                    let mut more = [0; 1];
                    let e = r.get_mut().read(&mut more).unwrap_err();
                    assert!(
                        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                        "more than {MAX} outstanding: {e}"
                    );
                } else {
                    panic!("more than {MAX} outstanding: {:?}", r.buffer());
                }
                r.get_ref()
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                for l in held.drain(..) {
                    w.write_all(format!("re {l}\n").as_bytes()).unwrap();
                    answered += 1;
                }
            }
        });
        on_a_worker(async move {
            let client = TcpClient::new(Lines)
                .max_in_flight(MAX)
                .connect(addr)
                .await
                .unwrap();
            let mut rng = 0x1234_5678_9abc_def1_u64;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            for round in 0..200 {
                // Fill the slots with calls polled once, then cancel some at
                // each stage.
                let mut calls: Vec<_> = (0..MAX + 2)
                    .map(|i| Box::pin(client.call(format!("p{round}-{i}"))))
                    .collect();
                for c in &mut calls {
                    assert!(poll_here(c).await.is_pending());
                }
                // Queued (the first MAX) or waiting for a slot (the rest):
                // drop some before the task runs.
                let mut kept = Vec::new();
                for c in calls {
                    if next().is_multiple_of(3) {
                        drop(c);
                    } else {
                        kept.push(c);
                    }
                }
                // Let the task write what is queued, then drop some more
                // (written, or still waiting).
                for _ in 0..(next() % 4) {
                    strata_rt::yield_now().await;
                }
                let mut rest = Vec::new();
                for c in kept {
                    if next().is_multiple_of(3) {
                        drop(c);
                    } else {
                        rest.push(c);
                    }
                }
                for c in rest {
                    let got = c.await.unwrap();
                    assert!(got.starts_with(&format!("re p{round}-")), "{got}");
                }
            }
            let calls: Vec<_> = (0..FINAL)
                .map(|i| {
                    let client = client.clone();
                    strata_rt::spawn(async move { client.call(format!("c{i}")).await })
                })
                .collect();
            for (i, c) in calls.into_iter().enumerate() {
                assert_eq!(c.await.unwrap().unwrap(), format!("re c{i}"));
            }
        });
        server.join().unwrap();
    });
}

/// Responses that arrive one byte at a time are each matched to
/// their call.
#[test]
fn responses_split_byte_by_byte_reach_their_own_calls() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            s.set_nodelay(true).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let lines: Vec<String> = (0..5).map(|_| read_line(&mut r)).collect();
            for l in &lines {
                for b in format!("re {l}\n").bytes() {
                    w.write_all(&[b]).unwrap();
                    w.flush().unwrap();
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        runtime(2).block_on(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            let calls: Vec<_> = (0..5)
                .map(|i| {
                    let client = client.clone();
                    strata_rt::spawn(async move { client.call(format!("m{i}")).await })
                })
                .collect();
            let mut got: Vec<String> = Vec::new();
            for c in calls {
                got.push(c.await.unwrap().unwrap());
            }
            for g in &got {
                // Each answer is the echo of its own request.
                assert!(g.starts_with("re m"), "{g}");
            }
            let mut sorted = got.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
        });
        server.join().unwrap();
    });
}

/// More responses than requests in one segment: the calls get the
/// answers meant for them, then the extra one ends the connection as a
/// Decode error (unsolicited), and later calls fail unsent.
#[test]
fn extra_responses_after_the_real_ones_end_the_connection_after_answering() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            assert_eq!(read_line(&mut r), "one");
            assert_eq!(read_line(&mut r), "two");
            w.write_all(b"1\n2\n3\n").unwrap();
            assert_eq!(read_line(&mut r), "", "the client closes");
        });
        on_a_worker(async move {
            let client = TcpClient::new(Lines).connect(addr).await.unwrap();
            let (one, two) =
                futures_util::future::join(client.call("one".into()), client.call("two".into()))
                    .await;
            assert_eq!(one.unwrap(), "1");
            assert_eq!(two.unwrap(), "2");
            while !client.is_closed() {
                strata_rt::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(client.end().unwrap().kind(), ClientErrorKind::Decode);
            let e = client.call("three".into()).await.unwrap_err();
            assert!(!e.request_sent());
            drop(client);
        });
        server.join().unwrap();
    });
}

/// A server that answers the first request, then half-closes
/// (shuts down its write side) while still reading: the unanswered call
/// fails sent, the one waiting for a slot fails unsent, `is_closed` is
/// true, and the client closes its side.
#[test]
fn a_server_that_half_closes_fails_the_rest_with_the_right_request_sent() {
    deadline(60, || {
        let (rest_tx, rest_rx) = std::sync::mpsc::channel();
        let (addr, server) = peer(move |s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            assert_eq!(read_line(&mut r), "a");
            assert_eq!(read_line(&mut r), "b");
            w.write_all(b"ra\n").unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
            // What else arrives before the client closes: "c" if the
            // client sent it before it saw the end of stream, else nothing.
            let mut rest = String::new();
            r.read_to_string(&mut rest).unwrap();
            rest_tx.send(rest).unwrap();
        });
        let c = on_a_worker(async move {
            let client = TcpClient::new(Lines)
                .max_in_flight(2)
                .connect(addr)
                .await
                .unwrap();
            let (a, b, c) = futures_util::future::join3(
                client.call("a".into()),
                client.call("b".into()),
                client.call("c".into()),
            )
            .await;
            assert_eq!(a.unwrap(), "ra");
            let b = b.unwrap_err();
            assert_eq!(b.kind(), ClientErrorKind::Closed);
            assert!(b.request_sent());
            let c = c.unwrap_err();
            assert_eq!(c.kind(), ClientErrorKind::Closed);
            assert!(client.is_closed());
            drop(client);
            c
        });
        server.join().unwrap();
        let rest = rest_rx.recv().unwrap();
        // "c" took the slot "a" freed; whether it left before the end of
        // stream was seen is a race, and `request_sent` says which.
        assert_eq!(
            c.request_sent(),
            rest == "c\n",
            "{c:?}, the server read {rest:?}"
        );
        assert!(rest.is_empty() || rest == "c\n", "{rest:?}");
    });
}

/// A peer that resets while the client writes a large batch:
/// every call fails (none hangs), the ones never handed to the socket
/// with `request_sent() == false`, and at least one with Io.
#[test]
fn a_reset_while_writing_a_large_batch_fails_every_call() {
    deadline(60, || {
        let (addr, server) = peer(|s| {
            let mut first = [0; 1024];
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            (&s).read_exact(&mut first).unwrap();
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        });
        on_a_worker(async move {
            struct Big;
            impl ClientProto for Big {
                type Request = String;
                type Response = String;
                type Codec = LinesCodec;
                fn codec(&self) -> LinesCodec {
                    LinesCodec::with_max_length(1 << 20)
                }
            }
            let client = TcpClient::new(Big)
                .max_in_flight(64)
                .connect(addr)
                .await
                .unwrap();
            let calls: Vec<_> = (0..64)
                .map(|i| {
                    let client = client.clone();
                    strata_rt::spawn(async move {
                        client.call(format!("{i}{}", "x".repeat(200_000))).await
                    })
                })
                .collect();
            let mut unsent = 0;
            for c in calls {
                let e = c.await.unwrap().unwrap_err();
                assert!(
                    matches!(e.kind(), ClientErrorKind::Io | ClientErrorKind::Closed),
                    "{e:?}"
                );
                if !e.request_sent() {
                    unsent += 1;
                }
            }
            // 64 × 200 kB cannot all have reached the socket.
            assert!(unsent > 0);
            assert!(client.is_closed());
        });
        server.join().unwrap();
    });
}

/// Calls made from another runtime's `block_on` and tasks, some
/// waiting for a slot, when the runtime that owns the connection shuts
/// down: all fail, the waiting ones unsent; none hangs.
#[test]
fn callers_on_another_runtime_waiting_for_a_slot_fail_unsent_when_the_owner_shuts_down() {
    deadline(60, || {
        let fx = Fixture::start(1, 100, cfg());
        let addr = fx.addr();
        let owner = runtime(1);
        let client = owner.block_on(async move {
            TcpClient::new(Lines)
                .max_in_flight(1)
                .connect(addr)
                .await
                .unwrap()
        });
        let caller = runtime(2);
        let first = {
            let client = client.clone();
            caller
                .handle()
                .spawn(async move { client.call("gate one".into()).await })
        };
        while fx.stats.started.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let waiting: Vec<_> = (0..3)
            .map(|i| {
                let client = client.clone();
                caller
                    .handle()
                    .spawn(async move { client.call(format!("echo w{i}")).await })
            })
            .collect();
        drop(owner);
        let e = caller.block_on(first).unwrap().unwrap_err();
        assert!(e.request_sent());
        for w in waiting {
            let e = caller.block_on(w).unwrap().unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Closed);
            assert!(!e.request_sent(), "{e:?}");
        }
        assert!(client.is_closed());
        fx.gate.open();
    });
}

/// Calls from tasks on two workers and from a second runtime's
/// `block_on` at once, with random give-ups, against the real server:
/// every answer is the caller's own.
#[test]
fn calls_from_two_runtimes_with_give_ups_never_get_another_calls_answer() {
    deadline(300, || {
        let fx = Fixture::start(2, 100, cfg());
        let addr = fx.addr();
        for max in [1, 2, 5, 8] {
            let owner = runtime(2);
            let client = owner.block_on(async move {
                TcpClient::new(Lines)
                    .max_in_flight(max)
                    .connect(addr)
                    .await
                    .unwrap()
            });
            let work = |tag: &'static str, client: LineClient, seed: u64| async move {
                let mut rng = seed;
                for i in 0..150 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let want = format!("{tag}{i}");
                    let call = client.call(format!("sleep {} {want}", rng % 2));
                    if rng.is_multiple_of(3) {
                        let limit = Duration::from_micros(rng % 2000);
                        if let Ok(got) = strata_rt::time::timeout(limit, call).await {
                            assert_eq!(got.unwrap(), want);
                        }
                    } else {
                        assert_eq!(call.await.unwrap(), want);
                    }
                }
            };
            let tasks: Vec<_> = (0..4u64)
                .map(|t| {
                    owner.handle().spawn(work(
                        ["a", "b", "c", "d"][t as usize],
                        client.clone(),
                        77 + t,
                    ))
                })
                .collect();
            let other = runtime(1);
            other.block_on(work("z", client.clone(), 991 + max as u64));
            for t in tasks {
                owner.block_on(t).unwrap();
            }
            // Still exactly usable afterwards.
            assert_eq!(
                other.block_on(client.call("echo end".into())).unwrap(),
                "end"
            );
        }
    });
}

/// Two waiters are woken for two freed slots; one gives up before it
/// runs: the third waiter gets its slot. (Woken with `notify(2)`, the
/// wake-up the dropped listener passed on was absorbed by the other woken
/// waiter that had not run; woken with `notify(2.additional())`, it
/// reaches the third.)
#[test]
fn a_woken_waiter_that_gives_up_passes_its_slot_on_while_another_woken_one_has_not_run() {
    deadline(60, || {
        on_a_worker(async {
            let (ours, mut peer) = UnixStream::pair().unwrap();
            let (client, task) = LineClient::new(ours, LinesCodec::new(), 2);
            let _task = strata_rt::spawn(task);
            let mut x1 = Box::pin(client.call("x1".into()));
            let mut x2 = Box::pin(client.call("x2".into()));
            assert!(poll_here(&mut x1).await.is_pending());
            assert!(poll_here(&mut x2).await.is_pending());
            let mut sent = [0; 6];
            peer.read_exact(&mut sent).await.unwrap();
            assert_eq!(&sent, b"x1\nx2\n");
            let mut a = Box::pin(client.call("a".into()));
            let mut b = Box::pin(client.call("b".into()));
            let mut c = Box::pin(client.call("c".into()));
            assert!(poll_here(&mut a).await.is_pending());
            assert!(poll_here(&mut b).await.is_pending());
            assert!(poll_here(&mut c).await.is_pending());
            // Both slots freed at once: "a" and "b" are woken.
            peer.write_all(b"r1\nr2\n").await.unwrap();
            assert_eq!(x1.await.unwrap(), "r1");
            assert_eq!(x2.await.unwrap(), "r2");
            // "a" gives up before it ran: its slot is for "c".
            drop(a);
            let serve = async {
                let mut got = [0; 4];
                let r = strata_rt::time::timeout(Duration::from_secs(5), peer.read_exact(&mut got))
                    .await;
                assert!(
                    r.is_ok(),
                    "one of \"b\", \"c\" was never sent though both slots were free (got {:?})",
                    String::from_utf8_lossy(&got)
                );
                assert_eq!(&got, b"b\nc\n");
                peer.write_all(b"rb\nrc\n").await.unwrap();
            };
            let (rb, rc, ()) = futures_util::future::join3(b, c, serve).await;
            assert_eq!(rb.unwrap(), "rb");
            assert_eq!(rc.unwrap(), "rc");
        });
    });
}

/// A peer that echoes large requests one at a time and blocks
/// writing each answer until the client reads it (it reads no more
/// meanwhile): the client reads while it writes, so no deadlock.
#[test]
fn large_requests_to_a_peer_that_answers_before_reading_on_do_not_deadlock() {
    deadline(120, || {
        let (addr, server) = peer(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            for _ in 0..32 {
                let l = read_line(&mut r);
                w.write_all(format!("{l}\n").as_bytes()).unwrap();
            }
        });
        on_a_worker(async move {
            struct Big;
            impl ClientProto for Big {
                type Request = String;
                type Response = String;
                type Codec = LinesCodec;
                fn codec(&self) -> LinesCodec {
                    LinesCodec::with_max_length(1 << 20)
                }
            }
            let client = TcpClient::new(Big)
                .max_in_flight(32)
                .connect(addr)
                .await
                .unwrap();
            let calls: Vec<_> = (0..32)
                .map(|i| {
                    let client = client.clone();
                    strata_rt::spawn(async move {
                        let req = format!("{i:02}{}", "y".repeat(300_000));
                        let got = client.call(req.clone()).await.unwrap();
                        assert!(got == req, "call {i} got another answer");
                    })
                })
                .collect();
            for c in calls {
                c.await.unwrap();
            }
        });
        server.join().unwrap();
    });
}
