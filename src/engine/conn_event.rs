//! One connection event, from readiness to the handler to the flush decision: the path every
//! echoed byte takes.
//!
//! 1. `conn_event` (a readiness event) or `conn_retry` (a turn from the still-ready queue)
//!    finishes a pending connect, flushes pending output if the socket is writable, and starts a
//!    read turn.
//! 2. `read_turn` reads through the connection's transport (`Conn::read_step`) until the socket
//!    is drained, a short read proves it empty, the read budget is spent or the output passed
//!    the high watermark; each read's bytes go to the handler (`deliver`).
//! 3. What the handler's callbacks listed for flushing comes back as an `EventOutcome`, and
//!    `after_event` decides whether the replies leave now, in a burst, or in step 4 (the
//!    reasons, and the settings, are in `flush_policy.rs`).

use super::calls::EventOutcome;
use super::Core;
use crate::close_reason::CloseReason;
use crate::conn::{ConnectCheck, ReadStep, State};
use crate::id::ConnId;
use crate::input::Input;
use crate::sources::Readiness;

/// Reads in one turn of a connection before it yields to the others; with the 64 KiB shared
/// buffer that is 1 MiB. A connection that may still have data goes on the still-ready queue,
/// because with edge-triggered readiness no new event would come for the bytes left behind.
/// (tokio's cooperative budget is 128 operations, libuv reads 32 times per stream, Netty 16.)
const READ_BUDGET: usize = 16;

/// Whether a short read proves the socket empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadMode {
    /// It does: the next arrival raises a new edge, so the read that would only say
    /// `WouldBlock` is skipped (one system call fewer per message).
    Edge,
    /// It does not (a FIN, an error or urgent data is pending, or this is a retry after a
    /// budget or a pause): read until `WouldBlock`.
    Drain,
}

impl Core {
    /// Handles one readiness event for connection `id`, then makes the flush decision for what
    /// its callbacks wrote. One on the still-ready queue (`queued`) only flushes now; it reads
    /// in its turn of the retry pass.
    pub(crate) fn conn_event(
        &mut self,
        rbuf: &mut [u8],
        id: ConnId,
        ready: Readiness,
        queued: bool,
        write_through: bool,
    ) {
        self.calls.begin_event(id);
        self.serve_event(rbuf, id, ready, queued);
        let outcome: EventOutcome = self.calls.end_event();
        self.after_event(outcome, write_through);
    }

    fn serve_event(&mut self, rbuf: &mut [u8], id: ConnId, ready: Readiness, queued: bool) {
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        match conn.state {
            State::Closed => return,
            // An error or hang-up arrives as readable/closed readiness, success as writable.
            State::Connecting => match conn.check_connect() {
                ConnectCheck::Pending => return,
                ConnectCheck::Failed(e) => {
                    log::debug!("{id}: connect failed: {e}");
                    return self.close_with(id, CloseReason::ConnectFailed(e));
                }
                ConnectCheck::Done => self.connected(id),
            },
            _ => {
                // Once the peer's FIN has been read no read will run, so a reset arriving later
                // (reported as EPIPE after a FIN) would go unnoticed: ask the socket for it.
                if (ready.read_closed || ready.error) && conn.flags.fin_seen() {
                    if let Ok(Some(e)) | Err(e) = conn.stream.take_error() {
                        log::debug!("{id}: error after peer's FIN: {e}");
                        return self.close_with(id, CloseReason::Error(e));
                    }
                }
                if ready.writable && !conn.bufs.out_is_empty() {
                    self.flush(id);
                }
            }
        }
        if queued || !(ready.readable || ready.read_closed || ready.error || ready.priority) {
            return;
        }
        // A short read proves the socket empty only when nothing more is known to be there. A
        // FIN or an error will raise no new edge, so read on to collect it. Neither will urgent
        // data (`MSG_OOB`, reported as priority readiness): a read stops short at the urgent
        // mark although more bytes are queued behind it.
        let mode = if ready.read_closed || ready.error || ready.priority {
            ReadMode::Drain
        } else {
            ReadMode::Edge
        };
        // A connection behind a balancer first gives its PROXY protocol header.
        #[cfg(feature = "proxy-protocol")]
        if !self.read_proxy_header(rbuf, id, ready.read_closed) {
            return;
        }
        self.read_turn(rbuf, id, mode);
    }

