//! Signals raised at our own process. Every test installs its handler (by
//! creating a `Signal`) before raising: SIGTERM's and SIGINT's default
//! action would end the test process.

mod support;

use std::time::Duration;

use strata_rt::signal::{self, Signal, SignalKind};
use strata_rt::time::timeout;
use strata_rt::{spawn, spawn_local};
use support::{deadline, rt};

fn raise(kind: SignalKind) {
    // SAFETY: `raise` has no memory-safety preconditions; a handler for the
    // signal is installed (the caller holds a `Signal` for it).
    assert_eq!(unsafe { libc::raise(kind.as_raw()) }, 0);
}

#[test]
fn sigusr1_completes_recv() {
    deadline(30, || {
        let rt = rt(2);
        rt.block_on(async {
            let mut sig = Signal::new(SignalKind::user_defined1()).unwrap();
            raise(SignalKind::user_defined1());
            timeout(Duration::from_secs(10), sig.recv())
                .await
                .expect("SIGUSR1 was not observed");
        });
    });
}

#[test]
fn sigterm_reaches_every_listener_on_every_worker() {
    deadline(30, || {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.block_on(async move {
            // Created before raising, on both workers and on this thread.
            let mut here = Signal::new(SignalKind::terminate()).unwrap();
            let mut waiters = Vec::new();
            for w in 0..handle.worker_count() {
                for _ in 0..3 {
                    let mut sig = Signal::new(SignalKind::terminate()).unwrap();
                    waiters.push(handle.spawn_on(w, async move { sig.recv().await }));
                }
            }
            raise(SignalKind::terminate());
            for h in waiters {
                timeout(Duration::from_secs(10), h)
                    .await
                    .expect("a listener missed SIGTERM")
                    .unwrap();
            }
            timeout(Duration::from_secs(10), here.recv())
                .await
                .expect("SIGTERM missed on the block_on thread");
        });
    });
}

#[test]
fn repeated_deliveries_keep_waking_the_listener() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            spawn(async {
                let mut sig = Signal::new(SignalKind::user_defined2()).unwrap();
                raise(SignalKind::user_defined2());
                raise(SignalKind::user_defined2());
                timeout(Duration::from_secs(10), sig.recv()).await.unwrap();
                // A local (non-Send) waiter works too.
                let waiter = spawn_local(async move {
                    sig.recv().await;
                });
                raise(SignalKind::user_defined2());
                timeout(Duration::from_secs(10), waiter)
                    .await
                    .expect("second delivery missed")
                    .unwrap();
            })
            .await
            .unwrap();
        });
    });
}

#[test]
fn ctrl_c_observes_sigint() {
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            // The handler is installed by the call, before the await.
            let ctrl_c = signal::ctrl_c();
            raise(SignalKind::interrupt());
            timeout(Duration::from_secs(10), ctrl_c)
                .await
                .expect("SIGINT was not observed")
                .unwrap();
        });
    });
}

