//! The pipelined dispatcher's contract (responses in order, the in-flight
//! bound, half-close, errors, panics, timeouts), over loopback TCP with
//! `TcpServer` and over the in-memory transport, including random
//! pipelines checked against a model.

mod support;

use std::io::Write;
use std::time::Duration;

use strata_codec::{LinesCodec, LinesCodecError};
use strata_proto::pipeline::{ErrorAction, ServerProto};
use strata_proto::{ConnectionConfig, TcpServer};
use strata_service::{BoxError, Service};
use support::*;

fn quiet(max_in_flight: usize) -> ConnectionConfig {
    ConnectionConfig::default()
        .max_in_flight(max_in_flight)
        .idle_timeout(None)
        .read_timeout(None)
        .write_timeout(None)
}

#[test]
fn half_close_after_more_than_the_read_ahead_at_the_bound_answers_all() {
    deadline(60, || {
        let fx = Fixture::start(1, 100, quiet(2));
        let mut c = fx.connect();
        let reqs: Vec<String> = (0..2000).map(|i| format!("sleep 1 r{i}")).collect();
        let refs: Vec<&str> = reqs.iter().map(String::as_str).collect();
        c.send(&refs);
        c.writer.shutdown(std::net::Shutdown::Write).unwrap();
        for i in 0..2000 {
            assert_eq!(c.recv().as_deref(), Some(format!("r{i}").as_str()));
        }
        assert_eq!(c.recv(), None);
    });
}

#[test]
fn decode_error_after_slow_good_frames_in_one_read_answers_them_first() {
    deadline(60, || {
        let fx = Fixture::start(1, 100, quiet(1));
        let mut c = fx.connect();
        let long = "x".repeat(100);
        c.send(&["sleep 50 a", "echo b", "sleep 10 c", &long, "echo after"]);
        assert_eq!(c.recv().as_deref(), Some("a"));
        assert_eq!(c.recv().as_deref(), Some("b"));
        assert_eq!(c.recv().as_deref(), Some("c"));
        let err = c.recv();
        assert!(
            err.as_deref().is_some_and(|e| e.starts_with("error:")),
            "{err:?}"
        );
        assert_eq!(c.recv(), None);
    });
}

#[test]
fn zero_length_frames_are_answered_in_order() {
    deadline(30, || {
        let fx = Fixture::start(1, 100, quiet(4));
        let mut c = fx.connect();
        c.send(&["echo a", "", "sleep 20 b", "", "echo c"]);
        assert_eq!(c.recv().as_deref(), Some("a"));
        assert_eq!(c.recv().as_deref(), Some("unknown "));
        assert_eq!(c.recv().as_deref(), Some("b"));
        assert_eq!(c.recv().as_deref(), Some("unknown "));
        assert_eq!(c.recv().as_deref(), Some("c"));
    });
}

#[test]
fn a_huge_burst_in_one_write_is_answered_in_order() {
    deadline(120, || {
        let fx = Fixture::start(1, 100, quiet(16));
        let c = fx.connect();
        let n = 60_000;
        let mut w = c.writer.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let mut batch = String::new();
            for i in 0..n {
                batch.push_str(&format!("echo {i}\n"));
            }
            w.write_all(batch.as_bytes()).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut c = c;
        for i in 0..n {
            assert_eq!(c.recv(), Some(i.to_string()));
        }
        assert_eq!(c.recv(), None);
        sender.join().unwrap();
    });
}

#[test]
fn idle_timeout_does_not_fire_with_requests_in_flight_behind_answered_ones() {
    deadline(30, || {
        let fx = Fixture::start(
            1,
            100,
            ConnectionConfig::default()
                .idle_timeout(Some(Duration::from_millis(150)))
                .read_timeout(None)
                .write_timeout(None),
        );
        let mut c = fx.connect();
        c.send(&["echo a", "sleep 600 b", "echo c", "sleep 400 d"]);
        assert_eq!(c.recv().as_deref(), Some("a"));
        assert_eq!(c.recv().as_deref(), Some("b"));
        assert_eq!(c.recv().as_deref(), Some("c"));
        assert_eq!(c.recv().as_deref(), Some("d"));
    });
}

