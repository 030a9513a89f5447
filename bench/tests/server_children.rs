//! Server child processes: an unpinned run's servers are not pinned by an
//! inherited request, and a server that does not come up is not left
//! running.

use std::process::Command;
use std::time::{Duration, Instant};

use strata_bench::server_proc::ServerProc;

const LINE: &str = env!("CARGO_BIN_EXE_line");

/// A shared-core run with `STRATA_BENCH_PIN_CPU` in the driver's own
/// environment: its servers used to inherit it and pin themselves under a
/// "shared" label. CPU 1023 is on no machine this runs on, so a server
/// that obeys fails to pin and the run fails.
#[test]
fn a_shared_run_ignores_an_inherited_pin_request() {
    let out = Command::new(LINE)
        .args(["--modes", "shared", "--depths", "1", "--servers", "mio"])
        .args([
            "--reps", "1", "--secs", "0.2", "--conns", "2", "--idle", "0",
        ])
        .args(["--quiet"])
        .env("STRATA_BENCH_PIN_CPU", "1023")
        .output()
        .expect("run line");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("## shared ("), "{stdout}");
}

/// Where the child of `a_server_with_a_bad_banner_is_killed` writes its
/// pid: named by the test process's pid, which is the child's parent.
fn pid_file(parent: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("strata-bench-bad-banner-{parent}"))
}

/// Not a test of its own: the "server" that test starts (this binary
/// again, whose first stdout line is libtest's, not a banner). Records its
/// pid and lives 20 s.
#[test]
#[ignore = "run as a child by a_server_with_a_bad_banner_is_killed"]
fn bad_banner_child() {
    let parent = std::os::unix::process::parent_id();
    // Written whole, then renamed: the test never reads half a pid.
    let file = pid_file(parent);
    let partial = file.with_extension("partial");
    std::fs::write(&partial, std::process::id().to_string()).unwrap();
    std::fs::rename(&partial, &file).unwrap();
    std::thread::sleep(Duration::from_secs(20));
}

/// Whether `pid` is running (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap();
        state != 'Z' && state != 'X'
    })
}

/// `ServerProc::start` used to return the banner's error with the child
/// still running (a `Child` is not killed by its drop).
#[test]
fn a_server_with_a_bad_banner_is_killed() {
    let file = pid_file(std::process::id());
    let _ = std::fs::remove_file(&file);
    let args: Vec<String> = ["bad_banner_child", "--exact", "--ignored", "--nocapture"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let err = ServerProc::start(&args, None).expect_err("libtest's first line is no banner");
    assert!(err.to_string().contains("bad server banner"), "{err}");
    // The child may have been killed before it wrote its pid; if it wrote
    // it, it must be gone.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(500) {
        if let Ok(pid) = std::fs::read_to_string(&file).map(|s| s.trim().parse::<u32>()) {
            let pid = pid.expect("a pid");
            let leaked = alive(pid);
            if leaked {
                // SAFETY: kill(2) on the child this test started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            assert!(!leaked, "the server child {pid} was left running");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(file.with_extension("partial"));
}
