//! Closing a connection: a graceful close (flush, FIN, a bounded wait for the peer's FIN), a
//! half-close, an abort, the linger check that bounds the wait, and step 4's release of closed
//! slots. The state machine itself is drawn in `src/conn/mod.rs`.

use std::io;
use std::time::Duration;

use super::{gone, Core, Entry, Slot, TimerAction};
use crate::close_reason::CloseReason;
use crate::conn::{CloseMode, Flag, State};
use crate::id::ConnId;

/// How long a gracefully closing connection waits for the peer's FIN after sending its own.
pub(crate) const LINGER: Duration = Duration::from_secs(5);
/// During a graceful shutdown, how long a connection that has sent everything and its FIN waits
/// for the peer's FIN. An idle client (an open `nc`) would otherwise hold the whole shutdown for
/// `LINGER`; with nothing left to deliver, a short wait is enough to let a closing peer finish.
pub(crate) const SHUTDOWN_LINGER: Duration = Duration::from_secs(1);

/// Keys of slots to release in step 4.
#[derive(Default)]
pub(crate) struct Closes {
    keys: Vec<usize>,
}

impl Closes {
    pub(crate) fn any(&self) -> bool {
        !self.keys.is_empty()
    }

    pub(crate) fn push(&mut self, key: usize) {
        self.keys.push(key);
    }

    pub(crate) fn pop(&mut self) -> Option<usize> {
        self.keys.pop()
    }
}

impl Core {
    /// The output queue is empty: send a pending FIN or finish a graceful close.
    pub(crate) fn output_empty(&mut self, id: ConnId) {
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        let wants_fin = conn.state == State::Closing || conn.flags.fin_pending();
        if !wants_fin || conn.flags.fin_sent() {
            return;
        }
        if conn.flags.fin_seen() {
            // The peer's FIN came before ours (whoever asked for the close): the peer closed
            // first, and both directions are done, so there is nothing to linger for.
            return self.close_with(id, CloseReason::PeerClosed);
        }
        if let Err(e) = conn.stream.shutdown_write() {
            log::debug!("{id}: shutdown failed: {e}");
            return self.close_with(id, CloseReason::Error(e));
        }
        conn.flags.set(Flag::FinSent, true);
        if conn.state != State::Closing {
            conn.state = State::WriteClosed;
            return;
        }
        // Our FIN is out; the peer's is awaited, for a bounded time.
        self.arm_linger_check(id, LINGER);
        if self.shutdown.is_some() {
            // The regular linger check is due only after `LINGER`; shutting down, look sooner.
            self.arm_linger_check(id, SHUTDOWN_LINGER);
        }
    }

    /// Starts a graceful close or aborts `id`.
    pub(crate) fn close(&mut self, id: ConnId, mode: CloseMode) -> io::Result<()> {
        let conn = self.slots.conn_mut(id).ok_or_else(gone)?;
        if mode == CloseMode::Abort {
            // SO_LINGER 0 makes close() send a reset instead of FIN: the peer learns the stream
            // was cut rather than mistaking it for a complete one.
            if conn.state != State::Closed {
                conn.stream.set_reset_on_close();
            }
            self.close_with(id, CloseReason::Aborted);
            return Ok(());
        }
        match conn.state {
            State::Closing | State::Closed => {}
            State::Connecting => self.close_with(id, CloseReason::Local),
            State::Handshaking | State::Open | State::ReadClosed | State::WriteClosed => {
                self.enter_closing(id)
            }
        }
        Ok(())
    }

    /// Asks for FIN once `id`'s queued output is written.
    pub(crate) fn shutdown_write(&mut self, id: ConnId) -> io::Result<()> {
        let conn = self.slots.conn_mut(id).ok_or_else(gone)?;
        match conn.state {
            State::Open | State::Connecting | State::Handshaking => {
                conn.flags.set(Flag::FinPending, true);
                conn.finish_output(&mut self.output.pool);
            }
            // The peer is done too: shutting down our side completes the close.
            State::ReadClosed => {
                self.enter_closing(id);
                return Ok(());
            }
            State::WriteClosed | State::Closing | State::Closed => return Ok(()),
        }
        self.mark_dirty(id);
        Ok(())
    }

