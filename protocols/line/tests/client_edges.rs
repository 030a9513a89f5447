//! `line-client` against servers that keep the connection open after
//! answering, or stop reading; an address whose port is out of range.
//! Waits are watchdogs, not performance bounds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;

mod support;

use support::{CLIENT, SERVER, output_within};

/// A server that answers the one request it gets, then keeps the
/// connection open (it reads the client's end of input but does not
/// close): with every request answered and the input all sent, the client
/// ends after one `--timeout` of quiet, with success (it waited for the
/// server's close forever).
#[test]
fn line_client_does_not_hang_once_every_answer_came() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (&conn).write_all(b"world\n").unwrap();
        // Read to the client's end of input, then stay open.
        let _ = reader.read_to_end(&mut Vec::new());
        let _ = stopped.recv();
    });
    let child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string(), "--timeout", "300ms", "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-client starts");
    // Watchdog: the outcome is known after one timeout (300 ms).
    let out = output_within(child, 20);
    drop(stop);
    server.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "world\n");
    assert!(
        out.status.code().is_some(),
        "line-client hung after its only request was answered (killed by the watchdog); \
         stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server that accepts and then never reads (a stalled process), sent a
/// long request line from stdin: the client's writer blocks once the
/// socket buffers are full, before the line's newline is sent, so no
/// answer is owed yet; the write times out after `--timeout` and the
/// client gives up with status 1 (it hung forever).
#[test]
fn line_client_gives_up_on_a_server_that_stops_reading() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let _ = stopped.recv();
        drop(conn);
    });
    let mut child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string(), "--timeout", "300ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("line-client starts");
    let mut input = child.stdin.take().unwrap();
    // One 64 MiB request line (far beyond loopback socket buffers), ended.
    let feeder = std::thread::spawn(move || {
        let mut line = vec![b'x'; 64 << 20];
        line.push(b'\n');
        let _ = input.write_all(&line);
    });
    let out = output_within(child, 20);
    drop(stop);
    server.join().unwrap();
    feeder.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "line-client did not give up on a server that stopped reading (killed by the \
         watchdog: {:?}); stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port out of range is called that (not "not IP:PORT" with a hint
/// about host names, which is not what is wrong with `127.0.0.1:70000`).
#[test]
fn a_port_out_of_range_is_called_that() {
    for bin in [SERVER, CLIENT] {
        let child = Command::new(bin)
            .args(["--addr", "127.0.0.1:70000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = output_within(child, 20);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("65535") || err.contains("port"),
            "{bin}: the message does not say the port is out of range: {err}"
        );
    }
}

/// A server that answers one line, then closes while the client's input
/// is still open: the client says the connection was cut, counting "1
/// answer" (it said "1 answers").
#[test]
fn a_cut_connection_with_one_answer_reads_in_plain_words() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        (&s).write_all(b"world\n").unwrap();
    });
    let mut child = Command::new(CLIENT)
        .args(["--addr", &addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Input held open: the server's close comes before its end.
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"hello\n").unwrap();
    let out = output_within(child, 30);
    drop(input);
    srv.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "world\n");
    assert!(stderr.contains("(1 answer)"), "stderr: {stderr:?}");
}
