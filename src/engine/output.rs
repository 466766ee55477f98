//! A connection's output path: queueing (with the output cap), the dirty list that step 4
//! flushes, writing until `WouldBlock`, and what a drained queue unlocks (`on_drained`, a
//! pending FIN, the end of a graceful close).
//!
//! Every write lists its connection as dirty, so nothing depends on a caller remembering to
//! flush: step 4 flushes what is listed, once per connection, and the flush policy
//! (`flush_policy.rs`) may take a connection's own replies off the list and write them sooner.

use std::io;

use super::{gone, Core};
use crate::close_reason::CloseReason;
use crate::conn::{BufPool, Flag, State, WriteStep};
use crate::id::ConnId;

/// The dirty list and the buffer pool.
#[derive(Default)]
pub(crate) struct Output {
    /// Connections with output or a state change to carry out in step 4.
    dirty: Vec<ConnId>,
    /// The dirty list's previous allocation, swapped back in by `flush_dirty`, so that listing
    /// connections does not allocate on every iteration.
    dirty_spare: Vec<ConnId>,
    pub(crate) pool: BufPool,
    /// Reused by `write!` on a `Context` to format a whole reply before queueing it.
    pub(crate) fmt_scratch: Vec<u8>,
}

impl Output {
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Takes the last connection listed (the flush policy's reply, listed by its own event).
    pub(crate) fn unlist_last(&mut self) -> Option<ConnId> {
        self.dirty.pop()
    }
}

/// Who is writing: a connection's own callback (its handler is busy, so it cannot be told of
/// a watermark now), or anyone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writer {
    Own,
    Other,
}

impl Core {
    /// Queues `data` for `id` through its transport and lists `id` for flushing.
    pub(crate) fn send(&mut self, id: ConnId, data: &[u8], writer: Writer) -> io::Result<()> {
        let conn = self.slots.conn_mut(id).ok_or_else(gone)?;
        if !conn.accepts_output() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection no longer sends",
            ));
        }
        conn.queue_output(&mut self.output.pool, data);
        let queued = conn.bufs.out_len();
        let limits = self.classes.limits(conn.class());
        let (max_output, high) = (limits.max_output, limits.high_water);
        if queued > max_output {
            self.close_over_output_limit(id, queued, max_output);
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "output limit exceeded: the connection was reset",
            ));
        }
        // Written from elsewhere past the mark: decide writability now (`flow.rs`). A
        // connection's own writes are decided at their flush, once its callback returned.
        if writer == Writer::Other && queued > high && !conn.flags.over_high() {
            self.over_high_from_elsewhere(id);
            self.mark_dirty(id);
            return Ok(());
        }
        // `mark_dirty`, with the connection at hand (this is every reply's path).
        if !conn.flags.dirty() {
            conn.flags.set(Flag::Dirty, true);
            self.output.dirty.push(id);
            self.calls.listed(id);
        }
        Ok(())
    }

    /// Lists `id` for flushing in step 4 (once).
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.slots.conn_mut(id) {
            if !conn.flags.dirty() {
                conn.flags.set(Flag::Dirty, true);
                self.output.dirty.push(id);
                self.calls.listed(id);
            }
        }
    }

    /// Flushes the connections on the dirty list. Connections a flush lists (from its
    /// callbacks) stay on the list for the caller's next pass.
    pub(crate) fn flush_dirty(&mut self) {
        let spare = std::mem::take(&mut self.output.dirty_spare);
        let mut batch = std::mem::replace(&mut self.output.dirty, spare);
        for &id in &batch {
            self.flush(id);
        }
        batch.clear();
        self.output.dirty_spare = batch;
    }

    /// Writes `id`'s queued output until done or `WouldBlock`, and nothing else (no callback).
    /// Returns whether the connection was blocked before, or `None` if it cannot be written to
    /// (gone, connecting, closed, FIN sent) or a write error closed it.
    pub(crate) fn write_queued(&mut self, id: ConnId) -> Option<bool> {
        let now_ms = self.clock.now_ms;
        let conn = self.slots.conn_mut(id)?;
        conn.flags.set(Flag::Dirty, false);
        if !conn.can_flush() {
            return None;
        }
        let was_blocked = conn.flags.write_blocked();
        let (step, written) = conn.write_step(&mut self.output.pool);
        if written.bytes > 0 {
            conn.last_active = now_ms;
        }
        let stats = &mut self.counters.stats;
        stats.bytes_written += written.bytes;
        stats.writes += written.calls;
        if let WriteStep::Error(e) = step {
            log::debug!("{id}: write error: {e}");
            self.close_with(id, CloseReason::Error(e));
            return None;
        }
        Some(was_blocked)
    }

    /// Writes queued output until done or `WouldBlock`, then applies whatever a drained queue
    /// unlocks (`on_drained`, a pending FIN, the end of a graceful close).
    pub(crate) fn flush(&mut self, id: ConnId) {
        loop {
            let Some(was_blocked) = self.write_queued(id) else {
                return;
            };
            let Some(conn) = self.slots.conn(id) else {
                return;
            };
            // Crossing a watermark pauses or resumes reading (`flow.rs`).
            let high = self.classes.limits(conn.class()).high_water;
            if conn.flags.over_high() || conn.bufs.out_len() > high {
                self.update_writability(id);
            }
            let Some(conn) = self.slots.conn_mut(id) else {
                return;
            };
            if !conn.bufs.out_is_empty() {
                if conn.state == State::Closing && !was_blocked {
                    // A closing connection just blocked: bound the wait for the peer to read.
                    self.arm_linger_check(id, super::closing::LINGER);
                }
                return; // blocked; WRITABLE resumes
            }
            if conn.flags.write_blocked() {
                conn.flags.set(Flag::WriteBlocked, false);
                self.call(id, |h, cx| h.on_drained(cx));
                // on_drained may have queued more; send it before deciding anything else.
                if self.slots.conn(id).is_some_and(|c| !c.bufs.out_is_empty()) {
                    continue;
                }
            }
            return self.output_empty(id);
        }
    }
}
