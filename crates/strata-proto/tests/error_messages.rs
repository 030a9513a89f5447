//! Error messages a user of `serve_connection` / `TcpServer` sees: each
//! error's message says what happened at its layer and its `source()` the
//! cause, so a report of the whole chain names each cause once ("I/O error"
//! once, not once per layer).

mod support;

use std::error::Error;
use std::io;
use std::time::Duration;

use strata_codec::LinesCodecError;
use strata_proto::ConnectionConfig;
use strata_proto::pipeline::{ConnectionError, serve_connection};
use support::memory::{Memory as Mock, one_worker_runtime};
use support::{Echo, TestProto, deadline};

/// The messages of `e` and of every error down its `source()` chain.
fn chain(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut links = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        links.push(c.to_string());
        cur = c.source();
    }
    links
}

/// How many links of `links` contain "i/o error", in any case.
fn io_error_mentions(links: &[String]) -> usize {
    links
        .iter()
        .map(|l| l.to_ascii_lowercase().matches("i/o error").count())
        .sum()
}

fn no_timeouts() -> ConnectionConfig {
    ConnectionConfig::default()
        .idle_timeout(None)
        .read_timeout(None)
        .write_timeout(None)
}

/// Runs one connection over a mock peer set up by `setup` to its end.
fn run(
    setup: impl FnOnce(&Mock) + Send + 'static,
    cfg: ConnectionConfig,
) -> Result<(), ConnectionError> {
    deadline(30, move || {
        let mock = Mock::default();
        setup(&mock);
        one_worker_runtime().block_on(async move {
            serve_connection(mock, &TestProto, Echo, &cfg, std::future::pending()).await
        })
    })
}

/// A reset while reading: the chain says "I/O error" once (it said it
/// twice, the dispatcher's "i/o error: " around the codec's "I/O error: ",
/// and the codec's error was also the message's source).
#[test]
fn a_reset_while_reading_says_io_error_once() {
    let err = run(|m| m.reset(), no_timeouts()).expect_err("the read was reset");
    let links = chain(&err);
    assert_eq!(io_error_mentions(&links), 1, "{links:?}");
    for w in links.windows(2) {
        assert!(!w[0].contains(&w[1]), "a cause told twice: {links:?}");
    }
}

/// The same, built directly: the dispatcher's I/O variant wraps the
/// codec's error, which says "I/O error"; the reset is the last link.
#[test]
fn io_variant_around_a_codec_io_error_says_io_error_once() {
    let e = ConnectionError::Io(Box::new(LinesCodecError::Io(io::Error::from(
        io::ErrorKind::ConnectionReset,
    ))));
    let links = chain(&e);
    assert_eq!(io_error_mentions(&links), 1, "{links:?}");
    assert_eq!(links.len(), 3, "{links:?}");
    assert_eq!(
        links[2],
        io::Error::from(io::ErrorKind::ConnectionReset).to_string()
    );
}

/// No message repeats its source's: `Display` is this layer's own words,
/// the cause comes from `source()` (as the Rust API guidelines ask).
#[test]
fn no_message_repeats_its_source() {
    let bad_utf8 = vec![b'a', 0xff];
    let cases: Vec<Box<dyn Error + 'static>> = vec![
        Box::new(ConnectionError::Decode(Box::new(
            LinesCodecError::LineTooLong { limit: 8 },
        ))),
        Box::new(ConnectionError::Encode("text with a newline".into())),
        Box::new(ConnectionError::Service("no such key".into())),
        Box::new(LinesCodecError::Io(io::Error::other("boom"))),
        Box::new(LinesCodecError::InvalidUtf8(
            std::str::from_utf8(&bad_utf8).unwrap_err(),
        )),
    ];
    for e in &cases {
        let links = chain(&**e);
        assert!(links.len() >= 2, "{links:?}");
        for w in links.windows(2) {
            assert!(!w[0].contains(&w[1]), "a cause told twice: {links:?}");
        }
    }
}

/// A service error with a cause of its own (a backend's I/O error).
#[derive(Debug)]
struct Backend(io::Error);

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("backend failed")
    }
}

impl Error for Backend {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

/// A protocol that closes the connection on a service error.
struct Closing;

impl strata_proto::pipeline::ServerProto for Closing {
    type Request = String;
    type Response = String;
    type Codec = strata_codec::LinesCodec;
    fn codec(&self) -> strata_codec::LinesCodec {
        strata_codec::LinesCodec::new()
    }
    fn service_error(
        &self,
        err: &strata_service::BoxError,
    ) -> strata_proto::pipeline::ErrorAction<String> {
        assert!(err.downcast_ref::<Backend>().is_some(), "{err:?}");
        strata_proto::pipeline::ErrorAction::Close
    }
}

/// The service's error that ends a connection is the error itself, down
/// to its own cause: it was kept as its message only, so it could not be
/// downcast and its cause was lost.
#[test]
fn a_closing_service_error_keeps_its_type_and_cause() {
    let err = deadline(30, || {
        let mock = Mock::default();
        mock.send(b"hi\n");
        one_worker_runtime().block_on(async move {
            let svc = strata_service::service_fn(|_: String| async {
                Err::<String, _>(Backend(io::Error::from(io::ErrorKind::ConnectionRefused)))
            });
            serve_connection(mock, &Closing, svc, &no_timeouts(), std::future::pending()).await
        })
    })
    .expect_err("the service failed and the protocol closes");
    assert!(matches!(err, ConnectionError::Service(_)), "{err:?}");
    let source = err.source().expect("the service's error");
    assert!(source.downcast_ref::<Backend>().is_some(), "{source:?}");
    let links = chain(&err);
    assert_eq!(
        links,
        [
            "service error".to_string(),
            "backend failed".to_string(),
            io::Error::from(io::ErrorKind::ConnectionRefused).to_string()
        ]
    );
}

/// A timeout error names the timeout that passed, so a log line says
/// which setting to look at and what it was.
#[test]
fn timeout_errors_name_their_duration() {
    let err = run(
        |_| {},
        no_timeouts().idle_timeout(Some(Duration::from_millis(150))),
    )
    .expect_err("the quiet connection timed out");
    assert_eq!(err.to_string(), "idle timeout: no request for 150ms");

    let timeout = Duration::from_millis(2500);
    for (err, want) in [
        (
            ConnectionError::ReadTimeout { timeout },
            "request not completed within the read timeout of 2.5s",
        ),
        (
            ConnectionError::WriteTimeout { timeout },
            "the peer took no response bytes within the write timeout of 2.5s",
        ),
    ] {
        assert_eq!(err.to_string(), want);
    }
}

/// A thread count the runtime refuses (more than 4,096 workers) is an
/// error from `start`, as the docs say for a runtime that cannot start,
/// not a panic ("capacity overflow" before).
#[test]
fn too_many_threads_is_an_error_not_a_panic() {
    deadline(60, || {
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            support::one_worker()
                .threads(usize::MAX)
                .start(|| Ok(Echo))
                .map(|h| h.shutdown())
        }));
        let err = got.expect("start panicked").expect_err("started");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    });
}
