//! `line-server`: the classic example as a program.
//!
//! ```text
//! cargo run --release --bin line-server            # listens on 127.0.0.1:12345
//! nc localhost 12345                               # type hello, get world
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgAction, Command};
use strata_line::{HelloWorld, LineProto, parse_duration};
use strata_proto::{ConnectionConfig, TcpServer};

fn cli() -> Command {
    Command::new("line-server")
        .about("Newline-delimited requests: `hello` answers `world`, anything else answers `idk`.")
        .after_help(
            "Try it:  nc localhost 12345\n\
             Logs go to stderr; RUST_LOG=debug adds a line as each connection opens and\n\
             closes (directives work too: RUST_LOG=info,strata_proto=debug).\n\
             Ctrl-C or SIGTERM stops accepting, answers what was received, then exits;\n\
             another one, at least 250 ms later, drops the connections still open.",
        )
        .arg(
            Arg::new("addr")
                .long("addr")
                .value_name("IP:PORT")
                .default_value("127.0.0.1:12345")
                .value_parser(strata_line::parse_addr)
                .help("Address to listen on"),
        )
        .arg(
            Arg::new("v6-only")
                .long("v6-only")
                .value_name("on|off")
                .value_parser(clap::builder::BoolishValueParser::new())
                .hide_possible_values(true)
                .help(
                    "For an IPv6 address: take IPv6 clients only (on), or IPv4 ones too (off) \
                     [default: the system's]",
                ),
        )
        .arg(
            Arg::new("threads")
                .long("threads")
                .value_name("N")
                .value_parser(|s: &str| count(s, MAX_THREADS))
                .help("Worker threads (1 to 1024), each with its own listener [default: one per core]"),
        )
        .arg(
            Arg::new("max-connections")
                .long("max-connections")
                .value_name("N")
                .default_value("10000")
                .value_parser(|s: &str| count(s, MAX_CONNECTIONS))
                .help("Connections open at once (1 to 1048576); more are accepted and closed"),
        )
        .arg(
            Arg::new("max-line-length")
                .long("max-line-length")
                .value_name("BYTES")
                .default_value("8192")
                .value_parser(|s: &str| count(s, MAX_LINE_LENGTH))
                .help("Longest accepted line (1 to 16777216); a longer one gets `error: line too long`"),
        )
        .arg(
            Arg::new("idle-timeout")
                .long("idle-timeout")
                .value_name("DURATION")
                .default_value("60s")
                .value_parser(parse_duration)
                .help("Close connections idle this long (e.g. 500ms, 30s, 2m; 0 = never)"),
        )
        .arg(
            Arg::new("read-timeout")
                .long("read-timeout")
                .value_name("DURATION")
                .default_value("30s")
                .value_parser(parse_duration)
                .help("Close connections that leave a line unfinished this long (0 = never)"),
        )
        .arg(
            Arg::new("write-timeout")
                .long("write-timeout")
                .value_name("DURATION")
                .default_value("60s")
                .value_parser(parse_duration)
                .help(
                    "Close connections that take none of their answers for this long (0 = never)",
                ),
        )
        .arg(
            Arg::new("shutdown-timeout")
                .long("shutdown-timeout")
                .value_name("DURATION")
                .default_value("30s")
                .value_parser(parse_duration)
                .help("How long a graceful shutdown waits for connections (0 = drop them at once)"),
        )
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::Help)
                .help("Print help"),
        )
        .disable_help_flag(true)
}

/// Upper bounds of the counts: a typo or "just make it big" must not turn
/// a limit off (a line limit of `usize::MAX` lets one peer's unfinished
/// line take all memory).
const MAX_THREADS: usize = 1024;
const MAX_CONNECTIONS: usize = 1 << 20;
const MAX_LINE_LENGTH: usize = 16 << 20;

/// A count from 1 (0 connections, threads or bytes per line would serve
/// nothing) to `max`.
fn count(s: &str, max: usize) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be from 1 to {max}")),
        Err(e) => Err(e.to_string()),
    }
}

fn main() -> ExitCode {
    strata_line::init_logging();
    let m = cli().get_matches();
    let addr = *m.get_one::<SocketAddr>("addr").expect("has default");
    let idle = *m.get_one::<Duration>("idle-timeout").expect("has default");
    let write = *m.get_one::<Duration>("write-timeout").expect("has default");
    let read = *m.get_one::<Duration>("read-timeout").expect("has default");
    let proto = LineProto::new().max_line_length(*m.get_one("max-line-length").expect("default"));
    let mut server = TcpServer::new(proto, addr)
        // Printed whatever RUST_LOG says, so that `nc` has somewhere to go.
        // (A stdout that cannot be written is no reason not to serve.)
        .on_listening(|addr| {
            let _ = writeln!(std::io::stdout(), "line-server: listening on {addr}");
        })
        .max_connections(*m.get_one("max-connections").expect("has default"))
        .shutdown_timeout(*m.get_one("shutdown-timeout").expect("has default"))
        .connection_config(
            ConnectionConfig::default()
                .idle_timeout((!idle.is_zero()).then_some(idle))
                .read_timeout((!read.is_zero()).then_some(read))
                .write_timeout((!write.is_zero()).then_some(write)),
        );
    if let Some(on) = m.get_one::<bool>("v6-only") {
        server = server.only_v6(*on);
    }
    if let Some(n) = m.get_one::<usize>("threads") {
        server = server.threads(*n);
    }
    match server.serve(|| Ok(HelloWorld)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            strata_line::say!("line-server: {e}");
            ExitCode::FAILURE
        }
    }
}
