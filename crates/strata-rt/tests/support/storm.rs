//! A storm of signals: a no-op SIGUSR2 handler installed without
//! `SA_RESTART` (as a profiler's SIGPROF handler may be), and a thread
//! that sends SIGUSR2 to every other thread of the process every 50 µs, so
//! that blocking system calls fail with `EINTR`. Process-wide: run it in a
//! child process. Linux only. strata-proto's tests include this file too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

extern "C" fn noop(_: libc::c_int) {}

/// Installs the no-op SIGUSR2 handler (no `SA_RESTART`) and starts the
/// bombarding thread; stops it when dropped.
pub struct Storm(Arc<AtomicBool>, Option<std::thread::JoinHandle<u64>>);

impl Storm {
    pub fn start() -> Storm {
        // SAFETY: a zeroed sigaction is valid; the handler does nothing.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = noop as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = 0;
            assert_eq!(
                libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()),
                0
            );
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
        Storm(stop, Some(t))
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        let sent = self.1.take().unwrap().join().unwrap();
        eprintln!("storm: {sent} signals sent");
    }
}