#[test]
fn unhandleable_signals_are_refused() {
    for kind in [
        SignalKind::from_raw(libc::SIGKILL),
        SignalKind::from_raw(libc::SIGSTOP),
        SignalKind::from_raw(libc::SIGSEGV),
        SignalKind::from_raw(0),
        SignalKind::from_raw(1000),
    ] {
        let err = Signal::new(kind).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[test]
fn a_delivery_before_creation_is_not_seen() {
    deadline(60, || {
        // A real-time signal nothing else sends (SIGWINCH, say, comes from
        // a terminal being resized) and no other test here uses.
        let kind = SignalKind::from_raw(libc::SIGRTMIN() + 1);
        let rt = rt(1);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for round in 0..50 {
            let mut probe = Signal::new(kind).unwrap();
            // `raise` runs the handler before it returns; the listener
            // created right after must not count that delivery, although
            // the signal thread publishes it only later.
            raise(kind);
            let mut late = Signal::new(kind).unwrap();
            rt.block_on(async {
                timeout(Duration::from_secs(10), probe.recv())
                    .await
                    .expect("the probe missed the signal");
            });
            assert!(
                late.poll_recv(&mut cx).is_pending(),
                "round {round}: a listener saw a delivery from before its creation"
            );
            raise(kind);
            rt.block_on(async {
                timeout(Duration::from_secs(10), late.recv())
                    .await
                    .expect("the listener missed a later delivery");
            });
        }
    });
}

/// The child's half of `a_handler_writing_to_a_closed_pipe_raises_no_sigpipe`:
/// restores SIGPIPE's default action (a Rust binary ignores it; a C host
/// may not), installs a handler, shuts down the read end of the handler's
/// socket pair so the signal thread leaves and the write end has no reader,
/// then raises the signal. Printing the marker means the handler's write
/// raised no SIGPIPE.
fn child_raise_with_the_reader_gone() {
    /// Open socket descriptors among the low numbers a test binary uses.
    fn sockets() -> Vec<libc::c_int> {
        (0..1024)
            .filter(|&fd| {
                // SAFETY: `stat` is a plain struct that fstat(2) fills in;
                // an fd that is not open only makes the call fail.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: `st` is valid and writable for the call.
                let rc = unsafe { libc::fstat(fd, &mut st) };
                rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
            })
            .collect()
    }

    // SAFETY: setting a signal's disposition to SIG_DFL has no
    // memory-safety preconditions.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR);
    let before = sockets();
    let _sig = Signal::new(SignalKind::user_defined1()).unwrap();
    let new: Vec<_> = sockets()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    // SAFETY: F_GETFL on descriptors just seen open; no pointers involved.
    let nonblocking = |fd| unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_NONBLOCK != 0;
    // The pair: a non-blocking write end for the handler, a blocking read
    // end for the signal thread.
    let (writers, readers): (Vec<_>, Vec<_>) = new.into_iter().partition(|&fd| nonblocking(fd));
    assert!(
        writers.len() == 1 && readers.len() == 1,
        "could not tell the signal pipe's ends apart: writers {writers:?}, readers {readers:?}"
    );
    // SAFETY: shutdown(2) on an open socket; the signal thread's blocked
    // read then returns end of stream and the thread closes its end.
    assert_eq!(unsafe { libc::shutdown(readers[0], libc::SHUT_RDWR) }, 0);
    // The setup worked if the write end now fails with EPIPE (asked with
    // MSG_NOSIGNAL, so this probe cannot raise SIGPIPE itself).
    let byte = 0u8;
    // SAFETY: `byte` is a valid one-byte buffer for the call.
    let rc = unsafe {
        libc::send(
            writers[0],
            (&raw const byte).cast(),
            1,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EPIPE),
        "the write end still has a reader"
    );
    raise(SignalKind::user_defined1());
    println!("CHILD-SURVIVED");
}

/// The handler's write to its self-pipe must not raise SIGPIPE when the
/// pipe's reader is gone: in a process where SIGPIPE has its default
/// action that would kill it. Runs in a child process (this test binary,
/// re-run for this test alone), which such a failure kills instead of the
/// test run.
#[test]
fn a_handler_writing_to_a_closed_pipe_raises_no_sigpipe() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    if std::env::var_os("STRATA_TEST_CHILD").is_some() {
        child_raise_with_the_reader_gone();
        return;
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_handler_writing_to_a_closed_pipe_raises_no_sigpipe",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STRATA_TEST_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let (done, finished) = std::sync::mpsc::channel::<()>();
    // A hang guard, not a speed check.
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(60)).is_err() {
            // SAFETY: kill(2) on our own child, which has not been reaped
            // yet (`wait_with_output` below is still waiting for it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("CHILD-SURVIVED"),
        "the child failed: {:?}, killed by signal {:?} (SIGPIPE is {})\nstdout: {stdout}\nstderr: {stderr}",
        out.status,
        out.status.signal(),
        libc::SIGPIPE
    );
}
