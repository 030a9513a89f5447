//! Cancel safety of `Framed`, `FramedRead` and `FramedWrite` over loopback
//! TCP: `next()` / `send()` / `flush()` futures dropped after a `Pending`,
//! after a wake-up, or by a timeout lose and duplicate no frame, and a
//! partial frame read before the drop is kept for the next call.
//! Every test runs under a hang guard; nothing asserts on time.

use std::future::Future;
use std::io::{Read, Write};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use strata_codec::{Framed, FramedRead, FramedWrite, LengthDelimitedCodec, LinesCodec};
use strata_rt::net::TcpListener;
use strata_rt::time::timeout;

#[path = "../../strata-rt/tests/support/cancel.rs"]
#[allow(dead_code, unreachable_pub)]
mod cancel;
use cancel::{poll_once, poll_once_flagged, woken};

fn guard(secs: u64, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => t.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(t.join().unwrap_err())
        }
        Err(_) => panic!("test did not finish within {secs} s"),
    }
}

fn on_worker<Fut: Future<Output = ()> + Send + 'static>(
    secs: u64,
    body: impl FnOnce() -> Fut + Send + 'static,
) {
    guard(secs, move || {
        let rt = strata_rt::Runtime::builder()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async move { strata_rt::spawn(body()).await.unwrap() });
    });
}

/// A connected pair: (strata stream, std peer).
async fn pair() -> (strata_rt::net::TcpStream, std::net::TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().await.unwrap();
    (s, peer)
}

#[test]
fn framed_read_next_dropped_with_a_partial_frame_keeps_it() {
    on_worker(30, || async {
        let (s, mut peer) = pair().await;
        let mut frames = FramedRead::new(s, LinesCodec::new());
        // Half a line, then a `next` that reads it, returns Pending, and is
        // dropped after the rest arrived and woke it.
        peer.write_all(b"hel").unwrap();
        {
            let mut n = pin!(frames.next());
            let (p, flag) = poll_once_flagged(n.as_mut()).await;
            assert!(p.is_pending());
            // The partial frame was read into the buffer (or will be).
            peer.write_all(b"lo\nwor").unwrap();
            woken(&flag).await;
        }
        assert_eq!(frames.next().await.unwrap().unwrap(), "hello");
        {
            // "wor" partly buffered; a `next` that loses to a timeout.
            let r = timeout(Duration::from_millis(5), frames.next()).await;
            assert!(r.is_err(), "no whole line yet");
        }
        peer.write_all(b"ld\n").unwrap();
        assert_eq!(frames.next().await.unwrap().unwrap(), "world");
        drop(peer);
        assert!(frames.next().await.is_none());
    });
}

#[test]
fn framed_next_raced_against_timeouts_loses_no_frame() {
    on_worker(60, || async {
        let (s, peer) = pair().await;
        const N: u32 = 3000;
        let writer = std::thread::spawn(move || {
            let mut peer = peer;
            let mut wire = Vec::new();
            for i in 0..N {
                let body = format!("frame-{i}");
                wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
                wire.extend_from_slice(body.as_bytes());
            }
            // Ragged pieces, cutting frames and headers.
            for (k, piece) in wire.chunks(13).enumerate() {
                peer.write_all(piece).unwrap();
                if k % 50 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        });
        let mut framed = Framed::new(s, LengthDelimitedCodec::new());
        let mut next = 0u32;
        let mut round = 0u64;
        while next < N {
            round += 1;
            let got = if round.is_multiple_of(2) {
                timeout(Duration::from_millis(1), framed.next()).await.ok()
            } else {
                let mut f = pin!(framed.next());
                match poll_once(f.as_mut()).await {
                    Poll::Ready(v) => Some(v),
                    Poll::Pending => {
                        strata_rt::yield_now().await;
                        None
                    }
                }
            };
            if let Some(v) = got {
                let frame = v.expect("stream ended early").unwrap();
                assert_eq!(&frame[..], format!("frame-{next}").as_bytes());
                next += 1;
            }
        }
        writer.join().unwrap();
    });
}

#[test]
fn framed_send_dropped_after_pending_sends_the_item_exactly_once_on_the_next_flush() {
    on_worker(60, || async {
        let (s, mut peer) = pair().await;
        let mut sink = FramedWrite::new(s, LinesCodec::new());
        // Fill the socket so a flush has to wait.
        let line = "x".repeat(1000);
        let mut sent = 0usize;
        loop {
            let mut f = pin!(sink.send(line.clone()));
            match poll_once(f.as_mut()).await {
                Poll::Ready(r) => {
                    r.unwrap();
                    sent += 1;
                }
                Poll::Pending => {
                    // Encoded into the buffer, not yet written: the
                    // dropped send still delivers it (as documented for
                    // `Sink`s in general).
                    sent += 1;
                    break;
                }
            }
        }
        {
            // The flush future lives in this block: dropped at its end.
            let reader = {
                let mut f = pin!(SinkExt::<String>::flush(&mut sink));
                let (p, flag) = poll_once_flagged(f.as_mut()).await;
                assert!(p.is_pending());
                let reader = std::thread::spawn(move || {
                    let mut all = Vec::new();
                    let mut b = vec![0u8; 65536];
                    loop {
                        let n = peer.read(&mut b).unwrap();
                        if n == 0 {
                            break;
                        }
                        all.extend_from_slice(&b[..n]);
                    }
                    all
                });
                woken(&flag).await;
                reader
            };
            SinkExt::<String>::flush(&mut sink).await.unwrap();
            SinkExt::<String>::close(&mut sink).await.unwrap();
            drop(sink);
            let all = reader.join().unwrap();
            let expect = format!("{line}\n").repeat(sent);
            assert_eq!(all.len(), expect.len(), "items lost or duplicated");
            assert!(all == expect.as_bytes());
        }
    });
}
