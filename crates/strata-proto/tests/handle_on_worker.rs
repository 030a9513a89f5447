//! A `ServerHandle` dropped on one of its own workers when no thread can
//! be started. Runs itself as a child process (it limits the address
//! space); waits are hang guards only.

mod support;

use std::io::{self, Read, Write};
use std::process::Stdio;
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
