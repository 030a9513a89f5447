//! The HTTP/1.1 subset of `http/mod.rs`: its codec alone, then served by
//! `TcpServer` and driven by a hand-written client over 127.0.0.1.
//!
//! No test bounds how long anything takes: the client's 10 s read timeout
//! and `wait_until`'s guard only keep a hang from lasting forever.

mod http;

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use http::*;
use strata_codec::{Decoder, Encoder};
use strata_proto::ConnectionConfig;

const GUARD: Duration = Duration::from_secs(10);

/// A pipeline of requests of every kind this subset decodes.
fn pipeline() -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(get("/hello"));
    bytes.extend(request(
        "POST",
        "/echo",
        &[],
        b"a body\r\n\r\nwith blank lines",
    ));
    bytes.extend(b"\r\n"); // an empty line between requests is ignored
    bytes.extend(request("POST", "/echo", &[("X-Empty", "")], b""));
    bytes.extend(b"GET /hits HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    bytes.extend(get("/nope"));
    bytes
}

fn decode_all(codec: &mut HttpCodec, buf: &mut BytesMut) -> Vec<Request> {
    let mut out = Vec::new();
    while let Some(r) = codec.decode(buf).unwrap() {
        out.push(r);
    }
    out
}

// ------------------------------------------------------------ the codec alone

#[test]
fn decoder_takes_requests_split_at_every_byte() {
    let bytes = pipeline();
    let whole = decode_all(&mut HttpCodec::default(), &mut BytesMut::from(&bytes[..]));
    assert_eq!(whole.len(), 5);
    assert_eq!(&whole[1].body[..], b"a body\r\n\r\nwith blank lines");
    assert_eq!(whole[2].header("x-empty"), Some(&b""[..]));
    assert_eq!(whole[3].version, Version::Http10);
    assert!(whole[3].keep_alive);
    for cut in 0..=bytes.len() {
        let mut codec = HttpCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in [&bytes[..cut], &bytes[cut..]] {
            buf.extend_from_slice(part);
            out.extend(decode_all(&mut codec, &mut buf));
        }
        assert_eq!(out, whole, "cut at {cut}");
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }
}

#[test]
fn decoder_one_byte_at_a_time() {
    let bytes = pipeline();
    let mut codec = HttpCodec::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for b in &bytes {
        buf.extend_from_slice(&[*b]);
        out.extend(decode_all(&mut codec, &mut buf));
    }
    assert_eq!(out.len(), 5);
}

#[test]
fn decoder_refuses_bad_input_with_the_right_status() {
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400), // no Host
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), 400),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx".to_vec(),
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"
                .to_vec(),
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            501,
        ),
        // Declared too large: refused from the head, no byte of it sent.
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n".to_vec(),
            413,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
                "a".repeat(MAX_HEAD)
            )
            .into_bytes(),
            431,
        ),
        // Not even a whole head within the bound.
        (vec![b'a'; MAX_HEAD], 431),
        (
            {
                let mut r = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
                for i in 0..100 {
                    r.extend(format!("X-{i}: y\r\n").as_bytes());
                }
                r.extend(b"\r\n");
                r
            },
            431,
        ),
    ];
    for (bytes, status) in cases {
        let mut buf = BytesMut::from(&bytes[..]);
        let err = HttpCodec::default().decode(&mut buf).unwrap_err();
        assert_eq!(err.status(), status, "{}: {err}", bytes.escape_ascii());
    }
    // The same bytes, one at a time, fail the same way (the bounds hold
    // while the head arrives).
    let mut codec = HttpCodec::default();
    let mut buf = BytesMut::new();
    let mut failed = None;
    for (i, b) in vec![b'a'; MAX_HEAD + 10].into_iter().enumerate() {
        buf.extend_from_slice(&[b]);
        if let Err(e) = codec.decode(&mut buf) {
            failed = Some((i, e));
            break;
        }
    }
    let (at, err) = failed.expect("refused");
    // (`a` is a token byte: a method that has not ended yet.)
    assert_eq!((at, err.status()), (MAX_HEAD - 1, 431));
}

