//! A graceful stop's reading: the bytes owed (those that had arrived
//! before the stop), and when a read that finds nothing means that the
//! transport is drained.

use std::task::Context;

/// The read side of a connection after its stop.
#[derive(Debug)]
pub(crate) struct StopRead {
    /// The read count up to which everything had arrived before the stop.
    owed: u64,
    /// Whether `owed` is the kernel's count: then every byte of it will be
    /// reported readable, and a `Pending` before it is only the reactor
    /// not having said so yet. Otherwise it is a bound.
    exact: bool,
    /// The poll in which a read first said `Pending`: the task woke itself
    /// then, to read once more in a later poll, after the worker's next
    /// look at I/O.
    pending_in: Option<u64>,
}

impl StopRead {
    /// At the stop, with `read` bytes read so far and `unread` the bytes
    /// the kernel holds, if the transport can say; else `bound` more.
    pub(crate) fn new(read: u64, unread: Option<u64>, bound: u64) -> Self {
        StopRead {
            owed: read + unread.unwrap_or(bound),
            exact: unread.is_some(),
            pending_in: None,
        }
    }

    /// The read count up to which requests are read.
    pub(crate) fn owed(&self) -> u64 {
        self.owed
    }

    /// A read before the bytes owed said `Pending`: whether the transport
    /// is drained (from then on, what comes was sent after the stop).
    pub(crate) fn drained(&mut self, polls: u64, cx: &mut Context<'_>) -> bool {
        if !strata_rt::coop::has_budget_remaining() {
            // The task's I/O budget, not the transport, said `Pending`:
            // read on in the next poll. (Woken here too: a transport that
            // spends a unit on a read that finds nothing, and so spends
            // the last one, wakes nobody.)
            cx.waker().wake_by_ref();
            return false;
        }
        if self.exact {
            // Counted by the kernel before the stop: they will be reported
            // readable (the read left its waker), however long the reactor
            // takes to look.
            return false;
        }
        match self.pending_in {
            // Nothing after a fresh look at I/O: whatever comes later was
            // sent after the stop began.
            Some(first) if first < polls => true,
            // This poll asked for a fresh look already (its loop came round
            // again): wait for it.
            Some(_) => false,
            // Not proof of `WouldBlock`: the worker may not have polled for
            // I/O since bytes arrived, and the deferred read also says
            // `Pending`. Look again once it has.
            None => {
                self.pending_in = Some(polls);
                cx.waker().wake_by_ref();
                false
            }
        }
    }

    /// A read found more in the poll that asked for a fresh look: that look
    /// is still to come. (Once it came, the next `Pending` counts, however
    /// much a peer that keeps sending adds meanwhile.)
    pub(crate) fn read_more(&mut self, polls: u64) {
        if self.pending_in == Some(polls) {
            self.pending_in = None;
        }
    }

    /// Drained at `read` bytes: nothing more is owed.
    pub(crate) fn settle(&mut self, read: u64) {
        self.owed = read;
    }
}
