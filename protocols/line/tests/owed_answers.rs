//! Answers owed when the server closes a connection on a peer that is
//! still sending (after a stop, after a bad request): every one arrives,
//! however fast the peer sends and however slowly it reads.
//!
//! Real TCP on 127.0.0.1; every wait is bounded by a watchdog, and no
//! test has a timing threshold.

use std::io::Write;
use std::time::{Duration, Instant};

mod support;

/// README: on SIGTERM the server "answers every request it has received,
/// then exits". A pipelining client that has more requests on the way
/// (still in its own send queue at the stop: not received, rightly not
/// answered) and reads the answers at a moderate pace (~1.3 MB/s) gets
/// them all. It lost most of them: once a connection had handed its last
/// answer to the kernel it lingered only 100 ms, then closed with unread
/// bytes in its receive queue; the kernel answered that with a reset and
/// threw away the answers still in its send queue.
#[test]
fn sigterm_answers_every_received_request_to_a_slow_reader() {
    // A reader that is not slow by any measure: ~1.3 MB/s.
    sigterm_with_a_reader_pausing(Duration::from_millis(50));
}

/// The same with a reader that reads at full speed (64 KiB reads, no
/// pause): it lost answers in about 2 runs of 3.
#[test]
fn sigterm_answers_every_received_request_to_a_full_speed_reader() {
    sigterm_with_a_reader_pausing(Duration::ZERO);
}

fn sigterm_with_a_reader_pausing(pace: Duration) {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut server = support::Server::start(&["--write-timeout", "0"]);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_nonblocking(true).unwrap();
    let batch = b"hello\n".repeat(1000);
    let (mut sent, mut idle) = (0usize, 0);
    // Pipeline without reading until nothing moves for 1 s: the server
    // has stopped reading (its answers fill every buffer on the way).
    while idle < 20 {
        // (From where the last write stopped: only whole lines go out.)
        match s.write(&batch[sent % 6..]) {
            Ok(n) => {
                sent += n;
                idle = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                idle += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    let mut outq: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) on our own socket, into a c_int.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut outq) };
    assert_eq!(rc, 0);
    // Bytes the server's kernel had taken before the stop (it reads no
    // more meanwhile): whole requests, all owed an answer.
    let received = sent - outq as usize;
    let owed = received / 6;
    assert!(
        outq > 0,
        "the test needs requests still on their way at the stop"
    );
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break "EOF".to_string(),
            Ok(n) => got += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) => break e.to_string(),
        }
        assert!(start.elapsed() < Duration::from_secs(60), "watchdog");
        std::thread::sleep(pace);
    };
    let status = server.wait_exit(30);
    assert!(
        got >= owed,
        "{got} answers of {owed} owed (requests received before SIGTERM); the stream \
         ended with: {end}; server exit status {status:?}"
    );
}

/// `LineProto`: "A line over the limit ... gets one error line and the
/// connection is closed". A pipelining client that sends a big batch, one
/// over-long line, and more requests after it (which rightly go
/// unanswered), reading at ~1.3 MB/s, gets every answer to the requests
/// before the bad line, and the error line. It got a fraction of them and
/// no error line: the connection lingered at most 1 s / 256 KiB after its
/// last answer was handed to the kernel, then closed with the peer's bytes
/// unread, and the kernel's reset discarded its send queue.
#[test]
fn an_over_long_line_after_a_big_batch_still_gets_every_earlier_answer_and_the_error() {
    use std::io::Read;
    let server = support::Server::start(&["--write-timeout", "0"]);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    let n = 500_000;
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut first = b"hello\n".repeat(n);
        first.extend_from_slice(&[b'x'; 9000]);
        first.push(b'\n');
        if w.write_all(&first).is_err() {
            return;
        }
        // More requests after the bad one: never answered, and that is fine.
        let more = b"hello\n".repeat(10_000);
        for _ in 0..200 {
            if w.write_all(&more).is_err() {
                return;
            }
        }
    });
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break "EOF".to_string(),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => break e.to_string(),
        }
        assert!(start.elapsed() < Duration::from_secs(60), "watchdog");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = s.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    let answers = got
        .split(|&b| b == b'\n')
        .filter(|l| *l == b"world")
        .count();
    let error = got.ends_with(b"error: line too long\n");
    assert!(
        answers == n && error,
        "{answers} of {n} answers, error line: {error}; the stream ended with: {end}"
    );
}
