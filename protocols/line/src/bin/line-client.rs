//! `line-client`: sends lines and prints the answers.
//!
//! ```text
//! line-client hello world          # one request per argument
//! printf 'hello\nhi\n' | line-client   # or one per stdin line
//! line-client --addr 127.0.0.1:12345 hello
//! ```
//!
//! Requests are pipelined: a thread writes them while the answers are
//! printed in order as they arrive, so any amount of input streams through
//! without either side waiting on the other. Stdin is sent as it comes, in
//! pieces, bytes and all (a line still unfinished is not held back, and
//! invalid UTF-8 goes too: the server says what it makes of it). A server
//! that owes answers and sends nothing for `--timeout` (30 s by default),
//! or takes none of the input for that long while its answers are being
//! read, is given up on; once the
//! input is all sent and answered, the client ends when the server closes
//! or after that long of quiet. An answer line longer than 1 MiB ends the
//! run with an error. The exit code is 0 only if every request got an answer
//! and none of the answers is an `error: ...` line. For load generation use
//! the bench harness (`cargo run --release -p strata-bench --bin line`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Arg, ArgAction, Command};

fn main() -> ExitCode {
    let m = Command::new("line-client")
        .about("Send lines to a line server and print the answers")
        .arg(
            Arg::new("addr")
                .long("addr")
                .value_name("IP:PORT")
                .default_value("127.0.0.1:12345")
                .value_parser(strata_line::parse_addr)
                .help("Server address"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("DURATION")
                .default_value("30s")
                .value_parser(strata_line::parse_duration)
                .help(
                    "Give up when the server owes answers and sends nothing, or takes no \
                     input, for this long; end this long after the last answer if the \
                     server keeps the connection open (also the connect timeout; 0 waits \
                     forever)",
                ),
        )
        .arg(
            Arg::new("lines")
                .action(ArgAction::Append)
                .help("Requests to send; read from stdin when none are given"),
        )
        .get_matches();
    let addr = *m.get_one::<SocketAddr>("addr").expect("has default");
    let timeout = *m.get_one::<Duration>("timeout").expect("has default");
    let timeout = (!timeout.is_zero()).then_some(timeout);
    let args: Option<Vec<String>> = m.get_many::<String>("lines").map(|v| v.cloned().collect());
    match run(addr, timeout, args) {
        Ok(outcome) => outcome.report(addr),
        // Our own output is gone (`line-client ... | head -1`): nobody is
        // left to tell, as with any Unix filter.
        Err(Failure::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(Failure::Stdout(e)) => {
            strata_line::say!("line-client: stdout: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Server(e)) => {
            strata_line::say!("line-client: {addr}: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Silent(t)) => {
            strata_line::say!("line-client: {addr}: no answer within {t:?}; giving up");
            ExitCode::FAILURE
        }
    }
}

/// The longest answer line taken, newline excluded (the line server's
/// answers are a few bytes; its own limit on requests is 8 KiB).
const MAX_ANSWER: usize = 1 << 20;

/// Why a run stopped early: the connection, our own output, or a server
/// that owed answers and sent nothing for the timeout.
enum Failure {
    Server(io::Error),
    Stdout(io::Error),
    Silent(Duration),
}

/// How the writer thread ended.
enum Input {
    /// Every request was sent; this many.
    Sent(u64),
    /// Stdin could not be read.
    Unreadable(io::Error),
    /// The server stopped taking requests (it closed) before the end of
    /// the input.
    Cut,
    /// The server took no bytes for the timeout while requests were being
    /// sent (it stopped reading).
    Stalled(Duration),
}

/// What a run sent and got back.
struct Outcome {
    input: Input,
    answered: u64,
    errors: u64,
    /// The connection ended inside an answer (no newline after it).
    cut_answer: bool,
}

impl Outcome {
    /// Prints what went wrong, if anything; the exit code.
    fn report(&self, addr: SocketAddr) -> ExitCode {
        let mut ok = self.errors == 0 && !self.cut_answer;
        if self.cut_answer {
            strata_line::say!(
                "line-client: {addr}: the connection closed in the middle of an answer"
            );
        }
        match &self.input {
            Input::Sent(sent) if *sent == self.answered => {}
            Input::Sent(sent) => {
                strata_line::say!(
                    "line-client: {addr}: {} to {sent} request{}",
                    answers(self.answered),
                    if *sent == 1 { "" } else { "s" }
                );
                ok = false;
            }
            Input::Unreadable(e) => {
                strata_line::say!("line-client: stdin: {e}");
                ok = false;
            }
            Input::Cut => {
                strata_line::say!(
                    "line-client: {addr}: the server closed the connection before the end of the \
                     input ({})",
                    answers(self.answered)
                );
                ok = false;
            }
            Input::Stalled(t) => {
                strata_line::say!(
                    "line-client: {addr}: the server took no input for {t:?} ({}); \
                     giving up",
                    answers(self.answered)
                );
                ok = false;
            }
        }
        match self.errors {
            0 => {}
            1 => strata_line::say!("line-client: {addr}: 1 answer was an error"),
            n => strata_line::say!("line-client: {addr}: {n} answers were errors"),
        }
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

fn run(
    addr: SocketAddr,
    timeout: Option<Duration>,
    args: Option<Vec<String>>,
) -> Result<Outcome, Failure> {
    let stream = match timeout {
        Some(t) => TcpStream::connect_timeout(&addr, t),
        None => TcpStream::connect(addr),
    }
    .map_err(Failure::Server)?;
    stream.set_read_timeout(timeout).map_err(Failure::Server)?;
    // The writer's clone shares the socket, and so this timeout: a server
    // that stops reading must not hold the writer (and the client) forever.
    stream.set_write_timeout(timeout).map_err(Failure::Server)?;
    let mut socket = stream.try_clone().map_err(Failure::Server)?;
    // Requests written so far, for telling a silent server (answers owed)
    // from a quiet one (none owed: the user has not typed anything yet).
    let sent = Arc::new(AtomicU64::new(0));
    let writer_sent = sent.clone();
    let reading = Arc::new(ReaderState::default());
    let watched = reading.clone();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let sent = &*writer_sent;
        let mut to = Patient {
            socket: &mut socket,
            reader: &watched,
            timeout,
        };
        let result = match args {
            Some(lines) => lines.iter().try_for_each(|l| -> Result<(), Stop> {
                to.write_all(l.as_bytes())?;
                to.write_all(b"\n")?;
                // An argument with line breaks in it is several requests.
                sent.fetch_add(1 + l.matches('\n').count() as u64, Ordering::SeqCst);
                Ok(())
            }),
            None => copy_input(io::stdin().lock(), &mut to, sent),
        };
        // Answers that already came are still read below; but a server
        // that stalled is given up on now: the reader, waiting for answers
        // that do not come, sees the end of the stream at once.
        let _ = socket.shutdown(match result {
            Err(Stop::Stalled) => Shutdown::Both,
            _ => Shutdown::Write,
        });
        let sent = sent.load(Ordering::SeqCst);
        let _ = done.send(match result {
            Ok(()) => Input::Sent(sent),
            Err(Stop::Input(e)) => Input::Unreadable(e),
            // The server closed early (after an error line, say): its
            // answers are still read below.
            Err(Stop::Socket) => Input::Cut,
            Err(Stop::Stalled) => Input::Stalled(timeout.unwrap_or_default()),
        });
    });
    let mut out = io::stdout().lock();
    let mut reader = BufReader::new(Counted {
        stream,
        state: &reading,
        timeout,
        waiting_since: None,
    });
    let mut answer = Vec::new();
    let (mut answered, mut errors, mut cut_answer) = (0, 0, false);
    // How the writer ended, once known.
    let mut input = None;
    loop {
        // `answer` may hold the start of an answer from before a timeout.
        // Bounded: a server that sends one endless line must not take all
        // our memory.
        let room = (MAX_ANSWER + 1).saturating_sub(answer.len()) as u64;
        let read = (&mut reader).take(room).read_until(b'\n', &mut answer);
        if answer.len() > MAX_ANSWER && !answer.ends_with(b"\n") {
            return Err(Failure::Server(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("an answer longer than {MAX_ANSWER} bytes; giving up"),
            )));
        }
        let ended = match read {
            Ok(0) => true,
            Ok(_) => false,
            // The server closed with a reset after its last answer.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => true,
            // The read timeout: give up only if answers are owed.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if sent.load(Ordering::SeqCst) > answered {
                    // Show what came of the answer, as when the connection
                    // closes in the middle of one.
                    if !answer.is_empty() {
                        answer.push(b'\n');
                        out.write_all(&answer).map_err(Failure::Stdout)?;
                    }
                    out.flush().map_err(Failure::Stdout)?;
                    return Err(Failure::Silent(timeout.unwrap_or_default()));
                }
                // Nothing owed. Once the input is all sent too, a server
                // that keeps the connection open has nothing more to say.
                if input.is_none() {
                    input = finished.try_recv().ok();
                }
                if input.is_some() {
                    break;
                }
                continue;
            }
            Err(e) => return Err(Failure::Server(e)),
        };
        if answer.is_empty() {
            break;
        }
        if !answer.ends_with(b"\n") {
            // Cut off: shown, but not an answer.
            cut_answer = true;
            answer.push(b'\n');
        } else {
            answered += 1;
            if answer.starts_with(b"error:") {
                errors += 1;
            }
        }
        reading.printing.store(true, Ordering::SeqCst);
        let printed = out.write_all(&answer);
        reading.printing.store(false, Ordering::SeqCst);
        printed.map_err(Failure::Stdout)?;
        answer.clear();
        if ended {
            break;
        }
    }
    out.flush().map_err(Failure::Stdout)?;
    // The server closed. The writer has finished, or will as soon as its
    // next write fails; unless it waits on stdin (a terminal, a pipe kept
    // open), which must not keep the client alive: then the server closed
    // before the end of the input.
    let input = input
        .or_else(|| finished.recv_timeout(Duration::from_millis(500)).ok())
        .unwrap_or(Input::Cut);
    Ok(Outcome {
        input,
        answered,
        errors,
        cut_answer,
    })
}

/// Why the writer stopped early: stdin failed, the socket did (the
/// server closed; what it answered tells the rest), or a write waited out
/// the timeout (the server stopped reading).
enum Stop {
    Input(io::Error),
    Socket,
    Stalled,
}

impl From<io::Error> for Stop {
    fn from(_: io::Error) -> Stop {
        Stop::Socket
    }
}

/// What the reader is up to, for the writer to tell a server that stopped
/// reading from one that waits for us to read its answers.
#[derive(Default)]
struct ReaderState {
    /// Reads from the socket that got bytes, so far.
    reads: AtomicU64,
    /// The reader is writing an answer to our stdout (which may block).
    printing: std::sync::atomic::AtomicBool,
}

/// The socket as the reader reads it: every read that gets bytes counts
/// (an answer arriving slowly is progress too, not only a whole one).
struct Counted<'a> {
    stream: TcpStream,
    state: &'a ReaderState,
    /// The socket's read timeout.
    timeout: Option<Duration>,
    /// When the wait that signals keep interrupting began (see `read`).
    waiting_since: Option<Instant>,
}

