//! Exit statuses of the binaries hold when stderr cannot be written (a
//! full disk, here `/dev/full`): the status is what a supervisor or a
//! script reads, whatever became of the message.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::{CLIENT, output_within};

/// README: "exit status 1 if --shutdown-timeout passed and connections had
/// to be dropped", also with a stderr that cannot be written (a full disk,
/// a log pipe whose reader died): `main`'s `eprintln!` panicked there, and
/// the server exited with 101.
#[test]
fn server_exit_status_is_1_after_a_dropping_shutdown_even_with_unwritable_stderr() {
    use std::io::Read;
    let mut child = Command::new(support::SERVER)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--shutdown-timeout",
            "300ms",
            "--write-timeout",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create("/dev/full").unwrap())
        .spawn()
        .expect("line-server starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr: std::net::SocketAddr = first.trim().rsplit(' ').next().unwrap().parse().unwrap();
    // A connection whose answers fill every buffer and are never read.
    let mut hog = std::net::TcpStream::connect(addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let batch = b"hello\n".repeat(100_000);
    while hog.write_all(&batch).is_ok() {}
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = output_within(child, 20);
    let _ = hog.read(&mut [0u8; 1]);
    assert_eq!(out.status.code(), Some(1), "exit status {:?}", out.status);
}

/// `line-client ... exits 1 if an answer is missing or an error`, also with
/// an unwritable stderr (its `eprintln!`s panicked, and it exited 101).
#[test]
fn client_exit_status_is_1_for_a_missing_answer_even_with_unwritable_stderr() {
    // A server that accepts and closes at once: the answer is missing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        drop(conn);
    });
    let child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string(), "--timeout", "5s", "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create("/dev/full").unwrap())
        .spawn()
        .expect("line-client starts");
    let out = output_within(child, 20);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "exit status {:?}", out.status);
}
