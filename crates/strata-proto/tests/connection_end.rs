//! How a connection ends: a graceful stop answers every complete request
//! received before it, including requests still in the kernel's buffer
//! that the worker has not yet heard about; a peer's reset, or a read the
//! kernel fails because the peer is out of reach, ends it as a
//! disconnect.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use strata_proto::pipeline::serve_connection;
use strata_service::service_fn;
use support::failing::Failing;
use support::{Echo, Flag, TestProto, cfg, connected_pair, deadline, on_a_worker};

/// Serves one connection on a one-worker runtime; optionally sends `slow`
/// (answered once a gate opens) and waits; then, in one turn of the
/// worker, writes `one` and `two`, opens the gate and fires the stop.
/// Returns everything the client received.
fn stop_right_after_two_requests(slow_first: bool) -> String {
    deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let stop = Arc::new(Flag::default());
            let gate = Arc::new(Flag::default());
            let (stop2, gate2) = (stop.clone(), gate.clone());
            // The connection runs on this same worker.
            let conn = strata_rt::spawn_local(async move {
                let svc = service_fn(move |req: String| {
                    let gate = gate2.clone();
                    async move {
                        if req == "slow" {
                            gate.wait().await;
                        }
                        Ok::<_, std::io::Error>(req)
                    }
                });
                serve_connection(server, &TestProto, svc, &cfg(), stop2.wait()).await
            });
            if slow_first {
                client.write_all(b"slow\n").unwrap();
            }
            // Let the connection read to `WouldBlock` and wait.
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            // On loopback the bytes are in the server socket's buffer
            // when `write` returns; the stop fires before this worker
            // polls for I/O again.
            client.write_all(b"one\ntwo\n").unwrap();
            gate.fire();
            stop.fire();
            conn.await.unwrap().unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = String::new();
            client.read_to_string(&mut got).unwrap();
            got
        })
    })
}

#[test]
fn a_stop_right_after_requests_arrive_still_answers_them() {
    assert_eq!(stop_right_after_two_requests(false), "one\ntwo\n");
}

/// The same with a request in flight that finishes in that turn: the
/// dispatcher then goes round its loop again within one poll, which must
/// not count as the fresh look at I/O.
#[test]
fn a_stop_with_a_request_in_flight_still_answers_the_later_ones() {
    assert_eq!(stop_right_after_two_requests(true), "slow\none\ntwo\n");
}

/// A peer that resets the connection in the middle of a request: the
/// connection ends as a disconnect, not as a bad request.
#[test]
fn a_reset_mid_request_ends_as_a_disconnect() {
    deadline(30, || {
        let ended = on_a_worker(async move {
            let (client, server) = connected_pair();
            let conn = strata_rt::spawn_local(async move {
                serve_connection(server, &TestProto, Echo, &cfg(), std::future::pending()).await
            });
            // Part of a request, then a reset (linger zero on close).
            let mut client = client;
            client.write_all(b"par").unwrap();
            socket2::SockRef::from(&client)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(client);
            conn.await.unwrap()
        });
        match ended {
            Err(e) => assert!(e.is_disconnect(), "ended as {e:?}"),
            Ok(()) => panic!("a reset is not a clean close"),
        }
    });
}

/// A truncated last frame from a peer that then shuts down its sending
/// side is bad input, not a vanished peer: the protocol's error line is
/// still sent (the default `decode_eof` reports it as `UnexpectedEof`).
#[test]
fn a_truncated_last_frame_still_gets_the_error_line() {
    use bytes::{Buf, BytesMut};
    use strata_codec::{Decoder, Encoder};
    use strata_proto::pipeline::ConnectionError;
    use strata_proto::pipeline::ServerProto;

    /// Frames of exactly four bytes; the default `decode_eof`.
    struct Four;
    impl Decoder for Four {
        type Item = [u8; 4];
        type Error = std::io::Error;
        fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<[u8; 4]>> {
            if src.len() < 4 {
                return Ok(None);
            }
            let mut frame = [0; 4];
            src.copy_to_slice(&mut frame);
            Ok(Some(frame))
        }
    }
    impl Encoder<[u8; 4]> for Four {
        type Error = std::io::Error;
        fn encode(&mut self, item: [u8; 4], dst: &mut BytesMut) -> std::io::Result<()> {
            dst.extend_from_slice(&item);
            Ok(())
        }
    }
    struct FourProto;
    impl ServerProto for FourProto {
        type Request = [u8; 4];
        type Response = [u8; 4];
        type Codec = Four;
        fn codec(&self) -> Four {
            Four
        }
        fn decode_error(&self, _: &std::io::Error) -> Option<[u8; 4]> {
            Some(*b"BAD!")
        }
    }

    deadline(30, || {
        let (ended, got) = on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let echo = service_fn(|req: [u8; 4]| async move { Ok::<_, std::io::Error>(req) });
            let conn = strata_rt::spawn_local(async move {
                serve_connection(server, &FourProto, echo, &cfg(), std::future::pending()).await
            });
            client.write_all(b"abcdxy").unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
            let ended = conn.await.unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = Vec::new();
            let _ = client.read_to_end(&mut got);
            (ended, got)
        });
        assert_eq!(got, b"abcdBAD!");
        assert!(
            matches!(ended, Err(ConnectionError::Decode(_))),
            "{ended:?}"
        );
    });
}

