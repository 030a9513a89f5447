//! A load generator: C connections, D requests in flight on each, every
//! response checked byte for byte, latency recorded per request.
//!
//! It is a single-threaded `mio` loop with no runtime of its own, so the
//! servers it compares are all driven by exactly the same client, and it
//! costs little CPU per request (see `client_cpu` in the result).
//!
//! # What the response check catches
//!
//! Every complete response must equal the expected bytes, and a connection
//! may never hold more complete responses than requests it has written and
//! not yet seen answered: either is `InvalidData`, never a panic. The load
//! is closed-loop, though (each answer sends the next request), so until
//! the deadline a connection always has D requests outstanding, and an
//! unsolicited response that arrives in a read bringing no more than D
//! complete responses in all is indistinguishable from an answer: it is
//! taken for the oldest request's, and every later answer is matched one
//! request late (their latencies are misattributed). Such a surplus is
//! caught
//!
//! * at once, if one read brings more complete responses than requests
//!   outstanding on the connection (say a burst of unsolicited lines, or
//!   two answers to one request at D=1);
//! * otherwise at the final drain: after the deadline no request is sent,
//!   each connection must receive exactly its outstanding count, and any
//!   byte beyond that (read with the last expected response, or arriving
//!   within [`SETTLE`] after the last connection finished) fails the run.
//!
//! Not caught: a surplus that arrives later than [`SETTLE`] after the
//! final drain, and a server that swallows one request and answers another
//! twice (the counts agree).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// What to send and what to expect back.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Server address (loopback only).
    pub addr: SocketAddr,
    /// Number of connections.
    pub conns: usize,
    /// Requests in flight per connection (pipelining depth).
    pub depth: usize,
    /// Bytes of one request.
    pub request: Vec<u8>,
    /// Bytes of the matching response.
    pub response: Vec<u8>,
    /// How long to keep issuing requests.
    pub duration: Duration,
    /// Where the live progress line goes.
    pub progress: Progress,
}

/// The live progress line: once a second, the run's elapsed time, the
/// rate over that second, and the responses so far, on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// No progress line.
    Off,
    /// Rewritten in place (`\r`) on a terminal, erased at the end; a line
    /// per second when standard error is not a terminal.
    Live,
}

impl Progress {
    /// `Live` when standard error is a terminal, `Off` otherwise (so that
    /// logs of scripted runs hold only the results).
    pub fn on_terminal() -> Progress {
        use std::io::IsTerminal;
        if io::stderr().is_terminal() {
            Progress::Live
        } else {
            Progress::Off
        }
    }
}

/// Prints the progress line once a second.
struct Meter {
    mode: Progress,
    terminal: bool,
    start: Instant,
    next: Instant,
    last_count: u64,
    last_at: Instant,
}

impl Meter {
    fn new(mode: Progress, start: Instant) -> Meter {
        use std::io::IsTerminal;
        Meter {
            mode,
            terminal: io::stderr().is_terminal(),
            start,
            next: start + Duration::from_secs(1),
            last_count: 0,
            last_at: start,
        }
    }

    fn tick(&mut self, now: Instant, responses: u64) {
        if self.mode == Progress::Off || now < self.next {
            return;
        }
        let rate = (responses - self.last_count) as f64
            / now.duration_since(self.last_at).as_secs_f64().max(1e-9);
        let line = format!(
            "  {:>4.0} s  {:>11.0} req/s  {:>12} responses",
            now.duration_since(self.start).as_secs_f64(),
            rate,
            responses
        );
        if self.terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
        self.last_count = responses;
        self.last_at = now;
        self.next = now + Duration::from_secs(1);
    }

    fn finish(&self) {
        if self.mode == Progress::Live && self.terminal && self.last_count > 0 {
            // Erase the line, so that the caller's results start clean.
            eprint!("\r{:60}\r", "");
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct LoadResult {
    /// Correct responses received.
    pub responses: u64,
    /// Wall time from first request to the end of the run.
    pub elapsed: Duration,
    /// Per-request latency in microseconds.
    pub latency_us: Histogram<u64>,
    /// CPU time (user + system) the generator itself used.
    pub client_cpu: Duration,
}

/// How long the final drain keeps listening, once every connection has
/// received its last expected response, for bytes nobody asked for.
pub const SETTLE: Duration = Duration::from_millis(50);

fn surplus(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server sent more responses than requests: {what}"),
    )
}

struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    sent_at: VecDeque<Instant>,
}

impl Conn {
    /// Queues one request, stamped `now` (read once per batch by the
    /// caller: clock reads would otherwise be a visible share of the
    /// generator's own cost at high rates).
    fn queue_request(&mut self, req: &[u8], now: Instant) {
        self.out.extend_from_slice(req);
        self.sent_at.push_back(now);
    }

    /// Requests written in full and not answered yet: the most complete
    /// responses the connection can hold. Requests still (even partly) in
    /// the output buffer have not reached the server.
    fn answerable(&self, request_len: usize) -> Option<usize> {
        let unsent = (self.out.len() - self.out_pos).div_ceil(request_len);
        self.sent_at.len().checked_sub(unsent)
    }

