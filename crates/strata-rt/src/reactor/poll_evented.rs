//! `PollEvented`: a mio source bound to a reactor, with readiness-driven I/O.

use std::future::poll_fn;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};

use mio::Interest;
use mio::unix::SourceFd;

use super::scheduled_io::{Ready, WaitId};
use super::{Direction, IoHandle, ScheduledIo};
use crate::context;

/// Linux's limit on the slices of one `readv`/`writev` (`UIO_MAXIOV`).
const MAX_SLICES: usize = 1024;

/// The reactor a source made here would register with if its first poll
/// were made off the workers: this worker's, or, off the workers, the one
/// of the worker the next off-worker spawn goes to. Panics naming `api`
/// outside any runtime.
pub(crate) fn home(api: &str) -> Arc<IoHandle> {
    match context::try_worker() {
        Some(w) => w.io_handle().clone(),
        None => context::handle(api).next_io_handle(),
    }
}

/// A mio source bound to one worker's reactor.
///
/// The source is registered on its first poll (of any direction), with
/// the reactor of the worker that polls it: a socket created in one place
/// and handed to a task elsewhere (a stream accepted in `block_on` and
/// moved into a spawned task, say) gets its readiness from the worker that
/// runs that task. A first poll made off the workers registers with the
/// reactor chosen when the source was created (see [`PollEvented::new`]).
/// Registering then, and not at creation, loses no readiness: epoll
/// reports a source that is already ready when it is added.
///
/// Dropping it deregisters the source (if it was registered) and closes it.
#[derive(Debug)]
pub(crate) struct PollEvented<S: mio::event::Source + AsRawFd> {
    // INVARIANT: `Some` until `drop` takes it out.
    io: Option<S>,
    /// Where the source is registered; set once, by its first poll.
    reg: OnceLock<Registration>,
    /// Held while registering, so that two first polls on two threads
    /// (the halves of a split stream) register the source once.
    registering: Mutex<()>,
    /// The reactor for a first poll made off the workers.
    fallback: Arc<IoHandle>,
    interest: Interest,
    /// The readiness the source starts with once registered.
    initial: Ready,
    /// A short stream read happened at this event count and the stream
    /// has not yet yielded since: `(tick << 1) | 1`, or 0. See
    /// [`PollEvented::poll_read`].
    short_read: AtomicUsize,
}

/// A source's place in one reactor.
#[derive(Debug)]
struct Registration {
    handle: Arc<IoHandle>,
    sched: Arc<ScheduledIo>,
}

impl<S: mio::event::Source + AsRawFd> PollEvented<S> {
    /// Wraps `io`, to be registered on its first poll (see the type's
    /// docs). A first poll made off the workers registers with the reactor
    /// of the current worker if `new` runs on one, or else with that of
    /// the worker the runtime's next off-worker spawn (from any thread)
    /// goes to (see `Handle::next_io_handle`). `api` names the caller in
    /// the panic message when there is no runtime.
    #[track_caller]
    pub(crate) fn new(io: S, interest: Interest, ready: Ready, api: &str) -> io::Result<Self> {
        Ok(Self::with_fallback(io, interest, ready, home(api)))
    }

    /// Like [`new`](Self::new), but outside any runtime with reactor `home`
    /// instead of panicking: for a socket a listener accepted (`home` is
    /// the listener's; the connection has left the kernel's queue already,
    /// and a panic would lose it), or one a `connect` started in a runtime
    /// makes after its future moved to a thread outside any (`home` is the
    /// one [`home`] gave when it started).
    pub(crate) fn with_home(
        io: S,
        interest: Interest,
        ready: Ready,
        home: &Arc<IoHandle>,
    ) -> io::Result<Self> {
        let fallback = match context::try_worker() {
            Some(w) => w.io_handle().clone(),
            None => match context::try_handle() {
                Some(h) => h.next_io_handle(),
                None => home.clone(),
            },
        };
        Ok(Self::with_fallback(io, interest, ready, fallback))
    }

    fn with_fallback(io: S, interest: Interest, initial: Ready, fallback: Arc<IoHandle>) -> Self {
        PollEvented {
            io: Some(io),
            reg: OnceLock::new(),
            registering: Mutex::new(()),
            fallback,
            interest,
            initial,
            short_read: AtomicUsize::new(0),
        }
    }

    /// The reactor this source is registered with, or, before its first
    /// poll, the one a first poll off the workers would register it with.
    pub(crate) fn io_handle(&self) -> &Arc<IoHandle> {
        self.reg.get().map_or(&self.fallback, |r| &r.handle)
    }

    /// The source itself.
    pub(crate) fn get_ref(&self) -> &S {
        self.io
            .as_ref()
            .expect("PollEvented source present until drop")
    }

