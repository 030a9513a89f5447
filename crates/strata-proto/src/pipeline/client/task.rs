//! [`ClientTask`]: the future that runs a pipelined client's connection.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::FusedStream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use strata_codec::{Decoder, Encoder, Framed};

use super::error::{TaskDropped, Unsolicited};
use super::queue::{Call, CallQueue};
use super::reply::ReplyTo;
use super::{ClientError, ClientErrorKind};

/// Where the answer to a call whose request was written goes.
type Reply<Resp> = ReplyTo<Result<Resp, ClientError>>;

/// The task that runs one [`Client`](super::Client)'s connection: it
/// writes the calls' requests, reads the responses and hands each to its
/// call. Made by [`Client::new`](super::Client::new); spawn it.
///
/// It resolves when the connection is done: `Ok(())` once every handle is
/// gone and every call answered (it then closes its side of the
/// connection), or once the server closed the connection with no call
/// waiting; the error the waiting calls got otherwise. Dropping it
/// unfinished (a runtime that shuts down) fails the calls still waiting,
/// with [`ClientErrorKind::Closed`].
///
/// Reads and writes go on together, so a server that answers before it
/// reads everything (as pipelined servers do) cannot deadlock it, and the
/// requests waiting in the write buffer are bounded by the buffer's
/// high-water mark (64 KiB by default): past it, no more calls are taken
/// until the socket drains.
#[must_use = "a client's task does nothing unless spawned or polled"]
pub struct ClientTask<T, C: Decoder, Req> {
    framed: Framed<T, C>,
    queue: Arc<CallQueue<Req, C::Item>>,
    /// Whether a handle may still send calls.
    queue_open: bool,
    /// Calls taken from the queue, not yet written.
    taken: VecDeque<Call<Req, C::Item>>,
    /// Calls written, in order, waiting for their responses.
    unanswered: VecDeque<Reply<C::Item>>,
    /// Answers decoded in this read, to hand out once their slots are
    /// given back.
    answers: Vec<(Reply<C::Item>, C::Item)>,
    /// Calls done with (answered, failed, given up) whose slots are not
    /// yet given back: given back in one go per round.
    done_with: usize,
    done: bool,
}

impl<T, C, Req> ClientTask<T, C, Req>
where
    T: AsyncRead + AsyncWrite + Unpin,
    C: Decoder + Encoder<Req>,
    <C as Decoder>::Error: std::error::Error + Send + Sync + 'static,
    <C as Encoder<Req>>::Error: std::error::Error + Send + Sync + 'static,
{
    pub(super) fn new(io: T, codec: C, queue: Arc<CallQueue<Req, C::Item>>) -> Self {
        ClientTask {
            framed: Framed::new(io, codec),
            queue,
            queue_open: true,
            taken: VecDeque::new(),
            unanswered: VecDeque::new(),
            answers: Vec::new(),
            done_with: 0,
            done: false,
        }
    }

    /// Hands buffered responses to their calls and reads more. `Ready`
    /// only when the connection is over: with an error, or `Ok` at the
    /// server's end of stream. `progress` is set if a call was answered.
    ///
    /// The answers go out after their calls' slots are given back (one
    /// lock for the lot), so that a caller woken by its answer finds the
    /// connection's load as it is: a pool choosing by load must not see
    /// a connection as busier than it is.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
    ) -> Poll<Result<(), ClientError>> {
        let read = self.poll_read_answers(cx, progress);
        if !self.answers.is_empty() {
            self.queue
                .release(self.answers.len() + std::mem::take(&mut self.done_with));
            for (reply, response) in self.answers.drain(..) {
                // A call that was given up does not take it.
                reply.send(Ok(response));
            }
        }
        read
    }

    /// [`poll_read`](Self::poll_read)'s reading: the answers decoded wait
    /// in `answers`.
    fn poll_read_answers(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
    ) -> Poll<Result<(), ClientError>> {
        // Set once a read has stopped at "would block" with the waker
        // registered: what it brought is decoded, then the task waits.
        let mut blocked = false;
        loop {
            match self.framed.try_decode_buffered() {
                Ok(Some(response)) => {
                    let Some(reply) = self.unanswered.pop_front() else {
                        return Poll::Ready(Err(failure(ClientErrorKind::Decode, Unsolicited)));
                    };
                    self.answers.push((reply, response));
                    *progress = true;
                    continue;
                }
                Ok(None) if self.framed.is_terminated() => return Poll::Ready(Ok(())),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(failure(ClientErrorKind::Decode, e))),
            }
            if blocked {
                return Poll::Pending;
            }
            // One read window beyond what is buffered: a response larger
            // than the window is read a window at a time, and how large it
            // may grow is the codec's bound.
            let before = self.framed.read_buffer().len();
            let limit = before + self.framed.read_window();
            match self.framed.poll_read_ahead(cx, limit) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(failure(ClientErrorKind::Io, e))),
                // The read took what there was, then would block.
                Poll::Pending if self.framed.read_buffer().len() > before => blocked = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Takes the queued calls and encodes their requests, while the write
    /// buffer has room.
    fn poll_send(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Result<(), ClientError> {
        loop {
            if self.taken.is_empty() {
                if !self.queue_open {
                    return Ok(());
                }
                match self.queue.poll_take(cx, &mut self.taken) {
                    Poll::Ready(true) => {}
                    Poll::Ready(false) => {
                        self.queue_open = false;
                        return Ok(());
                    }
                    Poll::Pending => return Ok(()),
                }
            }
            match Pin::new(&mut self.framed).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(failure(ClientErrorKind::Io, e)),
                Poll::Pending => return Ok(()),
            }
            let Some(call) = self.taken.pop_front() else {
                continue;
            };
            *progress = true;
            if call.reply.is_canceled() {
                // Given up before it was sent: not sent at all.
                self.done_with += 1;
                continue;
            }
            match Pin::new(&mut self.framed).start_send(call.request) {
                Ok(()) => self.unanswered.push_back(call.reply),
                // Nothing of it is buffered: this call fails, the
                // connection carries on.
                Err(e) => {
                    call.reply.send(Err(failure(ClientErrorKind::Encode, e)));
                    self.done_with += 1;
                }
            }
        }
    }
}

