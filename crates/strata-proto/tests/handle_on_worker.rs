//! A `TcpServer` started, and its `ServerHandle` dropped or shut down, on
//! a worker thread: from a task of another runtime (an application that
//! keeps its servers in async code), and on one of its own workers when
//! no thread can be started (run as a child process, which limits its
//! address space). Waits are hang guards only.

mod support;

use std::io::{self, Read, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_service::service_fn;
use support::child::{self, Watchdog};
use support::one_worker;

/// The child half of the next test: a handler drops its own server's
/// handle while no thread can be started (address space limited after the
/// server is up).
fn child_drop_handle_without_threads() {
    let slot: Arc<Mutex<Option<strata_proto::ServerHandle>>> = Arc::default();
    let slot2 = slot.clone();
    let server = one_worker()
        .shutdown_timeout(Duration::from_secs(2))
        .start(move || {
            let slot = slot2.clone();
            Ok(service_fn(move |req: String| {
                let slot = slot.clone();
                async move {
                    if req == "quit" {
                        let h = slot.lock().unwrap().take();
                        drop(h);
                    }
                    Ok::<_, io::Error>(format!("ok {req}"))
                }
            }))
        })
        .unwrap();
    let addr = server.local_addr();
    *slot.lock().unwrap() = Some(server);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Warm up (the worker's allocator arena exists before the limit).
    s.write_all(b"warm\n").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ok warm\n");
    // No room for another thread's stack from here on.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    let vm = pages * 4096;
    let lim = libc::rlimit {
        rlim_cur: vm + (1 << 20),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
    assert!(
        std::thread::Builder::new().spawn(|| {}).is_err(),
        "threads can still start; the test setup did not work"
    );
    s.write_all(b"quit\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    println!("CHILD-SURVIVED answer={:?}", String::from_utf8_lossy(&got));
}

/// `ServerHandle` dropped (or `shutdown`) on one of its own workers when
/// the helper thread cannot be spawned stops without waiting. (It used to
/// recurse through `Drop for ServerHandle` until the worker's stack
/// overflowed and the process aborted.)
#[test]
fn a_handle_dropped_on_its_worker_without_a_thread_does_not_abort() {
    if child::is_child() {
        child_drop_handle_without_threads();
        return;
    }
    let child = child::spawn_self(
        "a_handle_dropped_on_its_worker_without_a_thread_does_not_abort",
        Stdio::piped(),
    );
    let watchdog = Watchdog::new(&child, Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    watchdog.done();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("CHILD-SURVIVED"),
        "child died: {:?}\nstdout tail: {}\nstderr tail: {}",
        out.status,
        tail(&stdout),
        tail(&stderr)
    );
}

fn tail(s: &str) -> &str {
    &s[s.len().saturating_sub(1500)..]
}

/// Requests of a few bytes, each answered with 16 KiB: a few hundred
/// answers fill the socket buffers, so a client must keep reading.
struct Big;

impl strata_proto::pipeline::ServerProto for Big {
    type Request = bytes::BytesMut;
    type Response = bytes::Bytes;
    type Codec = strata_codec::LengthDelimitedCodec;
    fn codec(&self) -> strata_codec::LengthDelimitedCodec {
        strata_codec::LengthDelimitedCodec::new()
    }
}

const ANSWER: usize = 16 * 1024;

/// A server of [`Big`] answers on one worker, counting the requests its
/// service answered.
fn big_server(served: Arc<AtomicUsize>) -> strata_proto::ServerHandle {
    strata_proto::TcpServer::new(Big, "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .shutdown_timeout(Duration::from_secs(2))
        .start(move || {
            let served = served.clone();
            Ok(service_fn(move |_: bytes::BytesMut| {
                served.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, io::Error>(bytes::Bytes::from(vec![b'a'; ANSWER])) }
            }))
        })
        .unwrap()
}

/// On an application runtime of one worker: a client task sends 1,000
/// requests to `server` and reads every answer, while another task stops
/// the server with `stop` once ten answers came. Returns the answers the
/// client got.
fn stop_from_a_task<F>(
    server: strata_proto::ServerHandle,
    stop: impl FnOnce(strata_proto::ServerHandle) -> F + Send + 'static,
) -> usize
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    use futures_util::{SinkExt, StreamExt};
    let addr = server.local_addr();
    let app = strata_rt::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap();
    app.block_on(async move {
        let (ten, got_ten) = strata_rt::sync::oneshot::channel::<()>();
        let client = strata_rt::spawn(async move {
            let stream = strata_rt::net::TcpStream::connect(addr).await.unwrap();
            let framed =
                strata_codec::Framed::new(stream, strata_codec::LengthDelimitedCodec::new());
            let (mut sink, mut answers) = framed.split();
            let writer = strata_rt::spawn(async move {
                for _ in 0..1_000 {
                    if sink.feed(bytes::Bytes::from_static(b"req")).await.is_err() {
                        break;
                    }
                }
                let _ = sink.flush().await;
                sink
            });
            let (mut got, mut ten) = (0, Some(ten));
            while let Some(Ok(answer)) = answers.next().await {
                assert_eq!(answer.len(), ANSWER);
                got += 1;
                if got == 10 {
                    let _ = ten.take().unwrap().send(());
                }
            }
            let _ = writer.await;
            got
        });
        let stopper = strata_rt::spawn(async move {
            got_ten.await.unwrap();
            stop(server).await;
        });
        strata_rt::time::timeout(Duration::from_secs(60), async {
            stopper.await.unwrap();
            client.await.unwrap()
        })
        .await
        .expect("hang guard: the client or the stop never finished")
    })
}

/// A server's handle dropped in a task of another runtime (the end of a
/// scope in async code) does not block that task's worker through the
/// graceful drain: a client on the same worker goes on reading, and gets
/// every answer the service gave. (Blocked, the client could not read;
/// the drain ran into the shutdown timeout and dropped the connection
/// with hundreds of answers unsent.)
#[test]
fn a_handle_dropped_in_a_task_of_another_runtime_loses_no_answers() {
    let served = Arc::new(AtomicUsize::new(0));
    let server = big_server(served.clone());
    let got = stop_from_a_task(server, |server| async move { drop(server) });
    assert_eq!(
        got,
        served.load(Ordering::SeqCst),
        "answers the service gave that the client never got"
    );
}

/// `shutdown_async`, awaited in a task of another runtime, waits for the
/// graceful drain without blocking the worker, and reports that every
/// connection finished.
#[test]
fn shutdown_async_in_a_task_of_another_runtime_drains_and_reports() {
    let served = Arc::new(AtomicUsize::new(0));
    let server = big_server(served.clone());
    let finished = Arc::new(AtomicBool::new(false));
    let finished2 = finished.clone();
    let got = stop_from_a_task(server, move |server| async move {
        finished2.store(server.shutdown_async().await, Ordering::SeqCst);
    });
    assert_eq!(got, served.load(Ordering::SeqCst));
    assert!(
        finished.load(Ordering::SeqCst),
        "the drain did not finish in time"
    );
}

/// `start` called from a task (of the application's runtime) starts the
/// server: binding happens on the server's own worker, not in a
/// `block_on` on the caller's, which panicked there.
#[test]
fn a_server_started_from_a_task_serves() {
    use futures_util::{SinkExt, StreamExt};
    let app = strata_rt::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap();
    let got = app.block_on(async {
        let task = strata_rt::spawn(async {
            let server = one_worker()
                .start(|| Ok(support::Echo))
                .expect("start from a task");
            let stream = strata_rt::net::TcpStream::connect(server.local_addr())
                .await
                .unwrap();
            let mut lines = strata_codec::Framed::new(stream, strata_codec::LinesCodec::new());
            lines.send("hi".to_string()).await.unwrap();
            let got = lines.next().await.unwrap().unwrap();
            assert!(server.shutdown_async().await);
            got
        });
        strata_rt::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("hang guard")
    });
    assert_eq!(got.expect("the task panicked"), "hi");
}
