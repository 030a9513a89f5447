//! `TcpServer` in a process whose threads are signalled all the time by a
//! handler installed WITHOUT `SA_RESTART` (a profiler's SIGPROF, say). The
//! test runs in a child process (the handler is process-wide) with a thread
//! that sends SIGUSR2 to every other thread every 50 µs: pipelined requests
//! over many connections, every answer checked, timed requests (no
//! spurious read or idle timeout), then a graceful shutdown with requests
//! in flight. Waits are hang guards only. Linux only.
#![cfg(target_os = "linux")]

mod support;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::child::{Watchdog, is_child, spawn_self};
use support::*;

extern "C" fn noop(_: libc::c_int) {}

fn storm() -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    // SAFETY: a zeroed sigaction is valid; the handler does nothing.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = noop as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = 0;
        assert_eq!(libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()), 0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || {
        // SAFETY: getpid/gettid have no preconditions.
        let (pid, me) = unsafe { (libc::getpid(), libc::gettid()) };
        let mut sent = 0u64;
        while !s.load(Ordering::Relaxed) {
            for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let tid: libc::pid_t = t.file_name().to_str().unwrap().parse().unwrap();
                if tid != me {
                    // SAFETY: tgkill at a thread of this process with a
                    // handler installed.
                    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR2) };
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        sent
    });
    (stop, t)
}

fn serve_under_storm() {
    let (stop, bomber) = storm();
    let mut fx = Fixture::start(
        2,
        1000,
        cfg()
            .read_timeout(Some(Duration::from_secs(20)))
            .idle_timeout(Some(Duration::from_secs(20))),
    );
    let addr = fx.addr();
    let clients: Vec<_> = (0..32)
        .map(|c| {
            std::thread::spawn(move || {
                let mut cl = Client::connect(addr);
                for round in 0..40 {
                    let reqs: Vec<String> = (0..50)
                        .map(|i| {
                            if i % 10 == 0 {
                                format!("sleep 1 c{c}r{round}i{i}")
                            } else {
                                format!("echo c{c}r{round}i{i}")
                            }
                        })
                        .collect();
                    let refs: Vec<&str> = reqs.iter().map(String::as_str).collect();
                    cl.send(&refs);
                    for i in 0..50 {
                        assert_eq!(
                            cl.recv().as_deref(),
                            Some(format!("c{c}r{round}i{i}").as_str()),
                            "conn {c} round {round} request {i}"
                        );
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // Graceful shutdown with requests in flight: each is answered.
    let mut slow: Vec<_> = (0..8)
        .map(|c| {
            let mut cl = Client::connect(addr);
            cl.send(&[&format!("sleep 200 s{c}")]);
            cl
        })
        .collect();
    // Let the requests reach the service.
    std::thread::sleep(Duration::from_millis(50));
    let clean = fx.server.take().unwrap().shutdown();
    for (c, cl) in slow.iter_mut().enumerate() {
        assert_eq!(cl.recv().as_deref(), Some(format!("s{c}").as_str()));
        assert_eq!(cl.recv(), None);
    }
    assert!(clean, "the graceful shutdown did not finish cleanly");
    stop.store(true, Ordering::Relaxed);
    eprintln!("storm: {} signals sent", bomber.join().unwrap());
}

#[test]
fn tcp_server_under_a_signal_storm_answers_everything_and_shuts_down() {
    const NAME: &str = "tcp_server_under_a_signal_storm_answers_everything_and_shuts_down";
    if is_child() {
        serve_under_storm();
        return;
    }
    let child = spawn_self(NAME, Stdio::piped());
    let dog = Watchdog::new(&child, Duration::from_secs(240));
    let out = child.wait_with_output().unwrap();
    dog.done();
    assert!(
        out.status.success(),
        "child failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