impl io::Read for Counted<'_> {
    /// A read interrupted by a signal (a profiler's, say: `EINTR`) is
    /// retried by the caller with the socket's whole timeout again; with
    /// signals arriving more often than that, the timeout would never
    /// pass. So an interrupted read shortens the timeout to what is left
    /// of the wait, and reports `TimedOut` once nothing is.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let since = self.waiting_since.unwrap_or_else(Instant::now);
        match self.stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                let Some(timeout) = self.timeout else {
                    return Err(e);
                };
                let left = timeout.saturating_sub(since.elapsed());
                if left.is_zero() {
                    self.end_wait();
                    return Err(io::ErrorKind::TimedOut.into());
                }
                self.waiting_since = Some(since);
                self.stream.set_read_timeout(Some(left))?;
                Err(e)
            }
            r => {
                self.end_wait();
                let n = r?;
                if n > 0 {
                    self.state.reads.fetch_add(1, Ordering::SeqCst);
                }
                Ok(n)
            }
        }
    }
}

impl Counted<'_> {
    /// Gives the socket its whole read timeout back after an interrupted
    /// wait ended.
    fn end_wait(&mut self) {
        if self.waiting_since.take().is_some() {
            let _ = self.stream.set_read_timeout(self.timeout);
        }
    }
}

