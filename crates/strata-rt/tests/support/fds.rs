//! Descriptor helpers for tests: the open descriptors, the ones without
//! close-on-exec, and a descriptor table filled up to a lowered limit.
//! Linux only (`/proc/self/fd`). strata-proto's tests include this file
//! too.

use std::collections::BTreeSet;

/// The open descriptors of this process.
pub fn open_fds() -> BTreeSet<i32> {
    let names: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names
        .into_iter()
        .filter_map(|n| n.parse().ok())
        // SAFETY: F_GETFD reads a flag; drops the directory's own fd,
        // closed by now.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .collect()
}

pub fn describe(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The descriptors opened since `before` that lack `FD_CLOEXEC`.
pub fn without_cloexec(before: &BTreeSet<i32>) -> Vec<String> {
    open_fds()
        .difference(before)
        .filter(|&&fd| {
            // SAFETY: F_GETFD reads a flag of an fd number.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            flags >= 0 && flags & libc::FD_CLOEXEC == 0
        })
        .map(|&fd| format!("{fd} -> {}", describe(fd)))
        .collect()
}

/// What `/proc/self/fd` holds in a program this process execs.
pub fn fds_seen_by_exec() -> BTreeSet<String> {
    let out = std::process::Command::new("ls")
        .arg("-1")
        .arg("/proc/self/fd")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Sets the soft open-files limit to `n`; returns the one it replaced.
pub fn set_soft_nofile(n: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let old = lim.rlim_cur;
    lim.rlim_cur = n as libc::rlim_t;
    // SAFETY: lowers/raises this (child) process's soft limit below its hard one.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    old
}

/// Descriptors held to exhaust the table: every fd number below the soft
/// limit is in use while this lives. Dropping entries frees them.
pub struct Exhausted(Vec<std::fs::File>, u64);

impl Exhausted {
    /// Lowers the soft limit to a little above the highest open fd and
    /// fills every free number with `/dev/null`.
    pub fn now() -> Exhausted {
        let top = *open_fds().iter().max().unwrap() as u64;
        let old = set_soft_nofile(top + 16);
        let mut held = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => held.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                    break;
                }
            }
        }
        Exhausted(held, old)
    }

    /// Frees `n` descriptors.
    pub fn free(&mut self, n: usize) {
        for _ in 0..n {
            self.0.pop();
        }
    }
}

impl Drop for Exhausted {
    fn drop(&mut self) {
        self.0.clear();
        set_soft_nofile(self.1);
    }
}

/// The descriptors opened since `before` and still open, described.
pub fn opened_since(before: &BTreeSet<i32>) -> Vec<String> {
    open_fds()
        .difference(before)
        .map(|&fd| format!("{fd} -> {}", describe(fd)))
        .collect()
}
