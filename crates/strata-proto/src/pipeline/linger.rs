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
//! until the peer has taken every byte it was sent (when the transport
//! can tell, from the kernel's send queue), unless the peer stops taking
//! them for the write timeout, then for a moment more, so that the
//! peer's close, not a reset, most often ends the stream.

use std::future::poll_fn;
use std::io;
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

/// The first and the longest wait between looks at the kernel's send
/// queue while the peer sends nothing (nothing wakes the connection when
/// the peer acknowledges bytes).
const FIRST_WAIT: Duration = Duration::from_millis(10);
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Reads in a row that a transport may fail with `Interrupted` before the
/// linger gives up on it (and the reset watch yields): one that always
/// does would keep the worker (such a read neither waits nor yields).
pub(super) const MAX_INTERRUPTED: u32 = 16;

/// How long a peer that sent [`LINGER_BYTES`] without taking any bytes
/// waits before it is read again.
const PACE: Duration = Duration::from_millis(100);

/// Reads and discards what the peer sends: first, while the kernel's send
/// queue still holds bytes the peer has not taken (`unsent`), until it has
/// taken them all, giving up when it takes none for `patience` (a peer
/// that reads, however slowly, takes some: its kernel reopens its window
/// in steps, up to 64 KiB apart). A peer that sends more than
/// [`LINGER_BYTES`] without taking any is read at most that much per
/// [`PACE`], so that a flood costs little. Then up to [`LINGER_BYTES`] or
/// `time`. Ends at once when the peer closes or resets. Our write side is
/// already shut down, so the peer has its answers and an end of stream
/// coming.
///
/// A peer that has stopped sending could be let go earlier (closing with
/// nothing unread sends no reset, and the kernel delivers the rest), but
/// not one that is only busy or reads slowly and sends its next request
/// later: that request would meet a closed socket, whose reset destroys
/// the answers still queued. The two look alike until the write timeout.
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
        // When the queue last shrank, the bytes dropped since, and the
        // next wait.
        let (mut progress, mut dropped, mut wait) = (Instant::now(), 0, FIRST_WAIT);
        let mut interrupted = 0;
        loop {
            if dropped >= LINGER_BYTES {
                // Sends much, takes nothing: pace the reads.
                strata_rt::time::sleep(PACE).await;
                dropped = 0;
            }
            let read = poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut scratch));
            match strata_rt::time::timeout(wait, read).await {
                // Read again, as after a timeout (a transport in user space
                // may report a signal; a socket never does), but not
                // without end: that would never wait, nor yield.
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                    interrupted += 1;
                    if interrupted >= MAX_INTERRUPTED {
                        return;
                    }
                    continue;
                }
                // Closed or reset: a close with nothing unread sends no
                // reset, and the kernel still delivers what it holds.
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(n)) => dropped += n,
                Err(_) => wait = (wait * 2).min(MAX_WAIT),
            }
            interrupted = 0;
            match unsent(io.get_ref()) {
                Some(0) | None => break,
                Some(n) if n < left => {
                    (left, progress, dropped, wait) = (n, Instant::now(), 0, FIRST_WAIT);
                }
                Some(_) if progress.elapsed() >= patience => return,
                Some(_) => {}
            }
        }
    }
    let drain = async {
        let (mut total, mut interrupted) = (0, 0);
        while total < LINGER_BYTES {
            match poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut scratch)).await {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    interrupted += 1;
                    if interrupted >= MAX_INTERRUPTED {
                        return;
                    }
                }
                Ok(0) | Err(_) => return,
                Ok(n) => (total, interrupted) = (total + n, 0),
            }
        }
    };
    let _ = strata_rt::time::timeout(time, drain).await;
}
