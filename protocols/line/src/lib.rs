//! The line protocol of the classic example, on strata's layers:
//! newline-delimited requests; `hello` answers `world`, anything else
//! answers `idk`.
//!
//! It is built the way the classic example builds it:
//!
//! 1. a codec turns bytes into lines: [`LinesCodec`] (`\n` or `\r\n`,
//!    UTF-8 checked, length bounded), decoding each request as a [`Line`]
//!    that shares the read buffer, so a request costs no allocation;
//! 2. a protocol says how lines become requests and responses:
//!    [`LineProto`], pipelined;
//! 3. a service holds the logic: [`HelloWorld`];
//! 4. [`TcpServer`](strata_proto::TcpServer) runs them.
//!
//! ```no_run
//! use strata_line::{HelloWorld, LineProto};
//! use strata_proto::TcpServer;
//!
//! TcpServer::new(LineProto::new(), "127.0.0.1:12345".parse().unwrap())
//!     .serve(|| Ok(HelloWorld))
//!     .unwrap();
//! ```
//!
//! Its client side is [`LineClient`], for
//! [`TcpClient`](strata_proto::TcpClient).

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::ready;

use strata_codec::{Line, LinesCodec, LinesCodecError};
use strata_proto::pipeline::{ClientProto, ErrorAction, ServerProto};
use strata_service::{BoxError, Service};

/// A response line (without its newline): usually a static string.
pub type Reply = Cow<'static, str>;

/// The line protocol: [`LinesCodec`] framing, pipelined dispatch.
///
/// A line over the limit or with invalid UTF-8 gets one error line
/// (`error: line too long`, `error: invalid UTF-8`) and the connection is
/// closed; a failing service gets `error: ...` and the connection carries on.
#[derive(Debug, Clone)]
pub struct LineProto {
    max_line_length: usize,
}

impl LineProto {
    /// The protocol with the codec's default line limit (8 KiB).
    pub fn new() -> Self {
        LineProto {
            max_line_length: strata_codec::DEFAULT_MAX_LINE_LENGTH,
        }
    }

    /// Sets the longest accepted line, in bytes, without its line ending.
    pub fn max_line_length(mut self, n: usize) -> Self {
        self.max_line_length = n;
        self
    }
}

impl Default for LineProto {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerProto for LineProto {
    type Request = Line;
    type Response = Reply;
    type Codec = LinesCodec<Line>;

    fn codec(&self) -> LinesCodec<Line> {
        LinesCodec::shared().max_length(self.max_line_length)
    }

    fn decode_error(&self, err: &LinesCodecError) -> Option<Reply> {
        Some(Cow::Borrowed(match err {
            LinesCodecError::LineTooLong { .. } => "error: line too long",
            LinesCodecError::InvalidUtf8(_) => "error: invalid UTF-8",
            _ => "error: bad request",
        }))
    }

    fn service_error(&self, err: &BoxError) -> ErrorAction<Reply> {
        // One line, whatever the error's text: a line break in it would
        // make the codec refuse the response.
        let msg = format!("error: {err}").replace(['\r', '\n'], " ");
        ErrorAction::Respond(Cow::Owned(msg))
    }
}

/// The client side of the line protocol, for
/// [`TcpClient`](strata_proto::TcpClient): a request is a line to send
/// (without its line ending), an answer a line received. Calls are
/// pipelined on each connection and matched to their answers in order.
///
/// ```
/// use strata_line::{HelloWorld, LineClient, LineProto};
/// use strata_proto::{TcpClient, TcpServer};
/// use strata_service::Service;
///
/// let server = TcpServer::new(LineProto::new(), "127.0.0.1:0".parse().unwrap())
///     .threads(1)
///     .start(|| Ok(HelloWorld))
///     .unwrap();
/// let addr = server.local_addr();
/// strata_rt::run(async move {
///     let client = TcpClient::new(LineClient::new()).connect(addr).await.unwrap();
///     let (a, b) = futures_util::future::join(
///         client.call("hello".to_string()),
///         client.call("hi".to_string()),
///     )
///     .await;
///     assert_eq!((a.unwrap(), b.unwrap()), ("world".into(), "idk".into()));
/// });
/// server.shutdown();
/// ```
#[derive(Debug, Clone)]
pub struct LineClient {
    max_line_length: usize,
}

impl LineClient {
    /// The client with the codec's default line limit (8 KiB) for
    /// answers.
    pub fn new() -> Self {
        LineClient {
            max_line_length: strata_codec::DEFAULT_MAX_LINE_LENGTH,
        }
    }