    /// Serves connection `id`'s turn from the still-ready queue: it reads to `WouldBlock`.
    /// Its replies are flushed in step 4.
    pub(crate) fn conn_retry(&mut self, rbuf: &mut [u8], id: ConnId) {
        #[cfg(feature = "proxy-protocol")]
        if !self.read_proxy_header(rbuf, id, false) {
            return;
        }
        self.read_turn(rbuf, id, ReadMode::Drain);
    }

    /// One read turn: read and deliver until `WouldBlock`, EOF, a short read (in `Edge`
    /// mode), the read budget, or queued output past the high watermark. A turn that ends with
    /// input possibly left in the socket puts the connection on the still-ready queue.
    fn read_turn(&mut self, rbuf: &mut [u8], id: ConnId, mode: ReadMode) {
        let mut budget = READ_BUDGET;
        let now_ms = self.clock.now_ms;
        let tls = self.slots.conn(id).is_some_and(|c| c.has_tls());
        loop {
            let Some(conn) = self.slots.conn_mut(id) else {
                return;
            };
            let limits = self.classes.limits(conn.class());
            // Output above the high watermark holds reading: the input stays in the kernel, so
            // the peer's sending is throttled by TCP flow control instead of our memory.
            if !conn.reads_open() || conn.reads_held(limits) {
                return;
            }
            // Past the high watermark the turn ends: the replies are flushed after it, and only
            // if the kernel will not take them is the peer really behind; then the flush pauses
            // the reading. Otherwise the next turn reads on. So the queue never grows past the
            // high mark by more than one read's worth of replies, and one turn writes once.
            if conn.output_over_high(limits) || budget == 0 {
                return self.mark_ready(id.token());
            }
            budget -= 1;
            self.counters.stats.reads += 1;
            match conn.read_step(rbuf, &mut self.output.pool) {
                ReadStep::Fin => return self.on_fin(id),
                // The transport's own output (a handshake message, an alert) leaves with the
                // turn's replies.
                #[cfg(feature = "tls")]
                ReadStep::Wrote => self.mark_dirty(id),
                #[cfg(feature = "tls")]
                ReadStep::Established => self.established(id),
                #[cfg(feature = "tls")]
                ReadStep::Truncated => return self.truncated(id),
                #[cfg(feature = "tls")]
                ReadStep::Tls(e) => return self.tls_failed(id, e),
                ReadStep::Data(n) => {
                    self.counters.stats.bytes_read += n as u64;
                    // A closing connection reads only to find the peer's FIN; its input is moot,
                    // and is no progress either: a peer trickling bytes instead of its FIN must
                    // not hold the close open past the linger bound.
                    if conn.state != State::Closing {
                        conn.last_active = now_ms;
                        self.deliver(id, &rbuf[..n]);
                    }
                    // A short TLS read proves nothing: rustls reads the socket a few KiB at a
                    // time, and hands plaintext over a record at a time.
                    if n < rbuf.len() && mode == ReadMode::Edge && !tls {
                        return;
                    }
                }
                // Drained; wait for the next edge. If nothing at all was read, this read was a
                // retry (reading resumed after a pause, or a spurious wake-up): offer the input
                // the handler kept once more, since it may have stopped short on purpose (to
                // bound its output) and no new bytes may ever come to re-offer it.
                ReadStep::Drained => {
                    let kept = budget == READ_BUDGET - 1
                        && conn.state != State::Closing
                        && !conn.bufs.input_is_empty();
                    if kept {
                        self.deliver(id, &[]);
                    }
                    return;
                }
                // Reset, timeout, ...: this connection is over.
                ReadStep::Error(e) => {
                    log::debug!("{id}: read error: {e}");
                    return self.close_with(id, CloseReason::Error(e));
                }
            }
        }
    }

