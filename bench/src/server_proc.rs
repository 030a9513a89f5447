//! Running a benchmark server as a child process and reading its CPU use.
//!
//! The benchmark binaries re-execute themselves with a `serve ...`
//! argument; the child prints `listening <addr>` once bound, and the parent
//! reads the child's CPU time from `/proc/<pid>/stat`.

use std::io::{self, BufRead, BufReader};
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
    /// `taskset`-like affinity, and waits (at most [`BANNER_WAIT`]) for its
    /// `listening` line. A child that cannot pin itself exits with an error
    /// rather than serve unpinned; one that is not to be pinned is not, even
    /// if the driver's own environment asks for it. A child that does not
    /// come up is killed, and the child dies with the driver (Linux's
    /// parent-death signal), so that no server outlives a failed start or
    /// a driver stopped by a signal.
    pub fn start(args: &[String], cpu: Option<usize>) -> std::io::Result<ServerProc> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match cpu {
            Some(cpu) => cmd.env(PIN_VAR, cpu.to_string()),
            None => cmd.env_remove(PIN_VAR),
        };
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        match read_banner(stdout) {
            Ok(addr) => Ok(ServerProc { child, addr }),
            Err(e) => {
                let _ = child.kill();
                let status = child.wait()?;
                Err(io::Error::other(format!(
                    "{e} (the server: {status}; its error, if any, is above)"
                )))
            }
        }
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

/// How long a server child may take to print its `listening` line.
pub const BANNER_WAIT: Duration = Duration::from_secs(60);

/// Reads the child's `listening <addr>` line on a thread of its own, so
/// that a child that hangs before listening cannot block the driver.
fn read_banner(stdout: std::process::ChildStdout) -> io::Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let line = match rx.recv_timeout(BANNER_WAIT) {
        Ok(read) => read?,
        Err(_) => {
            return Err(io::Error::other(format!(
                "the server did not listen within {BANNER_WAIT:?}"
            )));
        }
    };
    if line.is_empty() {
        return Err(io::Error::other("the server exited before listening"));
    }
    line.trim()
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad server banner {line:?}")))
}

/// Has the child killed when the driver dies (Linux's `PR_SET_PDEATHSIG`).
/// The signal follows the thread that spawned the child: start servers
/// from a thread that outlives them (the drivers use their main thread).
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and calls
    // only prctl(2), which is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

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

/// The environment variable that asks a server child to pin itself.
const PIN_VAR: &str = "STRATA_BENCH_PIN_CPU";

/// Pins the calling thread to the CPU that `STRATA_BENCH_PIN_CPU` names,
/// if it is set (the parent sets it for server children). Threads spawned
/// afterwards inherit the mask.
///
/// # Errors
///
/// A value that is not a CPU number, or a failed `sched_setaffinity`: a
/// child asked to pin must not run unpinned under a pinned label.
pub fn pin_from_env() -> io::Result<()> {
    match pin_request(std::env::var(PIN_VAR).ok().as_deref())? {
        Some(cpu) => pin_to(cpu),
        None => Ok(()),
    }
}

/// The CPU a `STRATA_BENCH_PIN_CPU` value asks for.
fn pin_request(value: Option<&str>) -> io::Result<Option<usize>> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{PIN_VAR}={v:?} is not a CPU number"),
                )
            })
        })
        .transpose()
}

/// The CPUs the calling thread may run on (`sched_getaffinity`), in
/// increasing order. Called before any pinning, that is the process's
/// own mask, which may be any subset of the machine's CPUs (`taskset`,
/// cgroups), not necessarily `0..cores`.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero `cpu_set_t` is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and passed with its exact size; 0 means
    // the calling thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, inside the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Where the pinned layout puts the server and the load generator: the
/// first and the last of the `allowed` CPUs, or why it cannot (fewer than
/// two CPUs allowed).
pub fn pin_plan(allowed: &[usize]) -> Result<(usize, usize), String> {
    match allowed {
        [server, .., client] => Ok((*server, *client)),
        _ => Err(format!(
            "{} CPU allowed ({:?}), two needed",
            allowed.len(),
            allowed
        )),
    }
}

/// Sets up the pinned layout: pins the calling thread (the load
/// generator) to the client CPU of [`pin_plan`] and returns (server CPU,
/// client CPU); or says why it could not (fewer than two CPUs allowed, or
/// `sched_setaffinity` failed), in which case nothing was pinned.
pub fn pin_layout(allowed: &[usize]) -> Result<(usize, usize), String> {
    let (server, client) = pin_plan(allowed)?;
    pin_to(client).map_err(|e| e.to_string())?;
    Ok((server, client))
}

/// Pins the calling thread (and threads it spawns later) to one CPU.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    set_affinity(&[cpu])
}

/// Lets the calling thread (and threads it spawns later) run on `cpus`,
/// for instance the [`allowed_cpus`] read before pinning, to undo it.
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: an all-zero `cpu_set_t` is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is beyond the affinity mask"),
            ));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE, inside the set.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a plain bitmask passed with its exact size; 0 means
    // the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("sched_setaffinity to CPUs {cpus:?}: {e}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_uses_the_allowed_cpus_or_says_why_not() {
        assert_eq!(pin_plan(&[0, 1]), Ok((0, 1)));
        assert_eq!(pin_plan(&[2, 5, 7]), Ok((2, 7)));
        let why = pin_plan(&[3]).unwrap_err();
        assert!(why.contains("1 CPU allowed ([3])"), "{why}");
        assert!(pin_plan(&[]).is_err());
    }

    #[test]
    fn pin_requests() {
        assert_eq!(pin_request(None).unwrap(), None);
        assert_eq!(pin_request(Some("3")).unwrap(), Some(3));
        assert!(pin_request(Some("last")).is_err());
    }

    #[test]
    fn pinning_a_thread_narrows_its_mask_and_can_be_undone() {
        // On a thread of its own, so the test harness's threads keep
        // their masks.
        std::thread::spawn(|| {
            let allowed = allowed_cpus().expect("sched_getaffinity");
            assert!(!allowed.is_empty());
            let cpu = *allowed.last().unwrap();
            pin_to(cpu).expect("pin to an allowed CPU");
            assert_eq!(allowed_cpus().unwrap(), [cpu]);
            set_affinity(&allowed).expect("restore");
            assert_eq!(allowed_cpus().unwrap(), allowed);
            assert!(pin_to(libc::CPU_SETSIZE as usize).is_err());
        })
        .join()
        .unwrap();
    }
}