#[test]
fn encoder_writes_a_response_and_is_all_or_nothing() {
    let mut codec = HttpCodec::default().without_date();
    let mut buf = BytesMut::new();
    codec
        .encode(
            Response::new(200, "world").header("Content-Type", "text/plain"),
            &mut buf,
        )
        .unwrap();
    assert_eq!(
        &buf[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nworld"
    );
    let before = buf.clone();
    for bad in [
        Response::new(200, "").header("X", "a\r\nInjected: yes"),
        Response::new(200, "").header("Bad Name", "x"),
        Response::new(200, "").header("Content-Length", "3"),
        Response::new(42, ""),
    ] {
        assert!(codec.encode(bad, &mut buf).is_err());
        assert_eq!(buf, before);
    }
    let mut closing = Response::new(404, "");
    closing.conn = Conn::Close;
    buf.clear();
    codec.encode(closing, &mut buf).unwrap();
    assert_eq!(
        &buf[..],
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn date_is_imf_fixdate() {
    let t = UNIX_EPOCH_PLUS(784_111_777); // RFC 9110's own example
    assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(
        http_date(UNIX_EPOCH_PLUS(951_782_400)),
        "Tue, 29 Feb 2000 00:00:00 GMT"
    );
}

#[allow(non_snake_case)]
fn UNIX_EPOCH_PLUS(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

// ------------------------------------------------------------ over TCP

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let (server, router) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    c.send(&get("/hello"));
    let r = c.response();
    assert_eq!((r.status, r.text()), (200, "world"));
    assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(r.header("connection"), None);
    c.send(&request("POST", "/echo", &[], b"ping"));
    assert_eq!(c.response().text(), "ping");
    c.send(&get("/missing"));
    assert_eq!(c.response().status, 404);
    c.send(&get("/hits"));
    assert_eq!(c.response().text(), "4");
    // The counter is shared: another connection sees the first one's hits.
    let mut other = Client::connect(server.local_addr());
    other.send(&get("/hits"));
    assert_eq!(other.response().text(), "5");
    assert_eq!(router.hits.load(Ordering::SeqCst), 5);
    assert!(server.shutdown());
}

#[test]
fn pipelined_batch_is_answered_in_order() {
    let (server, _) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend(request("POST", "/echo", &[], format!("n{i}").as_bytes()));
    }
    // A slow one in the middle holds back those behind it, not their order.
    batch.extend(get("/slow/50"));
    batch.extend(get("/hello"));
    c.send(&batch);
    for i in 0..20 {
        assert_eq!(c.response().text(), format!("n{i}"));
    }
    assert_eq!(c.response().text(), "slept 50");
    assert_eq!(c.response().text(), "world");
    // And the connection is still open.
    c.send(&get("/hits"));
    assert_eq!(c.response().text(), "23");
    assert!(server.shutdown());
}

#[test]
fn request_and_body_sent_one_byte_per_write() {
    let (server, _) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let body: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut bytes = request("POST", "/echo", &[("X-Trace", "1")], &body);
    bytes.extend(get("/hello"));
    for b in &bytes {
        c.send(&[*b]);
        std::thread::sleep(Duration::from_micros(300));
    }
    assert_eq!(c.response().body, body);
    assert_eq!(c.response().text(), "world");
    assert!(server.shutdown());
}

#[test]
fn large_body_within_the_bound_in_many_writes() {
    let (server, _) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let body = vec![b'x'; MAX_BODY];
    let bytes = request("POST", "/echo", &[], &body);
    let writer = {
        let mut s = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for chunk in bytes.chunks(7001) {
                s.write_all(chunk).unwrap();
            }
        })
    };
    let r = c.response();
    writer.join().unwrap();
    assert_eq!((r.status, r.body.len()), (200, MAX_BODY));
    assert!(server.shutdown());
}

#[test]
fn oversize_head_gets_431_then_close() {
    let (server, router) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    c.send(&get("/hello"));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "c".repeat(16 * 1024)
    );
    c.send(big.as_bytes());
    let (got, end) = c.read_to_close();
    end.expect("a clean close, not a reset");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].text(), "world");
    assert_eq!(got[1].status, 431);
    assert_eq!(got[1].header("connection"), Some("close"));
    assert_eq!(router.hits.load(Ordering::SeqCst), 1);
    drop(c);
    assert!(server.shutdown());
}

#[test]
fn oversize_body_declared_gets_413_before_its_bytes() {
    let (server, router) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    // The body is never sent and the client keeps the connection open:
    // the answer must not wait for it.
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, 413);
    assert_eq!(router.hits.load(Ordering::SeqCst), 0);
    drop(c);
    assert!(server.shutdown());
}