    /// The source's readiness, registering it first if this is its first
    /// poll.
    #[inline]
    fn sched(&self) -> io::Result<&ScheduledIo> {
        match self.reg.get() {
            Some(r) => Ok(&r.sched),
            None => self.register(),
        }
    }

    /// Registers the source with the current worker's reactor, or off the
    /// workers with the fallback, unless another thread just did.
    #[cold]
    #[inline(never)]
    fn register(&self) -> io::Result<&ScheduledIo> {
        let _guard = self.registering.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = self.reg.get() {
            return Ok(&r.sched);
        }
        let handle = match context::try_worker() {
            Some(w) => w.io_handle().clone(),
            None => self.fallback.clone(),
        };
        let fd = self.get_ref().as_raw_fd();
        let sched = handle.register(&mut SourceFd(&fd), self.interest, self.initial)?;
        let r = self.reg.get_or_init(|| Registration { handle, sched });
        Ok(&r.sched)
    }

    /// Waits until `dir` may make progress.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<super::scheduled_io::ReadyEvent>> {
        self.sched()?.poll_ready(cx, dir)
    }

    /// Forgets readiness after the caller saw `WouldBlock` outside `poll_io`.
    pub(crate) fn clear_readiness(&self, ev: super::scheduled_io::ReadyEvent) {
        // A `ReadyEvent` comes from `poll_ready`, which registered the
        // source.
        if let Some(r) = self.reg.get() {
            r.sched.clear_readiness(ev);
        }
    }

    /// After the source's own `shutdown(how)` succeeded: if that shut its
    /// write direction, marks it so and wakes the tasks waiting to write,
    /// which then meet the error. A Unix stream reports no event for its
    /// own shutdown (TCP does), so without this a writer blocked on a full
    /// buffer would sleep on.
    pub(crate) fn shut_down(&self, how: std::net::Shutdown) {
        if how == std::net::Shutdown::Read {
            return;
        }
        if let Some(r) = self.reg.get() {
            let mut to_wake = Vec::new();
            r.sched.set_readiness(Ready::WRITE_SHUT, &mut to_wake);
            // As the reactor does: a foreign executor's waker may panic,
            // and must neither make this call panic nor leave the other
            // waiters unwoken.
            to_wake
                .into_iter()
                .for_each(crate::executor::wake_contained);
        }
    }

    /// The `readable` and `writable` of a stream: waits until the source
    /// may be ready in direction `dir`.
    pub(crate) async fn ready(&self, dir: Direction) -> io::Result<()> {
        self.wait(dir, |cx| self.poll_ready(cx, dir).map_ok(|_| ()))
            .await
    }

    /// An `async fn` of a socket: `poll` (a `poll_*` method waiting on
    /// `dir`) until it is ready. The call has its own [`WaitId`]; if it is
    /// dropped while waiting, its queued entry is withdrawn (see
    /// [`ScheduledIo::withdraw`]).
    pub(crate) async fn wait<R>(
        &self,
        dir: Direction,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<R>,
    ) -> R {
        struct Waiting<'a> {
            /// The source's readiness, if the last poll returned `Pending`
            /// (which it does only once the source is registered).
            pending: Option<&'a ScheduledIo>,
            dir: Direction,
            id: WaitId,
        }
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                if let Some(sched) = self.pending {
                    sched.withdraw(self.dir, self.id);
                }
            }
        }
        let mut waiting = Waiting {
            pending: None,
            dir,
            id: WaitId::next(),
        };
        poll_fn(|cx| {
            let waker = cx.waker();
            let (data, vtable) = (waker.data(), waker.vtable());
            let r = waiting.id.enter(data, vtable, || poll(cx));
            waiting.pending = match r {
                Poll::Pending => self.reg.get().map(|r| &*r.sched),
                Poll::Ready(_) => None,
            };
            r
        })
        .await
    }

    /// The body of a socket's `async fn`: `op` once `dir` is ready,
    /// waiting and retrying after each `WouldBlock` ([`wait`](Self::wait)
    /// around [`poll_io`](Self::poll_io)).
    pub(crate) async fn wait_io<R>(
        &self,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.wait(dir, |cx| self.poll_io(cx, dir, &mut op)).await
    }

    /// Runs `op` when `dir` is ready, retrying after each `WouldBlock` until
    /// it succeeds, fails, or has to wait (`Pending`, waker registered).
    ///
    /// This is the one place where readiness is cleared, and only on
    /// `WouldBlock`.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let sched = self.sched()?;
        self.poll_io_on(sched, cx, dir, op)
    }

    /// `op` now, if `dir` may make progress, without waiting, registering
    /// a waker or spending budget: `WouldBlock` if the source is not ready
    /// (or `op` found it was not, which clears the readiness, as in
    /// `poll_io`).
    pub(crate) fn try_io<R>(
        &self,
        dir: Direction,
        op: impl FnOnce(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let sched = self.sched()?;
        let ev = match sched.check(dir) {
            Some(ready) => ready?,
            None => return Err(io::ErrorKind::WouldBlock.into()),
        };
        match op(self.get_ref()) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                sched.forget(ev);
                Err(e)
            }
            res => res,
        }
    }

    /// `poll_io` with the source's readiness at hand.
    #[inline]
    fn poll_io_on<R>(
        &self,
        sched: &ScheduledIo,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let ev = ready!(sched.poll_ready(cx, dir))?;
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => sched.clear_readiness(ev),
                res => return Poll::Ready(res),
            }
        }
    }
}

