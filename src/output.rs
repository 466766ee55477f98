//! A connection's output path: queueing (with the output cap), writing until `WouldBlock`, and
//! what a drained queue unlocks (`on_drained`, a pending FIN, the end of a graceful close).

use std::io;

use crate::conn::{conn_in, State, BLOCKED, DIRTY, LINGER, OVER_HIGH};
use crate::core::{gone, Core};
use crate::handler::CloseReason;
use crate::id::ConnId;

impl Core {
    /// Queues `data` for `id`. `own` is true when the caller flushes `id` itself right after
    /// (the writes of a connection's own callback); otherwise `id` joins the dirty list, flushed
    /// before the next wait.
    pub(crate) fn send(&mut self, id: ConnId, data: &[u8], own: bool) -> io::Result<()> {
        let conn = conn_in(&mut self.slots, id).ok_or_else(gone)?;
        if !conn.accepts_output() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection no longer sends",
            ));
        }
        conn.bufs.push_out(&mut self.pool, data);
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
        if own {
            // Flushed (and its writability decided) once the callback returns; its handler is
            // busy now, so it could not be told anything.
            return Ok(());
        }
        if queued > high && conn.flags & OVER_HIGH == 0 {
            self.over_high_from_elsewhere(id);
        }
        self.mark_dirty(id);
        Ok(())
    }

    /// Writes `id`'s queued output until done or `WouldBlock`, and nothing else (no callback).
    /// Returns whether the connection was blocked before, or `None` if it cannot be written to
    /// (gone, connecting, closed, FIN sent) or a write error closed it.
    pub(crate) fn write_queued(&mut self, id: ConnId) -> Option<bool> {
        let now_ms = self.now_ms;
        let (slots, pool) = self.split_pool();
        let conn = conn_in(slots, id)?;
        conn.flags &= !DIRTY;
        if !conn.can_flush() {
            return None;
        }
        let was_blocked = conn.flags & BLOCKED != 0;
        let mut written = 0u64;
        let mut writes = 0u64;
        let outcome = loop {
            if conn.bufs.out_is_empty() {
                break Ok(());
            }
            writes += 1;
            match conn.stream.write(conn.bufs.out_bytes()) {
                Ok(0) => {
                    break Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket accepted no bytes",
                    ));
                }
                Ok(n) => {
                    conn.bufs.consume_out(pool, n);
                    written += n as u64;
                }
                // Kernel buffer full: WRITABLE will tell us when to go on.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.flags |= BLOCKED;
                    break Ok(());
                }
                // A signal interrupted the call; nothing was written.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The peer is gone (EPIPE, ECONNRESET): only this connection ends.
                Err(e) => break Err(e),
            }
        };
        if written > 0 {
            conn.last_active = now_ms;
            self.counters.stats.bytes_written += written;
        }
        self.counters.stats.writes += writes;
        if let Err(e) = outcome {
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
            let Some(conn) = conn_in(&mut self.slots, id) else {
                return;
            };
            // Crossing a watermark pauses or resumes reading (`src/flow.rs`).
            if conn.flags & OVER_HIGH != 0
                || conn.bufs.out_len() > self.classes.limits(conn.class()).high_water
            {
                self.update_writability(id);
            }
            let Some(conn) = conn_in(&mut self.slots, id) else {
                return;
            };
            if !conn.bufs.out_is_empty() {
                if conn.state == State::Closing && !was_blocked {
                    // A closing connection just blocked: bound the wait for the peer to read.
                    self.arm_linger_check(id, LINGER);
                }
                return; // blocked; WRITABLE resumes
            }
            if conn.flags & BLOCKED != 0 {
                conn.flags &= !BLOCKED;
                self.call(id, |h, cx| h.on_drained(cx));
                // on_drained may have queued more; send it before deciding anything else.
                if self.conn(id).is_some_and(|c| !c.bufs.out_is_empty()) {
                    continue;
                }
            }
            return self.output_empty(id);
        }
    }
}
