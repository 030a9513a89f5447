//! Unix signals as futures, for graceful shutdown.
//!
//! ```no_run
//! use strata_rt::signal::{Signal, SignalKind};
//!
//! strata_rt::run(async {
//!     let mut term = Signal::new(SignalKind::terminate())?;
//!     term.recv().await;
//!     // ... stop accepting, drain connections, exit.
//! #   Ok::<(), std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # How it works
//!
//! The first [`Signal`] of a kind installs a process-wide handler for it
//! through `signal-hook-registry`, which chains to any handler installed
//! before. The handler does only async-signal-safe things: it bumps the
//! kind's delivery count and writes one byte to a self-pipe. A small thread
//! (`strata-signal`, started with the first handler) blocks reading that
//! pipe; each time it wakes it publishes every count that moved and
//! notifies all listeners of that kind. A listener remembers the delivery
//! count (not the published one) at its creation, so a delivery that
//! happened before it was created never completes its `recv`, however late
//! the thread publishes it.
//!
//! Signals are process-wide while reactors belong to one worker of one
//! runtime, so delivery does not go through a reactor: a [`Signal`] works on
//! any worker, on the `block_on` thread, in any runtime, and outlives them.
//!
//! # Semantics
//!
//! * Every `Signal` sees every delivery that happens after it was created:
//!   many listeners of one kind are all notified.
//! * Deliveries that arrive while nobody is waiting coalesce: one
//!   [`recv`](Signal::recv) completes for any number of them.
//! * Once installed, a handler stays for the life of the process, and the
//!   signal's default action (for SIGINT and SIGTERM: terminate the process)
//!   no longer happens, even after every `Signal` is dropped. This is the
//!   usual trade-off of Rust signal libraries: removing a handler safely is
//!   not possible in general.
//! * Across `fork`: the handlers stay installed in a child process, but
//!   the reading thread does not come along; the child's first
//!   [`Signal::new`] starts one of its own (with a pipe of its own), so
//!   create the child's listeners in the child. Until then a signal in the
//!   child writes nothing (its parent's pipe number may by then be a
//!   descriptor of the child's own). As with any `fork` of a
//!   threaded process, fork while no other thread is creating a `Signal`:
//!   a lock it held would stay locked in the child.

use std::fmt;
use std::future::{Future, poll_fn};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

use crate::executor::contained::ContainedWaker;

/// Signal numbers we keep state for (Linux has 64, others fewer).
const MAX_SIGNAL: usize = 65;

/// A kind of signal to listen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(libc::c_int);

impl SignalKind {
    /// SIGINT: interrupt from the terminal (Ctrl-C).
    pub const fn interrupt() -> Self {
        SignalKind(libc::SIGINT)
    }

    /// SIGTERM: polite request to terminate (what service managers send).
    pub const fn terminate() -> Self {
        SignalKind(libc::SIGTERM)
    }

    /// SIGHUP: the terminal hung up; daemons often reload on it.
    pub const fn hangup() -> Self {
        SignalKind(libc::SIGHUP)
    }

    /// SIGQUIT: quit from the terminal (Ctrl-\).
    pub const fn quit() -> Self {
        SignalKind(libc::SIGQUIT)
    }

    /// SIGUSR1.
    pub const fn user_defined1() -> Self {
        SignalKind(libc::SIGUSR1)
    }

    /// SIGUSR2.
    pub const fn user_defined2() -> Self {
        SignalKind(libc::SIGUSR2)
    }

    /// Any signal by number. [`Signal::new`] refuses the ones that cannot be
    /// handled (SIGKILL, SIGSTOP) or must not be (SIGSEGV, SIGBUS, SIGILL,
    /// SIGFPE).
    pub const fn from_raw(signum: libc::c_int) -> Self {
        SignalKind(signum)
    }

    /// The signal number.
    pub const fn as_raw(self) -> libc::c_int {
        self.0
    }
}

/// Per-signal-number state, shared by the handler, the pipe thread and
/// every listener.
struct Slot {
    /// Deliveries so far; bumped by the handler (async-signal-safe).
    delivered: AtomicU64,
    /// The value of `delivered` the pipe thread last published to
    /// listeners; it trails `delivered` by at most one wake-up of the thread.
    published: AtomicU64,
    event: Event,
}

static SLOTS: [Slot; MAX_SIGNAL] = [const {
    Slot {
        delivered: AtomicU64::new(0),
        published: AtomicU64::new(0),
        event: Event::new(),
    }
}; MAX_SIGNAL];