    /// Reads everything the socket holds into `inbuf`; `Ok(false)` when
    /// the server closed the connection.
    fn read_all(&mut self, readbuf: &mut [u8]) -> io::Result<bool> {
        loop {
            match self.stream.read(readbuf) {
                Ok(0) => return Ok(false),
                // A short read took everything queued. The load
                // generator (unlike strata, whose design forbids it)
                // does not read again to see `WouldBlock`: on Linux
                // an edge-triggered epoll reports every later
                // arrival as a new event, so nothing is missed, and
                // the saved system call keeps the generator from
                // becoming the bottleneck at one request in flight.
                Ok(n) if n < readbuf.len() => {
                    self.inbuf.extend_from_slice(&readbuf[..n]);
                    return Ok(true);
                }
                Ok(n) => self.inbuf.extend_from_slice(&readbuf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(())
    }
}

/// Records `n` responses received at `t` for requests sent at `sent`.
fn record(hist: &mut Histogram<u64>, t: Instant, run: Option<(Instant, u64)>) {
    if let Some((sent, n)) = run {
        let _ = hist.record_n(t.duration_since(sent).as_micros().max(1) as u64, n);
    }
}

/// Runs the load described by `spec` and returns what it measured.
///
/// # Errors
///
/// Connection failures, a closed connection, a response that differs from
/// `spec.response`, or more responses than requests (both reported as
/// `InvalidData`; see the module documentation for what the count check
/// can and cannot see); an empty request or response is `InvalidInput`.
pub fn run(spec: &LoadSpec) -> io::Result<LoadResult> {
    assert!(
        spec.addr.ip().is_loopback(),
        "load tests only target loopback"
    );
    if spec.request.is_empty() || spec.response.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty request or response",
        ));
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns = Vec::with_capacity(spec.conns);
    for i in 0..spec.conns {
        let std_stream = std::net::TcpStream::connect(spec.addr)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        conns.push(Conn {
            stream,
            out: Vec::with_capacity(spec.request.len() * spec.depth),
            out_pos: 0,
            inbuf: Vec::with_capacity(4096),
            sent_at: VecDeque::with_capacity(spec.depth),
        });
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let cpu0 = crate::report::process_cpu();
    let start = Instant::now();
    let deadline = start + spec.duration;
    for c in &mut conns {
        let now = Instant::now();
        for _ in 0..spec.depth {
            c.queue_request(&spec.request, now);
        }
        c.flush()?;
    }
    let resp = &spec.response[..];
    let mut responses = 0u64;
    let mut readbuf = vec![0u8; 64 * 1024];
    let mut outstanding: usize = spec.conns * spec.depth;
    let mut meter = Meter::new(spec.progress, start);
    while outstanding > 0 {
        let now = Instant::now();
        meter.tick(now, responses);
        if now >= deadline + Duration::from_secs(5) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "server stopped answering",
            ));
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))?;
        let issuing = Instant::now() < deadline;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_readable() {
                if !c.read_all(&mut readbuf)? {
                    // After the deadline, a connection with every answer in
                    // and nothing partial is one the server may close (the
                    // settle step below accepts the same); before it, or
                    // with answers owed, a close is an error.
                    if !issuing && c.sent_at.is_empty() && c.inbuf.is_empty() {
                        let _ = poll.registry().deregister(&mut c.stream);
                        continue;
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed a connection",
                    ));
                }
                let complete = c.inbuf.len() / resp.len();
                if complete > 0 {
                    // Checked before anything is queued below: requests
                    // queued now cannot have been answered yet.
                    let answerable = c
                        .answerable(spec.request.len())
                        .ok_or_else(|| surplus("more queued than sent"))?;
                    if complete > answerable {
                        return Err(surplus(&format!(
                            "{complete} complete responses on a connection \
                             with {answerable} requests outstanding"
                        )));
                    }
                    let t = Instant::now();
                    // Requests sent in one batch share their send time, and
                    // their responses here share `t`: record each run of
                    // equal latencies with one histogram call.
                    let mut run: Option<(Instant, u64)> = None;
                    for k in 0..complete {
                        let got = &c.inbuf[k * resp.len()..(k + 1) * resp.len()];
                        if got != resp {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("unexpected response {:?}", String::from_utf8_lossy(got)),
                            ));
                        }
                        let sent = c
                            .sent_at
                            .pop_front()
                            .ok_or_else(|| surplus("response without request"))?;
                        run = match run {
                            Some((at, n)) if at == sent => Some((at, n + 1)),
                            other => {
                                record(&mut hist, t, other);
                                Some((sent, 1))
                            }
                        };
                        responses += 1;
                        if issuing {
                            c.queue_request(&spec.request, t);
                        } else {
                            outstanding = outstanding
                                .checked_sub(1)
                                .ok_or_else(|| surplus("beyond the final count"))?;
                        }
                    }
                    record(&mut hist, t, run);
                    c.inbuf.drain(..complete * resp.len());
                }
            }
            if c.out_pos < c.out.len() || !c.out.is_empty() {
                c.flush()?;
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu1 = crate::report::process_cpu();
    meter.finish();
    settle(&mut poll, &mut events, &mut conns, &mut readbuf)?;
    Ok(LoadResult {
        responses,
        elapsed,
        latency_us: hist,
        client_cpu: (cpu1.0 + cpu1.1).saturating_sub(cpu0.0 + cpu0.1),
    })
}

/// The end of the final drain: every connection has received exactly its
/// outstanding count, so any byte still buffered, or arriving within
/// [`SETTLE`], is a response nobody asked for.
fn settle(
    poll: &mut Poll,
    events: &mut Events,
    conns: &mut [Conn],
    readbuf: &mut [u8],
) -> io::Result<()> {
    let check = |c: &Conn| {
        if c.inbuf.is_empty() {
            Ok(())
        } else {
            Err(surplus(&format!(
                "{} bytes after the last expected response",
                c.inbuf.len()
            )))
        }
    };
    for c in conns.iter() {
        check(c)?;
    }
    let end = Instant::now() + SETTLE;
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        poll.poll(events, Some(end - now))?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_readable() {
                // A close is no surplus: only bytes are.
                c.read_all(readbuf)?;
                check(c)?;
            }
        }
    }
}
