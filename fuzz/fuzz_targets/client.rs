//! strata-proto's pipelined client (`pipeline::Client`) over a scripted
//! transport, against a model: the model and its checks are strata-proto's
//! `tests/client_sim` (see there), shared with the `client_model` property
//! test; here the input picks the case.
//!
//! Input: in-flight bound, line limit, the number of calls, the lengths
//! of the read and write scripts, one byte per call (bit 7: cannot be
//! encoded; the low bits, if not 0: given up after that many polls), the
//! scripts, then what the server answers.
#![no_main]

#[path = "../../crates/strata-proto/tests/client_sim/mod.rs"]
mod client_sim;

use client_sim::{CallSpec, Case};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<5>() else {
        return;
    };
    let [in_flight, max_line, n_calls, n_read, n_write] = *head;
    let (calls, rest) = rest.split_at(usize::from(n_calls % 32).min(rest.len()));
    let (reads, rest) = rest.split_at(usize::from(n_read).min(rest.len()));
    let (writes, answers) = rest.split_at(usize::from(n_write).min(rest.len()));
    let case = Case {
        in_flight: usize::from(in_flight % 8) + 1,
        max_line: usize::from(max_line % 64) + 1,
        calls: calls
            .iter()
            .map(|&b| CallSpec {
                bad: b & 0x80 != 0,
                give_up: (b & 0x0f != 0).then_some(b & 0x0f),
            })
            .collect(),
        answers: answers.to_vec(),
        reads: reads.to_vec(),
        writes: writes.to_vec(),
    };
    if let Err(e) = client_sim::check(&case) {
        panic!("{e}");
    }
});
