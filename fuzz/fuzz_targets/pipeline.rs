//! strata-proto's pipelined dispatcher (`serve_connection`) over a
//! scripted transport, against a model of its protocol: the model and
//! the checks are strata-proto's `tests/model` (see there), shared with
//! the `pipeline_model` property test; here the input picks the case.
//!
//! Input: in-flight bound, high-water mark, line limit, what a failed
//! request does, the poll of a graceful stop (255: none), the lengths of
//! the read and write scripts, the scripts, then what the peer sends.
#![no_main]

#[path = "../../crates/strata-proto/tests/model/mod.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use model::{Case, OnFail};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<7>() else {
        return;
    };
    let [in_flight, hwm, max_line, on_fail, stop_at, n_read, n_write] = *head;
    let (reads, rest) = rest.split_at(usize::from(n_read).min(rest.len()));
    let (writes, input) = rest.split_at(usize::from(n_write).min(rest.len()));
    let case = Case {
        in_flight: usize::from(in_flight % 8) + 1,
        high_water_mark: usize::from(hwm) * 4 + 1,
        max_line: usize::from(max_line % 64) + 1,
        on_fail: match on_fail % 3 {
            0 => OnFail::Respond,
            1 => OnFail::RespondAndClose,
            _ => OnFail::Close,
        },
        // libFuzzer's panic hook aborts, caught or not.
        panics: false,
        stop_at: (stop_at != u8::MAX).then_some(stop_at),
        reads: reads.to_vec(),
        writes: writes.to_vec(),
        input: input.to_vec(),
    };
    if let Err(e) = model::check(&case) {
        panic!("{e}");
    }
});
