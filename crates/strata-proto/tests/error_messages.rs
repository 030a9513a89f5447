//! Error messages a user of `serve_connection` / `TcpServer` sees: an I/O
//! failure says "I/O error" once, not once per layer.

mod support;

use std::io;
use std::time::Duration;

use strata_codec::LinesCodecError;
use strata_proto::ConnectionConfig;
use strata_proto::pipeline::{ConnectionError, serve_connection};
use support::memory::{Memory as Mock, one_worker_runtime};
use support::{Echo, TestProto, deadline};

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

/// A reset while reading: the message says "I/O error" twice (the
/// dispatcher's "i/o error: " around the codec's "I/O error: "), in two
/// spellings.
#[test]
fn a_reset_while_reading_says_io_error_once() {
    let err = run(|m| m.reset(), no_timeouts()).expect_err("the read was reset");
    let msg = err.to_string();
    assert_eq!(
        msg.to_ascii_lowercase().matches("i/o error").count(),
        1,
        "{msg:?}"
    );
}

/// The same stutter, built directly: the dispatcher's I/O variant wraps the
/// codec's error, which already says "I/O error".
#[test]
fn io_variant_around_a_codec_io_error_says_io_error_once() {
    let e = ConnectionError::Io(Box::new(LinesCodecError::Io(io::Error::from(
        io::ErrorKind::ConnectionReset,
    ))));
    let msg = e.to_string();
    assert_eq!(
        msg.to_ascii_lowercase().matches("i/o error").count(),
        1,
        "{msg:?}"
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
