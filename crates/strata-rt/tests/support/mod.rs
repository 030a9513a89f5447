//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod cancel;
#[cfg(target_os = "linux")]
pub mod fds;
#[cfg(target_os = "linux")]
pub mod stopped;
#[cfg(target_os = "linux")]
pub mod storm;

use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails the test if it has not finished
/// within `secs`: a hang becomes a failure instead of a stuck CI run. The
/// bound is a generous deadlock detector, not a performance assertion.
///
/// Under Miri, which interprets every step, the bound is 30 times longer.
pub fn deadline<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let secs = if cfg!(miri) { secs * 30 } else { secs };
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            t.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // `f` panicked: surface its panic.
            std::panic::resume_unwind(t.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {secs} s"),
    }
}

/// `n` rounds of a stress loop natively, a fiftieth of them (at least two)
/// under Miri, where each round costs thousands of times more.
pub fn rounds(n: u64) -> u64 {
    if cfg!(miri) { (n / 50).max(2) } else { n }
}

/// A small deterministic PRNG (xorshift64*), enough to shuffle interleavings.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Raises the soft open-files limit towards `want` (capped by the hard
/// limit) and returns the resulting soft limit.
// `rlim_t` is `u64` on some targets and not on others.
#[allow(clippy::unnecessary_cast)]
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit` for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur as u64 >= want {
        return lim.rlim_cur as u64;
    }
    let target = (want as libc::rlim_t).min(lim.rlim_max);
    let new = libc::rlimit {
        rlim_cur: target,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `new` is a valid `rlimit` that only raises the soft limit up
    // to the hard limit, which an unprivileged process may do.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
        target as u64
    } else {
        lim.rlim_cur as u64
    }
}

/// Builds a runtime with `n` workers.
pub fn rt(n: usize) -> strata_rt::Runtime {
    strata_rt::Runtime::builder()
        .worker_threads(n)
        .build()
        .expect("runtime")
}

/// A minimal executor for a thread that is in no strata runtime (what
/// `futures::executor::block_on` does): polls `f`, parking between polls
/// until woken (or 50 ms, a guard against a lost wake-up hanging a test).
pub fn plain_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut f = std::pin::pin!(f);
    let w = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&w);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Writes `0x5a` bytes through `w` until a write would block and the
/// kernel's send queue (read through `unsent`) holds bytes; returns the
/// bytes written. The peer must not be reading.
pub async fn fill_send_queue<W: futures_util::io::AsyncWrite + Unpin>(
    w: &mut W,
    unsent: impl Fn(&W) -> usize,
) -> usize {
    use futures_util::FutureExt;
    use futures_util::io::AsyncWriteExt;
    let chunk = vec![0x5a; 64 * 1024];
    let mut written = 0;
    loop {
        // One poll: `None` means the write would block.
        match w.write(&chunk).now_or_never() {
            Some(n) => written += n.unwrap(),
            None if unsent(w) > 0 => return written,
            None => strata_rt::yield_now().await,
        }
    }
}

/// How many epoll instances of this process watch `fd` (from the `tfd:`
/// lines of `/proc/self/fdinfo`; an epoll whose fd was duplicated shows
/// up once per fd, with the same lines, and is counted once).
pub fn epolls_watching(fd: i32) -> usize {
    let mut epolls = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fdinfo").unwrap() {
        let Ok(info) = std::fs::read_to_string(entry.unwrap().path()) else {
            continue;
        };
        let watched: Vec<&str> = info.lines().filter(|l| l.starts_with("tfd:")).collect();
        let has_fd = watched.iter().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some("tfd:") && words.next() == Some(&fd.to_string())
        });
        if has_fd {
            epolls.insert(watched.join("\n"));
        }
    }
    epolls.len()
}

/// What a slow thread-local destructor left by [`leave_slow_tls`] says and
/// waits for.
#[derive(Default)]
pub struct SlowFlags {
    /// The destructor started.
    pub in_dtor: std::sync::atomic::AtomicBool,
    /// Lets the destructor finish.
    pub release: std::sync::atomic::AtomicBool,
    /// The destructor finished.
    pub done: std::sync::atomic::AtomicBool,
}

struct SlowTls(std::sync::Arc<SlowFlags>, Duration);

impl Drop for SlowTls {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.0.in_dtor.store(true, SeqCst);
        let until = std::time::Instant::now() + self.1;
        while !self.0.release.load(SeqCst) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.0.done.store(true, SeqCst);
    }
}

thread_local! {
    static SLOW: std::cell::RefCell<Option<SlowTls>> = const { std::cell::RefCell::new(None) };
}

/// Leaves on this thread a thread-local whose destructor, when the thread
/// exits, runs until `flags.release` is set (at most `cap`, a hang guard)
/// and then sets `flags.done`: a thread still exiting after its main
/// function returned.
pub fn leave_slow_tls(flags: std::sync::Arc<SlowFlags>, cap: Duration) {
    SLOW.with(|s| *s.borrow_mut() = Some(SlowTls(flags, cap)));
}

/// Waits (polling) until `flag` is set.
pub fn wait_for(flag: &std::sync::atomic::AtomicBool) {
    while !flag.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// In a future run by a runtime (in a child process: it lowers the
/// process's address-space limit): caps the address space just above what
/// the process uses, room for a little heap but not for a thread's stack
/// (2 MiB), so that the blocking pool cannot start its first thread;
/// spawns a blocking closure; restores the limit; gives the closure's
/// handle's result.
#[cfg(target_os = "linux")]
pub async fn spawn_blocking_with_no_room_for_a_thread() -> Result<i32, strata_rt::JoinError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `old` is a valid, writable `rlimit`.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut old) }, 0);
    let low = libc::rlimit {
        rlim_cur: (vm_kib + 1024) * 1024,
        rlim_max: old.rlim_max,
    };
    // SAFETY: lowers this (child) process's soft limit only.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &low) }, 0);
    let out = strata_rt::spawn_blocking(|| 1).await;
    // SAFETY: restores the soft limit, at most the unchanged hard one.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &old) }, 0);
    out
}

/// Runs test `name` of this binary alone in a child process, with `env`
/// set (which tells the test it is the child), and gives its output; if
/// it has not ended within `secs`, kills it and panics (a hang guard that
/// leaves no child behind, not a timing bound).
pub fn run_as_child(name: &str, env: &str, secs: u64) -> std::process::Output {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child running {name} did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// [`run_as_child`], then fails with the child's output unless its one
/// test ran and passed.
pub fn passes_in_child(name: &str, env: &str, secs: u64) {
    let out = run_as_child(name, env, secs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {name} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "the child did not run {name}");
}

/// Runs `body` in a task on a one-worker runtime, under a hang guard.
pub fn on_worker<F, Fut>(secs: u64, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    deadline(secs, move || {
        let rt = rt(1);
        rt.block_on(async move { strata_rt::spawn(body()).await.unwrap() });
    });
}
