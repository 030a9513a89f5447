//! The pipelined client against a model (see `client_sim/mod.rs`): many
//! calls at once, some given up part-way, some that cannot be encoded,
//! answers that run short, are too long or are not UTF-8, over a scripted
//! transport that moves bytes in pieces of any size and returns `Pending`
//! or `Interrupted` where the case says. Every call must get the answer
//! to its own request, or the error that ended the connection before it.
//! The fuzz target `client` explores the same model with coverage
//! guidance.

mod client_sim;

use client_sim::{CallSpec, Case, check};
use proptest::prelude::*;

/// Answer lines, each terminated but perhaps the last: short ones, one
/// over any limit, and bytes that are not UTF-8.
fn answers() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        6 => "[a-z]{0,6}".prop_map(String::into_bytes),
        1 => Just(vec![b'x'; 40]),
        1 => Just(vec![b'a', 0xff]),
    ];
    (prop::collection::vec(line, 0..20), any::<bool>()).prop_map(|(lines, tail)| {
        let mut wire = Vec::new();
        let n = lines.len();
        for (i, l) in lines.into_iter().enumerate() {
            wire.extend_from_slice(&l);
            if i + 1 < n || !tail {
                wire.push(b'\n');
            }
        }
        wire
    })
}

fn call() -> impl Strategy<Value = CallSpec> {
    (
        prop::bool::weighted(0.1),
        // 1: queued, then given up before the task takes it.
        prop::option::weighted(0.3, prop_oneof![Just(1u8), 0u8..12]),
    )
        .prop_map(|(bad, give_up)| CallSpec { bad, give_up })
}

prop_compose! {
    fn case()(
        in_flight in 1usize..8,
        max_line in prop_oneof![Just(32usize), 1usize..40],
        calls in prop::collection::vec(call(), 0..24),
        answers in answers(),
        reads in prop::collection::vec(any::<u8>(), 0..32),
        writes in prop::collection::vec(any::<u8>(), 0..32),
    ) -> Case {
        Case { in_flight, max_line, calls, answers, reads, writes }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_call_gets_its_own_answer_or_the_connections_end(case in case()) {
        if let Err(e) = check(&case) {
            prop_assert!(false, "{e}");
        }
    }
}

/// Cases written out: the model's own sanity on the plain paths.
#[test]
fn plain_cases() {
    let ok = |_: usize| CallSpec {
        bad: false,
        give_up: None,
    };
    let case = |calls: Vec<CallSpec>, answers: &[u8]| Case {
        in_flight: 4,
        max_line: 32,
        calls,
        answers: answers.to_vec(),
        reads: vec![],
        writes: vec![],
    };
    // Answers for all: each call gets its own.
    check(&case((0..3).map(ok).collect(), b"a\nb\nc\n")).unwrap();
    // One short: the last call fails, closed.
    check(&case((0..3).map(ok).collect(), b"a\nb\n")).unwrap();
    // A bad second answer: calls from the second on fail, decode.
    check(&case((0..3).map(ok).collect(), b"a\n\xff\nc\n")).unwrap();
    // A call that cannot be encoded does not shift the others.
    let mut calls: Vec<CallSpec> = (0..3).map(ok).collect();
    calls[1].bad = true;
    check(&case(calls, b"a\nb\n")).unwrap();
    // A call queued and given up before the task took it is never sent,
    // and takes no answer.
    let mut calls: Vec<CallSpec> = (0..3).map(ok).collect();
    calls[0].give_up = Some(1);
    check(&case(calls, b"a\nb\n")).unwrap();
}
