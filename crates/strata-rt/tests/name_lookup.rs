//! Host names in socket addresses: on a worker, `TcpStream::connect` and
//! `UdpSocket::send_to` look a name up on the blocking pool, so the
//! worker's other tasks run meanwhile; an address, or a string that is
//! one, is never looked up.
//!
//! The pool is held busy by a closure (one blocking thread at most), so a
//! lookup that goes there waits for its release, and one made on the
//! worker does not.

mod support;

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use strata_rt::net::{TcpListener, TcpStream, UdpSocket};
use strata_rt::{Runtime, spawn, spawn_blocking};
use support::deadline;

/// One worker and at most one blocking thread.
fn one_worker_one_blocking_thread() -> Runtime {
    Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap()
}

/// Occupies the blocking pool's one thread until the sender is used or
/// dropped; the flag is set as the thread is let go.
fn hold_the_pool() -> (mpsc::Sender<()>, Arc<AtomicBool>) {
    let (tx, rx) = mpsc::channel::<()>();
    let released = Arc::new(AtomicBool::new(false));
    let flag = released.clone();
    let (started_tx, started_rx) = mpsc::channel();
    drop(spawn_blocking(move || {
        started_tx.send(()).unwrap();
        let _ = rx.recv();
        flag.store(true, Ordering::SeqCst);
    }));
    started_rx.recv().unwrap();
    (tx, released)
}

/// The first address "localhost" has here, so that a socket bound there
/// is what a lookup of "localhost" reaches first.
fn localhost_ip() -> std::net::IpAddr {
    ("localhost", 0)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap()
        .ip()
}

#[test]
fn connect_looks_a_name_up_on_the_blocking_pool() {
    deadline(30, || {
        let rt = one_worker_one_blocking_thread();
        rt.block_on(async {
            let listener = TcpListener::bind((localhost_ip(), 0)).unwrap();
            let port = listener.local_addr().unwrap().port();
            let (release, released) = hold_the_pool();
            let connect = spawn(async move {
                let stream = TcpStream::connect(format!("localhost:{port}")).await;
                (released.load(Ordering::SeqCst), stream)
            });
            // The worker runs other tasks while the lookup waits.
            assert_eq!(spawn(async { 7 }).await.unwrap(), 7);
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            release.send(()).unwrap();
            let (after_release, stream) = connect.await.unwrap();
            assert!(after_release, "the lookup ran before the pool was free");
            let (_, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, stream.unwrap().local_addr().unwrap());
        });
    });
}

#[test]
fn addresses_and_strings_that_are_addresses_are_not_looked_up() {
    deadline(30, || {
        let rt = one_worker_one_blocking_thread();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let (release, released) = hold_the_pool();
            let connects = spawn(async move {
                let by_string = TcpStream::connect(addr.to_string()).await.unwrap();
                let by_pair = TcpStream::connect(("127.0.0.1", addr.port()))
                    .await
                    .unwrap();
                let by_addr = TcpStream::connect(addr).await.unwrap();
                let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
                let sent = udp.send_to(b"x", addr.to_string()).await.unwrap();
                (sent, [by_string, by_pair, by_addr].len())
            });
            // With the pool held, a lookup would hang here.
            assert_eq!(connects.await.unwrap(), (1, 3));
            assert!(!released.load(Ordering::SeqCst));
            drop(release);
        });
    });
}

#[test]
fn send_to_a_name_looks_it_up_on_the_blocking_pool() {
    deadline(30, || {
        let rt = one_worker_one_blocking_thread();
        rt.block_on(async {
            let ip = localhost_ip();
            let to = UdpSocket::bind((ip, 0)).unwrap();
            let port = to.local_addr().unwrap().port();
            let from = UdpSocket::bind((ip, 0)).unwrap();
            let from_addr = from.local_addr().unwrap();
            let (release, released) = hold_the_pool();
            let send = spawn(async move {
                let n = from.send_to(b"ping", ("localhost", port)).await;
                (released.load(Ordering::SeqCst), n)
            });
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            release.send(()).unwrap();
            let (after_release, n) = send.await.unwrap();
            assert!(after_release, "the lookup ran before the pool was free");
            assert_eq!(n.unwrap(), 4);
            let mut buf = [0; 8];
            let (n, sender): (usize, SocketAddr) = to.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], sender), (&b"ping"[..], from_addr));
        });
    });
}

#[test]
fn a_name_without_a_port_is_an_invalid_input() {
    deadline(30, || {
        let rt = one_worker_one_blocking_thread();
        rt.block_on(async {
            let err = spawn(async { TcpStream::connect("localhost").await })
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        });
    });
}
