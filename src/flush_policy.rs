//! When step 3 of an iteration writes out what its callbacks queued. A connection's own
//! replies leave at once after a small poll, in bursts of 32 connections after a large one.
//! Output queued to other connections (`write_to`, broadcasts, a proxy's other half) waits for
//! step 4, so that every sender of the iteration reaches each recipient in one `write`.

use mio::Token;

use crate::core::Core;

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
/// `cargo bench --bench echo`, this cut the server's CPU per message by about 9%. The replies
/// still leave in bursts, and each connection still gets one `write` per iteration.
///
/// Only a connection's own replies count and leave early. A first version flushed the whole
/// dirty list each time 32 connections were on it: a chat line to 49 members then left
/// after every sender instead of once per step for all of them, and `cargo bench --bench
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
/// connections, in 8 runs of `cargo bench --bench echo -- --conns 100 --idle 0 --servers
/// sockloop` alternating with `--flush-batch 32`, the median messages per `epoll_wait` went
/// from 16 to 19 and system calls per message from 2.063 to 2.053; CPU per message did not
/// change measurably. The effect is small beside the noise: in 10 alternating rounds with
/// `c10k --addr` as the client it was 33 against 43 messages per wait. A large poll means the
/// peers are ahead: bursts of `FLUSH_BATCH` replies then wake each peer once. At 10,000
/// connections every poll is large, so nothing changes there.
pub(crate) const WRITE_THROUGH_POLL: usize = 64;

impl Core {
    /// Whether a poll that returned `events` events writes replies through (see
    /// `WRITE_THROUGH_POLL`).
    pub(crate) fn writes_through(&self, events: usize) -> bool {
        events <= self.write_through_poll
    }

    /// Called after each event of step 3, with the length the dirty list had before it. If
    /// the event's callbacks put `token`'s own connection on the list and no other (a reply:
    /// its read path marked it dirty, last and alone; connections already on the list stay
    /// where they are), the reply leaves now after a
    /// small poll, or joins the burst that leaves once `flush_batch` connections are in it.
    /// Anything else on the dirty list waits for step 4: a callback that also wrote to others
    /// (a chat line echoed to its sender too) keeps its own copy with theirs, so that a member
    /// who both sends and receives in one iteration still gets one `write`.
    pub(crate) fn after_dispatch(
        &mut self,
        token: Token,
        dirty_before: usize,
        write_through: bool,
    ) {
        let reply_only = self.dirty.len() == dirty_before + 1
            && self.dirty.last().is_some_and(|id| id.token() == token);
        if !reply_only {
            return;
        }
        let Some(id) = self.dirty.pop() else {
            return;
        };
        if write_through {
            self.flush(id);
            return;
        }
        self.replies.push(id);
        if self.replies.len() >= self.flush_batch {
            self.flush_replies();
        }
    }

    /// Writes out the burst of replies. A connection written to from elsewhere while in it
    /// (still marked dirty, so not listed again) is written here too.
    pub(crate) fn flush_replies(&mut self) {
        let mut burst = std::mem::take(&mut self.replies);
        for &id in &burst {
            self.flush(id);
        }
        burst.clear();
        // Keep the allocation for the next burst. (Only `after_dispatch` adds to the list, and
        // no flush reaches it, so the list is empty here.)
        if self.replies.is_empty() {
            self.replies = burst;
        }
    }
}
