//! `PollEvented`: a mio source bound to a reactor, with readiness-driven I/O.

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use mio::Interest;

use super::scheduled_io::{Ready, WaitId};
use super::{Direction, IoHandle, ScheduledIo};
use crate::context;

/// Linux's limit on the slices of one `readv`/`writev` (`UIO_MAXIOV`).
const MAX_SLICES: usize = 1024;

/// A mio source registered with one worker's reactor.
///
/// Dropping it deregisters the source and closes it.
#[derive(Debug)]
pub(crate) struct PollEvented<S: mio::event::Source> {
    // INVARIANT: `Some` until `into_inner` or `drop` takes it out.
    io: Option<S>,
    handle: Arc<IoHandle>,
    sched: Arc<ScheduledIo>,
    /// A short stream read happened at this event count and the stream
    /// has not yet yielded since: `(tick << 1) | 1`, or 0. See
    /// [`PollEvented::poll_read`].
    short_read: AtomicUsize,
}

impl<S: mio::event::Source> PollEvented<S> {
    /// Registers `io` with the current worker's reactor, or, off a worker,
    /// with that of the worker the runtime's next off-worker spawn (from
    /// any thread) goes to (see
    /// `Handle::next_io_handle`). `api` names the caller in the panic
    /// message when there is no runtime.
    #[track_caller]
    pub(crate) fn new(io: S, interest: Interest, ready: Ready, api: &str) -> io::Result<Self> {
        let handle = match context::try_worker() {
            Some(w) => w.io_handle().clone(),
            None => context::handle(api).next_io_handle(),
        };
        Self::with_handle(io, interest, ready, handle)
    }

    /// Registers a socket `listener` accepted: like [`new`](Self::new), but
    /// outside any runtime with the listener's own reactor instead of
    /// panicking (the connection has left the kernel's queue already, and
    /// a panic would lose it).
    pub(crate) fn accepted(
        io: S,
        interest: Interest,
        ready: Ready,
        listener: &Arc<IoHandle>,
    ) -> io::Result<Self> {
        let handle = match context::try_worker() {
            Some(w) => w.io_handle().clone(),
            None => match context::try_handle() {
                Some(h) => h.next_io_handle(),
                None => listener.clone(),
            },
        };
        Self::with_handle(io, interest, ready, handle)
    }

    /// The reactor this source is registered with.
    pub(crate) fn io_handle(&self) -> &Arc<IoHandle> {
        &self.handle
    }

    pub(crate) fn with_handle(
        mut io: S,
        interest: Interest,
        ready: Ready,
        handle: Arc<IoHandle>,
    ) -> io::Result<Self> {
        let sched = handle.register(&mut io, interest, ready)?;
        Ok(PollEvented {
            io: Some(io),
            handle,
            sched,
            short_read: AtomicUsize::new(0),
        })
    }

    /// The source itself.
    pub(crate) fn get_ref(&self) -> &S {
        self.io
            .as_ref()
            .expect("PollEvented source present until drop")
    }

    /// Waits until `dir` may make progress.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<super::scheduled_io::ReadyEvent>> {
        self.sched.poll_ready(cx, dir)
    }

    /// Forgets readiness after the caller saw `WouldBlock` outside `poll_io`.
    pub(crate) fn clear_readiness(&self, ev: super::scheduled_io::ReadyEvent) {
        self.sched.clear_readiness(ev);
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
            sched: &'a ScheduledIo,
            dir: Direction,
            id: WaitId,
            /// The last poll returned `Pending`.
            pending: bool,
        }
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                if self.pending {
                    self.sched.withdraw(self.dir, self.id);
                }
            }
        }
        let mut waiting = Waiting {
            sched: &self.sched,
            dir,
            id: WaitId::next(),
            pending: false,
        };
        poll_fn(|cx| {
            let waker = cx.waker();
            let (data, vtable) = (waker.data(), waker.vtable());
            let r = waiting.id.enter(data, vtable, || poll(cx));
            waiting.pending = r.is_pending();
            r
        })
        .await
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
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let ev = ready!(self.sched.poll_ready(cx, dir))?;
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.sched.clear_readiness(ev),
                res => return Poll::Ready(res),
            }
        }
    }
}

impl<S> PollEvented<S>
where
    S: mio::event::Source,
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
        let deferred = self.short_read.load(Ordering::Relaxed);
        if deferred != 0 {
            self.short_read.store(0, Ordering::Relaxed);
            if deferred == self.read_mark() && context::worker_has_work() {
                // No event since the short read, and other tasks are
                // waiting: let them go first, once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        let res = ready!(self.poll_io(cx, Direction::Read, op));
        if let Ok(n) = res
            && n > 0
            && n < want
        {
            self.short_read.store(self.read_mark(), Ordering::Relaxed);
        }
        Poll::Ready(res)
    }

    /// `short_read`'s value for a short read at the source's current event
    /// count (never 0).
    fn read_mark(&self) -> usize {
        (self.sched.tick() << 1) | 1
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

impl<S: mio::event::Source> Drop for PollEvented<S> {
    fn drop(&mut self) {
        if let Some(mut io) = self.io.take() {
            self.handle.deregister(&mut io, &self.sched);
        }
    }
}
