//! `Framed` over real TCP sockets (strata-rt, loopback): many pipelined
//! frames each way, every echo checked in order.
//!
//! The client sends as fast as its sink accepts while a separate task reads
//! the echoes, so both directions are busy at once and backpressure is real
//! (socket buffers fill up). The server echoes through a `Framed`, flushing
//! only when no further frame is already buffered, and counts the flushes
//! that reach its socket to show that replies leave in batches.
//!
//! Each test runs under a watchdog: a hang fails it after a generous
//! minute instead of blocking the test run. Nothing here asserts on time.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use strata_codec::{
    Decoder, Encoder, Framed, FramedRead, FramedWrite, LengthDelimitedCodec, LinesCodec,
};
use strata_rt::net::{TcpListener, TcpStream};

/// How long a test may run before it counts as a deadlock.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `body` on its own thread and fails if it has not finished within
/// [`WATCHDOG`]. A panic in `body` is passed on as is.
fn with_watchdog<R: Send + 'static>(name: &str, body: impl FnOnce() -> R + Send + 'static) -> R {
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let out = body();
            let _ = done_tx.send(());
            out
        })
        .expect("spawn the test thread");
    match done_rx.recv_timeout(WATCHDOG) {
        // Finished, or panicked (the sender was dropped): join tells which.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: no progress within {WATCHDOG:?}; deadlock?")
        }
    }
}

/// An I/O object that counts the write and flush calls reaching it.
struct Counted<T> {
    inner: T,
    writes: Arc<AtomicUsize>,
    flushes: Arc<AtomicUsize>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = result {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// What the echo server saw: frames echoed, socket writes and flushes.
#[derive(Debug, Clone, Copy)]
struct ServerStats {
    frames: usize,
    writes: usize,
    flushes: usize,
}

/// Accepts one connection and echoes every frame back through a `Framed`
/// until the client ends its side; then closes its own.
///
/// Replies are fed (encoded, not written) while more requests are already
/// buffered and flushed only when none is, so a pipelined burst of requests
/// is answered with few writes.
async fn echo_server<C, I>(listener: TcpListener, codec: C) -> ServerStats
where
    C: Decoder<Item = I> + Encoder<I>,
    <C as Decoder>::Error: std::fmt::Debug,
    <C as Encoder<I>>::Error: std::fmt::Debug,
{
    let (stream, _) = listener.accept().await.expect("accept");
    let writes = Arc::new(AtomicUsize::new(0));
    let flushes = Arc::new(AtomicUsize::new(0));
    let io = Counted {
        inner: stream,
        writes: writes.clone(),
        flushes: flushes.clone(),
    };
    let mut framed = Framed::new(io, codec);
    let mut frames = 0;
    loop {
        let frame = match framed.try_decode_buffered().expect("server decode") {
            Some(frame) => frame,
            None => {
                SinkExt::<I>::flush(&mut framed)
                    .await
                    .expect("server flush");
                match framed.next().await {
                    Some(frame) => frame.expect("server read"),
                    None => break,
                }
            }
        };
        framed.feed(frame).await.expect("server feed");
        frames += 1;
    }
    SinkExt::<I>::close(&mut framed)
        .await
        .expect("server close");
    ServerStats {
        frames,
        writes: writes.load(Ordering::Relaxed),
        flushes: flushes.load(Ordering::Relaxed),
    }
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const LINES: usize = 100_000;

/// The `i`th line: numbered (so a lost, repeated or reordered line shows),
/// of varying length, some of them empty-ish, none with a newline.
fn line(i: usize) -> String {
    let pad = "abcdefghijklmnopqrstuvwxyz0123456789";
    format!("{i}:{}", &pad[..i % (pad.len() + 1)])
}

#[test]
fn lines_echo_100k_pipelined_over_tcp() {
    let stats = with_watchdog("lines_echo", || {
        strata_rt::run(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("local addr");
            let server = strata_rt::spawn(echo_server(listener, LinesCodec::new()));

            let stream = TcpStream::connect(addr).await.expect("connect");
            let framed = Framed::new(stream, LinesCodec::new());
            let (mut sink, mut echoes): (SplitSink<_, String>, SplitStream<_>) = framed.split();

            let reader = strata_rt::spawn(async move {
                let mut count = 0;
                while let Some(echo) = echoes.next().await {
                    let echo = echo.expect("client read");
                    assert_eq!(echo, line(count), "echo {count} out of order or corrupt");
                    count += 1;
                }
                count
            });

            for i in 0..LINES {
                sink.feed(line(i)).await.expect("client feed");
            }
            // Flushes what is left, then shuts down the write side: the
            // server sees end of stream and closes in turn.
            sink.close().await.expect("client close");

            let received = reader.await.expect("reader task");
            assert_eq!(received, LINES, "every line echoed exactly once");
            server.await.expect("server task")
        })
    });
    assert_eq!(stats.frames, LINES);
    // Batching: with 100,000 pipelined requests the server must answer many
    // per write. The bound is loose on purpose; typical runs flush a few
    // hundred times at most.
    assert!(
        stats.flushes * 10 <= LINES && stats.writes * 10 <= LINES,
        "replies not batched: {stats:?}"
    );
}

const FRAMES: usize = 4_000;
const MAX_FRAME: usize = 64 * 1024;

/// The sizes of the frames: mostly small, one in eight anywhere up to 64
/// KiB inclusive, with the edge sizes (empty, and exactly 64 KiB) included.
fn frame_sizes(seed: u64) -> Vec<usize> {
    let mut rng = Rng(seed);
    let mut sizes: Vec<usize> = (0..FRAMES)
        .map(|_| {
            if rng.below(8) == 0 {
                rng.below(MAX_FRAME as u64 + 1) as usize
            } else {
                rng.below(512) as usize
            }
        })
        .collect();
    sizes[0] = 0;
    sizes[1] = MAX_FRAME;
    sizes[FRAMES / 2] = MAX_FRAME;
    sizes[FRAMES - 1] = 0;
    sizes
}

/// The bytes of frame `i`: depend on both the frame and the position, so a
/// shifted or swapped frame does not compare equal.
fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i.wrapping_mul(131) ^ j.wrapping_mul(7)) as u8)
        .collect()
}

