//! What the connection learns from its transport's own errors and byte
//! counts, and what it asks of the transport through its byte counter: a
//! read failure the stop's reset watch dropped does not turn buffered bad
//! input into an I/O error; a steady reader over a transport in user space
//! (no kernel send queue to look at) is not cut off by the write timeout;
//! a transport that holds writes until flushed is flushed and closed; an
//! interrupted read does not end a closed connection's linger, and a
//! transport that is always interrupted holds neither the linger nor the
//! reset watch for good.
//! (From mutation testing of `pipeline/written.rs`: each test names the
//! mutants it catches.) `deadline` and the timeouts are hang guards.

mod support;

use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use strata_proto::pipeline::{ConnectionError, serve_connection};
use strata_service::service_fn;
use support::{
    Echo, Flag, TestProto, cfg, connected_pair, deadline, echo_batch, line, on_a_worker,
};

/// A strata `TcpStream` whose reads fail with `EIO` once `fail` is set;
/// `failed` is raised when one did.
struct FailsReadsAfter {
    inner: strata_rt::net::TcpStream,
    fail: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
}

impl futures_io::AsyncRead for FailsReadsAfter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.fail.load(Ordering::SeqCst) {
            self.failed.store(true, Ordering::SeqCst);
            return Poll::Ready(Err(std::io::Error::from_raw_os_error(libc::EIO)));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for FailsReadsAfter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// After a graceful stop, a connection at its in-flight bound watches the
/// transport for a reset; a read there that fails otherwise (`EIO`) is
/// dropped with the watch. A bad request that was already buffered before
/// the stop is then still bad input: it gets its error line, and the
/// connection ends with the decoder's error, not with an I/O error for
/// the watch's failed read.
///
/// Mutant: written.rs:53:9 `replace Counted<T>::forget_read_error with
/// ()` (the watch's failed read stays recorded, so the buffered request's
/// decoder error is taken for a failed read: no error line, an I/O error).
#[test]
fn a_failed_read_in_the_stop_watch_does_not_turn_buffered_bad_input_into_an_io_error() {
    let (ended, got) = deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let stop = Arc::new(Flag::default());
            let gate = Arc::new(Flag::default());
            let fail = Arc::new(AtomicBool::new(false));
            let (stop2, gate2, fail2) = (stop.clone(), gate.clone(), fail.clone());
            let conn = strata_rt::spawn_local(async move {
                let io = FailsReadsAfter {
                    inner: server,
                    fail: fail2,
                    failed: Arc::default(),
                };
                let svc = service_fn(move |req: String| {
                    let gate = gate2.clone();
                    async move {
                        gate.wait().await;
                        Ok::<_, std::io::Error>(req)
                    }
                });
                let config = cfg().max_in_flight(1);
                serve_connection(io, &TestProto, svc, &config, stop2.wait()).await
            });
            // One request, held at the gate (the connection is at its
            // bound), then a line too long for the codec, buffered.
            let mut send = b"slow\n".to_vec();
            send.extend(line("bad", b'x', 100));
            client.write_all(&send).unwrap();
            // Let the connection read it all and wait.
            strata_rt::time::sleep(Duration::from_millis(100)).await;
            stop.fire();
            // Let the connection see the stop and read on until its
            // transport (which cannot tell what it holds) says `Pending`:
            // nothing more is owed, it watches for a reset.
            strata_rt::time::sleep(Duration::from_millis(100)).await;
            // Its next read, in the watch, fails; a byte wakes it for it.
            fail.store(true, Ordering::SeqCst);
            client.write_all(b"z").unwrap();
            strata_rt::time::sleep(Duration::from_millis(100)).await;
            gate.fire();
            let ended = conn.await.unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = Vec::new();
            let _ = client.read_to_end(&mut got);
            (ended, String::from_utf8_lossy(&got).into_owned())
        })
    });
    let e = ended.expect_err("the buffered request is bad input");
    assert!(
        matches!(e, ConnectionError::Decode(_)),
        "ended as {e:?}, client got {got:?}"
    );
    assert!(got.starts_with("slow\n"), "client got {got:?}");
    assert!(got.contains("error: "), "no error line: client got {got:?}");
}

/// What a [`Trickle`] transport shares with the test's slow peer.
#[derive(Default)]
struct TrickleState {
    /// Bytes the peer will take now.
    credit: usize,
    /// Bytes it took so far.
    taken: usize,
    waker: Option<std::task::Waker>,
}

/// A user-space transport (no kernel send queue to look at): it reads
/// `input` once, then an end of stream; its writes take only as many bytes
/// as the peer gave credit for, and wait for more.
struct Trickle {
    input: Option<Vec<u8>>,
    state: Arc<std::sync::Mutex<TrickleState>>,
}

