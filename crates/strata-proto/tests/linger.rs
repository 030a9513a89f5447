//! A connection the server closed lingers until its peer has taken the
//! last responses: a peer that pauses, then sends again, still gets them;
//! a peer that floods without reading is read at a bounded pace. Real TCP
//! on 127.0.0.1; the bounds are hang guards and byte counts, not
//! performance bounds.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// Reads until the end of the stream or an error (5 s read timeout).
fn read_all(c: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e)),
        }
    }
}

fn cfg5() -> strata_proto::ConnectionConfig {
    cfg()
        .idle_timeout(None)
        .read_timeout(None)
        .write_timeout(Some(Duration::from_secs(5)))
}

/// Graceful stop: a pipelining client that is busy for 200 ms (neither
/// reading nor sending), then sends its next request and reads, gets
/// every answer to the 1000 requests the server received before the stop.
/// (A linger that let a peer quiet for 50 ms go closed the socket; the
/// request that came after was answered with a reset, which destroyed
/// the answers still queued.)
#[test]
fn graceful_stop_client_pausing_then_sending_gets_its_answers() {
    deadline(60, || {
        let server = one_worker()
            .connection_config(cfg5())
            .shutdown_timeout(Duration::from_secs(10))
            .start(|| Ok(Echo))
            .unwrap();
        let mut c = small_window_client(server.local_addr());
        let batch = echo_batch(1000, false);
        c.write_all(batch.as_bytes()).unwrap();
        eventually(10, "the connection opened", || server.connections() == 1);
        std::thread::sleep(Duration::from_millis(300));
        let stopper = std::thread::spawn(move || server.shutdown());
        std::thread::sleep(Duration::from_millis(200));
        // The client's next request (it does not know of the stop).
        c.write_all(b"next\n").unwrap();
        let (got, err) = read_all(&mut c);
        assert!(stopper.join().unwrap());
        assert_eq!(
            got.len(),
            batch.len(),
            "answers owed lost: got {} of {} bytes, error {err:?}",
            got.len(),
            batch.len()
        );
    });
}

/// After a bad request: the same client, pausing 300 ms, then sending.
#[test]
fn bad_request_client_pausing_then_sending_gets_its_answers() {
    deadline(60, || {
        let server = one_worker()
            .connection_config(cfg5())
            .start(|| Ok(Echo))
            .unwrap();
        let mut c = small_window_client(server.local_addr());
        let batch = echo_batch(1000, false);
        let mut sent = batch.clone();
        sent.push_str(&"y".repeat(100));
        sent.push('\n');
        c.write_all(sent.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        c.write_all(b"next\n").unwrap();
        let (got, err) = read_all(&mut c);
        assert!(
            got.len() > batch.len() && got.starts_with(batch.as_bytes()),
            "answers owed lost: got {} of {}+ bytes, error {err:?}",
            got.len(),
            batch.len()
        );
        assert!(server.shutdown());
    });
}

/// After a bad request, a peer that never reads floods: the lingering
/// connection reads it at a bounded pace (it read and dropped 4.6 GB in
/// 3 s at a core's full speed, for the whole 60 s without a write
/// timeout). The bound is on bytes (about 2.5 MB/s plus the sockets'
/// buffers), far from either.
#[test]
fn a_lingering_connection_drains_a_flooder_at_a_bounded_pace() {
    deadline(60, || {
        let server = one_worker()
            .connection_config(
                cfg()
                    .idle_timeout(None)
                    .read_timeout(None)
                    .write_timeout(None),
            )
            .start(|| Ok(Echo))
            .unwrap();
        let mut hog = small_window_client(server.local_addr());
        let batch = echo_batch(1000, true);
        hog.write_all(batch.as_bytes()).unwrap();
        eventually(10, "the server closed the connection", || {
            server.connections() == 0
        });
        hog.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let chunk = vec![b'z'; 65536];
        let t = Instant::now();
        let mut sent = 0usize;
        while t.elapsed() < Duration::from_secs(3) {
            match hog.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        let el = t.elapsed();
        drop(hog);
        assert!(
            sent < 32 << 20,
            "the lingering socket drained {sent} bytes in {el:?}"
        );
        drop(server);
    });
}

/// After a bad request, a client with default buffers that reads its
/// answers slowly (about 32 KB/s, sending nothing for 3 s), then sends
/// its next request, gets every answer owed. Its kernel reopens its
/// window only every 64 KiB or so, so the server's queue stood still for
/// over a second at a time: a linger that let a peer go after a second
/// without it sending or the queue shrinking closed the socket, and the
/// next request's reset destroyed about 825 KB of answers.
#[test]
fn default_buffers_client_reading_slowly_then_sending_gets_its_answers() {
    deadline(60, || {
        let server = one_worker()
            .connection_config(
                cfg()
                    .idle_timeout(None)
                    .read_timeout(None)
                    .write_timeout(Some(Duration::from_secs(5))),
            )
            .start(|| Ok(Echo))
            .unwrap();
        let mut c = TcpStream::connect(server.local_addr()).unwrap();
        let batch = echo_batch(20000, false);
        let mut sent = batch.clone();
        sent.push_str(&"y".repeat(100));
        sent.push('\n');
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || w.write_all(sent.as_bytes()).unwrap());
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Reads fast while it writes, then waits until the server closed.
        while !writer.is_finished() {
            let n = c.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        writer.join().unwrap();
        eventually(10, "the server closed the connection", || {
            server.connections() == 0
        });
        // Reads its answers all along, ~32 KB/s, for 3 s; sends nothing.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
            std::thread::sleep(Duration::from_millis(125));
        }
        let at_send = got.len();
        c.write_all(b"next\n").unwrap();
        let err = loop {
            match c.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e),
            }
        };
        assert!(
            got.len() > batch.len() && got.starts_with(batch.as_bytes()),
            "answers owed lost: got {} of {}+ bytes ({at_send} before the next request), error {err:?}",
            got.len(),
            batch.len()
        );
        assert!(server.shutdown());
    });
}