/// Which signals have a handler.
struct Registry {
    installed: [bool; MAX_SIGNAL],
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    installed: [false; MAX_SIGNAL],
});

/// The write end of this process's self-pipe, which the handlers write to
/// (-1: none). An atomic, read by the handler, so that a forked child can
/// point the inherited handlers at a pipe of its own.
///
/// A forked child inherits the handlers and this number but not the
/// `strata-signal` thread, and the number is its parent's: the child may
/// have closed it and reused it for a socket of its own. So a fork
/// handler (`pthread_atfork`) sets it to -1 in the child, and the handler
/// also writes only if `PIPE_PID` is its own pid (a fork made without the
/// C library's `fork`, which runs no fork handlers); the pid alone is not
/// enough, as a process that is pid 1 and forks into a new pid namespace
/// gives its child pid 1 too. The child's first listener starts a thread
/// and a pipe of its own.
static PIPE: AtomicI32 = AtomicI32::new(-1);

/// The process `PIPE` belongs to. Stored after `PIPE`, under `REGISTRY`'s
/// lock.
static PIPE_PID: AtomicI32 = AtomicI32::new(0);

/// The fork handler, in the child: the inherited pipe number is not ours.
extern "C" fn forget_inherited_pipe() {
    PIPE.store(-1, Ordering::SeqCst);
}

/// Whether the handler may write to `PIPE` (see there): `Some(fd)` if it
/// is this process's.
fn own_pipe() -> Option<RawFd> {
    let fd = PIPE.load(Ordering::SeqCst);
    // SAFETY: getpid(2) cannot fail and has no preconditions.
    (fd >= 0 && PIPE_PID.load(Ordering::SeqCst) == unsafe { libc::getpid() }).then_some(fd)
}

/// Installs the handler for `signum` once per process.
fn install(signum: libc::c_int) -> io::Result<&'static Slot> {
    let index = usize::try_from(signum)
        .ok()
        .filter(|&i| i > 0 && i < MAX_SIGNAL)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid signal number {signum} (valid: 1 to {})",
                    MAX_SIGNAL - 1
                ),
            )
        })?;
    if [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
    ]
    .contains(&signum)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signum} cannot be listened for"),
        ));
    }
    // The C library keeps the first real-time signals (32 and 33 with
    // glibc) for itself; sigaction would refuse them with a bare EINVAL.
    #[cfg(target_os = "linux")]
    if (32..libc::SIGRTMIN()).contains(&signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signum} is reserved by the C library and cannot be listened for"),
        ));
    }
    let slot = &SLOTS[index];
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if own_pipe().is_none() {
        // The first listener of this process (which may be a child forked
        // after its parent listened: the thread did not come along).
        static FORK_HANDLER: std::sync::Once = std::sync::Once::new();
        let mut registered = Ok(());
        FORK_HANDLER.call_once(|| {
            // SAFETY: the child handler only stores to an atomic, which is
            // async-signal-safe, as a fork handler of a threaded process
            // must be. Registered once; a forked child inherits it.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_inherited_pipe)) };
            if rc != 0 {
                registered = Err(io::Error::from_raw_os_error(rc));
            }
        });
        registered?;
        let fd = start_pipe_thread()?;
        // The pid first, then the fd: the handler needs both, and a fork
        // in between leaves the child's `PIPE` at -1 either way.
        // SAFETY: getpid(2) cannot fail and has no preconditions.
        PIPE_PID.store(unsafe { libc::getpid() }, Ordering::SeqCst);
        PIPE.store(fd, Ordering::SeqCst);
    }
    if reg.installed[index] {
        return Ok(slot);
    }
    let action = move || {
        // Only async-signal-safe operations: lock-free atomics, getpid(2)
        // (in `own_pipe`) and send(2). A full pipe means a wake-up is
        // already pending, and the count is bumped before the byte, so
        // that wake-up sees it.
        // `MSG_NOSIGNAL`: were the reading thread gone, a plain write would
        // raise SIGPIPE, fatal where it is not ignored (a C host).
        SLOTS[index].delivered.fetch_add(1, Ordering::SeqCst);
        let Some(fd) = own_pipe() else {
            // A forked child that has no pipe of its own yet: the number in
            // `PIPE` was its parent's, and may now be any fd of the child's.
            // Its first `Signal` starts from the count bumped above.
            return;
        };
        let byte = 1u8;
        // SAFETY: `fd` is this process's write end of a socket pair (see
        // `own_pipe`: not a number inherited from a parent) that is never
        // closed (each is leaked for the life of the process), and `byte`
        // is a valid one-byte buffer for the duration of the call.
        unsafe { libc::send(fd, (&raw const byte).cast(), 1, libc::MSG_NOSIGNAL) };
    };
    // SAFETY: `action` is async-signal-safe (see above): it neither
    // allocates nor locks, and touches only static atomics and a raw fd.
    unsafe { signal_hook_registry::register(signum, action) }?;
    reg.installed[index] = true;
    Ok(slot)
}

