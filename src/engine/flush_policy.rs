//! When step 3 of an iteration writes out what its callbacks queued. A connection's own
//! replies leave at once after a small poll, in bursts of 32 connections after a large one.
//! Output queued to other connections (`write_to`, broadcasts, a proxy's other half) waits for
//! step 4, so that every sender of the iteration reaches each recipient in one `write`.

use super::Core;
use crate::id::ConnId;

/// Connections with their own replies queued that step 3 lets accumulate, after a large poll,
/// before it flushes them, unless changed with
/// [`Reactor::set_flush_batch`](crate::Reactor::set_flush_batch).
///
/// Why not hold every reply until step 4: Linux frees a received packet on the CPU that
/// allocated it (the sender's). A reader on another CPU puts it on that CPU's deferred-free
/// list, and when 32 are waiting (half of `net.core.skb_defer_max`, 64 by default) it sends
/// an inter-processor interrupt to have them freed. A peer that sends only in answer to our
/// replies is idle while we read a long batch without replying, so it does not empty that
/// list itself, and every batch of more than 32 messages cost an interrupt on each side.
/// Under a VM, an interrupt is a costly exit to the hypervisor. Flushing every 32 replies
/// keeps the peer busy, and its own sends empty the list. With 1,000 connections in
/// `cargo bench -p sockloop-benches --bench echo`, this cut the server's CPU per message by about 9%. The replies
/// still leave in bursts, and each connection still gets one `write` per iteration.
///
/// Only a connection's own replies count and leave early. A first version flushed the whole
/// dirty list each time 32 connections were on it: a chat line to 49 members then left
/// after every sender instead of once per step for all of them, and `cargo bench -p sockloop-benches --bench
/// chat` went from about 1.0 of tokio's CPU per line to 4.6 (10 senders) and 11.6 (50).
pub(crate) const FLUSH_BATCH: usize = 32;

/// A poll that returns at most this many events writes each connection's own replies as soon
/// as its callback returns, unless [`Reactor::set_flush_batch`](crate::Reactor::set_flush_batch)
/// fixed the batch.
///
/// Why: a small poll means the peers keep the reactor waiting. Holding their replies back
/// until the batch is done only delays their next requests, so the next poll finds as few
/// events again, and each `epoll_wait` serves few messages. Written at once, a reply lets its
/// peer work while the reactor serves the rest, and the next poll finds more. With 100
/// connections, in 8 runs of `cargo bench -p sockloop-benches --bench echo -- --conns 100 --idle 0 --servers
/// sockloop` alternating with `--flush-batch 32`, the median messages per `epoll_wait` went
/// from 16 to 19 and system calls per message from 2.063 to 2.053; CPU per message did not
/// change measurably. The effect is small beside the noise: in 10 alternating rounds with
/// `c10k --addr` as the client it was 33 against 43 messages per wait. A large poll means the
/// peers are ahead: bursts of `FLUSH_BATCH` replies then wake each peer once. At 10,000
/// connections every poll is large, so nothing changes there.
pub(crate) const WRITE_THROUGH_POLL: usize = 64;

/// The flush policy's settings and its burst of replies.
pub(crate) struct FlushPolicy {
    /// Connections with replies that step 3 lets accumulate before flushing them.
    pub(crate) batch: usize,
    /// Polls of at most this many events write each connection's own replies through (0 once
    /// `set_flush_batch` fixed the batch).
    pub(crate) write_through_poll: usize,
    /// Connections whose own event queued replies during this pass of step 3, taken off the
    /// dirty list to leave in bursts of `batch` (`conn_event.rs` decides).
    pub(crate) replies: Vec<ConnId>,
}

impl Default for FlushPolicy {
    fn default() -> FlushPolicy {
        FlushPolicy {
            batch: FLUSH_BATCH,
            write_through_poll: WRITE_THROUGH_POLL,
            replies: Vec::new(),
        }
    }
}

impl FlushPolicy {
    /// Whether a poll that returned `events` events writes replies through.
    pub(crate) fn writes_through(&self, events: usize) -> bool {
        events <= self.write_through_poll
    }

    pub(crate) fn has_replies(&self) -> bool {
        !self.replies.is_empty()
    }

    /// Fixes the batch (`Reactor::set_flush_batch`): no more writing through.
    pub(crate) fn fix_batch(&mut self, n: usize) {
        self.batch = n.max(1);
        self.write_through_poll = 0;
    }
}

impl Core {
    /// Writes out the burst of replies. A connection written to from elsewhere while in it
    /// (still marked dirty, so not listed again) is written here too.
    pub(crate) fn flush_replies(&mut self) {
        let mut burst = std::mem::take(&mut self.flush.replies);
        for &id in &burst {
            self.flush(id);
        }
        burst.clear();
        // Keep the allocation for the next burst. (Only `after_event` adds to the list, and no
        // flush reaches it, so the list is empty here.)
        if self.flush.replies.is_empty() {
            self.flush.replies = burst;
        }
    }
}
