//! A migrating tokio user's UDP request/response: a server that drops
//! some first attempts (simulated loss), clients that retry with
//! timeouts, over connected and unconnected sockets.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use strata::rt::net::UdpSocket;
use strata::rt::sync::Mutex;
use strata::rt::time::timeout;

/// Server: answers "req <client> <n>" with "res <client> <n> <n*n>"; the
/// first copy of every third request is dropped.
async fn server(sock: UdpSocket) {
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut buf = vec![0u8; 2048];
    loop {
        let (len, from) = sock.recv_from(&mut buf).await.unwrap();
        let msg = std::str::from_utf8(&buf[..len]).unwrap().to_string();
        let parts: Vec<&str> = msg.split(' ').collect();
        assert_eq!(parts[0], "req");
        let n: u64 = parts[2].parse().unwrap();
        if n.is_multiple_of(3) && seen.lock().await.insert(msg.clone()) {
            continue; // "lost"
        }
        let reply = format!("res {} {} {}", parts[1], n, n * n);
        sock.send_to(reply.as_bytes(), from).await.unwrap();
    }
}

async fn call_connected(sock: &UdpSocket, client: &str, n: u64) -> (String, u32) {
    let req = format!("req {client} {n}");
    let mut buf = [0u8; 2048];
    for attempt in 0..20 {
        sock.send(req.as_bytes()).await.unwrap();
        loop {
            match timeout(Duration::from_millis(50), sock.recv(&mut buf)).await {
                Err(_) => break, // retry
                Ok(Ok(len)) => {
                    let s = std::str::from_utf8(&buf[..len]).unwrap().to_string();
                    // a late answer to an earlier request: skip it
                    if s.starts_with(&format!("res {client} {n} ")) {
                        return (s, attempt);
                    }
                }
                Ok(Err(e)) => panic!("recv: {e}"),
            }
        }
    }
    panic!("no answer to {req}");
}

async fn call_unconnected(
    sock: &UdpSocket,
    to: std::net::SocketAddr,
    client: &str,
    n: u64,
) -> (String, u32) {
    let req = format!("req {client} {n}");
    let mut buf = [0u8; 2048];
    for attempt in 0..20 {
        sock.send_to(req.as_bytes(), to).await.unwrap();
        loop {
            match timeout(Duration::from_millis(50), sock.recv_from(&mut buf)).await {
                Err(_) => break,
                Ok(Ok((len, from))) => {
                    assert_eq!(from, to);
                    let s = std::str::from_utf8(&buf[..len]).unwrap().to_string();
                    if s.starts_with(&format!("res {client} {n} ")) {
                        return (s, attempt);
                    }
                }
                Ok(Err(e)) => panic!("recv_from: {e}"),
            }
        }
    }
    panic!("no answer to {req}");
}

#[test]
fn udp_request_response_with_retries() {
    let rt = strata::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = srv.local_addr().unwrap();
        strata::spawn(server(srv));
        let r = timeout(Duration::from_secs(60), async move {
            let mut tasks = Vec::new();
            for c in 0..4 {
                tasks.push(strata::spawn(async move {
                    let name = format!("c{c}");
                    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                    let connected = c % 2 == 0;
                    if connected {
                        sock.connect(addr).unwrap();
                        assert_eq!(sock.peer_addr().unwrap(), addr);
                    }
                    let mut retried = 0;
                    for n in 0..60u64 {
                        let (ans, attempts) = if connected {
                            call_connected(&sock, &name, n).await
                        } else {
                            call_unconnected(&sock, addr, &name, n).await
                        };
                        assert_eq!(ans, format!("res {name} {n} {}", n * n));
                        if n % 3 == 0 {
                            assert!(attempts >= 1, "dropped request answered at once");
                            retried += 1;
                        }
                    }
                    assert_eq!(retried, 20);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await;
        assert!(r.is_ok(), "udp test hung");
    });
}

#[test]
fn connected_udp_to_closed_port_reports_refused() {
    // tokio: a connected socket's recv reports ECONNREFUSED once the ICMP
    // port-unreachable comes back. A retry loop relies on it to stop.
    strata::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap()
        .block_on(async {
            let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
            let dead_addr = dead.local_addr().unwrap();
            drop(dead);
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(dead_addr).unwrap();
            sock.send(b"hello?").await.unwrap();
            let mut buf = [0u8; 64];
            let r = timeout(Duration::from_secs(10), sock.recv(&mut buf)).await;
            match r {
                Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
                other => panic!("expected ConnectionRefused, got {other:?}"),
            }
        });
}

#[test]
fn udp_datagram_boundaries_and_truncation() {
    strata::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap()
        .block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let ba = b.local_addr().unwrap();
            for len in [0usize, 1, 100, 1400, 8000, 60_000] {
                let d: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                a.send_to(&d, ba).await.unwrap();
            }
            let mut buf = vec![0u8; 65536];
            for len in [0usize, 1, 100, 1400, 8000, 60_000] {
                let (n, _) = timeout(Duration::from_secs(10), b.recv_from(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(n, len);
                assert!(
                    buf[..n]
                        .iter()
                        .enumerate()
                        .all(|(i, &x)| x == (i * 7 + len) as u8)
                );
            }
            // a short buffer truncates
            a.send_to(&[9u8; 100], ba).await.unwrap();
            let mut small = [0u8; 10];
            let (n, _) = timeout(Duration::from_secs(10), b.recv_from(&mut small))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((n, small), (10, [9u8; 10]));
        });
}