/// A peer that never stops sending cannot hold a graceful stop open: the
/// connection stops reading after its fresh look at I/O, answers what it
/// took, and ends.
#[test]
fn a_stop_completes_while_the_peer_keeps_sending() {
    deadline(90, || {
        on_a_worker(async move {
            let (client, server) = connected_pair();
            let stop = Arc::new(Flag::default());
            let stop2 = stop.clone();
            let conn = strata_rt::spawn_local(async move {
                serve_connection(server, &TestProto, Echo, &cfg(), stop2.wait()).await
            });
            // Requests in a tight loop, answers drained, until the
            // connection goes away.
            let mut writer = client.try_clone().unwrap();
            std::thread::spawn(move || {
                let batch = b"flood\n".repeat(1000);
                while writer.write_all(&batch).is_ok() {}
            });
            let mut reader = client;
            std::thread::spawn(move || {
                let mut sink = [0u8; 65536];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
            });
            strata_rt::time::sleep(Duration::from_millis(100)).await;
            stop.fire();
            // A hang guard, not a bound: after the stop the connection may
            // still answer up to one I/O budget of reads (megabytes of
            // requests), which takes seconds in a debug build on a loaded
            // machine (5 s here once timed out in CI).
            let ended = strata_rt::time::timeout(Duration::from_secs(60), conn).await;
            let result = ended.expect("the stop never completed").unwrap();
            assert!(
                result.is_ok() || result.as_ref().is_err_and(|e| e.is_disconnect()),
                "{result:?}"
            );
        });
    });
}

/// A service that panics in `call` itself (before any future exists) on
/// `"boom"`, answers `"slow"` after 50 ms, and anything else at once.
struct PanicsInCall;

impl strata_service::Service<String> for PanicsInCall {
    type Response = String;
    type Error = std::io::Error;

    fn call(&self, req: String) -> impl Future<Output = Result<String, std::io::Error>> {
        assert!(req != "boom", "call asked to panic");
        async move {
            if req == "slow" {
                strata_rt::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(req)
        }
    }
}

/// A handler that panics in `call` (a panic while its future runs is
/// `pipeline_server::a_panicking_request_still_gets_the_answers_before_it_out`):
/// the responses to the requests before it are sent, one of them still
/// running when the panic comes, then the connection ends with `Panicked`;
/// the requests after it are not answered.
#[test]
fn a_panicking_request_ends_the_connection_after_the_responses_before_it() {
    deadline(30, || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let conn = strata_rt::spawn_local(async move {
                serve_connection(
                    server,
                    &TestProto,
                    PanicsInCall,
                    &cfg(),
                    std::future::pending(),
                )
                .await
            });
            client.write_all(b"slow\nfast\nboom\nafter\n").unwrap();
            let ended = conn.await.unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = Vec::new();
            let _ = client.read_to_end(&mut got);
            assert_eq!(String::from_utf8_lossy(&got), "slow\nfast\n");
            assert!(
                matches!(&ended, Err(strata_proto::pipeline::ConnectionError::Panicked(msg)) if msg == "call asked to panic"),
                "{ended:?}"
            );
        });
    });
}

/// A graceful stop answers every complete request received before it,
/// however many: the per-poll request cap (for fairness between
/// connections) must not pass for "nothing more to read".
#[test]
fn a_stop_answers_all_of_a_large_pipelined_batch() {
    const N: usize = 12_000;
    let got = deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let stop = Arc::new(Flag::default());
            let stop2 = stop.clone();
            let conn = strata_rt::spawn_local(async move {
                serve_connection(server, &TestProto, Echo, &cfg(), stop2.wait()).await
            });
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            // 24 KB of requests: in the server socket's buffer when
            // `write` returns; the stop fires before the worker polls.
            client.write_all("a\n".repeat(N).as_bytes()).unwrap();
            stop.fire();
            conn.await.unwrap().unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = String::new();
            client.read_to_string(&mut got).unwrap();
            got.lines().count()
        })
    });
    assert_eq!(got, N, "requests received before the stop went unanswered");
}

