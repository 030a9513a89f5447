//! What the end-to-end tests share: the real `line-server` as a child
//! process with its log, and child processes under a watchdog.
//!
//! Waits here are watchdogs against hangs, never performance bounds.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const SERVER: &str = env!("CARGO_BIN_EXE_line-server");
pub const CLIENT: &str = env!("CARGO_BIN_EXE_line-client");

/// A running `line-server`; killed when dropped.
#[path = "../../../../crates/strata-rt/tests/support/stopped.rs"]
mod stopped;

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its stderr, line by line, after the "listening" line.
    pub log: mpsc::Receiver<String>,
    /// Its stderr up to and including the "listening" line.
    pub startup: Vec<String>,
}

impl Server {
    /// Starts a server on a free port with two threads and `extra` options.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_env(extra, &[])
    }

    /// [`start`](Self::start) with environment variables.
    pub fn start_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let env: Vec<_> = env
            .iter()
            .map(|&(k, v)| (k, std::ffi::OsStr::new(v)))
            .collect();
        Server::start_env_os(extra, &env)
    }

    /// [`start_env`](Self::start_env) with values that need not be UTF-8.
    pub fn start_env_os(extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Server {
        let child = Command::new(SERVER)
            .args(["--addr", "127.0.0.1:0", "--threads", "2"])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("line-server starts");
        Server::from_child(child)
    }

    /// Wraps a started server (stderr piped) and waits for its "listening"
    /// log line, which holds the address.
    pub fn from_child(mut child: Child) -> Server {
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut startup = Vec::new();
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("server logs that it listens");
            let addr = line
                .split("addr=")
                .nth(1)
                .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap());
            startup.push(line);
            if let Some(addr) = addr {
                break addr;
            }
        };
        Server {
            child,
            addr,
            log: rx,
            startup,
        }
    }

    /// A connection with a 20 s read timeout (a watchdog).
    pub fn stream(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with the pid of our own child and a valid signal.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
    }

    /// Sends SIGSTOP and waits until every thread of the server has
    /// stopped (state `T` in `/proc`).
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
        stopped::wait_stopped(self.child.id());
    }

    /// Waits for a log line containing `needle` (up to 30 s); the lines
    /// seen up to it.
    pub fn wait_log(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.log.recv_timeout(Duration::from_secs(30)) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    seen.push(l);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => panic!("no log line with {needle:?}; saw {seen:#?}"),
            }
        }
    }

    /// Waits for the process to exit, for at most `secs` seconds; `None`
    /// if it was still running (it is then killed).
    pub fn wait_exit(&mut self, secs: u64) -> Option<ExitStatus> {
        for _ in 0..secs * 20 {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// SIGTERM, then the exit status and every log line to the end.
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        let logs = self.log.iter().collect();
        (status, logs)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` (stdout/stderr as it was spawned with), killing it if
/// it runs for more than `secs` seconds (it then fails).
pub fn output_within(child: Child, secs: u64) -> Output {
    let pid = child.id() as libc::pid_t;
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(secs)).is_err() {
            // SAFETY: kill(2) with the pid of our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    out
}
