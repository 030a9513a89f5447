//! What line-server and line-client tell an operator when something goes
//! wrong: the setting, the value, the address.

mod support;

use std::io::Write;
use std::time::Duration;

use strata_line::parse_duration;
use support::Server;

/// `1.5s` has a known unit; what is wrong is the fraction, and the
/// message must not blame the unit (it did: `unknown unit `.5s``).
#[test]
fn a_fractional_duration_is_not_called_an_unknown_unit() {
    let msg = parse_duration("1.5s").expect_err("fractions are not accepted");
    assert!(!msg.contains("unknown unit"), "{msg:?}");
}

/// A number too large for the counter is a duration, just too large (it
/// was called "not a duration").
#[test]
fn a_too_large_duration_is_not_called_not_a_duration() {
    let msg = parse_duration("99999999999999999999s").expect_err("too large");
    assert!(!msg.contains("is not a duration"), "{msg:?}");
}

/// The graceful shutdown gave up: the error printed on exit says after
/// how long (the --shutdown-timeout value) and how many connections were
/// dropped.
#[test]
fn the_shutdown_timeout_error_names_the_timeout() {
    let server = Server::start(&["--shutdown-timeout", "300ms", "--write-timeout", "0"]);
    let mut hog = server.stream();
    hog.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // Answers that fill every buffer on the way; never read.
    let batch = b"hello\n".repeat(100_000);
    while hog.write_all(&batch).is_ok() {}
    let (status, logs) = server.terminate();
    assert_eq!(status.code(), Some(1), "logs {logs:#?}");
    let line = logs
        .iter()
        .find(|l| l.starts_with("line-server:"))
        .unwrap_or_else(|| panic!("no error line in {logs:#?}"));
    assert!(line.contains("300ms"), "{line:?} does not name the timeout");
    assert!(
        line.contains("1 connection dropped"),
        "{line:?} does not count"
    );
}

/// `--addr localhost:12345` (the README's own `nc localhost 12345` host)
/// was refused with std's "invalid socket address syntax"; the refusal
/// now says that an IP address is needed and host names are not resolved.
#[test]
fn a_host_name_address_is_not_called_invalid_syntax() {
    for bin in [support::SERVER, support::CLIENT] {
        let out = std::process::Command::new(bin)
            .args(["--addr", "localhost:12345"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("invalid socket address syntax") && err.contains("host names"),
            "{bin}: {err}"
        );
    }
}