    /// Offers fresh bytes to the handler, prefixed by any input it left unconsumed last time.
    /// The replies it writes list the connection for flushing (`output.rs`).
    fn deliver(&mut self, id: ConnId, data: &[u8]) {
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        // Only a leftover can break the input bound, so it is checked where one is stored.
        let max_input = self.classes.limits(conn.class()).max_input;
        let awaiting_first = conn.flags.awaiting_first();
        let mut over_limit = false;
        let consumed = if conn.bufs.input_is_empty() {
            // Common case: parse straight from the shared read buffer, copy only a leftover.
            let mut input = Input::new(data);
            self.call(id, |h, cx| h.on_data(cx, &mut input));
            let rest = input.as_slice();
            if !rest.is_empty() {
                if let Some(conn) = self.slots.conn_mut(id) {
                    conn.bufs.push_input(&mut self.output.pool, rest);
                    over_limit = conn.over_input_limit(max_input);
                }
            }
            input.consumed()
        } else {
            conn.bufs.push_input(&mut self.output.pool, data);
            let mut pending = conn.bufs.take_input();
            let mut input = Input::new(pending.bytes());
            self.call(id, |h, cx| h.on_data(cx, &mut input));
            let used = input.consumed();
            pending.consume(used);
            if let Some(conn) = self.slots.conn_mut(id) {
                conn.bufs.restore_input(&mut self.output.pool, pending);
                over_limit = conn.over_input_limit(max_input);
            }
            used
        };
        if awaiting_first && consumed > 0 {
            self.first_input_consumed(id);
        }
        if over_limit {
            self.close_over_input_limit(id, max_input);
        }
    }

    /// The peer's FIN was read.
    fn on_fin(&mut self, id: ConnId) {
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        conn.flags.set(crate::conn::Flag::FinSeen, true);
        log::debug!("{id}: peer closed its write side");
        match conn.state {
            State::Open => {
                conn.state = State::ReadClosed;
                self.call(id, |h, cx| h.on_read_closed(cx));
                self.flush(id);
            }
            State::WriteClosed => {
                self.close_with(id, CloseReason::PeerClosed);
            }
            State::Closing if conn.flags.fin_sent() => {
                self.close_with(id, CloseReason::Local);
            }
            // Gone before its TLS handshake was done: the handler never heard of it open.
            State::Handshaking => self.close_with(id, CloseReason::PeerClosed),
            _ => {}
        }
    }

    /// The TLS handshake completed: the connection is open for its handler, which hears
    /// `on_open` (and `on_shutdown` too if a graceful shutdown began meanwhile).
    #[cfg(feature = "tls")]
    fn established(&mut self, id: ConnId) {
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        if conn.state != State::Handshaking {
            return;
        }
        conn.state = State::Open;
        log::debug!("{id}: TLS handshake done");
        self.opened(id);
    }

    /// The stream ended without TLS's `close_notify`, after every plaintext byte was delivered.
    /// It ends like a FIN (the handler hears `on_read_closed` and may still answer), and the
    /// connection's close reason says it was cut: what came last may be missing.
    #[cfg(feature = "tls")]
    fn truncated(&mut self, id: ConnId) {
        log::debug!("{id}: the stream ended without a TLS close_notify (truncated)");
        if let Some(conn) = self.slots.conn_mut(id) {
            conn.override_reason(CloseReason::Truncated);
        }
        self.on_fin(id);
    }

    /// A fatal TLS error (a failed handshake, a bad record): the alert rustls queued is sent,
    /// then the connection closes with the error as its reason.
    #[cfg(feature = "tls")]
    fn tls_failed(&mut self, id: ConnId, e: rustls::Error) {
        log::debug!("{id}: TLS error: {e}");
        if let Some(conn) = self.slots.conn_mut(id) {
            conn.override_reason(CloseReason::Tls(e));
        }
        let _ = self.close(id, crate::conn::CloseMode::Graceful);
    }

    /// The flush decision after one connection event of step 3, from what its callbacks
    /// listed. If they listed the connection itself and no other (a reply; a connection that
    /// was listed already, by someone else's write, stays where it is), the reply leaves now
    /// after a small poll, or joins the burst that leaves once `batch` connections are in it.
    /// Anything else on the dirty list waits for step 4: a callback that also wrote to others
    /// (a chat line echoed to its sender too) keeps its own copy with theirs, so that a member
    /// who both sends and receives in one iteration still gets one `write`.
    pub(crate) fn after_event(&mut self, outcome: EventOutcome, write_through: bool) {
        if !outcome.own_output || outcome.other_output {
            return;
        }
        // Only the served connection was listed during the event: it is the list's last entry.
        let Some(id) = self.output.unlist_last() else {
            return;
        };
        if write_through {
            self.flush(id);
            return;
        }
        self.flush.replies.push(id);
        if self.flush.replies.len() >= self.flush.batch {
            self.flush_replies();
        }
    }
}