/// A transport that spends much of the task's I/O budget on every read and
/// reads one 4-byte request at a time, so that draining what arrived
/// before a stop takes several polls, each ended by a spent budget.
struct BudgetHungry(strata_rt::net::TcpStream);

impl futures_io::AsyncRead for BudgetHungry {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        for _ in 0..40 {
            std::task::ready!(strata_rt::coop::poll_proceed(cx)).made_progress();
        }
        let n = buf.len().min(4);
        std::pin::Pin::new(&mut self.0).poll_read(cx, &mut buf[..n])
    }
}

impl futures_io::AsyncWrite for BudgetHungry {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_close(cx)
    }
}

/// After a stop, a read that says `Pending` because the task's budget is
/// spent is no proof that everything received was read: the requests
/// still in the kernel's buffer are answered too (the connection used to
/// stop reading at the second such `Pending`).
#[test]
fn a_stop_answers_requests_whose_reading_outlasts_the_budget() {
    let got = deadline(30, || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let stop = Arc::new(Flag::default());
            let stop2 = stop.clone();
            let conn = strata_rt::spawn_local(async move {
                let io = BudgetHungry(server);
                serve_connection(io, &TestProto, Echo, &cfg(), stop2.wait()).await
            });
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            // In one turn of the worker: 50 requests, then the stop.
            let requests: String = (0..50).map(|i| format!("r{i:02}\n")).collect();
            client.write_all(requests.as_bytes()).unwrap();
            stop.fire();
            conn.await.unwrap().unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = String::new();
            client.read_to_string(&mut got).unwrap();
            (requests, got)
        })
    });
    assert_eq!(got.1, got.0);
}

/// Serves one connection whose reads fail with `error()` after the first
/// bytes (part of a request); returns how it ended and what the client
/// got.
fn ended_by_a_failed_read(
    error: impl Fn() -> std::io::Error + Send + 'static,
) -> (Result<(), strata_proto::pipeline::ConnectionError>, Vec<u8>) {
    deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let conn = strata_rt::spawn_local(async move {
                let io = Failing::new(server, Some(Box::new(error)), None);
                serve_connection(io, &TestProto, Echo, &cfg(), std::future::pending()).await
            });
            client.write_all(b"par").unwrap();
            let ended = conn.await.unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = Vec::new();
            let _ = client.read_to_end(&mut got);
            (ended, got)
        })
    })
}

