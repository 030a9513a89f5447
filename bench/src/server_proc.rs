//! Running a benchmark server as a child process and reading its CPU use.
//!
//! The benchmark binaries re-execute themselves with a `serve ...`
//! argument; the child prints `listening <addr>` once bound, and the parent
//! reads the child's CPU time from `/proc/<pid>/stat`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A server child process.
#[derive(Debug)]
pub struct ServerProc {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ServerProc {
    /// Starts `current_exe args...`, optionally pinned to `cpu` with
    /// `taskset`-like affinity, and waits for its `listening` line.
    pub fn start(args: &[String], cpu: Option<usize>) -> std::io::Result<ServerProc> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(cpu) = cpu {
            cmd.env("STRATA_BENCH_PIN_CPU", cpu.to_string());
        }
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad server banner {line:?}")))?;
        Ok(ServerProc { child, addr })
    }

    /// CPU time the child has used so far: (user, system).
    pub fn cpu(&self) -> (Duration, Duration) {
        proc_cpu(self.child.id()).unwrap_or_default()
    }

    /// Resident memory of the child in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_cpu(pid: u32) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let d = |t: u64| Duration::from_micros(t * 1_000_000 / tck);
    Some((d(utime), d(stime)))
}

/// Pins the calling thread to `cpu` if `STRATA_BENCH_PIN_CPU` (for server
/// children) or the given override asks for it. Threads spawned afterwards
/// inherit the mask.
pub fn pin_from_env() {
    if let Some(cpu) = std::env::var("STRATA_BENCH_PIN_CPU")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        pin_to(cpu);
    }
}

/// Pins the calling thread (and threads it spawns later) to one CPU.
pub fn pin_to(cpu: usize) {
    // SAFETY: `set` is a plain bitmask initialised by CPU_ZERO/CPU_SET and
    // passed with its exact size; 0 means the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("warning: could not pin to cpu {cpu}");
        }
    }
}
