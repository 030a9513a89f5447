//! `line-client` in a process where signals arrive all the time: a
//! profiler (perf, gperftools with SIGPROF timers, async-profiler) installs
//! a handler WITHOUT `SA_RESTART`, so the client's blocking system calls
//! fail with `EINTR`. The client must neither give up on its input, nor
//! lose its `--timeout` (a silent or stalled server must still be given up
//! on).
//!
//! The handler comes from a small shared object built here with `cc` and
//! loaded with `LD_PRELOAD`: its constructor installs a no-op SIGUSR2
//! handler without `SA_RESTART` and starts a thread that sends SIGUSR2 to
//! every other thread of the process every 200 µs. Waits are watchdogs
//! against hangs, not performance bounds. Linux only.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod support;

use support::{CLIENT, Server, output_within};

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void noop(int sig) { (void)sig; }

static void *bombard(void *arg) {
    (void)arg;
    pid_t pid = getpid();
    pid_t me = (pid_t)syscall(SYS_gettid);
    struct timespec gap = {0, 200000};
    for (;;) {
        DIR *d = opendir("/proc/self/task");
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                pid_t tid = (pid_t)atoi(e->d_name);
                if (tid > 0 && tid != me) syscall(SYS_tgkill, pid, tid, SIGUSR2);
            }
            closedir(d);
        }
        nanosleep(&gap, NULL);
    }
    return NULL;
}

__attribute__((constructor)) static void start(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = noop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART */
    sigaction(SIGUSR2, &sa, NULL);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&t, &attr, bombard, NULL);
}
"#;

/// The shim, built once per test binary.
fn shim() -> &'static PathBuf {
    static SHIM_SO: OnceLock<PathBuf> = OnceLock::new();
    SHIM_SO.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("line-eintr-shim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("shim.c");
        let so = dir.join("shim.so");
        std::fs::write(&src, SHIM).unwrap();
        let st = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&so)
            .arg(&src)
            .arg("-lpthread")
            .status()
            .expect("cc runs");
        assert!(st.success(), "building the signal shim failed");
        so
    })
}

fn client(args: &[&str]) -> Command {
    let mut cmd = Command::new(CLIENT);
    // `LINE_EINTR_CONTROL` set: the same runs without the shim (a control).
    if std::env::var_os("LINE_EINTR_CONTROL").is_none() {
        cmd.env("LD_PRELOAD", shim());
    }
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Requests typed slowly on stdin: the writer thread blocks in `read(0)`
/// between lines, and an interrupted read must be retried, not taken for
/// an unreadable stdin.
#[test]
fn line_client_under_signals_reads_all_of_a_slow_stdin() {
    let server = Server::start(&[]);
    let mut child = client(&["--addr", &server.addr.to_string(), "--timeout", "10s"])
        .spawn()
        .expect("line-client starts");
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(20));
            if input.write_all(b"hello\n").is_err() {
                return;
            }
        }
    });
    let out = output_within(child, 60);
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "world\n".repeat(20));
}

/// A server that takes the request and never answers: `--timeout 1s`
/// must still end the client (exit 1) although each blocking `recv` with
/// `SO_RCVTIMEO` is interrupted long before the timeout.
#[test]
fn line_client_under_signals_still_gives_up_on_a_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // Take the request, answer nothing, keep the connection open.
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf);
        let _ = stopped.recv();
        drop(conn);
    });
    let mut child = client(&["--addr", &addr.to_string(), "--timeout", "1s", "hello"])
        .spawn()
        .expect("line-client starts");
    drop(child.stdin.take());
    let start = Instant::now();
    // Hang guard: 20 timeouts.
    let out = output_within(child, 20);
    let took = start.elapsed();
    let _ = stop.send(());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the client did not give up on a silent server within {took:?} with --timeout 1s \
         (status {:?}: killed by the watchdog?); stderr: {stderr}",
        out.status
    );
    server.join().unwrap();
}

/// A server that never reads: the writer's `send` with `SO_SNDTIMEO` is
/// interrupted over and over; `--timeout 1s` must still end the client.
#[test]
fn line_client_under_signals_still_gives_up_on_a_server_that_never_reads() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let _ = stopped.recv();
        drop(conn);
    });
    let mut child = client(&["--addr", &addr.to_string(), "--timeout", "1s"])
        .spawn()
        .expect("line-client starts");
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let line = vec![b'x'; 64 << 20];
        let _ = input.write_all(&line);
    });
    let start = Instant::now();
    let out = output_within(child, 20);
    let took = start.elapsed();
    let _ = stop.send(());
    feeder.join().unwrap();
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the client did not give up on a server that never reads within {took:?} with \
         --timeout 1s (status {:?}); stderr: {stderr}",
        out.status
    );
}

/// The same shim in `line-server`: many pipelined requests over several
/// connections, every answer checked.
#[test]
fn line_server_under_signals_answers_every_pipelined_request() {
    let server = Server::start_env_os(&[], &[("LD_PRELOAD", shim().as_os_str())]);
    let conns: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut w = s.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    for _ in 0..5000 {
                        w.write_all(b"hello\n").unwrap();
                    }
                });
                let want = "world\n".repeat(5000);
                let mut got = vec![0u8; want.len()];
                s.read_exact(&mut got).unwrap();
                writer.join().unwrap();
                assert_eq!(String::from_utf8_lossy(&got), want);
            })
        })
        .collect();
    for c in conns {
        c.join().unwrap();
    }
}