impl futures_io::AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let Some(mut input) = self.input.take() else {
            return Poll::Ready(Ok(0));
        };
        let n = input.len().min(buf.len());
        buf[..n].copy_from_slice(&input[..n]);
        input.drain(..n);
        if !input.is_empty() {
            self.input = Some(input);
        }
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for Trickle {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut s = self.state.lock().unwrap();
        if s.credit == 0 {
            s.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = s.credit.min(buf.len());
        s.credit -= n;
        s.taken += n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Over a user-space transport, where the only sign of a peer that reads
/// is the bytes the transport takes, a slow but steady reader keeps its
/// connection past several write timeouts: every answer is delivered and
/// the connection ends normally. (The peer's pace, a few hundred bytes
/// every 20 ms against a 400 ms timeout, is a margin, not a bound.)
///
/// Mutants: written.rs:72:9 `replace Counted<T>::written -> u64 with 0`
/// and `with 1`, and written.rs:83:48 `replace += with *= in
/// Counted<T>::count` (the bytes written never move, so the write timeout
/// takes the steady reader for one that stopped).
#[test]
fn a_slow_steady_reader_over_a_user_space_transport_is_not_cut_off() {
    let batch = echo_batch(200, false);
    let total = batch.len();
    let state = Arc::new(std::sync::Mutex::new(TrickleState::default()));
    let feeder_state = state.clone();
    let done = Arc::new(AtomicBool::new(false));
    let feeder_done = done.clone();
    // The slow peer: 256 bytes every 20 ms (about 1 s for the batch).
    let feeder = std::thread::spawn(move || {
        while !feeder_done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            let mut s = feeder_state.lock().unwrap();
            if s.taken >= total {
                break;
            }
            s.credit += 256;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    });
    let conn_state = state.clone();
    let ended = deadline(30, move || {
        on_a_worker(async move {
            let io = Trickle {
                input: Some(batch.into_bytes()),
                state: conn_state,
            };
            let config = cfg()
                .idle_timeout(None)
                .read_timeout(None)
                .write_timeout(Some(Duration::from_millis(400)));
            serve_connection(io, &TestProto, Echo, &config, std::future::pending()).await
        })
    });
    done.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
    let taken = state.lock().unwrap().taken;
    assert!(
        ended.is_ok(),
        "ended as {ended:?} after {taken} of {total} bytes"
    );
    assert_eq!(taken, total);
}

/// A transport that holds what is written until it is flushed, as TLS
/// and buffered writers do: `poll_write` only appends to `held`;
/// `poll_flush` writes `held` to the socket; `poll_close` flushes, closes
/// the socket's write direction and records that it was called.
struct HoldsUntilFlushed {
    inner: strata_rt::net::TcpStream,
    held: Vec<u8>,
    closed: Arc<AtomicBool>,
}

impl futures_io::AsyncRead for HoldsUntilFlushed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for HoldsUntilFlushed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        while !this.held.is_empty() {
            let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &this.held))?;
            this.held.drain(..n);
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        std::task::ready!(Pin::new(&mut self.inner).poll_close(cx))?;
        self.closed.store(true, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

/// Over a transport that sends only what it is asked to flush, each
/// answer reaches a peer that keeps its connection open and waits for it,
/// and a peer that ends its requests gets the last answers and then the
/// end of the stream from the transport's own close.
///
/// Mutants: written.rs `replace <impl AsyncWrite for Counted<T>>::poll_flush
/// -> Poll<io::Result<()>>` (the answers stay held: the peer waits for
/// them in vain), and the same for `poll_close` (the transport is never
/// closed).
#[test]
fn answers_over_a_transport_that_holds_writes_are_flushed_and_it_is_closed() {
    let closed = Arc::new(AtomicBool::new(false));
    let closed2 = closed.clone();
    let (ended, first, rest) = deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let conn = strata_rt::spawn(async move {
                let io = HoldsUntilFlushed {
                    inner: server,
                    held: Vec::new(),
                    closed: closed2,
                };
                serve_connection(io, &TestProto, Echo, &cfg(), std::future::pending()).await
            });
            // The hang guard of the blocking reads below: the answer must
            // come while the connection is open.
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let client = strata_rt::spawn_blocking(move || {
                client.write_all(b"one\n").unwrap();
                let mut first = [0; 4];
                let got = client.read_exact(&mut first).map(|()| first.to_vec());
                client.write_all(b"two\nthree\n").unwrap();
                client.shutdown(std::net::Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                let end = client.read_to_end(&mut rest).map(|_| rest);
                (got, end)
            });
            let (first, rest) = client.await.unwrap();
            (conn.await.unwrap(), first, rest)
        })
    });
    assert_eq!(
        first.expect("the first answer, while the connection is open"),
        b"one\n"
    );
    assert_eq!(
        rest.expect("the last answers, then the end"),
        b"two\nthree\n"
    );
    assert!(ended.is_ok(), "ended as {ended:?}");
    assert!(
        closed.load(Ordering::SeqCst),
        "the transport was not closed"
    );
}

