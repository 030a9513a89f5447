//! Every benchmark binary rejects flags it does not know and values that
//! do not parse: exit status 2, a message naming the flag, and the usage.
//! None of these command lines gets as far as running a benchmark.

use std::process::Command;

fn rejects(exe: &str, args: &[&str], names: &str) {
    let out = Command::new(exe).args(args).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{exe} {args:?}: {stderr}");
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error: ") && first.contains(names),
        "{exe} {args:?}: {first:?} should name {names:?}"
    );
    assert!(stderr.contains("usage:"), "{exe} {args:?}: no usage");
    assert!(out.stdout.is_empty(), "{exe} {args:?}: wrote to stdout");
}

const LINE: &str = env!("CARGO_BIN_EXE_line");
const RT: &str = env!("CARGO_BIN_EXE_rt");
const CODEC: &str = env!("CARGO_BIN_EXE_codec");
const TIMERS: &str = env!("CARGO_BIN_EXE_timers");
const MIDDLEWARE: &str = env!("CARGO_BIN_EXE_middleware");

#[test]
fn line_rejects_bad_flags() {
    rejects(LINE, &["--secs", "5s"], "--secs");
    rejects(LINE, &["--secs", "0"], "--secs");
    rejects(LINE, &["--rep", "6"], "--rep");
    // `--depth` belongs to `line load`; the benchmark takes `--depths`.
    rejects(LINE, &["--depth", "1"], "--depth");
    rejects(LINE, &["--depths", "1,x"], "--depths");
    rejects(LINE, &["--modes", "pined"], "--modes");
    rejects(LINE, &["--servers", "strata,nginx"], "--servers");
    rejects(LINE, &["--reps", "3", "--reps", "4"], "--reps");
    rejects(LINE, &["--conns"], "--conns");
    rejects(LINE, &["bench"], "bench");
    rejects(LINE, &["load"], "address");
    rejects(LINE, &["load", "127.0.0.1:1", "--depths", "4"], "--depths");
    rejects(LINE, &["load", "127.0.0.1:1", "--secs", "x"], "--secs");
    rejects(LINE, &["serve", "nginx"], "nginx");
    rejects(LINE, &["serve", "strata", "--workers", "two"], "--workers");
}

#[test]
fn rt_rejects_bad_flags() {
    rejects(RT, &[], "command");
    rejects(RT, &["echo", "--secs", "ten"], "--secs");
    rejects(RT, &["echo", "--rep", "6"], "--rep");
    rejects(RT, &["echo", "--no-pin", "--pin"], "--pin");
    rejects(RT, &["spawn", "--tasks", "1e5"], "--tasks");
    rejects(RT, &["spawn", "--secs", "1"], "--secs");
    rejects(RT, &["serve", "echo-nginx"], "echo-nginx");
}

#[test]
fn codec_rejects_bad_flags() {
    rejects(CODEC, &["--reps", "many"], "--reps");
    rejects(CODEC, &["--rep", "6"], "--rep");
    rejects(CODEC, &["--only", "no such case"], "--only");
}

#[test]
fn timers_rejects_bad_arguments() {
    rejects(TIMERS, &["--reps", "3"], "--reps");
    rejects(TIMERS, &["nothing"], "nothing");
    rejects(TIMERS, &["cancel", "rust"], "rust");
    rejects(TIMERS, &["cancel", "strata", "extra"], "extra");
}

#[test]
fn middleware_rejects_bad_flags() {
    rejects(MIDDLEWARE, &["--calls", "1e6"], "--calls");
    rejects(MIDDLEWARE, &["--reps", "0"], "--reps");
    rejects(MIDDLEWARE, &["--rep", "6"], "--rep");
}

#[test]
fn help_prints_the_usage_and_succeeds() {
    for exe in [LINE, RT, CODEC, TIMERS, MIDDLEWARE] {
        let out = Command::new(exe).arg("--help").output().expect("run");
        assert_eq!(out.status.code(), Some(0), "{exe}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("usage:"),
            "{exe}"
        );
    }
}