/// Writes to the socket, whose write timeout is the client's `--timeout`:
/// a write that took nothing for that long is a stalled server only if the
/// reader did not move meanwhile and is not held by our own stdout (a
/// paused pager): else the server may be waiting for us, and the write
/// goes on.
struct Patient<'a> {
    socket: &'a mut TcpStream,
    reader: &'a ReaderState,
    /// The socket's write timeout.
    timeout: Option<Duration>,
}

impl Patient<'_> {
    fn write_all(&mut self, mut buf: &[u8]) -> Result<(), Stop> {
        // A write interrupted by a signal (`EINTR`) is made again, as part
        // of the same wait: with the timeout shortened to what is left of
        // it, else signals arriving more often than the timeout would keep
        // it from ever passing.
        let (mut attempt, mut shortened) = (None, false);
        while !buf.is_empty() {
            // "Meanwhile" is this write: an answer read before it says
            // nothing about a server that stopped reading since.
            let (reads, queued, started) = *attempt.get_or_insert_with(|| {
                let reads = self.reader.reads.load(Ordering::SeqCst);
                (reads, unacked(self.socket), Instant::now())
            });
            let written = self.socket.write(buf);
            if let Err(e) = &written
                && e.kind() == io::ErrorKind::Interrupted
            {
                let left = self.timeout.map(|t| t.saturating_sub(started.elapsed()));
                if left != Some(Duration::ZERO) {
                    self.socket
                        .set_write_timeout(left)
                        .map_err(|_| Stop::Socket)?;
                    shortened = left.is_some();
                    continue;
                }
            }
            attempt = None;
            if std::mem::take(&mut shortened) {
                // Whole again.
                self.socket
                    .set_write_timeout(self.timeout)
                    .map_err(|_| Stop::Socket)?;
            }
            let (n, waited_out) = match written {
                Ok(0) => return Err(Stop::Socket),
                // A write that copied some bytes into our own send buffer,
                // then waited for room for the rest until the timeout,
                // returns that count.
                Ok(n) => (n, self.timeout.is_some_and(|t| started.elapsed() >= t)),
                // Interrupted with no time left: the timeout has passed.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => (0, true),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    (0, true)
                }
                Err(_) => return Err(Stop::Socket),
            };
            buf = &buf[n..];
            if waited_out && self.stalled(reads, queued, n) {
                return Err(Stop::Stalled);
            }
        }
        Ok(())
    }

    /// After a write that waited out the timeout, having queued `n` bytes
    /// with `queued` unacknowledged before it: whether the server took
    /// none of our bytes (where the kernel tells) and the reader got none
    /// of its and is not printing.
    fn stalled(&self, reads: u64, queued: Option<u64>, n: usize) -> bool {
        let took = match (queued, unacked(self.socket)) {
            (Some(before), Some(after)) => before + n as u64 > after,
            // Cannot tell: bytes taken into our own buffer count.
            _ => n > 0,
        };
        !took
            && self.reader.reads.load(Ordering::SeqCst) == reads
            && !self.reader.printing.load(Ordering::SeqCst)
    }
}

