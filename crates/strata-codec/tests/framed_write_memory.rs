//! The `Framed` write buffer's memory under backpressure: over real
//! loopback TCP (strata-rt's `TcpStream`) with a peer that reads slowly,
//! and over a writer that takes at most one record per call. A test-only
//! global allocator records the largest block asked for while items are
//! fed.
//!
//! No assertion depends on time; timeouts only turn a hang into a failure.

mod support;

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::SinkExt;
use strata_codec::{BytesCodec, FramedWrite};
use strata_rt::net::TcpStream;

/// Runs `body` on its own thread; a hang (past `secs`) fails the test.
fn deadline<R: Send + 'static>(secs: u64, body: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let out = body();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Ok(out) => out,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no progress within {secs} s: hang"),
    }
}

fn rt() -> strata_rt::Runtime {
    strata_rt::Runtime::builder()
        .worker_threads(2)
        .build()
        .expect("runtime")
}

#[global_allocator]
static GLOBAL: support::alloc::Counting = support::alloc::Counting;

const ITEM: usize = 1000;
/// The largest item.
const MAX_ITEM: usize = ITEM + 300;
const ITEMS: usize = 8000;

/// `Framed`'s docs (# Writing): "The mark bounds the buffer's contents to
/// the mark plus one item; its allocation can reach twice that."
///
/// A partial write only advances the start of the `BytesMut`, which
/// reuses the written part in front only once it is at least as long as
/// the rest; otherwise an item that does not fit behind doubles the whole
/// allocation, written part included. Before the buffer moved what was
/// left to the front after partial writes, a peer reading slowly took the
/// allocation to 192,768 bytes here (against 133,672), and other item and
/// write sizes to about four times the mark.
#[test]
fn write_buffer_allocation_stays_within_twice_mark_plus_item_with_a_slow_peer() {
    deadline(60, || {
        let rt = rt();
        // How far the allocation goes over depends on how much each write
        // to the socket takes; a few connections are enough to see it.
        let mut largest = 0;
        for _ in 0..5 {
            let (conn_largest, mark) = slow_peer_connection(&rt);
            largest = largest.max(conn_largest);
            if largest > 2 * (mark + MAX_ITEM) {
                break;
            }
        }
        let documented = 2 * (DEFAULT_MARK + MAX_ITEM);
        assert!(
            largest <= documented,
            "the write buffer's allocation reached {largest} bytes; documented bound: \
             twice (mark {DEFAULT_MARK} + largest item {MAX_ITEM}) = {documented}"
        );
    });
}

/// The documented default high-water mark.
const DEFAULT_MARK: usize = 64 * 1024;

/// One connection to a peer that reads slowly; `ITEMS` items fed through a
/// `FramedWrite` with the default mark. Checks every byte arrives in order
/// and the contents bound; returns the largest block the writer's buffer
/// asked for, and the mark.
fn slow_peer_connection(rt: &strata_rt::Runtime) -> (usize, usize) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A slow peer: small reads with a pause between them.
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1500];
        let mut total = 0usize;
        let mut ok = true;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            for (k, b) in buf[..n].iter().enumerate() {
                ok &= *b == ((total + k) % 251) as u8;
            }
            total += n;
            std::thread::sleep(Duration::from_micros(50));
        }
        (total, ok)
    });
    let (largest, max_contents, mark, sent) = rt.block_on(async {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut f = FramedWrite::new(s, BytesCodec::new());
        let mark = f.high_water_mark();
        assert_eq!(mark, DEFAULT_MARK);
        let (mut max_contents, mut at) = (0, 0);
        support::alloc::reset_largest();
        for i in 0..ITEMS {
            // The item is made before tracking starts: only the framed
            // writer's own blocks count.
            let it = item(i, at);
            at += it.len();
            support::alloc::track_largest(true);
            f.feed(&it[..]).await.unwrap();
            support::alloc::track_largest(false);
            max_contents = max_contents.max(f.write_buffer().len());
        }
        SinkExt::<&[u8]>::close(&mut f).await.unwrap();
        (support::alloc::largest(), max_contents, mark, at)
    });
    let (total, in_order) = peer.join().unwrap();
    assert_eq!(total, sent, "bytes lost");
    assert!(in_order, "bytes reordered");
    assert!(max_contents < mark + MAX_ITEM, "the contents bound holds");
    (largest, mark)
}

/// Every write call takes at most `cap` bytes (as a TLS stream takes at
/// most one record, or a rate-limited writer its quota), and is otherwise
/// always ready.
struct Capped {
    cap: usize,
    /// Bytes taken so far (not kept: that would be an allocation too).
    written: usize,
    in_order: bool,
}

impl futures_io::AsyncWrite for Capped {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.cap);
        for (k, b) in buf[..n].iter().enumerate() {
            let ok = *b == ((self.written + k) % 251) as u8;
            self.in_order &= ok;
        }
        self.written += n;
        std::task::Poll::Ready(Ok(n))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Item `i`: a varying length around `ITEM`, the bytes continuing one
/// pattern (byte `p` of the whole stream is `p % 251`), starting at `at`.
fn item(i: usize, at: usize) -> Vec<u8> {
    let len = ITEM - 300 + (i * 7919) % 601;
    (at..at + len).map(|p| (p % 251) as u8).collect()
}

/// The same without sockets, deterministic: a writer that takes at most
/// one 16 KiB record per call (as a TLS stream does) and is always ready.
#[test]
fn write_buffer_allocation_stays_within_twice_mark_plus_item_with_a_capped_writer() {
    let writer = Capped {
        cap: 16 * 1024,
        written: 0,
        in_order: true,
    };
    let mut f = FramedWrite::new(writer, BytesCodec::new());
    let mark = f.high_water_mark();
    support::alloc::reset_largest();
    let mut at = 0;
    futures_executor::block_on(async {
        for i in 0..ITEMS {
            let it = item(i, at);
            at += it.len();
            support::alloc::track_largest(true);
            f.feed(&it[..]).await.unwrap();
            support::alloc::track_largest(false);
            assert!(
                f.write_buffer().len() < mark + MAX_ITEM,
                "the contents bound holds"
            );
        }
        SinkExt::<&[u8]>::flush(&mut f).await.unwrap();
    });
    let largest = support::alloc::largest();
    assert_eq!(f.get_ref().written, at, "bytes lost");
    assert!(f.get_ref().in_order, "bytes reordered");
    let documented = 2 * (mark + MAX_ITEM);
    assert!(
        largest <= documented,
        "the write buffer's allocation reached {largest} bytes; documented bound: \
         twice (mark {mark} + largest item {MAX_ITEM}) = {documented}"
    );
}