impl<T, C, Req> Future for ClientTask<T, C, Req>
where
    T: AsyncRead + AsyncWrite + Unpin,
    C: Decoder + Encoder<Req>,
    <C as Decoder>::Error: std::error::Error + Send + Sync + 'static,
    <C as Encoder<Req>>::Error: std::error::Error + Send + Sync + 'static,
{
    type Output = Result<(), ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            let mut progress = false;
            match this.poll_read(cx, &mut progress) {
                Poll::Ready(Ok(())) => {
                    // The server closed the connection.
                    let end = ClientError::closed();
                    let waiting = !this.unanswered.is_empty();
                    this.finish(&end);
                    return Poll::Ready(if waiting {
                        Err(end.with_sent(true))
                    } else {
                        Ok(())
                    });
                }
                Poll::Ready(Err(e)) => {
                    this.finish(&e);
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {}
            }
            if let Err(e) = this.poll_send(cx, &mut progress) {
                this.finish(&e);
                return Poll::Ready(Err(e));
            }
            if !this.framed.write_buffer().is_empty()
                && let Poll::Ready(Err(e)) = Pin::new(&mut this.framed).poll_flush(cx)
            {
                let e = failure(ClientErrorKind::Io, e);
                this.finish(&e);
                return Poll::Ready(Err(e));
            }
            // The slots of the calls done with go back once per round.
            this.queue.release(std::mem::take(&mut this.done_with));
            if !this.queue_open
                && this.taken.is_empty()
                && this.unanswered.is_empty()
                && this.framed.write_buffer().is_empty()
            {
                // Every handle is gone and every call answered: close our
                // side. How that goes changes nothing for anyone.
                let _ = ready!(Pin::new(&mut this.framed).poll_close(cx));
                this.finish(&ClientError::closed());
                return Poll::Ready(Ok(()));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

impl<T, C: Decoder, Req> ClientTask<T, C, Req> {
    /// Ends the connection: records why, fails every call still waiting
    /// (and the queued ones, which were not sent), and closes the queue.
    fn finish(&mut self, end: &ClientError) {
        self.done = true;
        for call in self.queue.close(end) {
            call.reply.send(Err(end.with_sent(false)));
        }
        for call in self.taken.drain(..) {
            call.reply.send(Err(end.with_sent(false)));
        }
        for reply in self.unanswered.drain(..) {
            reply.send(Err(end.with_sent(true)));
        }
    }
}

impl<T, C: Decoder, Req> Drop for ClientTask<T, C, Req> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(&failure(ClientErrorKind::Closed, TaskDropped));
        }
    }
}

// Nothing in the task is ever pinned but the task itself: the requests it
// holds are moved, never polled, so they need not be `Unpin`.
impl<T: Unpin, C: Decoder, Req> Unpin for ClientTask<T, C, Req> {}

impl<T, C: Decoder, Req> fmt::Debug for ClientTask<T, C, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTask")
            .field("taken", &self.taken.len())
            .field("unanswered", &self.unanswered.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

fn failure<E: std::error::Error + Send + Sync + 'static>(
    kind: ClientErrorKind,
    e: E,
) -> ClientError {
    ClientError::new(kind, Some(Arc::new(e)))
}