#[test]
fn oversize_body_sent_anyway_still_reads_413() {
    let (server, _) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let bytes = request("POST", "/echo", &[], &vec![b'x'; 2 * MAX_BODY]);
    // A client that writes its whole body while it reads (as curl does);
    // its writes fail once the server has let go.
    let writer = {
        let mut s = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = s.write_all(&bytes);
        })
    };
    let r = c.response();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    writer.join().unwrap();
    assert!(server.shutdown());
}

#[test]
fn malformed_request_mid_pipeline_earlier_answers_then_400_then_close() {
    let (server, router) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let mut bytes = get("/hello");
    bytes.extend(request("POST", "/echo", &[], b"one"));
    bytes.extend(b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n");
    bytes.extend(get("/hello")); // never run
    c.send(&bytes);
    let (got, end) = c.read_to_close();
    end.expect("a clean close, not a reset");
    let statuses: Vec<u16> = got.iter().map(|g| g.status).collect();
    assert_eq!(statuses, [200, 200, 400]);
    assert_eq!(got[1].text(), "one");
    assert_eq!(router.hits.load(Ordering::SeqCst), 2);
    drop(c);
    assert!(server.shutdown());
}

#[test]
fn chunked_request_is_refused_with_501() {
    let (server, router) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, 501);
    assert_eq!(router.hits.load(Ordering::SeqCst), 0);
    drop(c);
    assert!(server.shutdown());
}

#[test]
fn connection_close_is_answered_then_closed() {
    let (server, router) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let mut bytes = get("/hello");
    bytes.extend(request("GET", "/hello", &[("Connection", "Close")], b""));
    bytes.extend(get("/hello")); // after the close: never run
    c.send(&bytes);
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("connection"), None);
    assert_eq!(got[1].header("connection"), Some("close"));
    assert_eq!(got[1].text(), "world");
    assert_eq!(router.hits.load(Ordering::SeqCst), 2);
    drop(c);
    assert!(server.shutdown());
}

#[test]
fn http10_closes_unless_keep_alive() {
    let (server, _) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /hello HTTP/1.0\r\n\r\n");
    let (got, end) = c.read_to_close();
    drop(c);
    end.expect("a clean close");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text(), "world");
    assert_eq!(got[0].header("connection"), Some("close"));

    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(c.response().text(), "hi");
    c.send(b"GET /hello HTTP/1.0\r\n\r\n");
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    assert_eq!(got.len(), 1);
    drop(c);
    assert!(server.shutdown());
}

