//! The `line` benchmark's pinned layout comes from the CPUs the process
//! may use, and a run that could not be pinned is not labelled pinned.

use std::process::{Command, Output};

use strata_bench::server_proc;

const LINE: &str = env!("CARGO_BIN_EXE_line");

/// A tiny pinned-mode run of `line` (one server, one short round), started
/// from a thread whose CPU mask is `cpus`: the child inherits it.
fn tiny_pinned_run(cpus: Vec<usize>) -> Output {
    std::thread::spawn(move || {
        server_proc::set_affinity(&cpus).expect("set the mask");
        Command::new(LINE)
            .args(["--modes", "pinned", "--depths", "1", "--servers", "mio"])
            .args([
                "--reps", "1", "--secs", "0.2", "--conns", "2", "--idle", "0",
            ])
            .arg("--quiet")
            .output()
            .expect("run line")
    })
    .join()
    .unwrap()
}

#[test]
fn one_allowed_cpu_is_not_labelled_pinned() {
    let allowed = server_proc::allowed_cpus().unwrap();
    let cpu = allowed[0];
    let out = tiny_pinned_run(vec![cpu]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "## pinned requested, not possible: 1 CPU allowed ([{cpu}]), two needed; unpinned, 1 server worker, C=2, D=1"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("## pinned ("), "{stdout}");
}

#[test]
fn the_pinned_layout_uses_the_allowed_cpus() {
    let allowed = server_proc::allowed_cpus().unwrap();
    if allowed.len() < 2 {
        eprintln!("skipped: one CPU only");
        return;
    }
    let out = tiny_pinned_run(allowed.clone());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!(
        "## pinned (1 server worker on CPU {}, load generator on CPU {}), C=2, D=1",
        allowed[0],
        allowed[allowed.len() - 1]
    );
    assert!(stdout.contains(&want), "{stdout}");
}

#[test]
fn a_server_that_cannot_pin_exits_instead_of_serving() {
    // CPU 1023 is inside the mask's range but on no machine this runs on.
    let out = Command::new(LINE)
        .args(["serve", "mio"])
        .env("STRATA_BENCH_PIN_CPU", "1023")
        .output()
        .expect("run line serve");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "it must not print `listening`");
    assert!(String::from_utf8_lossy(&out.stderr).contains("sched_setaffinity"));
}
