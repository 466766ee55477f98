//! Flow control for one connection: the output watermarks that pause and resume reading, the
//! output cap, the input bound, and the first-bytes deadline. Each keeps one slow, stuck or
//! hostile peer from costing the reactor memory or connections without end.
//!
//! Output backpressure works like Netty's writability and libuv's `uv_read_stop`: when more
//! than the high watermark is queued, the connection stops reading, so the peer's further
//! requests wait in the kernel, where TCP flow control slows the peer down, and the handler
//! hears [`on_writability(false)`](crate::Handler::on_writability). Once the queue is down to
//! the low watermark it reads again and hears `on_writability(true)`. The two marks are apart
//! so that a connection near the limit does not flip on every write.
//!
//! Reads are edge-triggered: while paused, the readiness events for new input are consumed
//! without reading, so no event will come for the input that waits in the kernel. Resuming
//! therefore puts the connection on the still-ready queue, which reads it on the next pass.

use std::io;
use std::time::{Duration, Instant};

use super::{gone, Core, TimerAction};
use crate::close_reason::CloseReason;
use crate::conn::{CloseMode, Flag, State};
use crate::id::ConnId;

/// Connections marked not writable by another connection's write, whose handlers are told in
/// step 4 (see `over_high_from_elsewhere`).
#[derive(Default)]
pub(crate) struct Flow {
    unwritable_owed: Vec<ConnId>,
}

impl Flow {
    pub(crate) fn owes(&self) -> bool {
        !self.unwritable_owed.is_empty()
    }
}

impl Core {
    /// Compares `id`'s queued output with its watermarks after a flush, and pauses or resumes
    /// its reading (telling its handler) when a mark was crossed.
    pub(crate) fn update_writability(&mut self, id: ConnId) {
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        let limits = self.classes.limits(conn.class());
        let queued = conn.bufs.out_len();
        if !conn.flags.over_high() {
            if queued <= limits.high_water {
                return;
            }
            conn.flags.set(Flag::OverHigh, true);
            log::debug!("{id}: {queued} bytes queued, over the high watermark; not writable");
            self.call(id, |h, cx| h.on_writability(cx, false));
        } else {
            if queued > limits.low_water {
                return;
            }
            conn.flags.set(Flag::OverHigh, false);
            log::debug!("{id}: {queued} bytes queued, down to the low watermark; writable");
            // Resume the reads the watermark held (if it held them, and nothing else does).
            let was_held = limits.pause_reads && !conn.flags.read_paused();
            if was_held && matches!(conn.state, State::Open | State::WriteClosed) {
                self.mark_ready(id.token());
            }
            // Marked not writable from elsewhere, and recovered before its handler was told.
            // It still hears `false` first, then `true`: the writer that made it so saw
            // `is_writable_conn` say false and may have paused on that, waiting for the `true`
            // that follows a `false`. Dropping both lost that wake-up, and a proxy stalled.
            // (A connection already closing hears neither, as `notify_unwritable` would do.)
            if let Some(at) = self.flow.unwritable_owed.iter().position(|&o| o == id) {
                self.flow.unwritable_owed.swap_remove(at);
                if !self.slots.conn(id).is_some_and(|c| c.is_live()) {
                    return;
                }
                self.call(id, |h, cx| h.on_writability(cx, false));
            }
            self.call(id, |h, cx| h.on_writability(cx, true));
            // What the handler writes now is sent in step 4 (the caller may be mid-flush).
            self.mark_dirty(id);
        }
    }

    /// `id` was written to from another connection's callback (a proxy's other half, a
    /// broadcast) past its high watermark. Its writability is decided now rather than in step
    /// 4, so that [`Context::is_writable_conn`](crate::Context::is_writable_conn) tells the
    /// writer at once, before it queues megabytes more: the queue is written out (no callback
    /// runs) and, if the kernel does not take it, the connection is marked not writable. Its
    /// handler hears `on_writability(false)` in step 4: calling it now would re-enter handler
    /// code from inside the writer's `write_to`, where shared state is typically borrowed.
    pub(crate) fn over_high_from_elsewhere(&mut self, id: ConnId) {
        // A connection still connecting cannot send: it is over the mark as it stands.
        let _ = self.write_queued(id);
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        let limits = self.classes.limits(conn.class());
        if !conn.flags.over_high() && conn.bufs.out_len() > limits.high_water && conn.is_live() {
            conn.flags.set(Flag::OverHigh, true);
            self.flow.unwritable_owed.push(id);
        }
    }