/// A strata `TcpStream` whose first read after its first write fails with
/// `Interrupted` (as a transport in user space may report a signal); it
/// counts the bytes read after that, and raises `interrupted` when it has
/// failed the read.
struct InterruptsOnce {
    inner: strata_rt::net::TcpStream,
    wrote: bool,
    interrupted: Arc<AtomicBool>,
    read_after: Arc<std::sync::atomic::AtomicUsize>,
}

impl futures_io::AsyncRead for InterruptsOnce {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.wrote && !self.interrupted.load(Ordering::SeqCst) {
            self.interrupted.store(true, Ordering::SeqCst);
            return Poll::Ready(Err(std::io::ErrorKind::Interrupted.into()));
        }
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read
            && self.interrupted.load(Ordering::SeqCst)
        {
            self.read_after.fetch_add(n, Ordering::SeqCst);
        }
        read
    }
}

impl futures_io::AsyncWrite for InterruptsOnce {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.wrote = true;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// A connection closed on bad input lingers, reading what its peer still
/// sends; an interrupted read there is made again, as everywhere else,
/// rather than ending the linger (and dropping the socket on a peer that
/// is still sending, which the kernel answers with a reset).
#[test]
fn an_interrupted_read_does_not_end_the_linger() {
    let interrupted = Arc::new(AtomicBool::new(false));
    let read_after = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (interrupted2, read_after2) = (interrupted.clone(), read_after.clone());
    let (ended, answer) = deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let flag = interrupted2.clone();
            let conn = strata_rt::spawn(async move {
                let io = InterruptsOnce {
                    inner: server,
                    wrote: false,
                    interrupted: flag,
                    read_after: read_after2,
                };
                serve_connection(io, &TestProto, Echo, &cfg(), std::future::pending()).await
            });
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let client = strata_rt::spawn_blocking(move || {
                // Over TestProto's 64-byte limit: an error line, then the
                // server closes and lingers.
                client.write_all(&line("", b'x', 100)).unwrap();
                let mut answer = Vec::new();
                let end = client.read_to_end(&mut answer).map(|_| answer);
                // Sent once the linger's read was interrupted.
                while !interrupted2.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // (Either may fail once the server has let go of the socket.)
                let _ = client.write_all(b"late\n");
                let _ = client.shutdown(std::net::Shutdown::Write);
                end
            });
            let answer = client.await.unwrap();
            (conn.await.unwrap(), answer)
        })
    });
    let answer = answer.expect("the error line, then the end");
    assert!(answer.starts_with(b"error: "), "answered {answer:?}");
    assert!(
        ended.is_err(),
        "bad input ends the connection with an error"
    );
    assert!(
        interrupted.load(Ordering::SeqCst),
        "no read was interrupted"
    );
    assert_eq!(
        read_after.load(Ordering::SeqCst),
        5,
        "the linger stopped reading at the interrupted read"
    );
}

/// Lines of at most 8 bytes.
struct Short;

impl strata_proto::pipeline::ServerProto for Short {
    type Request = String;
    type Response = String;
    type Codec = strata_codec::LinesCodec;
    fn codec(&self) -> strata_codec::LinesCodec {
        strata_codec::LinesCodec::with_max_length(8)
    }
}

/// Gives `first` in one read (bad input, so that the connection closes),
/// then reports `Interrupted` on every read: a user-space transport in a
/// signal storm.
struct Storm {
    first: Option<&'static [u8]>,
}

impl futures_io::AsyncRead for Storm {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(bytes) = self.first.take() {
            buf[..bytes.len()].copy_from_slice(bytes);
            return Poll::Ready(Ok(bytes.len()));
        }
        Poll::Ready(Err(std::io::ErrorKind::Interrupted.into()))
    }
}

