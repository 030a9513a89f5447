//! Runtime error messages: what went wrong, with the value.

use strata_rt::signal::{Signal, SignalKind};

/// An out-of-range signal number is refused with a message naming it
/// (it said only "invalid signal number"), as a refused valid one does.
#[test]
fn an_out_of_range_signal_number_is_named() {
    for n in [0, -3, 100] {
        let err = Signal::new(SignalKind::from_raw(n)).expect_err("out of range");
        let msg = err.to_string();
        assert!(msg.contains(&n.to_string()), "signal {n}: {msg:?}");
    }
}

/// The two refusals of `Signal::new` share one style: no "strata: "
/// prefix on either (std and tokio prefix none).
#[test]
fn signal_refusals_share_one_style() {
    let bad_number = Signal::new(SignalKind::from_raw(100))
        .unwrap_err()
        .to_string();
    let forbidden = Signal::new(SignalKind::from_raw(libc::SIGKILL))
        .unwrap_err()
        .to_string();
    assert_eq!(
        bad_number.starts_with("strata:"),
        forbidden.starts_with("strata:"),
        "{bad_number:?} vs {forbidden:?}"
    );
}