/// Bytes sent on `socket` that the server's kernel has not acknowledged
/// (Linux's `SIOCOUTQ`); `None` where that cannot be asked. The server's
/// kernel stops acknowledging once its receive buffer is full: then only
/// the server reading frees room.
fn unacked(socket: &TcpStream) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ on an open socket writes one c_int to `n`.
        let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        (rc == 0).then(|| u64::try_from(n).ok()).flatten()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        None
    }
}

/// Sends `input` as it comes, in pieces (a line still unfinished is not
/// held back), adding a final newline if it lacks one; counts the lines
/// sent in `sent`.
fn copy_input(
    mut input: impl BufRead,
    socket: &mut Patient<'_>,
    sent: &AtomicU64,
) -> Result<(), Stop> {
    let mut last = b'\n';
    loop {
        // A read interrupted by a signal (`EINTR`) is no end of the input.
        loop {
            match input.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Stop::Input(e)),
                Ok(_) => break,
            }
        }
        let chunk = input.fill_buf().map_err(Stop::Input)?;
        let Some(&end) = chunk.last() else { break };
        socket.write_all(chunk)?;
        let lines = chunk.iter().filter(|&&b| b == b'\n').count();
        sent.fetch_add(lines as u64, Ordering::SeqCst);
        last = end;
        let n = chunk.len();
        input.consume(n);
    }
    if last != b'\n' {
        socket.write_all(b"\n")?;
        sent.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

/// "1 answer", "2 answers".
fn answers(n: u64) -> String {
    format!("{n} answer{}", if n == 1 { "" } else { "s" })
}