    /// Sets the longest accepted answer, in bytes, without its line
    /// ending: a longer one fails the call (and those behind it) and
    /// closes the connection.
    pub fn max_line_length(mut self, n: usize) -> Self {
        self.max_line_length = n;
        self
    }
}

impl Default for LineClient {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientProto for LineClient {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(self.max_line_length)
    }
}

/// The service of the classic example: `hello` → `world`, else `idk`.
///
/// ```
/// use strata_codec::Line;
/// use strata_line::HelloWorld;
/// use strata_service::Service;
///
/// strata_rt::run(async {
///     assert_eq!(HelloWorld.call(Line::from("hello")).await.unwrap(), "world");
///     assert_eq!(HelloWorld.call(Line::from("hi")).await.unwrap(), "idk");
/// });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HelloWorld;

impl Service<Line> for HelloWorld {
    type Response = Reply;
    type Error = Infallible;

    // The answer is known at once, so the future is a ready value, as in
    // the classic example's `future::ok`. (An `async fn` works too; it
    // costs a copy of the request into its state on the first poll.)
    fn call(&self, req: Line) -> impl Future<Output = Result<Reply, Infallible>> {
        ready(Ok(Cow::Borrowed(if req == "hello" {
            "world"
        } else {
            "idk"
        })))
    }
}

/// Parses a listening or connecting address, `IP:PORT`, with a message
/// that says so when given a host name (which is not resolved).
///
/// # Errors
///
/// A message saying what was expected.
///
/// # Examples
///
/// ```
/// use strata_line::parse_addr;
///
/// assert_eq!(parse_addr("127.0.0.1:12345").unwrap().port(), 12345);
/// assert!(parse_addr("localhost:12345").unwrap_err().contains("host names"));
/// assert!(parse_addr("127.0.0.1:70000").unwrap_err().contains("out of range"));
/// assert!(parse_addr("[::1]:70000").unwrap_err().contains("out of range"));
/// assert!(!parse_addr("::1:8080").unwrap_err().contains("out of range"));
/// ```
pub fn parse_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| {
        // `IPv4:PORT` or `[IPv6]:PORT` with a port past 65535 is wrong in
        // its port only.
        if let Some((host, port)) = s.rsplit_once(':')
            && !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_err()
            && (host.parse::<std::net::Ipv4Addr>().is_ok()
                || host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok()))
        {
            return format!("`{s}`: port {port} is out of range (0 to 65535)");
        }
        format!(
            "`{s}` is not IP:PORT (for example 127.0.0.1:12345 or [::1]:12345; \
             host names such as localhost are not resolved)"
        )
    })
}

/// Parses a human duration: `500ms`, `30s`, `2m`, `1h`, or a bare number
/// of seconds. `0` means zero.
///
/// # Errors
///
/// A message saying what was expected.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use strata_line::parse_duration;
///
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` is not a duration; try 500ms, 30s, 2m or 1h"));
    }
    if unit.starts_with('.') {
        return Err(format!(
            "`{s}`: fractions are not supported; use a smaller unit (500ms, not 0.5s)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is too large a duration"))?;
    let too_large = || format!("`{s}` is too large a duration");
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60).ok_or_else(too_large)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(too_large)?),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`; use ms, s, m or h"
            ));
        }
    };
    Ok(d)
}