/// A read the kernel fails because the peer is out of reach (keepalive
/// probes or retransmissions ran out, an ICMP error) ends the connection
/// as a disconnect, as a reset does: no error line is written for it, and
/// it is not reported as bad input.
#[test]
fn a_read_that_times_out_or_finds_no_route_ends_as_a_disconnect() {
    for errno in [
        libc::ETIMEDOUT,
        libc::EHOSTUNREACH,
        libc::ENETUNREACH,
        libc::ENETDOWN,
    ] {
        let (ended, got) = ended_by_a_failed_read(move || std::io::Error::from_raw_os_error(errno));
        match ended {
            Err(e) => assert!(e.is_disconnect(), "errno {errno}: ended as {e:?}"),
            Ok(()) => panic!("errno {errno}: a failed read is not a clean close"),
        }
        assert!(
            got.is_empty(),
            "errno {errno}: wrote {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// A read that fails with strata's own timeout error (a transport that
/// enforces a deadline of the server's with `timeout(..)?`: the same
/// `TimedOut` kind as the kernel's, without its OS code) is the server's
/// decision, not a lost peer (it was taken for a disconnect): an I/O
/// error, with no error line (the transport failed, not the input).
#[test]
fn a_read_failed_by_a_strata_timeout_is_not_a_disconnect() {
    let elapsed = on_a_worker(async {
        strata_rt::time::timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err()
    });
    let (ended, got) = ended_by_a_failed_read(move || elapsed.into());
    let e = ended.expect_err("the read failed");
    assert!(!e.is_disconnect(), "ended as {e:?}");
    assert!(
        matches!(e, strata_proto::pipeline::ConnectionError::Io(_)),
        "ended as {e:?}"
    );
    assert!(
        got.is_empty(),
        "client got {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// A transport that wraps the kernel's error in an `io::Error` of its own
/// (`io::Error::new(e.kind(), e)`, as a TLS or instrumenting layer does)
/// still reports a lost peer: a wrapped `ETIMEDOUT` as a wrapped
/// `ECONNRESET` (it was taken for bad input: only the outer error was
/// asked for its OS code).
#[test]
fn a_kernel_error_wrapped_by_the_transport_still_ends_as_a_disconnect() {
    for errno in [libc::ECONNRESET, libc::ETIMEDOUT] {
        let (ended, got) = ended_by_a_failed_read(move || {
            let kernel = std::io::Error::from_raw_os_error(errno);
            std::io::Error::new(kernel.kind(), kernel)
        });
        let e = ended.expect_err("the read failed");
        assert!(e.is_disconnect(), "errno {errno} wrapped: ended as {e:?}");
        assert!(
            got.is_empty(),
            "errno {errno} wrapped: client got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// A transport's own error type that gives the kernel's error as its
/// `source()` (a context type, as `fs-err` or a TLS layer has).
#[derive(Debug)]
struct WithContext {
    op: &'static str,
    source: std::io::Error,
}

impl std::fmt::Display for WithContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.op, self.source)
    }
}

impl std::error::Error for WithContext {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The kernel's error inside a context error of the transport's, boxed in
/// an `io::Error` of the same kind, still reports a lost peer: a
/// `ETIMEDOUT` as an `ECONNRESET` (only `io::Error`s inside were looked
/// into, so the timeout was taken for bad input).
#[test]
fn a_kernel_error_in_a_context_error_still_ends_as_a_disconnect() {
    for errno in [libc::ECONNRESET, libc::ETIMEDOUT] {
        let (ended, got) = ended_by_a_failed_read(move || {
            let kernel = std::io::Error::from_raw_os_error(errno);
            let kind = kernel.kind();
            std::io::Error::new(
                kind,
                WithContext {
                    op: "read",
                    source: kernel,
                },
            )
        });
        let e = ended.expect_err("the read failed");
        assert!(e.is_disconnect(), "errno {errno}: ended as {e:?}");
        assert!(
            got.is_empty(),
            "errno {errno}: client got {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// A timeout of the transport's own that wraps another OS error (the
/// `EAGAIN` of an `SO_RCVTIMEO` deadline, reported as `TimedOut`) is the
/// server's decision, not a lost peer (any OS code inside a timeout
/// counted): an I/O error, with no error line.
#[test]
fn a_transport_timeout_wrapping_another_os_error_is_not_a_disconnect() {
    let (ended, got) = ended_by_a_failed_read(|| {
        let eagain = std::io::Error::from_raw_os_error(libc::EAGAIN);
        std::io::Error::new(std::io::ErrorKind::TimedOut, eagain)
    });
    let e = ended.expect_err("the read failed");
    assert!(!e.is_disconnect(), "ended as {e:?}");
    assert!(
        matches!(e, strata_proto::pipeline::ConnectionError::Io(_)),
        "ended as {e:?}"
    );
    assert!(
        got.is_empty(),
        "client got {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// The kernel's `ETIMEDOUT` behind an `Arc` (a cloneable transport error)
/// or a `Box` inside the transport's `io::Error` is still a lost peer, as
/// the same wrapping of `ECONNRESET` is (neither is itself an `io::Error`,
/// and their `source()` skips the one inside).
#[test]
fn a_kernel_error_behind_an_arc_or_box_still_ends_as_a_disconnect() {
    type Wrap = fn(std::io::Error) -> std::io::Error;
    let wraps: [(&str, Wrap); 2] = [
        ("Arc", |k| {
            std::io::Error::new(k.kind(), std::sync::Arc::new(k))
        }),
        ("Box", |k| std::io::Error::new(k.kind(), Box::new(k))),
    ];
    for (how, wrap) in wraps {
        for errno in [libc::ECONNRESET, libc::ETIMEDOUT] {
            let (ended, got) =
                ended_by_a_failed_read(move || wrap(std::io::Error::from_raw_os_error(errno)));
            let e = ended.expect_err("the read failed");
            assert!(
                e.is_disconnect(),
                "errno {errno} in an {how}: ended as {e:?}"
            );
            assert!(
                got.is_empty(),
                "errno {errno} in an {how}: client got {got:?}"
            );
        }
    }
}