#[test]
fn a_stop_after_a_half_close_at_the_bound_answers_everything_that_arrived() {
    deadline(60, || {
        let mut fx = Fixture::start(1, 100, quiet(1));
        let mut c = fx.connect();
        let n = 1000;
        let reqs: Vec<String> = (0..n).map(|i| format!("sleep 1 r{i}")).collect();
        let refs: Vec<&str> = reqs.iter().map(String::as_str).collect();
        c.send(&refs);
        c.writer.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(c.recv().as_deref(), Some("r0"));
        let server = fx.server.take().unwrap();
        let shut = std::thread::spawn(move || server.shutdown());
        for i in 1..n {
            assert_eq!(c.recv().as_deref(), Some(format!("r{i}").as_str()));
        }
        assert_eq!(c.recv(), None);
        assert!(shut.join().unwrap());
    });
}

#[test]
fn a_stop_without_half_close_at_the_bound_answers_everything_that_arrived() {
    deadline(60, || {
        let mut fx = Fixture::start(1, 100, quiet(1));
        let mut c = fx.connect();
        let n = 1000;
        let reqs: Vec<String> = (0..n).map(|i| format!("sleep 1 r{i}")).collect();
        let refs: Vec<&str> = reqs.iter().map(String::as_str).collect();
        c.send(&refs);
        assert_eq!(c.recv().as_deref(), Some("r0"));
        let server = fx.server.take().unwrap();
        let shut = std::thread::spawn(move || server.shutdown());
        for i in 1..n {
            assert_eq!(c.recv().as_deref(), Some(format!("r{i}").as_str()));
        }
        assert_eq!(c.recv(), None);
        assert!(shut.join().unwrap());
    });
}

/// Lines; service errors close the connection (the default action).
struct CloseProto;

impl ServerProto for CloseProto {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(64)
    }

    fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
        Some(format!("error: {err}"))
    }
}

/// A bomb in a future's `Drop`.
struct DropBomb;
impl Drop for DropBomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("drop bomb");
        }
    }
}

/// `echo x`, `slow x` (not instant), `slowfail` (not instant, then an
/// error), `latepanic` (not instant, then a panic), `stuckbomb` (never
/// finishes; panics when dropped).
#[derive(Clone, Copy)]
struct Custom;

impl Service<String> for Custom {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        let mut w = req.splitn(2, ' ');
        match w.next().unwrap_or("") {
            "echo" => Ok(w.next().unwrap_or("").to_string()),
            "slow" => {
                strata_rt::time::sleep(Duration::from_millis(30)).await;
                Ok(w.next().unwrap_or("").to_string())
            }
            "slowfail" => {
                strata_rt::time::sleep(Duration::from_millis(30)).await;
                Err(std::io::Error::other("slow failure"))
            }
            "latepanic" => {
                not_instant().await;
                panic!("late panic")
            }
            "stuckbomb" => {
                let _b = DropBomb;
                std::future::pending::<()>().await;
                unreachable!()
            }
            other => Ok(format!("unknown {other}")),
        }
    }
}