    /// Starts a graceful close: flush, FIN, wait for the peer's FIN. The linger timer bounds
    /// the whole of it by progress: it gives up only after `LINGER` without a byte moving, so a
    /// slow but live reader still gets a large final response. It is armed only once the close
    /// has to wait (output blocked, or our FIN sent first): most closes complete within the
    /// iteration (the peer closed first and its last replies fit the socket), and a timer
    /// armed for each of them would hold heap memory for `LINGER` after the connection is gone.
    pub(crate) fn enter_closing(&mut self, id: ConnId) {
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        let was_accepting = conn.accepts_output();
        conn.state = State::Closing;
        if was_accepting {
            // The handler can write no more: what the transport sends before FIN goes last.
            conn.finish_output(&mut self.output.pool);
        }
        let flags = conn.flags;
        if flags.over_high() || flags.read_paused() {
            // Reads were paused, so the edge that carried the peer's FIN may be gone: look.
            self.mark_ready(id.token());
        }
        if flags.fin_sent() || flags.write_blocked() {
            // Already waiting on the peer (our FIN is out, or it is not reading): the flush
            // below will not arm the check for a state it did not enter.
            self.arm_linger_check(id, LINGER);
        }
        self.mark_dirty(id);
    }

    /// Schedules a linger check `after` from now (extra checks are harmless: each re-reads the
    /// connection's state).
    pub(crate) fn arm_linger_check(&mut self, id: ConnId, after: Duration) {
        let at = self.clock.instant_of(self.clock.now_ms) + after;
        self.timers.queue.insert(at, TimerAction::LingerExpired(id));
    }

    /// A linger timer fired: close if nothing moved for `LINGER`, else check again later.
    pub(crate) fn linger_expired(&mut self, id: ConnId) {
        let now_ms = self.clock.now_ms;
        let Some(conn) = self.slots.conn(id).filter(|c| c.state == State::Closing) else {
            return;
        };
        let (last, unsent) = (conn.last_active, conn.bufs.out_len());
        let quiet = now_ms.saturating_sub(last);
        let limit = if self.shutdown.is_some() && conn.is_lingering() {
            SHUTDOWN_LINGER
        } else {
            LINGER
        };
        if quiet < limit.as_millis() as u64 {
            let at = self.clock.instant_of(last) + limit;
            self.timers.queue.insert(at, TimerAction::LingerExpired(id));
        } else if unsent > 0 {
            log::debug!("{id}: peer stopped reading while closing; {unsent} bytes unsent");
            let e = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("peer stopped reading; {unsent} bytes unsent"),
            );
            self.close_with(id, CloseReason::Error(e));
        } else {
            log::debug!("{id}: no FIN from peer within {limit:?}; closing");
            self.close_with(id, CloseReason::Local);
        }
    }

    /// Moves `id` to `Closed` with `reason` (if not closed already) and schedules its release.
    pub(crate) fn close_with(&mut self, id: ConnId, reason: CloseReason) {
        if let Some(conn) = self.slots.conn_mut(id) {
            if conn.mark_closed(reason) {
                conn.bufs.clear_out(&mut self.output.pool);
                self.closes.push(id.key());
            }
        }
    }

    /// Step 4: frees a closed connection's slot (closing its socket) and tells its handler.
    pub(crate) fn release(&mut self, key: usize) {
        if !matches!(
            self.slots.by_key(key),
            Some(Slot {
                entry: Entry::Conn(_) | Entry::FailedConnect(..),
                ..
            })
        ) {
            return;
        }
        let slot = self.slots.remove(key);
        let id = ConnId::new(key, slot.gen);
        // Its connect attempts, if it was racing some, end with it.
        self.cancel_race(id);
        let (handler, reason) = match slot.entry {
            Entry::Conn(conn) => {
                self.counters.open -= 1;
                self.classes.closed(conn.class());
                let (handler, reason, mut bufs) = conn.into_parts();
                bufs.release(&mut self.output.pool);
                (handler, reason)
            }
            Entry::FailedConnect(handler, e) => (Some(handler), CloseReason::ConnectFailed(e)),
            _ => return,
        };
        self.counters.count_close(&reason);
        log::debug!("{id}: closed ({reason})");
        if let Some(handler) = handler {
            self.call_on_close(id, handler, reason);
        }
        // A descriptor was freed: listeners stopped by EMFILE can try again now.
        self.resume_paused();
    }
}
