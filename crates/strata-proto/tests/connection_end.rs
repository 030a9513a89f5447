//! How a connection ends: a graceful stop answers every complete request
//! received before it, including requests still in the kernel's buffer
//! that the worker has not yet heard about; a peer's reset ends it as a
//! disconnect.

mod support;

use std::future::poll_fn;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use strata_proto::pipeline::serve_connection;
use strata_service::service_fn;
use support::{TestProto, cfg, deadline};

/// A stop signal the test fires by hand.
#[derive(Default)]
struct Stop {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Stop {
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            if self.fired.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.fired.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[test]
fn a_stop_right_after_requests_arrive_still_answers_them() {
    deadline(30, || {
        let rt = strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        let answers = rt.block_on(async {
            strata_rt::spawn(async {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let mut client =
                    std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (accepted, _) = listener.accept().unwrap();
                accepted.set_nonblocking(true).unwrap();
                let server = strata_rt::net::TcpStream::from_std(accepted).unwrap();
                let stop = Arc::new(Stop::default());
                let stop2 = stop.clone();
                // The connection runs on this same worker.
                let conn = strata_rt::spawn_local(async move {
                    let echo =
                        service_fn(|req: String| async move { Ok::<_, std::io::Error>(req) });
                    serve_connection(server, &TestProto, echo, &cfg(), stop2.wait()).await
                });
                // Let the connection read to `WouldBlock` and wait.
                strata_rt::time::sleep(Duration::from_millis(50)).await;
                // On loopback the bytes are in the server socket's buffer
                // when `write` returns; the stop fires before this worker
                // polls for I/O again.
                client.write_all(b"one\ntwo\n").unwrap();
                stop.fire();
                conn.await.unwrap().unwrap();
                client
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut got = String::new();
                client.read_to_string(&mut got).unwrap();
                got
            })
            .await
            .unwrap()
        });
        assert_eq!(answers, "one\ntwo\n");
    });
}

/// A peer that resets the connection in the middle of a request: the
/// connection ends as a disconnect, not as a bad request.
#[test]
fn a_reset_mid_request_ends_as_a_disconnect() {
    deadline(30, || {
        let rt = strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        let ended = rt.block_on(async {
            strata_rt::spawn(async {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (accepted, _) = listener.accept().unwrap();
                accepted.set_nonblocking(true).unwrap();
                let server = strata_rt::net::TcpStream::from_std(accepted).unwrap();
                let echo = service_fn(|req: String| async move { Ok::<_, std::io::Error>(req) });
                let conn = strata_rt::spawn_local(async move {
                    serve_connection(server, &TestProto, echo, &cfg(), std::future::pending()).await
                });
                // Part of a request, then a reset (linger zero on close).
                let mut client = client;
                client.write_all(b"par").unwrap();
                socket2::SockRef::from(&client)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(client);
                conn.await.unwrap()
            })
            .await
            .unwrap()
        });
        match ended {
            Err(e) => assert!(e.is_disconnect(), "ended as {e:?}"),
            Ok(()) => panic!("a reset is not a clean close"),
        }
    });
}
