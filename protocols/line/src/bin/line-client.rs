//! `line-client`: sends lines and prints the answers.
//!
//! ```text
//! line-client hello world          # one request per argument
//! printf 'hello\nhi\n' | line-client   # or one per stdin line
//! line-client --addr 127.0.0.1:12345 hello
//! ```
//!
//! All requests are written at once (pipelined); answers are printed in
//! order as they arrive. For load generation use the bench harness
//! (`cargo run --release -p strata-bench --bin line`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command, value_parser};

fn main() -> ExitCode {
    let m = Command::new("line-client")
        .about("Send lines to a line server and print the answers")
        .arg(
            Arg::new("addr")
                .long("addr")
                .value_name("IP:PORT")
                .default_value("127.0.0.1:12345")
                .value_parser(value_parser!(SocketAddr))
                .help("Server address"),
        )
        .arg(
            Arg::new("lines")
                .action(ArgAction::Append)
                .help("Requests to send; read from stdin when none are given"),
        )
        .get_matches();
    let addr = *m.get_one::<SocketAddr>("addr").expect("has default");
    let lines: Vec<String> = match m.get_many::<String>("lines") {
        Some(v) => v.cloned().collect(),
        None => std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .collect(),
    };
    match run(addr, &lines) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("line-client: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(addr: SocketAddr, lines: &[String]) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    let mut batch = String::new();
    for l in lines {
        batch.push_str(l);
        batch.push('\n');
    }
    stream.write_all(batch.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut out = std::io::stdout().lock();
    for answer in BufReader::new(stream).lines() {
        writeln!(out, "{}", answer?)?;
    }
    Ok(())
}