/// Writes one line to stderr, as `eprintln!` does, but ignores a stderr
/// that cannot be written (a full disk, a log pipe whose reader died),
/// where `eprintln!` panics: the binaries' exit statuses must still say
/// what happened.
/// The `say!` macro does the formatting: `say!("line-client: {e}")`.
pub fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// [`say()`] with `eprintln!`'s arguments.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say(::std::format_args!($($arg)*))
    };
}

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` in the usual
/// syntax: a level (`error`, `warn`, `info`, `debug`, `trace`) and/or
/// `target=level` directives, comma-separated (`info,strata_proto=debug`).
/// Targets not named log at `info` unless a level is given. A value that
/// cannot be parsed is reported (as a warning) and `info` is used. Span
/// filters (`target[span]=level`, as tracing's `EnvFilter` takes them) are
/// not supported: such directives (and ones with a space inside, an empty
/// level, or a target that is no module path, such as `strata-proto`) are
/// left out, with a warning on stderr saying so; a filter on one field
/// name (`target[{field}]=level`) works. A bare word that is no level is a
/// target name, as for env_logger.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let info = || Targets::new().with_default(LevelFilter::INFO);
    let mut left_out: Vec<String> = Vec::new();
    let (filter, not_understood) = match std::env::var("RUST_LOG") {
        // Spaces around directives and empty ones (`debug,`, `info, x=debug`)
        // are left out, as env_logger and tracing's EnvFilter do; parsed as
        // they are, an empty directive meant "errors only" and a spaced
        // target matched nothing. Directives `Targets` would misread
        // are left out (see `targets_apply`).
        Ok(v) if !v.trim().is_empty() => {
            let (targets, others): (Vec<&str>, Vec<&str>) = tidy_directives(&v)
                .into_iter()
                .partition(|d| targets_apply(d));
            left_out = others.into_iter().map(str::to_owned).collect();
            match targets.join(",").parse::<Targets>() {
                // Nothing kept: an empty string would parse as "off".
                _ if targets.is_empty() => (info(), None),
                Ok(t) if t.default_level().is_none() => (t.with_default(LevelFilter::INFO), None),
                Ok(t) => (t, None),
                Err(e) => (info(), Some(format!("RUST_LOG={v:?} not understood ({e})"))),
            }
        }
        Err(std::env::VarError::NotUnicode(v)) => {
            (info(), Some(format!("RUST_LOG={v:?} is not UTF-8")))
        }
        _ => (info(), None),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
    if !left_out.is_empty() {
        // Straight to stderr: the filter itself may leave out warnings.
        say!(
            "warning: RUST_LOG directives left out (span filters, field filters other \
             than `target[{{field}}]=level`, targets that are no module path, spaces \
             and empty levels are not supported): {left_out:?}"
        );
    }
    if let Some(why) = not_understood {
        tracing::warn!("{why}; logging at info");
    }
}

/// Whether `Targets` applies directive `d` as written: a level, or a
/// target that is a module path (or empty: all targets) with an optional
/// level, or `target[{field}]=level` with one field name. (`Targets` would
/// take a bracketed form, a name with a space or a dash, or a word that is
/// no level for a target or field that matches nothing, and an empty
/// level for `error`; a field list is split at its commas before it gets
/// here.)
fn targets_apply(d: &str) -> bool {
    use tracing_subscriber::filter::LevelFilter;
    const BRACKETS: [char; 4] = ['[', ']', '{', '}'];
    if d.contains(char::is_whitespace) {
        return false;
    }
    let (head, level) = match d.split_once('=') {
        None if d.parse::<LevelFilter>().is_ok() => return true,
        None => (d, None),
        Some((head, level)) => (head, Some(level)),
    };
    if level.is_some_and(|l| l.is_empty() || l.contains(['=', '[', ']', '{', '}'])) {
        return false;
    }
    if !head.contains(BRACKETS) {
        return is_module_path(head);
    }
    let (Some(field), Some(_)) = (head.strip_suffix("}]"), level) else {
        return false;
    };
    let Some((target, field)) = field.split_once("[{") else {
        return false;
    };
    is_module_path(target) && is_ident(field)
}

/// `a`, `a::b_c`, ... (or empty); what a `tracing` target built from
/// module paths can start with.
fn is_module_path(s: &str) -> bool {
    s.is_empty() || s.split("::").all(is_ident)
}

/// A Rust identifier (`a`, `_b2`): a module path's part, or a field name.
fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// `RUST_LOG`'s comma-separated directives, each trimmed, empty ones
/// dropped.
fn tidy_directives(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directives_targets_applies_are_kept() {
        for kept in [
            "debug",
            "WARN",
            "4",
            "strata_proto",
            "strata_proto=debug",
            "strata_proto::server=debug",
            "=debug",
            "strata_proto[{peer}]=debug",
        ] {
            assert!(targets_apply(kept), "{kept}");
        }
        for left_out in [
            "strata_proto[conn]=debug",
            "[conn]=debug",
            "strata_proto[{peer}]",
            "strata_proto[{peer",
            "connections}]=debug",
            "strata_proto[{peer=1}]=debug",
            "strata_proto[conn{peer}]=debug",
            "strata_proto[{}]=debug",
            "strata-proto=debug",
            "10",
            "verbose!",
            "strata_proto::=debug",
            "strata_proto=",
            "=",
            "strata_proto==debug",
            "strata_proto =debug",
            "strata_proto[{peer }]=debug",
        ] {
            assert!(!targets_apply(left_out), "{left_out}");
        }
    }

    #[test]
    fn a_service_error_becomes_one_line() {
        let err: BoxError = "first\nsecond\r\nthird".into();
        match LineProto::new().service_error(&err) {
            ErrorAction::Respond(r) => assert_eq!(r, "error: first second  third"),
            _ => panic!("a service error should be answered"),
        }
    }
}