/// The write timeout of the two tests below.
const W: Duration = Duration::from_secs(3);

/// A server with write timeout `w` whose connections buffer up to 16 MiB
/// of answers, and a connected client with a tiny window that never reads.
fn non_reader_server(w: Duration) -> (strata_proto::ServerHandle, TcpStream) {
    let server = one_worker()
        .connection_config(
            cfg()
                .idle_timeout(None)
                .read_timeout(None)
                .write_timeout(Some(w))
                .write_high_water_mark(16 << 20),
        )
        .shutdown_timeout(Duration::from_secs(30))
        .start(|| Ok(Echo))
        .unwrap();
    let hog = small_window_client(server.local_addr());
    (server, hog)
}

/// After a bad request, answers that do not all fit in the kernel's send
/// queue and a peer that never reads: the connection's write timeout (W)
/// fires with answers still in its buffer. The connection is let go then
/// (1 to 1.25 W after the last progress); it lingered for another W
/// (about 2.3 W in all). The bound, 5/3 W, is between the two.
#[test]
fn a_connection_ended_by_its_write_timeout_does_not_linger_another_write_timeout() {
    deadline(60, || {
        let (server, mut hog) = non_reader_server(W);
        let batch = echo_batch(40000, true);
        hog.write_all(batch.as_bytes()).unwrap();
        // The peer never reads from here on: no progress after this.
        let t0 = Instant::now();
        eventually(20, "the server closed the connection", || {
            server.connections() == 0
        });
        let slot_freed = t0.elapsed();
        assert!(server.shutdown());
        let done = t0.elapsed();
        assert!(
            done < W * 5 / 3,
            "let go {done:?} after the last progress (write timeout {W:?}; slot freed at {slot_freed:?})"
        );
        drop(hog);
    });
}

/// The same at a graceful stop: a peer that never reads, answers larger
/// than the kernel's send queue. The stop takes about one write timeout
/// (the connection ends on it), not two.
#[test]
fn a_graceful_stop_with_a_non_reader_takes_one_write_timeout_not_two() {
    deadline(60, || {
        let (server, mut hog) = non_reader_server(W);
        let batch = echo_batch(40000, false);
        hog.write_all(batch.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(server.connections(), 1);
        let t0 = Instant::now();
        assert!(server.shutdown());
        let done = t0.elapsed();
        assert!(
            done < W * 5 / 3,
            "the stop took {done:?} (write timeout {W:?})"
        );
        drop(hog);
    });
}

/// At most `max_connections` closed connections linger; beyond that one
/// closes at once. With one allowed and one lingering (its peer takes
/// none of its answers), a second connection closed for bad input does
/// not linger: the data its peer sends after the close is answered with a
/// reset, which throws away the answers still queued for it (a lingering
/// connection would have read and dropped that data, and its peer would
/// have got every answer, then the end of the stream).
#[test]
fn past_the_lingering_bound_a_closed_connection_closes_at_once() {
    deadline(60, || {
        let server = one_worker()
            .max_connections(1)
            .connection_config(
                cfg()
                    .idle_timeout(None)
                    .read_timeout(None)
                    .write_timeout(Some(Duration::from_secs(3600))),
            )
            .shutdown_timeout(Duration::from_millis(100))
            .start(|| Ok(Echo))
            .unwrap();
        let batch = echo_batch(1000, true);
        // The first lingers: it never reads its answers.
        let mut first = small_window_client(server.local_addr());
        first.write_all(batch.as_bytes()).unwrap();
        eventually(20, "the first connection opened and closed", || {
            !read_nothing_yet(&first) && server.connections() == 0
        });
        let mut second = small_window_client(server.local_addr());
        second.write_all(batch.as_bytes()).unwrap();
        eventually(20, "the second connection opened and closed", || {
            !read_nothing_yet(&second) && server.connections() == 0
        });
        // Data after the close, for a socket no longer read.
        let _ = second.write_all(b"echo more\n");
        let (got, err) = read_all(&mut second);
        let answers = batch.len() - 101 + "error: ".len();
        assert!(
            got.len() < answers,
            "the second connection lingered: its peer got all {} bytes (error {err:?})",
            got.len()
        );
        drop(first);
        server.shutdown();
    });
}

/// Whether nothing has arrived on `c` yet (without taking it).
fn read_nothing_yet(c: &TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let nothing = matches!(c.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    c.set_nonblocking(false).unwrap();
    nothing
}