#[test]
fn length_delimited_echo_random_sizes_over_tcp() {
    let sizes = frame_sizes(0x5eed_cafe_f00d_0001);
    let total: usize = sizes.iter().sum();
    let stats = with_watchdog("length_delimited_echo", move || {
        strata_rt::run(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("local addr");
            let server = strata_rt::spawn(echo_server(listener, LengthDelimitedCodec::new()));

            // This side uses the socket's own halves, a FramedWrite and a
            // FramedRead, each in its own task.
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (read_half, write_half) = stream.into_split();
            let mut sink = FramedWrite::new(write_half, LengthDelimitedCodec::new());
            let mut echoes = FramedRead::new(read_half, LengthDelimitedCodec::new());

            let expected = sizes.clone();
            let reader = strata_rt::spawn(async move {
                let mut count = 0;
                let mut bytes = 0;
                while let Some(echo) = echoes.next().await {
                    let echo = echo.expect("client read");
                    let len = expected[count];
                    assert_eq!(echo.len(), len, "echo {count}: wrong length");
                    assert!(
                        echo[..] == frame(count, len)[..],
                        "echo {count} ({len} bytes): wrong content"
                    );
                    count += 1;
                    bytes += len;
                }
                (count, bytes)
            });

            for (i, &len) in sizes.iter().enumerate() {
                sink.feed(frame(i, len)).await.expect("client feed");
            }
            SinkExt::<Vec<u8>>::close(&mut sink)
                .await
                .expect("client close");

            let (count, bytes) = reader.await.expect("reader task");
            assert_eq!(count, FRAMES, "every frame echoed exactly once");
            assert_eq!(bytes, total);
            server.await.expect("server task")
        })
    });
    assert_eq!(stats.frames, FRAMES);
    // Most frames are small, so replies batch too, if less than lines do.
    assert!(
        stats.flushes * 2 <= FRAMES,
        "replies not batched: {stats:?}"
    );
}