#[test]
fn client_vanishing_mid_body_frees_its_connection() {
    let (server, router) = start(Options::default());
    // Closed (FIN) with half a body sent.
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..");
    assert!(wait_until(GUARD, || server.connections() == 1));
    drop(c);
    assert!(wait_until(GUARD, || server.connections() == 0));
    // Reset (SO_LINGER 0) with half a body sent.
    let c = Client::connect(server.local_addr());
    let mut s = &c.stream;
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..")
        .unwrap();
    assert!(wait_until(GUARD, || server.connections() == 1));
    socket2::SockRef::from(&c.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    assert!(wait_until(GUARD, || server.connections() == 0));
    assert_eq!(router.hits.load(Ordering::SeqCst), 0);
    // The server carries on.
    let mut c = Client::connect(server.local_addr());
    c.send(&get("/hello"));
    assert_eq!(c.response().text(), "world");
    assert!(server.shutdown());
}

#[test]
fn half_close_mid_body_is_answered_400() {
    let (server, _) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let mut bytes = get("/hello");
    bytes.extend(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\ncut");
    c.send(&bytes);
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    let statuses: Vec<u16> = got.iter().map(|g| g.status).collect();
    assert_eq!(statuses, [200, 400]);
    assert!(got[1].text().contains("stream ended"), "{}", got[1].text());
    drop(c);
    assert!(server.shutdown());
}

#[test]
fn slow_client_within_the_timeouts_is_served() {
    let config = ConnectionConfig::default()
        .read_timeout(Some(Duration::from_secs(5)))
        .idle_timeout(Some(Duration::from_secs(5)));
    let (server, _) = start(Options {
        config,
        ..Options::default()
    });
    let mut c = Client::connect(server.local_addr());
    let bytes = request("POST", "/echo", &[], b"slowly but surely");
    for chunk in bytes.chunks(bytes.len() / 8 + 1) {
        c.send(chunk);
        std::thread::sleep(Duration::from_millis(60));
    }
    assert_eq!(c.response().text(), "slowly but surely");
    // Idle a while (under the idle timeout), then another request.
    std::thread::sleep(Duration::from_millis(300));
    c.send(&get("/hello"));
    assert_eq!(c.response().text(), "world");
    assert!(server.shutdown());
}

#[test]
fn handler_panic_caught_is_a_500_and_the_connection_carries_on() {
    let (server, _) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let mut bytes = get("/hello");
    bytes.extend(get("/panic"));
    bytes.extend(get("/fail"));
    bytes.extend(get("/hello"));
    c.send(&bytes);
    let statuses: Vec<u16> = (0..4).map(|_| c.response().status).collect();
    assert_eq!(statuses, [200, 500, 500, 200]);
    assert!(server.shutdown());
}

#[test]
fn handler_panic_uncaught_closes_its_connection_only() {
    let (server, _) = start(Options {
        catch_panic: false,
        ..Options::default()
    });
    let mut bystander = Client::connect(server.local_addr());
    bystander.send(&get("/hello"));
    assert_eq!(bystander.response().text(), "world");
    let mut c = Client::connect(server.local_addr());
    let mut bytes = get("/hello");
    bytes.extend(get("/panic"));
    bytes.extend(get("/hello"));
    c.send(&bytes);
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    // The answer before the panic, then nothing: no 500 can be sent.
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text(), "world");
    // The other connection, and new ones, carry on.
    bystander.send(&get("/hello"));
    assert_eq!(bystander.response().text(), "world");
    let mut fresh = Client::connect(server.local_addr());
    fresh.send(&get("/hello"));
    assert_eq!(fresh.response().text(), "world");
    drop(bystander);
    drop(c);
    drop(fresh);
    assert!(server.shutdown());
}

#[test]
fn graceful_shutdown_answers_every_request_in_flight() {
    let (server, router) = start(Options::default());
    let addr = server.local_addr();
    // Four connections with one slow request each, one with a pipelined
    // batch of three, and one idle.
    let mut clients: Vec<(Client, usize)> = (0..4)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.send(&get("/slow/1500"));
            (c, 1)
        })
        .collect();
    let mut piped = Client::connect(addr);
    // (Long enough that the stop is seen before the last answer is
    // ready, whatever else the machine is doing.)
    let mut batch = get("/slow/1000");
    batch.extend(request("POST", "/echo", &[], b"behind"));
    batch.extend(get("/slow/500"));
    piped.send(&batch);
    clients.push((piped, 3));
    let mut idle = Client::connect(addr);
    // Every request has reached its handler.
    assert!(wait_until(GUARD, || router.hits.load(Ordering::SeqCst) == 7));
    let stopper = std::thread::spawn(move || server.shutdown());
    for (c, n) in &mut clients {
        let (got, end) = c.read_to_close();
        end.expect("a clean close");
        assert_eq!(got.len(), *n);
        assert!(got.iter().all(|g| g.status == 200), "{got:?}");
        // The last answer before the stop's close says so; the ones
        // before it, in a pipelined batch, do not.
        assert_eq!(got.last().unwrap().header("connection"), Some("close"));
        for g in &got[..got.len() - 1] {
            assert_eq!(g.header("connection"), None);
        }
    }
    let (got, end) = idle.read_to_close();
    assert!(got.is_empty());
    end.expect("the idle connection closes cleanly");
    assert!(stopper.join().unwrap(), "every connection finished in time");
    // New connections are refused.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn expect_100_continue_gets_no_interim_response() {
    // Friction, not a defect: nothing in `ServerProto` or the codec can
    // write a `100 Continue` before the request is whole, so a client
    // that waits for it waits (curl: one second) and then sends anyway.
    let (server, _) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    c.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut one = [0u8; 1];
    let err = c.stream.read(&mut one).unwrap_err();
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    c.stream.set_read_timeout(Some(GUARD)).unwrap();
    c.send(b"hello");
    assert_eq!(c.response().text(), "hello");
    assert!(server.shutdown());
}

/// With a `read_timeout_response`, the connection still ends with
/// `ConnectionError::ReadTimeout` (for the server's log), after the 408.
#[test]
fn a_read_timeout_answered_still_ends_as_a_read_timeout() {
    use strata_proto::pipeline::{ConnectionError, serve_connection};
    let config = ConnectionConfig::default().read_timeout(Some(Duration::from_millis(100)));
    let (result, got) = strata_rt::run(async move {
        let listener = strata_rt::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            s.set_read_timeout(Some(GUARD)).unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got
        });
        let (conn, _) = listener.accept().await.unwrap();
        let never = strata_service::service_fn(|_: Request| async move {
            Ok::<_, std::io::Error>(Response::new(200, "unreachable"))
        });
        let proto = HttpProto::default();
        let result = serve_connection(conn, &proto, never, &config, std::future::pending()).await;
        (result, client.join().unwrap())
    });
    assert!(
        matches!(result, Err(ConnectionError::ReadTimeout { .. })),
        "{result:?}"
    );
    let (answer, _) = parse_response(&got).expect("one whole response");
    assert_eq!(answer.status, 408);
}

