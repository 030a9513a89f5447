//! Framed read/write driven by random I/O scripts against direct codec use.
mod support;

use std::io;

use bytes::BytesMut;
use futures_executor::block_on;
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use strata_codec::{
    Decoder, Framed, FramedRead, FramedWrite, LengthDelimitedCodec, LinesCodec, LinesCodecError,
};
use support::Mock;

fn direct<D: Decoder>(mut d: D, input: &[u8]) -> Vec<Result<D::Item, String>>
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match d.decode(&mut buf) {
            Ok(Some(x)) => out.push(Ok(x)),
            Ok(None) => break,
            Err(e) => {
                out.push(Err(format!("{e:?}").chars().take(12).collect()));
                return out;
            }
        }
    }
    loop {
        match d.decode_eof(&mut buf) {
            Ok(Some(x)) => out.push(Ok(x)),
            Ok(None) => break,
            Err(e) => {
                out.push(Err(format!("{e:?}").chars().take(12).collect()));
                return out;
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Step {
    Data(usize),
    Pending,
    Interrupted,
}

fn script(input: &[u8], steps: &[Step]) -> Mock {
    let mut mock = Mock::new();
    let mut pos = 0;
    for s in steps {
        match s {
            Step::Data(n) => {
                let end = (pos + n).min(input.len());
                if end > pos {
                    mock = mock.read(&input[pos..end]);
                    pos = end;
                }
            }
            Step::Pending => mock = mock.read_pending(),
            Step::Interrupted => mock = mock.read_error(io::ErrorKind::Interrupted),
        }
    }
    if pos < input.len() {
        mock = mock.read(&input[pos..]);
    }
    mock
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![4 => (1usize..40).prop_map(Step::Data), 1 => Just(Step::Pending), 1 => Just(Step::Interrupted)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn framed_lines_equal_direct(
        input in prop::collection::vec(prop_oneof![Just(b'a'), Just(b'\r'), Just(b'\n'), Just(0xc3u8), Just(0xa9u8), Just(0xffu8)], 0..200),
        steps in prop::collection::vec(step(), 0..30),
        window in 1usize..20,
        max in 0usize..20,
    ) {
        // Framed stops at the first error; so does `direct`.
        let want = direct(LinesCodec::with_max_length(max), &input);
        // Direct decoding of the whole input can give an early error at a
        // different point than chunked decoding, so compare only if no
        // TooLong is involved.
        prop_assume!(!want.iter().any(|r| matches!(r, Err(e) if e.starts_with("LineTooLong"))));
        let mut fr = FramedRead::new(script(&input, &steps), LinesCodec::with_max_length(max));
        fr.set_read_window(window);
        let got: Vec<Result<String, String>> = block_on(fr.collect::<Vec<_>>()).into_iter()
            .map(|r| r.map_err(|e: LinesCodecError| format!("{e:?}").chars().take(12).collect())).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn framed_ld_equal_direct(
        input in prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(3u8), any::<u8>()], 0..200),
        steps in prop::collection::vec(step(), 0..30),
        window in 1usize..20,
    ) {
        let mk = || LengthDelimitedCodec::builder().length_field_length(1).max_frame_length(16).build();
        let want = direct(mk(), &input);
        let mut fr = FramedRead::new(script(&input, &steps), mk());
        fr.set_read_window(window);
        let got: Vec<Result<BytesMut, String>> = block_on(fr.collect::<Vec<_>>()).into_iter()
            .map(|r| r.map_err(|e| format!("{e:?}").chars().take(12).collect())).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn framed_write_any_partial_writes(
        items in prop::collection::vec("[a-zé]{0,20}", 0..30),
        accepts in prop::collection::vec(prop_oneof![(1usize..8).prop_map(Some), Just(None)], 0..100),
        hwm in 0usize..40,
        flush_every in 1usize..5,
    ) {
        let mut mock = Mock::new();
        for a in accepts { mock = match a { Some(n) => mock.write_accept(n), None => mock.write_pending() }; }
        let mut fw = FramedWrite::new(mock, LinesCodec::new());
        fw.set_high_water_mark(hwm);
        block_on(async {
            for (i, it) in items.iter().enumerate() {
                fw.feed(it.as_str()).await.unwrap();
                if i % flush_every == 0 { SinkExt::<&str>::flush(&mut fw).await.unwrap(); }
                // The buffer is bounded by the mark plus one item.
                assert!(fw.write_buffer().len() <= hwm.max(1) + it.len() + 1);
            }
            SinkExt::<&str>::close(&mut fw).await.unwrap();
        });
        let expected: String = items.iter().map(|s| format!("{s}\n")).collect();
        prop_assert_eq!(&fw.get_ref().written, &expected.into_bytes());
        prop_assert!(fw.get_ref().closed);
    }
}

#[test]
fn framed_both_directions() {
    let mock = Mock::new().read("ping\npi").read_pending().read("ng\n");
    let mut f = Framed::new(mock, LinesCodec::new());
    block_on(async {
        while let Some(l) = f.next().await {
            let l = l.unwrap();
            f.send(format!("{l}!")).await.unwrap();
        }
    });
    assert_eq!(f.get_ref().written, b"ping!\nping!\n");
}
