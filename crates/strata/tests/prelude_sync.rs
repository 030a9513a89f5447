//! The prelude next to sync code: nothing in it makes std's I/O methods or
//! `bytes::Buf`'s ambiguous.

#[allow(unused_imports)]
use strata::prelude::*;

/// Sync code using std's I/O traits and `bytes::Buf` still compiles next
/// to the prelude (it did not while the prelude had the async I/O
/// extension traits: `write_all`, `read_exact` and `take` were ambiguous).
#[test]
fn the_prelude_leaves_std_io_and_buf_unambiguous() {
    {
        use std::io::{Read, Write};
        let mut v = Vec::new();
        v.write_all(b"abc").unwrap();
        let mut s = &v[..];
        let mut two = [0; 2];
        s.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"ab");
    }
    {
        use strata::bytes::Buf;
        assert_eq!((&b"xyz"[..]).take(1).chunk(), b"x");
    }
}
