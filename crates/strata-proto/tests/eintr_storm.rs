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
use std::time::Duration;

use support::child::{Watchdog, is_child, spawn_self};
use support::*;

#[path = "../../strata-rt/tests/support/storm.rs"]
#[allow(unreachable_pub)]
mod storm;
use storm::Storm;

fn serve_under_storm() {
    let storm = Storm::start();
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
    drop(storm);
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
