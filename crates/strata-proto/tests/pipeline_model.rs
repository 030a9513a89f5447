//! The pipelined dispatcher against a model of its protocol (see
//! `model/mod.rs`), over a scripted transport that moves bytes in pieces
//! of any size and returns `Pending` or `Interrupted` where the case says:
//! answers complete out of order, some requests fail, some lines are too
//! long or not UTF-8, the in-flight bound and high-water mark are small,
//! and some cases stop gracefully part-way. The fuzz target `pipeline`
//! explores the same model with coverage guidance.

mod model;

use std::sync::Once;

use model::{Case, OnFail, PANIC_MESSAGE, check, serve};
use proptest::prelude::*;

/// A request line, without its line ending: the model's kinds, an
/// over-long line and bytes that are not UTF-8.
fn request() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(b"hello".to_vec()),
        2 => Just(b"fail".to_vec()),
        3 => (0u8..10).prop_map(|d| format!("{d} slow").into_bytes()),
        2 => "[a-z ]{0,12}".prop_map(String::into_bytes),
        1 => Just(vec![b'x'; 40]),
        1 => Just(vec![b'h', 0xff, b'i']),
        1 => Just(b"panic".to_vec()),
        1 => Just(b"panic!".to_vec()),
    ]
}

/// Requests joined by `\n` or `\r\n`, the last one possibly unterminated.
fn input() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((request(), any::<bool>()), 0..24),
        any::<bool>(),
    )
        .prop_map(|(lines, terminate_last)| {
            let mut wire = Vec::new();
            let count = lines.len();
            for (i, (line, crlf)) in lines.into_iter().enumerate() {
                wire.extend_from_slice(&line);
                if i + 1 < count || terminate_last {
                    wire.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                }
            }
            wire
        })
}

prop_compose! {
    fn case()(
        in_flight in 1usize..6,
        high_water_mark in prop_oneof![Just(1usize), 2usize..64, Just(64 * 1024)],
        max_line in prop_oneof![Just(32usize), 1usize..40],
        on_fail in prop_oneof![
            Just(OnFail::Respond),
            Just(OnFail::RespondAndClose),
            Just(OnFail::Close),
        ],
        panics in any::<bool>(),
        stop_at in prop_oneof![3 => Just(None), 1 => (0u8..40).prop_map(Some)],
        reads in prop::collection::vec(any::<u8>(), 0..48),
        writes in prop::collection::vec(any::<u8>(), 0..48),
        input in input(),
    ) -> Case {
        Case { in_flight, high_water_mark, max_line, on_fail, panics, stop_at, reads, writes, input }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn connection_answers_as_the_model_says(case in case()) {
        quiet_model_panics();
        if let Err(e) = check(&case) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// The model's kinds of answer, by hand, so that a change to the model
/// itself shows.
#[test]
fn each_kind_of_request_gets_its_answer() {
    let base = Case {
        in_flight: 2,
        high_water_mark: 1,
        max_line: 8,
        on_fail: OnFail::Respond,
        panics: false,
        stop_at: None,
        reads: vec![0, 1, 2, 0],
        writes: vec![0, 1, 2, 0],
        input: b"9\nhello\nfail\nabc".to_vec(),
    };
    quiet_model_panics();
    let cases: [(Case, &[u8]); 8] = [
        (base.clone(), b"done\nworld\nerror: failed\nidk\n"),
        (
            Case {
                on_fail: OnFail::RespondAndClose,
                ..base.clone()
            },
            b"done\nworld\nerror: failed\n",
        ),
        (
            Case {
                on_fail: OnFail::Close,
                ..base.clone()
            },
            b"done\nworld\n",
        ),
        (
            Case {
                input: b"hello\n123456789\nhello\n".to_vec(),
                ..base.clone()
            },
            b"world\nerror: line too long\n",
        ),
        (
            Case {
                input: b"hello\nh\xffi\nhello\n".to_vec(),
                ..base.clone()
            },
            b"world\nerror: invalid UTF-8\n",
        ),
        (
            Case {
                input: b"hello\npanic\nhello\n".to_vec(),
                ..base.clone()
            },
            b"world\nidk\nworld\n",
        ),
        (
            Case {
                panics: true,
                input: b"3\npanic\nhello\n".to_vec(),
                ..base.clone()
            },
            b"done\n",
        ),
        (
            Case {
                panics: true,
                input: b"3\nhello\npanic!\nhello\n".to_vec(),
                ..base.clone()
            },
            b"done\nworld\n",
        ),
    ];
    for (case, expected) in cases {
        let written = serve(&case).expect("the connection ends");
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(expected),
            "{case:?}"
        );
        check(&case).unwrap();
    }
}

/// The model's service panics on purpose; its messages would bury the
/// test's output. Other panics are reported as usual.
fn quiet_model_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied());
            if msg != Some(PANIC_MESSAGE) {
                default(info);
            }
        }));
    });
}