impl<S> PollEvented<S>
where
    S: mio::event::Source + AsRawFd,
    for<'a> &'a S: io::Read + io::Write,
{
    /// `AsyncRead::poll_read` for a stream source.
    ///
    /// A short read (fewer bytes than asked for) probably emptied the
    /// socket, but readiness is only cleared on `WouldBlock`, so the read
    /// after it must still be made. When no event has arrived since the
    /// short read and other tasks are waiting on this worker, that next
    /// read is deferred once: the task yields (it is woken at once, and
    /// runs again after the worker's next look at I/O) and reads then. The
    /// caller meanwhile answers what it read; under load the peer's next
    /// bytes often arrive before that turn, and the read that would have
    /// returned `WouldBlock` returns them instead. With nothing else to
    /// run, the read is made at once. Either way the socket is read until
    /// `WouldBlock` before the task waits.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let want = buf.len();
        self.poll_stream_read(cx, want, |s| io::Read::read(&mut &*s, buf))
    }

    /// `AsyncRead::poll_read_vectored` for a stream source (see
    /// [`PollEvented::poll_read`]).
    pub(crate) fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        // As for writes: `readv` takes at most 1,024 slices, so empty ones
        // first are skipped, or 1,024 of them would make the read return
        // `Ok(0)`, which every reader takes for the end of the stream.
        let skip = bufs.iter().take_while(|b| b.is_empty()).count();
        let bufs = &mut bufs[skip..];
        let count = bufs.len().min(MAX_SLICES);
        let bufs = &mut bufs[..count];
        let want = bufs.iter().map(|b| b.len()).sum();
        self.poll_stream_read(cx, want, |s| io::Read::read_vectored(&mut &*s, bufs))
    }

    /// `poll_io` for stream reads, with the deferral after a short read.
    fn poll_stream_read(
        &self,
        cx: &mut Context<'_>,
        want: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let sched = self.sched()?;
        let deferred = self.short_read.load(Ordering::Relaxed);
        if deferred != 0 {
            self.short_read.store(0, Ordering::Relaxed);
            if deferred == read_mark(sched) && context::worker_has_work() {
                // No event since the short read, and other tasks are
                // waiting: let them go first, once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        let res = ready!(self.poll_io_on(sched, cx, Direction::Read, op));
        if let Ok(n) = res
            && n > 0
            && n < want
        {
            self.short_read.store(read_mark(sched), Ordering::Relaxed);
        }
        Poll::Ready(res)
    }

    /// `AsyncWrite::poll_write` for a stream source.
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Direction::Write, |s| io::Write::write(&mut &*s, buf))
    }

    /// `AsyncWrite::poll_write_vectored` for a stream source.
    ///
    /// With `sendmsg` and `MSG_NOSIGNAL`, not `writev`: a write to a peer
    /// that is gone must fail with `BrokenPipe`, as `poll_write` does, and
    /// not also raise `SIGPIPE`, which kills a process that did not ignore
    /// it (a library in a C or Python host, say).
    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>>
    where
        S: std::os::fd::AsFd,
    {
        // Linux refuses more than 1,024 slices (`UIO_MAXIOV`); a shorter
        // write is fine, as `writev` wrappers do it.
        // Empty slices first: skipped, or 1,024 of them would hide the data
        // and the write would report `Ok(0)` (a writer that takes nothing).
        let bufs = &bufs[bufs.iter().take_while(|b| b.is_empty()).count()..];
        let bufs = &bufs[..bufs.len().min(MAX_SLICES)];
        self.poll_io(cx, Direction::Write, |s| {
            socket2::SockRef::from(s).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        })
    }
}

/// `short_read`'s value for a short read at the source's current event
/// count (never 0).
fn read_mark(sched: &ScheduledIo) -> usize {
    (sched.tick() << 1) | 1
}

impl<S: mio::event::Source + AsRawFd> Drop for PollEvented<S> {
    fn drop(&mut self) {
        if let (Some(io), Some(r)) = (self.io.take(), self.reg.get()) {
            // Through the fd, as it was registered.
            r.handle
                .deregister(&mut SourceFd(&io.as_raw_fd()), &r.sched);
        }
    }
}