    /// Step 4: tells the handlers of connections marked not writable from elsewhere (see
    /// `over_high_from_elsewhere`), unless they recovered meanwhile.
    pub(crate) fn notify_unwritable(&mut self) {
        for id in std::mem::take(&mut self.flow.unwritable_owed) {
            if self
                .slots
                .conn(id)
                .is_some_and(|c| !c.is_writable() && c.is_live())
            {
                self.call(id, |h, cx| h.on_writability(cx, false));
            }
        }
    }

    /// Pauses (`on == false`) or resumes reading `id` at a handler's request. Resuming
    /// re-queues the read: no new edge comes for input that waited in the kernel meanwhile.
    pub(crate) fn set_reading(&mut self, id: ConnId, on: bool) -> io::Result<()> {
        let conn = self.slots.conn_mut(id).ok_or_else(gone)?;
        if !on {
            conn.flags.set(Flag::ReadPaused, true);
        } else if conn.flags.read_paused() {
            conn.flags.set(Flag::ReadPaused, false);
            let watermark_holds =
                conn.flags.over_high() && self.classes.limits(conn.class()).pause_reads;
            if matches!(conn.state, State::Open | State::WriteClosed) && !watermark_holds {
                self.mark_ready(id.token());
            }
        }
        Ok(())
    }

    /// Resets `id`, whose queued output passed its cap: the peer does not read what it is
    /// sent, and the handler kept writing regardless of writability.
    pub(crate) fn close_over_output_limit(&mut self, id: ConnId, queued: usize, max: usize) {
        log::warn!("{id}: {queued} bytes of output queued exceed the limit of {max}; the peer is not reading; resetting");
        self.close_forced(id, CloseReason::OutputLimit);
    }

    /// Resets `id`, whose handler left more unconsumed input than allowed: a peer that sends a
    /// message the handler can never complete (or never parse) must not grow memory without end.
    pub(crate) fn close_over_input_limit(&mut self, id: ConnId, max: usize) {
        let held = self.slots.conn(id).map_or(0, |c| c.bufs.input_len());
        log::warn!("{id}: {held} bytes of unconsumed input exceed the limit of {max}; resetting");
        self.close_forced(id, CloseReason::InputLimit);
    }

    /// Aborts `id` (reset, output discarded) and records `reason` as why.
    fn close_forced(&mut self, id: ConnId, reason: CloseReason) {
        let _ = self.close(id, CloseMode::Abort);
        if let Some(conn) = self.slots.conn_mut(id) {
            conn.override_reason(reason);
        }
    }

    /// Starts `id`'s first-bytes deadline: its handler must consume some input by then.
    pub(crate) fn arm_first_bytes(&mut self, id: ConnId, timeout: Duration) {
        if let Some(conn) = self.slots.conn_mut(id) {
            conn.flags.set(Flag::AwaitingFirst, true);
            self.timers
                .queue
                .insert(Instant::now() + timeout, TimerAction::FirstBytes(id));
        }
    }

    /// The handler consumed input for the first time: the deadline is met. (The timer stays
    /// in the heap and fires as a no-op; cancelling would need its key kept per connection.)
    pub(crate) fn first_input_consumed(&mut self, id: ConnId) {
        if let Some(conn) = self.slots.conn_mut(id) {
            conn.flags.set(Flag::AwaitingFirst, false);
        }
    }

    /// The first-bytes deadline of `id` passed: close it if its handler still waits.
    pub(crate) fn first_bytes_expired(&mut self, id: ConnId) {
        let Some(conn) = self.slots.conn(id) else {
            return;
        };
        if !conn.flags.awaiting_first() || !conn.is_open() {
            return;
        }
        let held = conn.bufs.input_len();
        log::debug!("{id}: no complete first message in time ({held} bytes held); closing");
        self.close_with(id, CloseReason::FirstBytesTimeout);
    }

    /// A TLS handshake deadline passed: close the connection if it is still handshaking.
    #[cfg(feature = "tls")]
    pub(crate) fn handshake_expired(&mut self, id: ConnId) {
        if self.slots.conn(id).is_some_and(|c| c.is_handshaking()) {
            log::debug!("{id}: TLS handshake not done in time; closing");
            self.close_with(id, CloseReason::HandshakeTimeout);
        }
    }
}
