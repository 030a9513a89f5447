//! Tests that need a process of their own (a signal goes to the whole
//! process; an abort would take the test binary down): the test binary
//! runs itself again for one test, with `STRATA_TEST_CHILD` set, and a
//! watchdog kills the child if it hangs.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Whether this process is the child run of a test.
pub fn is_child() -> bool {
    std::env::var_os("STRATA_TEST_CHILD").is_some()
}

/// Runs the test named `test` (exactly) in a child process of this test
/// binary, its stdout piped and its stderr as `stderr` says.
pub fn spawn_self(test: &str, stderr: Stdio) -> Child {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("STRATA_TEST_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Kills a child with `SIGKILL` unless [`Watchdog::done`] comes within
/// its limit: a hang guard, not a timing check.
pub struct Watchdog {
    done: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Watchdog {
    /// Watches `child` for at most `limit`.
    pub fn new(child: &Child, limit: Duration) -> Self {
        let pid = child.id() as libc::pid_t;
        let (done, finished) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if finished.recv_timeout(limit).is_err() {
                // SAFETY: kill(2) takes no pointers. The pid is our
                // child's: tests reap it just before `done`, so it could be
                // stale only if the child ended within a hair of the limit
                // (far above what the tests take), too soon for reuse.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Watchdog { done, thread }
    }

    /// The child ended (call after reaping it): the watchdog stands down.
    pub fn done(self) {
        let _ = self.done.send(());
        self.thread.join().unwrap();
    }
}

/// Runs the test `name` in a child process (at most 120 s) and asserts
/// that it ran and passed, showing the child's output if not.
pub fn passes(name: &str) {
    let c = spawn_self(name, Stdio::piped());
    let dog = Watchdog::new(&c, Duration::from_secs(120));
    let out = c.wait_with_output().unwrap();
    dog.done();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {name} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "the child did not run {name}");
}
