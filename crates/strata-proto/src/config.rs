//! Per-connection limits and timeouts, with safe defaults.

use std::time::Duration;

/// Limits that apply to each connection.
///
/// Every bound has a default chosen to be safe for an internet-facing
/// server; raise them deliberately.
///
/// A timeout of `None` never fires. `Some(Duration::ZERO)` is a timeout
/// like any other and fires at its first check, so a connection closes
/// as soon as the condition holds (the line server's `0` on its command
/// line means `None`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use strata_proto::ConnectionConfig;
///
/// let cfg = ConnectionConfig::default()
///     .max_in_flight(16)
///     .idle_timeout(Some(Duration::from_secs(30)));
/// assert_eq!(cfg.get_max_in_flight(), 16);
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub(crate) max_in_flight: usize,
    pub(crate) write_high_water_mark: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
}

impl Default for ConnectionConfig {
    /// 64 requests in flight, a 64 KiB write high-water mark, 60 s idle
    /// timeout, 30 s to finish a request once it started arriving, 60 s
    /// for a peer to take any of the responses waiting for it.
    fn default() -> Self {
        ConnectionConfig {
            max_in_flight: 64,
            write_high_water_mark: 64 * 1024,
            idle_timeout: Some(Duration::from_secs(60)),
            read_timeout: Some(Duration::from_secs(30)),
            write_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl ConnectionConfig {
    /// Requests of one connection that may run at once (at least 1). When
    /// reached, the connection takes no more requests until the oldest
    /// one's response is done and goes to the write buffer (whose
    /// high-water mark bounds what waits to be written). It still reads ahead, up to 4 KiB of buffered requests, so
    /// that a peer that resets meanwhile is noticed at once: its requests
    /// in flight are dropped and its connection ends. (A peer with more
    /// than that buffered is noticed when reading resumes. A connection
    /// that reads no more requests, after bad input or a graceful stop,
    /// still reads and drops up to 256 KiB to see a reset while its
    /// requests run. One whose peer half-closed first, shutting down its
    /// sending side, is no longer read from at all, since it can send
    /// nothing more; if it then resets while its requests run, that is
    /// noticed when a response is written.)
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Current `max_in_flight`.
    pub fn get_max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Bytes of encoded responses buffered before the connection stops
    /// taking more and waits for the socket to drain (default 64 KiB).
    ///
    /// It bounds what a peer that stops reading costs: the buffer holds
    /// the mark plus one response, in an allocation of up to twice that
    /// (it grows by doubling), or less than three times the mark plus two
    /// responses when the peer took part of a flush (see `Framed`'s docs);
    /// and the read buffer holds up to one read window (64 KiB) of
    /// requests not yet taken. A review measured
    /// about 232 KiB per such connection with the defaults.
    pub fn write_high_water_mark(mut self, bytes: usize) -> Self {
        self.write_high_water_mark = bytes.max(1);
        self
    }

    /// Close a connection that has had nothing in flight and nothing
    /// buffered for this long (no part of a request: see
    /// [`Decoder::in_frame`](strata_codec::Decoder::in_frame)). `None`
    /// disables it.
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Close a connection that has waited this long for the rest of a
    /// request it has started to receive, with nothing else to do: a peer
    /// that sends a request slowly, or stops partway (slowloris defence).
    ///
    /// The clock runs only while the connection waits for that peer
    /// alone: while earlier requests are in flight, or their responses
    /// wait to be written, the server is the one keeping it waiting, and
    /// the clock starts once they are done (bound a request's own time
    /// with a timeout middleware, and a peer that does not read with the
    /// write timeout). Bytes that arrive do not restart it; a request
    /// completed does, so it bounds each request's arrival whole: a
    /// protocol with large requests (uploads) sets it for the slowest
    /// client it serves. `None` disables it, and then nothing but the
    /// connection limit bounds a peer that stops partway through a
    /// request (the idle timeout runs only with nothing buffered).
    ///
    /// The connection closes without a word, unless the protocol has one
    /// for it ([`ServerProto::read_timeout_response`](crate::pipeline::ServerProto::read_timeout_response),
    /// HTTP's 408). "Started" is the codec's word:
    /// [`Decoder::in_frame`](strata_codec::Decoder::in_frame), which by
    /// default says bytes are buffered; a codec that takes a request's
    /// bytes out of the buffer as they arrive says so there.
    pub fn read_timeout(mut self, t: Option<Duration>) -> Self {
        self.read_timeout = t;
        self
    }

    /// Close a connection whose responses wait to be written and of which
    /// the peer has taken no byte for this long: a peer that stopped
    /// reading would otherwise hold its connection (and its buffered
    /// responses) forever. A peer that reads, however slowly, is not
    /// affected: progress is any byte the socket accepts, and under
    /// `TcpServer` on Linux also any byte the peer takes from the kernel's
    /// send queue (a large send buffer is reported writable again only
    /// after much of it has drained). Where the kernel's send queue can be
    /// read (TCP on Linux), responses left only there also count as
    /// waiting: a connection otherwise idle checks that queue once, when
    /// it frees its buffers after about 100 ms idle, and is closed if the
    /// peer then takes none of them for this long. The queue is looked at
    /// every quarter of this timeout, so a connection is closed between
    /// one and one and a quarter timeouts after its last progress (a byte
    /// the socket accepted or the peer took; for an idle connection, at
    /// the earliest when it freed its buffers). `None` disables it.
    ///
    /// It also bounds a connection the server closed (after a bad request,
    /// a closing service error or a stop) while its peer has not taken the
    /// last responses from the kernel's send queue: the server reads and
    /// drops what the peer sends until it has, and lets go after this long
    /// without the peer taking a byte (60 s when `None`; a graceful stop's
    /// shutdown timeout bounds it too). Closing with the peer's bytes
    /// unread, or with more coming, would make the kernel reset the
    /// connection and throw those responses away.
    pub fn write_timeout(mut self, t: Option<Duration>) -> Self {
        self.write_timeout = t;
        self
    }
}