/// Creates the self-pipe and the thread that reads it; returns the write
/// end, which stays open for the life of the process.
fn start_pipe_thread() -> io::Result<RawFd> {
    let (mut reader, writer) = UnixStream::pair()?;
    // Never block in the handler: a full pipe already means "wake up".
    writer.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("strata-signal".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::error!(error = %e, "strata: signal pipe failed; signals stop");
                        return;
                    }
                }
                for slot in &SLOTS {
                    let delivered = slot.delivered.load(Ordering::SeqCst);
                    if slot.published.load(Ordering::SeqCst) != delivered {
                        slot.published.store(delivered, Ordering::SeqCst);
                        slot.event.notify(usize::MAX);
                    }
                }
            }
        })?;
    let fd = writer.as_raw_fd();
    std::mem::forget(writer);
    Ok(fd)
}

/// A listener for one kind of signal.
///
/// Create it before the signal may arrive: it sees only deliveries after its
/// creation. It is `Send` and `Sync`, and needs no runtime.
pub struct Signal {
    kind: SignalKind,
    slot: &'static Slot,
    seen: u64,
    listener: Option<EventListener>,
    /// The waker the listener gets when another executor polls (the
    /// signal thread wakes it under event-listener's lock, where a panic
    /// would end that thread, and every signal's delivery with it).
    contained: ContainedWaker,
}

impl Signal {
    /// Starts listening for `kind`, installing the process-wide handler if
    /// this is the first listener of that kind.
    ///
    /// # Errors
    ///
    /// Fails for signals that cannot or must not be handled (SIGKILL,
    /// SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, or an out-of-range number),
    /// or if the OS refuses the handler, the pipe or the thread.
    pub fn new(kind: SignalKind) -> io::Result<Signal> {
        let slot = install(kind.0)?;
        Ok(Signal {
            kind,
            slot,
            // The handler's count, not the published one: a delivery the
            // thread has not published yet happened before this listener.
            seen: slot.delivered.load(Ordering::SeqCst),
            listener: None,
            contained: ContainedWaker::default(),
        })
    }

    /// The kind listened for.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }

    /// Waits for the next delivery (or the ones that arrived since the last
    /// `recv`, coalesced into one).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a delivery seen by a dropped `recv` future is still
    /// reported by the next one.
    pub async fn recv(&mut self) {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery; see [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // `published` may still be below `seen` right after creation.
            let published = self.slot.published.load(Ordering::SeqCst);
            if published > self.seen {
                self.seen = published;
                self.listener = None;
                return Poll::Ready(());
            }
            match &mut self.listener {
                // Listen first, then re-check the count (loop), so a
                // notification between the two cannot be missed.
                None => self.listener = Some(self.slot.event.listen()),
                Some(l) => {
                    if self
                        .contained
                        .poll_with(cx, |cx| Pin::new(l).poll(cx))
                        .is_pending()
                    {
                        return Poll::Pending;
                    }
                    self.listener = None;
                }
            }
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("kind", &self.kind).finish()
    }
}

/// Completes at the next SIGINT (Ctrl-C) delivered after this call.
///
/// The handler is installed when `ctrl_c` is called, not when the future is
/// first polled, so a Ctrl-C between the two is not lost. After that, Ctrl-C
/// no longer terminates the process by itself (see the [module docs](self)).
///
/// # Errors
///
/// The future fails if the handler could not be installed.
///
/// # Cancel safety
///
/// The future owns its listener: a Ctrl-C delivered after it was dropped
/// is not seen by a later `ctrl_c()`, which listens from its own call on.
/// To watch for Ctrl-C in a loop (a `select!` that other branches win),
/// keep one [`Signal`] and call [`Signal::recv`], which is cancel-safe.
///
/// # Examples
///
/// ```no_run
/// strata_rt::run(async {
///     strata_rt::signal::ctrl_c().await?;
///     println!("shutting down");
/// #   Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub fn ctrl_c() -> impl Future<Output = io::Result<()>> + Send + 'static {
    let signal = Signal::new(SignalKind::interrupt());
    async move {
        signal?.recv().await;
        Ok(())
    }
}