/// A request not whole within the read timeout gets the protocol's
/// `read_timeout_response`, a 408 saying `Connection: close`, and the
/// connection then closes cleanly (no reset).
#[test]
fn read_timeout_answers_408_then_closes() {
    let config = ConnectionConfig::default().read_timeout(Some(Duration::from_millis(200)));
    let (server, _) = start(Options {
        config,
        ..Options::default()
    });
    let mut c = Client::connect(server.local_addr());
    c.send(b"GET /hello HTTP/1.1\r\nHost:");
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].status, 408);
    assert_eq!(got[0].header("connection"), Some("close"));
    drop(c);
    assert!(server.shutdown());
}

#[test]
fn pipeline_deeper_than_max_in_flight_is_answered_in_order() {
    let (server, _) = start(Options {
        config: ConnectionConfig::default().max_in_flight(4),
        ..Options::default()
    });
    let mut c = Client::connect(server.local_addr());
    let mut batch = Vec::new();
    for i in 0..200 {
        if i % 50 == 7 {
            batch.extend(get("/slow/20"));
        } else {
            batch.extend(request("POST", "/echo", &[], format!("n{i}").as_bytes()));
        }
    }
    c.send(&batch);
    for i in 0..200 {
        let want = if i % 50 == 7 {
            "slept 20".to_string()
        } else {
            format!("n{i}")
        };
        assert_eq!(c.response().text(), want);
    }
    assert!(server.shutdown());
}

#[test]
fn connection_close_then_garbage_answers_only_the_close() {
    let (server, _) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let mut bytes = request("GET", "/slow/50", &[("Connection", "close")], b"");
    bytes.extend(b"NOT HTTP AT ALL\r\n\r\n");
    c.send(&bytes);
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].text(), "slept 50");
    drop(c);
    assert!(server.shutdown());
}

#[test]
fn graceful_shutdown_with_a_request_half_received() {
    let (server, router) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    c.send(&get("/slow/200"));
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf");
    assert!(wait_until(GUARD, || router.hits.load(Ordering::SeqCst) == 1));
    let stopper = std::thread::spawn(move || server.shutdown());
    let (got, end) = c.read_to_close();
    eprintln!("got {got:?} end {end:?}");
    assert!(stopper.join().unwrap());
}

#[test]
fn graceful_shutdown_answers_a_deep_pipeline_and_large_responses() {
    let (server, router) = start(Options {
        config: ConnectionConfig::default().max_in_flight(4),
        ..Options::default()
    });
    let addr = server.local_addr();
    let mut deep = Client::connect(addr);
    let mut batch = get("/slow/500");
    for i in 0..199 {
        batch.extend(request("POST", "/echo", &[], format!("n{i}").as_bytes()));
    }
    deep.send(&batch);
    // The deep pipeline holds 4 in flight behind its slow first request.
    assert!(wait_until(GUARD, || router.hits.load(Ordering::SeqCst) == 4));
    // Large requests, written while the client does not read: backpressure
    // (the first 512 KiB answer fills the socket) stops the server from
    // reading the others, so only some are whole when the stop comes.
    let mut big = Client::connect(addr);
    let body = vec![b'z'; 512 * 1024];
    let mut batch = Vec::new();
    for _ in 0..4 {
        batch.extend(request("POST", "/echo", &[], &body));
    }
    let writer = {
        let mut s = big.stream.try_clone().unwrap();
        // Fails once the server closes (after the stop) with some unread.
        std::thread::spawn(move || s.write_all(&batch).is_ok())
    };
    // At least the first big request reached its handler (the deep
    // pipeline is still held by its slow request).
    assert!(wait_until(GUARD, || router.hits.load(Ordering::SeqCst) >= 5));
    let stopper = std::thread::spawn(move || server.shutdown());
    let (got, end) = deep.read_to_close();
    end.expect("a clean close");
    assert_eq!(got.len(), 200);
    for (i, g) in got[1..].iter().enumerate() {
        assert_eq!(g.text(), format!("n{i}"));
    }
    let (got, end) = big.read_to_close();
    let wrote_all = writer.join().unwrap();
    eprintln!(
        "big: {} answers, end {end:?}, wrote all {wrote_all}",
        got.len()
    );
    assert!(!got.is_empty());
    assert!(got.iter().all(|g| g.body == body));
    assert!(stopper.join().unwrap());
}

