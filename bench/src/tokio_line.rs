//! The tokio peers: the line protocol on tokio's multi-thread runtime with
//! tokio-util's `LinesCodec`, in the two idiomatic shapes.
//!
//! * `tokio`: one `Framed`, one `framed.send(response).await` per request.
//!   `send` flushes, so each response is its own `write`, however many
//!   requests arrived together.
//! * `tokio-batch`: the socket split with `TcpStream::into_split`, a
//!   `FramedRead` over the read half, a `FramedWrite` over the write half,
//!   and `requests.scan(..)` (answer each line; end after a bad one's
//!   error line) `.forward(responses)`. `Forward` feeds
//!   responses while the request stream is ready, without flushing, and
//!   flushes once it is pending (nothing buffered, the socket drained), so
//!   a pipelined batch is answered with one `write`, as strata and the mio
//!   server do. The owned halves share the socket through an `Arc` and no
//!   lock: `Framed::split()` would put a futures-util `BiLock` between
//!   them, two atomic swaps per poll on each side, a cost strata and mio
//!   do not pay.

use std::borrow::Cow;
use std::future::Future;

use futures_util::{SinkExt, StreamExt};

use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedRead, FramedWrite, LinesCodec, LinesCodecError};

const MAX_LINE: usize = 8192;

/// An answer line: borrowed for the common answers, as strata's
/// `HelloWorld` gives (tokio-util's `LinesCodec` encodes any `AsRef<str>`,
/// so those cost no allocation).
struct Reply(Cow<'static, str>);

impl AsRef<str> for Reply {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The protocol: `hello` answers `world`, other lines `idk`, a bad line an
/// error (after which the connection closes).
fn respond(line: &Result<String, LinesCodecError>) -> Reply {
    Reply(match line {
        Ok(l) if l == "hello" => Cow::Borrowed("world"),
        Ok(_) => Cow::Borrowed("idk"),
        Err(e) => Cow::Owned(format!("error: {e}")),
    })
}

/// Serves forever on a fresh loopback port with `threads` workers, one
/// request, one flushed response; prints `listening <addr>` once bound.
pub fn serve(threads: usize) -> std::io::Result<()> {
    run(threads, |stream| async move {
        let mut framed = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
        while let Some(line) = framed.next().await {
            if framed.send(respond(&line)).await.is_err() || line.is_err() {
                break;
            }
        }
    })
}

/// Like [`serve`], but on split halves, answering with `forward`: one
/// flush per batch.
pub fn serve_batched(threads: usize) -> std::io::Result<()> {
    run(threads, |stream| async move {
        let (read, write) = stream.into_split();
        let requests = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_LINE));
        let sink = FramedWrite::new(write, LinesCodec::new_with_max_length(MAX_LINE));
        // Stop after the first bad line, once its error line is sent.
        let responses = requests.scan(false, |failed, line| {
            let out = (!*failed).then(|| Ok(respond(&line)));
            *failed |= line.is_err();
            std::future::ready(out)
        });
        let _ = responses.forward(sink).await;
    })
}

fn run<F, Fut>(threads: usize, conn: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(conn(stream));
        }
    })
}