fn start_custom<P: ServerProto<Request = String, Response = String>>(
    proto: P,
    cfg: ConnectionConfig,
) -> strata_proto::ServerHandle {
    TcpServer::new(proto, "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .max_connections(4)
        .connection_config(cfg)
        .shutdown_timeout(Duration::from_secs(5))
        .start(|| Ok::<_, std::io::Error>(Custom))
        .unwrap()
}

fn wait_live(server: &strata_proto::ServerHandle, n: usize) {
    let t = std::time::Instant::now();
    while server.connections() != n {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{} connections live, expected {n}",
            server.connections()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_closing_service_error_for_k_drops_k_plus_one_and_answers_those_before() {
    deadline(60, || {
        let server = start_custom(CloseProto, quiet(8));
        let mut c = Client::connect(server.local_addr());
        c.send(&["echo a", "slow b", "slowfail", "echo never", "slow never2"]);
        assert_eq!(c.recv().as_deref(), Some("a"));
        assert_eq!(c.recv().as_deref(), Some("b"));
        assert_eq!(c.recv(), None);
        drop(c);
        wait_live(&server, 0);
        assert!(server.shutdown());
    });
}

#[test]
fn panics_after_pending_free_every_slot() {
    deadline(60, || {
        let server = start_custom(CloseProto, quiet(8));
        for _ in 0..10 {
            let mut c = Client::connect(server.local_addr());
            c.send(&["echo a", "slow b", "latepanic", "echo never"]);
            assert_eq!(c.recv().as_deref(), Some("a"));
            assert_eq!(c.recv().as_deref(), Some("b"));
            assert_eq!(c.recv(), None);
        }
        wait_live(&server, 0);
        let mut c = Client::connect(server.local_addr());
        assert_eq!(c.round_trip("echo alive").as_deref(), Some("alive"));
        drop(c);
        wait_live(&server, 0);
        assert!(server.shutdown());
    });
}

/// A closing service error drops the requests behind it; one of them
/// panics when dropped. Over TCP the connection must still answer what
/// preceded and free its slot.
#[test]
fn a_drop_panic_of_a_cancelled_request_under_tcp_server() {
    deadline(60, || {
        let server = start_custom(CloseProto, quiet(8));
        for _ in 0..6 {
            let mut c = Client::connect(server.local_addr());
            c.send(&["echo a", "slowfail", "stuckbomb"]);
            assert_eq!(c.recv().as_deref(), Some("a"));
            assert_eq!(c.recv(), None);
        }
        wait_live(&server, 0);
        let mut c = Client::connect(server.local_addr());
        assert_eq!(c.round_trip("echo alive").as_deref(), Some("alive"));
    });
}

/// The same with `serve_connection` over the in-memory transport: the
/// panic in the drop of a request the connection cancels is caught (and
/// logged) inside the connection; it ends with the service error that
/// made it cancel the request, after the responses before it. (A second
/// such panic while the first unwound would abort the process.)
#[test]
fn serve_connection_contains_a_drop_panic_of_a_cancelled_request() {
    deadline(30, || {
        let rt = support::memory::one_worker_runtime();
        let mock = support::memory::Memory::default();
        mock.send(b"echo a\nslowfail\nstuckbomb\n");
        mock.0.borrow_mut().eof = true;
        let cfg = quiet(8);
        let result = rt.block_on(async {
            let conn = strata_proto::pipeline::serve_connection(
                mock.clone(),
                &CloseProto,
                Custom,
                &cfg,
                std::future::pending(),
            );
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(conn)).await
        });
        assert_eq!(mock.written(), "a\n");
        let result = result.expect("the drop panic unwound out of serve_connection");
        assert!(result.is_err());
    });
}

mod fuzz {
    //! Random pipelines over a transport that reads and writes in random
    //! pieces, with random `Pending`s, against a model of the contract.
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub(super) struct Rng(pub(super) u64);
    impl Rng {
        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(super) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    pub(super) struct Choppy {
        pub(super) input: Vec<u8>,
        pub(super) pos: usize,
        pub(super) out: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
        pub(super) rng: Rng,
        pub(super) closed: std::rc::Rc<std::cell::Cell<bool>>,
    }

    impl futures_io::AsyncRead for Choppy {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            if self.rng.below(3) == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let left = self.input.len() - self.pos;
            let n = buf.len().min(left).min(1 + self.rng.below(40) as usize);
            let p = self.pos;
            buf[..n].copy_from_slice(&self.input[p..p + n]);
            self.pos += n;
            Poll::Ready(Ok(n))
        }
    }

    impl futures_io::AsyncWrite for Choppy {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            if self.rng.below(3) == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(1 + self.rng.below(30) as usize);
            self.out.borrow_mut().extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            self.closed.set(true);
            Poll::Ready(Ok(()))
        }
    }

    /// `<k> <id>`: answers `<id>` after `k` `Pending`s; `<k> !<id>` fails.
    #[derive(Clone, Copy)]
    pub(super) struct Delayed;
    impl Service<String> for Delayed {
        type Response = String;
        type Error = std::io::Error;
        async fn call(&self, req: String) -> Result<String, std::io::Error> {
            let (k, id) = req.split_once(' ').unwrap();
            let k: u32 = k.parse().unwrap();
            let mut n = 0;
            std::future::poll_fn(|cx| {
                if n == k {
                    Poll::Ready(())
                } else {
                    n += 1;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
            match id.strip_prefix('!') {
                Some(id) => Err(std::io::Error::other(id.to_string())),
                None => Ok(id.to_string()),
            }
        }
    }
}

/// Lines; a service error gets its line, then the connection closes.
struct RespondAndCloseProto;

impl ServerProto for RespondAndCloseProto {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(64)
    }

    fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
        Some(format!("error: {err}"))
    }

    fn service_error(&self, err: &BoxError) -> ErrorAction<String> {
        ErrorAction::RespondAndClose(format!("failed: {err}"))
    }
}

#[test]
fn random_pipelines_over_a_choppy_transport_match_the_model() {
    random_pipelines(&TestProto, false);
}

#[test]
fn random_pipelines_with_closing_errors_match_the_model() {
    random_pipelines(&RespondAndCloseProto, true);
}

fn random_pipelines<P: ServerProto<Request = String, Response = String>>(
    proto: &'static P,
    closing: bool,
) {
    use fuzz::*;
    deadline(120, move || {
        let rt = support::memory::one_worker_runtime();
        let mut seeds = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..3000 {
            let seed = seeds.next() | 1;
            let mut rng = Rng(seed);
            let n = 1 + rng.below(60) as usize;
            let mut input = Vec::new();
            let mut expected = String::new();
            let mut bad = false;
            let mut decode = false;
            for i in 0..n {
                let k = rng.below(5);
                match rng.below(20) {
                    0 => {
                        input.extend_from_slice(&[b'z'; 70]);
                        input.push(b'\n');
                        expected.push_str("error: ");
                        bad = true;
                        decode = true;
                        break;
                    }
                    1 | 2 => {
                        input.extend_from_slice(format!("{k} !f{i}\n").as_bytes());
                        expected.push_str(&format!("failed: f{i}\n"));
                        if closing {
                            bad = true;
                            break;
                        }
                    }
                    _ => {
                        input.extend_from_slice(format!("{k} r{i}\n").as_bytes());
                        expected.push_str(&format!("r{i}\n"));
                    }
                }
            }
            let max = 1 + rng.below(6) as usize;
            let hwm = 1 + rng.below(200) as usize;
            let cfg = quiet(max).write_high_water_mark(hwm);
            let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let closed = std::rc::Rc::new(std::cell::Cell::new(false));
            let io = Choppy {
                input,
                pos: 0,
                out: out.clone(),
                rng: Rng(seed.rotate_left(7) | 1),
                closed: closed.clone(),
            };
            let result = rt.block_on(strata_proto::pipeline::serve_connection(
                io,
                proto,
                Delayed,
                &cfg,
                std::future::pending(),
            ));
            let got = String::from_utf8(out.borrow().clone()).unwrap();
            if bad {
                if !decode {
                    assert_eq!(got, expected, "round {round} seed {seed:#x}");
                }
                assert!(
                    got.starts_with(&expected) && got.ends_with('\n'),
                    "round {round} seed {seed:#x} max {max} hwm {hwm}: got {got:?}, expected {expected:?}..."
                );
                assert!(result.is_err(), "round {round}");
            } else {
                assert_eq!(
                    got, expected,
                    "round {round} seed {seed:#x} max {max} hwm {hwm}"
                );
                assert!(result.is_ok(), "round {round}: {result:?}");
            }
            assert!(closed.get(), "round {round}: not closed");
        }
    });
}