/// RFC 9112 9.6: after a request with `Connection: close` the server
/// "MUST NOT process any further requests received on that connection".
/// With `ServerProto::last_request`, the POST pipelined behind a slow
/// closing request is never read, let alone run (`closes_after` alone,
/// which sees the response, would let it start while the GET sleeps).
#[test]
fn requests_after_connection_close_are_not_run() {
    let (server, router) = start(Options::default());
    let mut c = Client::connect(server.local_addr());
    let mut bytes = request("GET", "/slow/100", &[("Connection", "close")], b"");
    bytes.extend(request("POST", "/echo", &[], b"must not run"));
    c.send(&bytes);
    let (got, end) = c.read_to_close();
    end.expect("a clean close");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text(), "slept 100");
    assert_eq!(router.hits.load(Ordering::SeqCst), 1);
    drop(c);
    assert!(server.shutdown());
}

// ------------------------------------------- a decoder that holds its frame

/// A codec in the shape a chunked-body decoder takes: it moves the bytes
/// of the frame in progress out of the read buffer into its own state as
/// they arrive (`Decoder`'s contract allows it: "a decoder may keep
/// private state between calls ... but it must not consume bytes it still
/// needs"), and says so in `in_frame`. Frames: `N:` then N bytes.
#[derive(Default)]
struct Accumulating {
    want: Option<usize>,
    body: Vec<u8>,
}

impl Decoder for Accumulating {
    type Item = Vec<u8>;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<u8>>, std::io::Error> {
        let want = match self.want {
            Some(n) => n,
            None => {
                let Some(colon) = src.iter().position(|&b| b == b':') else {
                    return Ok(None);
                };
                let n = std::str::from_utf8(&src[..colon])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| std::io::Error::other("bad length"))?;
                bytes::Buf::advance(src, colon + 1);
                self.want = Some(n);
                n
            }
        };
        let take = (want - self.body.len()).min(src.len());
        self.body.extend_from_slice(&src.split_to(take));
        if self.body.len() < want {
            return Ok(None);
        }
        self.want = None;
        Ok(Some(std::mem::take(&mut self.body)))
    }

    fn in_frame(&self, src: &BytesMut) -> bool {
        self.want.is_some() || !src.is_empty()
    }
}

impl Encoder<Vec<u8>> for Accumulating {
    type Error = std::io::Error;
    fn encode(&mut self, item: Vec<u8>, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

struct AccProto;

impl strata_proto::pipeline::ServerProto for AccProto {
    type Request = Vec<u8>;
    type Response = Vec<u8>;
    type Codec = Accumulating;
    fn codec(&self) -> Accumulating {
        Accumulating::default()
    }
}

/// `ConnectionConfig::read_timeout` (the slowloris defence) runs while
/// the codec says a request has started (`Decoder::in_frame`), buffered
/// or not: a peer that stalls mid-frame hits it, not the longer idle
/// timeout, with a decoder that holds the frame in progress itself.
#[test]
fn read_timeout_sees_a_frame_held_by_the_decoder() {
    use strata_proto::pipeline::{ConnectionError, serve_connection};
    let config = ConnectionConfig::default()
        .read_timeout(Some(Duration::from_millis(100)))
        .idle_timeout(Some(Duration::from_secs(3)));
    let result = strata_rt::run(async move {
        let listener = strata_rt::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            // A frame of 10 bytes, 3 sent, then a stall (until the server
            // closes; the read timeout is the hang guard).
            s.write_all(b"10:abc").unwrap();
            s.set_read_timeout(Some(GUARD)).unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        });
        let (conn, _) = listener.accept().await.unwrap();
        let echo =
            strata_service::service_fn(|v: Vec<u8>| async move { Ok::<_, std::io::Error>(v) });
        let result = serve_connection(conn, &AccProto, echo, &config, std::future::pending()).await;
        client.join().unwrap();
        result
    });
    assert!(
        matches!(result, Err(ConnectionError::ReadTimeout { .. })),
        "a peer stalled mid-frame should hit the read timeout, got {result:?}"
    );
}
