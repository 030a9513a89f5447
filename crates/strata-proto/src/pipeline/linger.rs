//! Lingering: what a connection the server closed does before it lets go
//! of its socket.
//!
//! The server has written its last response and shut down its write side,
//! but the peer may still be sending (requests after a bad one, or after a
//! stop). A socket closed with unread bytes, or one that receives data
//! after its close, makes the kernel answer with a reset, and a reset
//! throws away whatever is still in the send queue: the last responses,
//! owed to the peer. A socket closed with nothing unread, and no more data
//! coming, is not reset: the kernel goes on delivering its send queue
//! after the close. So the connection reads and drops what the peer sends
//! while the peer keeps sending and has not yet taken every byte it was
//! sent (when the transport can tell, from the kernel's send queue), then
//! for a moment more, so that the peer's close, not a reset, most often
//! ends the stream.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_io::AsyncRead;

use super::written::Counted;

/// Bytes a connection reads and drops after its peer took its last
/// responses (or when the transport cannot tell), before it closes.
pub(super) const LINGER_BYTES: usize = 256 * 1024;

/// How long it does that at most (a tenth of it after a graceful stop,
/// which drained the socket just before).
pub(super) const LINGER_TIME: Duration = Duration::from_secs(1);

/// How long a peer that keeps sending but takes none of the last responses
/// is waited for, when the connection has no write timeout.
pub(super) const LINGER_PATIENCE: Duration = Duration::from_secs(60);

/// How long the peer must send nothing for the connection to take it that
/// it has stopped sending (its requests all arrived): then the socket is
/// closed with nothing unread, and the kernel delivers the rest.
const QUIET: Duration = Duration::from_millis(50);

/// Reads and discards what the peer sends: first, while the kernel's send
/// queue still holds bytes the peer has not taken (`unsent`), for as long
/// as the peer keeps sending and keeps taking them (giving up after
/// `patience` without either); then up to [`LINGER_BYTES`] or `time`.
/// Ends at once when the peer closes or resets. Our write side is already
/// shut down, so the peer has its answers and an end of stream coming.
pub(super) async fn linger<T: AsyncRead + Unpin>(
    io: &mut Counted<T>,
    unsent: fn(&T) -> Option<u64>,
    patience: Duration,
    time: Duration,
) {
    // On the heap: an array here would be part of every connection's
    // future, 4 KiB per connection, lingering or not.
    let mut scratch = vec![0u8; 4096];
    if let Some(mut left) = unsent(io.get_ref()).filter(|&n| n > 0) {
        let mut progress = Instant::now();
        loop {
            let read = poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut scratch));
            match strata_rt::time::timeout(QUIET, read).await {
                // Quiet: nothing unread, nothing coming; closing now sends
                // no reset, and the kernel still delivers what it holds.
                Err(_) => return,
                // Closed or reset: the same.
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(_)) => {}
            }
            match unsent(io.get_ref()) {
                Some(0) | None => break,
                Some(n) if n < left => {
                    left = n;
                    progress = Instant::now();
                }
                // Sending, but taking nothing: a peer that does not read.
                Some(_) if progress.elapsed() >= patience => return,
                Some(_) => {}
            }
        }
    }
    let drain = async {
        let mut total = 0;
        while total < LINGER_BYTES {
            match poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut scratch)).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = strata_rt::time::timeout(time, drain).await;
}
