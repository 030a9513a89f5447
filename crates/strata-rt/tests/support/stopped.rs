//! Waiting for a process stopped by SIGSTOP to be stopped indeed (the
//! signal is asynchronous). Linux only (`/proc`). The line server's tests
//! include this file too.

use std::time::Duration;

/// Whether every thread of process `pid` is stopped (state `T`).
pub fn stopped(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .all(|t| {
            let stat = std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap_or_default();
            // The state follows the command name's closing parenthesis.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        })
}

/// Waits until every thread of process `pid` has stopped.
pub fn wait_stopped(pid: u32) {
    while !stopped(pid) {
        std::thread::sleep(Duration::from_millis(1));
    }
}
