//! Lingering: what a connection the server closed does before it lets go
//! of its socket.
//!
//! The server has written its last response and shut down its write side,
//! but the peer may still be sending (requests after a bad one, or after a
//! stop). Closing a socket with unread bytes makes the kernel answer with
//! a reset, and a reset throws away whatever is still in the send queue:
//! the last responses, owed to the peer. So the connection reads and drops
//! what the peer sends until the peer has taken every byte it was sent
//! (when the transport can tell, from the kernel's send queue), then for
//! a moment more, so that the peer's close, not a reset, most often ends
//! the stream.

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

/// How often a lingering connection asks the kernel whether the peer has
/// taken its last bytes: nothing wakes it when the peer acknowledges.
const UNSENT_POLL: Duration = Duration::from_millis(10);

/// Reads and discards what the peer sends: first for as long as the peer
/// keeps taking the bytes still in the kernel's send queue (`unsent`;
/// giving up after `patience` without progress, the write timeout's rule;
/// `None`: no limit), then up to [`LINGER_BYTES`] or `time`. Ends at once
/// when the peer closes or resets. Our write side is already shut down,
/// so the peer has its answers and an end of stream coming.
pub(super) async fn linger<T: AsyncRead + Unpin>(
    io: &mut Counted<T>,
    unsent: fn(&T) -> Option<u64>,
    patience: Option<Duration>,
    time: Duration,
) {
    // On the heap: an array here would be part of every connection's
    // future, 4 KiB per connection, lingering or not.
    let mut scratch = vec![0u8; 4096];
    if let Some(mut left) = unsent(io.get_ref()).filter(|&n| n > 0) {
        let mut progress = Instant::now();
        loop {
            let read = poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut scratch));
            // Closed or reset: a close with nothing unread sends no reset,
            // and the kernel still delivers what it holds.
            if let Ok(Ok(0) | Err(_)) = strata_rt::time::timeout(UNSENT_POLL, read).await {
                return;
            }
            match unsent(io.get_ref()) {
                Some(0) | None => break,
                Some(n) if n < left => {
                    left = n;
                    progress = Instant::now();
                }
                Some(_) if patience.is_some_and(|p| progress.elapsed() >= p) => return,
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