impl futures_io::AsyncWrite for Storm {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Serves a [`Storm`] giving `first` with [`Short`] lines, each answered
/// after `delay`, on a worker of its own; how the connection ended.
fn serve_storm(first: &'static [u8], delay: Duration) -> Result<(), ConnectionError> {
    deadline(20, move || {
        let rt = strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async move {
            let svc = service_fn(move |l: String| async move {
                strata_rt::time::sleep(delay).await;
                Ok::<_, std::io::Error>(l)
            });
            let cfg = strata_proto::ConnectionConfig::default()
                .idle_timeout(None)
                .read_timeout(None)
                .write_timeout(None);
            let storm = Storm { first: Some(first) };
            strata_rt::spawn(async move {
                serve_connection(storm, &Short, svc, &cfg, std::future::pending()).await
            })
            .await
            .unwrap()
        })
    })
}

/// A transport that says `Interrupted` on every read does not hold a
/// lingering connection (and its worker) for good: the linger gives it up
/// after a few, and the connection ends (on its bad request). (Each read
/// was once made again at once, in the same poll, so the linger's time
/// limit was never looked at and the worker spun.)
#[test]
fn a_transport_that_keeps_saying_interrupted_does_not_hold_the_linger_forever() {
    let ended = serve_storm(b"far too long a line\n", Duration::ZERO);
    assert!(ended.is_err(), "ended as {ended:?}");
}

/// Nor the watch for a reset that runs while requests are in flight after
/// bad input: the first request still runs when the bad line is read;
/// the watch yields after a few interrupted reads, and the connection
/// ends, on its bad request. (The watch once read again at once without a
/// bound, and the connection never ended.)
#[test]
fn a_transport_that_keeps_saying_interrupted_does_not_hold_the_reset_watch_forever() {
    let ended = serve_storm(b"a\nfar too long a line\n", Duration::from_millis(100));
    assert!(ended.is_err(), "ended as {ended:?}");
}

/// Lines, echoed; `bye` (to `quit`) is the connection's last response.
struct Quits;

impl strata_proto::pipeline::ServerProto for Quits {
    type Request = String;
    type Response = String;
    type Codec = strata_codec::LinesCodec;
    fn codec(&self) -> strata_codec::LinesCodec {
        strata_codec::LinesCodec::new()
    }
    fn closes_after(&self, response: &String) -> bool {
        response == "bye"
    }
}

/// Sends `request`, whose answer (`reply`) waits until the transport's
/// next read has failed (`EIO`); how the connection ended, and what the
/// client got.
fn failed_read_behind(
    request: &'static str,
    reply: &'static str,
) -> (Result<(), ConnectionError>, String) {
    deadline(30, move || {
        on_a_worker(async move {
            let (mut client, server) = connected_pair();
            let (fail, failed) = (Arc::new(AtomicBool::new(false)), Arc::default());
            let started = Arc::new(AtomicBool::new(false));
            let io = FailsReadsAfter {
                inner: server,
                fail: fail.clone(),
                failed: Arc::clone(&failed),
            };
            let running = started.clone();
            let conn = strata_rt::spawn(async move {
                let svc = service_fn(move |line: String| {
                    let failed = Arc::clone(&failed);
                    running.store(true, Ordering::SeqCst);
                    async move {
                        while !failed.load(Ordering::SeqCst) {
                            strata_rt::time::sleep(Duration::from_millis(1)).await;
                        }
                        Ok::<_, std::io::Error>(if line == request {
                            reply.to_string()
                        } else {
                            line
                        })
                    }
                });
                let cfg = strata_proto::ConnectionConfig::default()
                    .idle_timeout(None)
                    .read_timeout(None)
                    .write_timeout(None);
                serve_connection(io, &Quits, svc, &cfg, std::future::pending()).await
            });
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let got = strata_rt::spawn_blocking(move || {
                client.write_all(format!("{request}\n").as_bytes()).unwrap();
                while !started.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // The next read fails (a byte wakes the connection for it).
                fail.store(true, Ordering::SeqCst);
                client.write_all(b"z").unwrap();
                let mut got = Vec::new();
                let _ = client.read_to_end(&mut got);
                got
            })
            .await
            .unwrap();
            (
                conn.await.unwrap(),
                String::from_utf8_lossy(&got).into_owned(),
            )
        })
    })
}

/// A transport read that fails (not a reset, not bad input) while a
/// request runs ends the connection with the I/O error once the request
/// is answered, behind an ordinary request and behind the last response
/// (`closes_after`) alike. (The last response once superseded it, and the
/// connection ended `Ok`.)
#[test]
fn a_failed_read_behind_a_request_or_the_last_response_ends_with_the_io_error() {
    for (request, reply) in [("slow", "slow"), ("quit", "bye")] {
        let (ended, got) = failed_read_behind(request, reply);
        assert_eq!(got, format!("{reply}\n"));
        assert!(
            matches!(ended, Err(ConnectionError::Io(_))),
            "{request}: ended as {ended:?}"
        );
    }
}
