//! `line-client`: sends lines and prints the answers.
//!
//! ```text
//! line-client hello world          # one request per argument
//! printf 'hello\nhi\n' | line-client   # or one per stdin line
//! line-client --addr 127.0.0.1:12345 hello
//! ```
//!
//! Requests are pipelined: a thread writes them while the answers are
//! printed in order as they arrive, so any amount of input streams through
//! without either side waiting on the other. Stdin lines are sent as they
//! are, bytes and all (invalid UTF-8 included: the server says what it
//! makes of it). The exit code is 0 only if every request got an answer
//! and none of the answers is an `error: ...` line. For load generation use
//! the bench harness (`cargo run --release -p strata-bench --bin line`).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

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
    let args: Option<Vec<String>> = m.get_many::<String>("lines").map(|v| v.cloned().collect());
    match run(addr, args) {
        Ok(Outcome {
            sent,
            answered,
            errors,
        }) if answered == sent && errors == 0 => ExitCode::SUCCESS,
        Ok(Outcome {
            sent,
            answered,
            errors,
        }) => {
            if answered != sent {
                eprintln!("line-client: {addr}: {answered} answers to {sent} requests");
            }
            if errors > 0 {
                eprintln!("line-client: {addr}: {errors} answers were errors");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("line-client: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a run sent and got back.
struct Outcome {
    sent: u64,
    answered: u64,
    errors: u64,
}

fn run(addr: SocketAddr, args: Option<Vec<String>>) -> io::Result<Outcome> {
    let stream = TcpStream::connect(addr)?;
    let mut socket = stream.try_clone()?;
    // Requests sent so far, and the final count once the writer is done.
    let sent = Arc::new(AtomicU64::new(0));
    let (done, finished) = mpsc::channel();
    let counter = sent.clone();
    std::thread::spawn(move || {
        // A server that closed early (after an error line) makes writes
        // fail; its answers are still read below, so stop quietly.
        let _ = match args {
            Some(lines) => lines.iter().try_for_each(|l| {
                // An argument with line breaks in it is several requests.
                counter.fetch_add(1 + l.matches('\n').count() as u64, Ordering::Relaxed);
                socket.write_all(l.as_bytes())?;
                socket.write_all(b"\n")
            }),
            None => copy_lines(io::stdin().lock(), &mut socket, &counter),
        };
        let _ = socket.shutdown(Shutdown::Write);
        let _ = done.send(counter.load(Ordering::Relaxed));
    });
    let mut out = io::stdout().lock();
    let mut reader = BufReader::new(stream);
    let mut answer = Vec::new();
    let (mut answered, mut errors) = (0, 0);
    loop {
        answer.clear();
        match reader.read_until(b'\n', &mut answer) {
            Ok(0) => break,
            Ok(_) => {}
            // The server closed with a reset after its last answer.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
        answered += 1;
        if answer.starts_with(b"error:") {
            errors += 1;
        }
        if !answer.ends_with(b"\n") {
            answer.push(b'\n');
        }
        out.write_all(&answer)?;
    }
    out.flush()?;
    // The server closed. The writer has finished, or will as soon as its
    // next write fails; unless it waits on stdin (a terminal, a pipe kept
    // open), which must not keep the client alive: then count what it sent.
    let sent = finished
        .recv_timeout(Duration::from_millis(500))
        .unwrap_or_else(|_| sent.load(Ordering::Relaxed));
    Ok(Outcome {
        sent,
        answered,
        errors,
    })
}

/// Sends each line of `input` as it is (a missing final newline added),
/// counting them in `sent`.
fn copy_lines(mut input: impl BufRead, socket: &mut TcpStream, sent: &AtomicU64) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        sent.fetch_add(1, Ordering::Relaxed);
        socket.write_all(&line)?;
    }
}
