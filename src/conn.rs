//! The library's half of a connection: the socket, its buffers, and the state machine that reads,
//! flushes and closes it.
//!
//! ```text
//!             connect ok                 peer FIN
//! Connecting ───────────▶ Open ───────────────────▶ ReadClosed ──┐
//!     │                  │  │  shutdown_write          │          │ close()/default
//!     │ connect error    │  └──────────▶ WriteClosed   │ close()  ▼
//!     │                  │ close()            │ FIN    └──────▶ Closing ──▶ Closed
//!     └──────────────────┴────────────────────┴──── error / abort ───────────▲
//! ```
//!
//! `Closing` sends what is queued, then sends FIN and reads (discarding) until the peer's FIN or a
//! linger timeout: closing a socket that still has unread input makes the kernel send a reset,
//! which can destroy the last response before the peer reads it. `Closed` is final: the reactor
//! releases the slot after the current dispatch and calls `on_close`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::buf::Queues;
use crate::context::Context;
use crate::core::{Core, Entry, Slot};
use crate::handler::{CloseReason, Handler, PanicPolicy};
use crate::id::ConnId;
use crate::input::Input;
use crate::source::Readiness;
use crate::stream::Stream;

/// Reads in one turn of a connection before it yields to the others; with the 64 KiB shared
/// buffer that is 1 MiB. A connection that may still have data goes on the still-ready queue,
/// because with edge-triggered readiness no new event would come for the bytes left behind.
/// (tokio's cooperative budget is 128 operations, libuv reads 32 times per stream, Netty 16.)
const READ_BUDGET: usize = 16;

/// How long a gracefully closing connection waits for the peer's FIN after sending its own.
pub(crate) const LINGER: Duration = Duration::from_secs(5);
/// During a graceful shutdown, how long a connection that has sent everything and its FIN waits
/// for the peer's FIN. An idle client (an open `nc`) would otherwise hold the whole shutdown for
/// `LINGER`; with nothing left to deliver, a short wait is enough to let a closing peer finish.
pub(crate) const SHUTDOWN_LINGER: Duration = Duration::from_secs(1);

/// The library-side connection states; see the module docs for the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Outbound connect in progress.
    Connecting,
    /// Both directions open.
    Open,
    /// The peer sent FIN; we may still write.
    ReadClosed,
    /// We sent FIN (after flushing); we still read.
    WriteClosed,
    /// Close requested: flushing, then FIN, then waiting briefly for the peer's FIN.
    Closing,
    /// Done; the slot is freed and `on_close` called after the current dispatch.
    Closed,
}

/// How to close: after flushing, or at once with a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseMode {
    Graceful,
    Abort,
}

/// A flush stopped on `WouldBlock`; `on_drained` is due once the queue empties.
pub(crate) const BLOCKED: u8 = 1;
/// `shutdown_write` was asked for; send FIN once the queue is empty.
pub(crate) const SHUT_PENDING: u8 = 2;
/// Our FIN has been sent.
pub(crate) const WR_SHUT: u8 = 4;
/// The peer's FIN has been read.
pub(crate) const FIN_SEEN: u8 = 8;
/// The connection is on the reactor's dirty list (avoids duplicate entries).
pub(crate) const DIRTY: u8 = 16;
/// Queued output went above the high watermark: reading is paused until it is down to the low
/// one, and the handler was told the connection is not writable (`src/flow.rs`).
pub(crate) const OVER_HIGH: u8 = 32;
/// Armed with a first-bytes timeout: the handler has not consumed any input yet.
pub(crate) const AWAIT_FIRST: u8 = 64;
/// Reading was paused by a handler (`Context::pause_reading`), as for a proxy whose other side
/// is behind; independent of `OVER_HIGH`, and both must be clear for reads to happen.
pub(crate) const READ_PAUSED: u8 = 128;

pub(crate) struct Conn {
    pub(crate) stream: Stream,
    /// Taken out while one of its callbacks runs, so the callback can borrow the reactor.
    handler: Option<Box<dyn Handler>>,
    pub(crate) state: State,
    pub(crate) flags: u8,
    /// Unconsumed input and unsent output; holds no memory while both are empty.
    pub(crate) bufs: Queues,
    /// Why it closed; boxed because it is needed once, at the end, and an idle connection
    /// should not pay 16 bytes for it.
    reason: Option<Box<CloseReason>>,
    /// Coarse loop time (ms) of the last read or write: idle and linger checks compare against
    /// it, so activity costs one store.
    pub(crate) last_active: u64,
    /// Idle timeout in ms; 0 for none.
    idle_ms: u32,
    /// Its class: the limits it is held to, and whose connection count it is part of
    /// (`src/limits.rs`); two bytes where the limits themselves would take forty.
    class: u16,
}

impl Conn {
    pub(crate) fn new(
        stream: Stream,
        handler: Box<dyn Handler>,
        state: State,
        now_ms: u64,
        class: u16,
    ) -> Conn {
        Conn {
            stream,
            handler: Some(handler),
            state,
            flags: 0,
            bufs: Queues::default(),
            reason: None,
            last_active: now_ms,
            idle_ms: 0,
            class,
        }
    }

    /// The handler left more than `max` bytes unconsumed on a connection that still reads for
    /// it. One that closed meanwhile is exempt: its input is moot, and "reply with an error,
    /// close, consume nothing" must not turn the graceful close into a reset.
    fn over_input_limit(&self, max: usize) -> bool {
        self.bufs.input_len() > max && !matches!(self.state, State::Closing | State::Closed)
    }

    pub(crate) fn class(&self) -> u16 {
        self.class
    }

    /// Below the high watermark (or back under the low one since).
    pub(crate) fn is_writable(&self) -> bool {
        self.flags & OVER_HIGH == 0
    }

    /// Gives the connection an idle timeout (the caller arms the first check).
    pub(crate) fn set_idle(&mut self, idle: Duration) {
        self.idle_ms = idle.as_millis().clamp(1, u32::MAX as u128) as u32;
    }

    /// (last activity, idle timeout) in ms, if the connection has an idle timeout and is live.
    pub(crate) fn idle_state(&self) -> Option<(u64, u64)> {
        // A closing connection is governed by its linger check, not the idle timeout: its close
        // is already under way, and relabelling it "idle" would misreport why it ended.
        let open = matches!(
            self.state,
            State::Open | State::ReadClosed | State::WriteClosed
        );
        (self.idle_ms > 0 && open).then_some((self.last_active, self.idle_ms as u64))
    }

    /// An outbound connect is still in progress (the handler has not seen `on_open`).
    pub(crate) fn is_connecting(&self) -> bool {
        self.state == State::Connecting
    }

    /// Not closed (or about to be released).
    pub(crate) fn is_live(&self) -> bool {
        self.state != State::Closed
    }

    /// Everything was sent, our FIN too; only the peer's FIN is awaited.
    pub(crate) fn is_lingering(&self) -> bool {
        self.state == State::Closing && self.flags & WR_SHUT != 0 && self.bufs.out_is_empty()
    }

    /// Replaces the recorded close reason (a forced close that should say why it happened).
    pub(crate) fn override_reason(&mut self, reason: CloseReason) {
        self.reason = Some(Box::new(reason));
    }

    pub(crate) fn queued(&self) -> usize {
        self.bufs.out_len()
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    pub(crate) fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.stream.set_nodelay(nodelay)
    }

    pub(crate) fn nodelay(&self) -> io::Result<bool> {
        self.stream.nodelay()
    }

    /// Whether new output is still accepted.
    pub(crate) fn accepts_output(&self) -> bool {
        matches!(
            self.state,
            State::Connecting | State::Open | State::ReadClosed
        ) && self.flags & SHUT_PENDING == 0
    }

    /// Whether the socket should be written to now.
    pub(crate) fn can_flush(&self) -> bool {
        !matches!(self.state, State::Connecting | State::Closed) && self.flags & WR_SHUT == 0
    }

    /// Moves to `Closed` once, recording why; returns true if this call did it.
    pub(crate) fn mark_closed(&mut self, reason: CloseReason) -> bool {
        if self.state == State::Closed {
            return false;
        }
        self.state = State::Closed;
        if self.reason.is_none() {
            self.reason = Some(Box::new(reason));
        }
        true
    }

    /// Takes what `on_close` needs, dropping the socket (the fd is closed, which also removes it
    /// from epoll: no `epoll_ctl(DEL)` system call is spent per close).
    pub(crate) fn into_parts(self) -> (Option<Box<dyn Handler>>, CloseReason, Queues) {
        let reason = self.reason.map_or(CloseReason::Local, |r| *r);
        (self.handler, reason, self.bufs)
    }
}

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

/// Outcome of checking a pending outbound connect.
enum ConnectCheck {
    Pending,
    Done,
    Failed(io::Error),
}

fn check_connect(stream: &Stream) -> ConnectCheck {
    // As mio documents: a pending error means failure; otherwise a peer address means success,
    // and `NotConnected` means the event was spurious and the connect is still in progress.
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return ConnectCheck::Failed(e),
        Ok(None) => {}
    }
    match stream.is_connected() {
        Ok(true) => ConnectCheck::Done,
        Ok(false) => ConnectCheck::Pending,
        Err(e) => ConnectCheck::Failed(e),
    }
}

impl Core {
    /// Handles one readiness event for connection `id`. One on the still-ready queue
    /// (`queued`) only flushes now; it reads in its turn of the retry pass.
    pub(crate) fn conn_event(
        &mut self,
        rbuf: &mut [u8],
        id: ConnId,
        ready: Readiness,
        queued: bool,
    ) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        match conn.state {
            State::Closed => return,
            State::Connecting => {
                // An error or hang-up arrives as readable/closed readiness, success as writable.
                match check_connect(&conn.stream) {
                    ConnectCheck::Pending => return,
                    ConnectCheck::Failed(e) => {
                        log::debug!("{id}: connect failed: {e}");
                        self.close_with(id, CloseReason::ConnectFailed(e));
                        return;
                    }
                    ConnectCheck::Done => {
                        conn.state = State::Open;
                        self.counters.stats.connected += 1;
                        log::debug!("{id}: connected");
                        self.call(id, |h, cx| h.on_open(cx));
                        if self.shutdown.is_some() {
                            // Opened during a graceful shutdown: it is asked to finish as well,
                            // but only now that its handler has seen it open.
                            self.call(id, |h, cx| h.on_shutdown(cx));
                        }
                        self.flush(id);
                    }
                }
            }
            _ => {
                // Once the peer's FIN has been read no read will run, so a reset arriving later
                // (reported as EPIPE after a FIN) would go unnoticed: ask the socket for it.
                if (ready.read_closed || ready.error) && conn.flags & FIN_SEEN != 0 {
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
        self.read(rbuf, id, mode);
    }

    /// Serves connection `id`'s turn from the still-ready queue: it reads to `WouldBlock`.
    pub(crate) fn conn_retry(&mut self, rbuf: &mut [u8], id: ConnId) {
        self.read(rbuf, id, ReadMode::Drain);
    }

    /// One read turn: read and deliver until `WouldBlock`, EOF, a short read (in `Edge`
    /// mode), the read budget, or queued output past the high watermark. A turn that ends with
    /// input possibly left in the socket puts the connection on the still-ready queue.
    fn read(&mut self, rbuf: &mut [u8], id: ConnId, mode: ReadMode) {
        let mut budget = READ_BUDGET;
        let now_ms = self.now_ms;
        loop {
            let Some(conn) = conn_in(&mut self.slots, id) else {
                return;
            };
            if matches!(
                conn.state,
                State::Connecting | State::ReadClosed | State::Closed
            ) || conn.flags & FIN_SEEN != 0
            {
                return;
            }
            // Output above the high watermark: leave the input in the kernel, so the peer's
            // sending is throttled by TCP flow control instead of our memory. A closing
            // connection reads on: it only looks for the peer's FIN and delivers nothing.
            let limits = self.classes.limits(conn.class());
            let held = if limits.pause_reads {
                OVER_HIGH | READ_PAUSED
            } else {
                READ_PAUSED
            };
            if conn.flags & held != 0 && conn.state != State::Closing {
                return;
            }
            // Past the high watermark the turn ends: the replies are flushed after it, and only
            // if the kernel will not take them is the peer really behind; then the flush pauses
            // the reading. Otherwise the next turn reads on. So the queue never grows past the
            // high mark by more than one read's worth of replies, and one turn writes once.
            let over_high = limits.pause_reads
                && conn.state != State::Closing
                && conn.bufs.out_len() > limits.high_water;
            if over_high || budget == 0 {
                return self.mark_ready(id.token());
            }
            budget -= 1;
            self.counters.stats.reads += 1;
            match conn.stream.read(rbuf) {
                // The peer sent FIN.
                Ok(0) => return self.on_fin(id),
                Ok(n) => {
                    self.counters.stats.bytes_read += n as u64;
                    // A closing connection reads only to find the peer's FIN; its input is moot,
                    // and is no progress either: a peer trickling bytes instead of its FIN must
                    // not hold the close open past the linger bound.
                    if conn.state != State::Closing {
                        conn.last_active = now_ms;
                        self.deliver(id, &rbuf[..n]);
                    }
                    // A short read emptied the socket: the next arrival raises a new edge, so the
                    // read that would only say WouldBlock is skipped. A known FIN or error gets
                    // no new edge, so then we read on to collect it.
                    if n < rbuf.len() && mode == ReadMode::Edge {
                        return;
                    }
                }
                // Drained; wait for the next edge. If nothing at all was read, this read was a
                // retry (reading resumed after a pause, or a spurious wake-up): offer the input
                // the handler kept once more, since it may have stopped short on purpose (to
                // bound its output) and no new bytes may ever come to re-offer it.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let kept = budget == READ_BUDGET - 1
                        && conn.state != State::Closing
                        && !conn.bufs.input_is_empty();
                    if kept {
                        self.deliver(id, &[]);
                    }
                    return;
                }
                // A signal interrupted the call; nothing was read.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Reset, timeout, ...: this connection is over.
                Err(e) => {
                    log::debug!("{id}: read error: {e}");
                    return self.close_with(id, CloseReason::Error(e));
                }
            }
        }
    }

    /// Offers fresh bytes to the handler, prefixed by any input it left unconsumed last time.
    fn deliver(&mut self, id: ConnId, data: &[u8]) {
        let Some(conn) = conn_in(&mut self.slots, id) else {
            return;
        };
        // Only a leftover can break the input bound, so it is checked where one is stored.
        let max_input = self.classes.limits(conn.class).max_input;
        let awaiting_first = conn.flags & AWAIT_FIRST != 0;
        let pool = &mut self.pool;
        let mut over_limit = false;
        let consumed = if conn.bufs.input_is_empty() {
            // Common case: parse straight from the shared read buffer, copy only a leftover.
            let mut input = Input::new(data);
            self.call(id, |h, cx| h.on_data(cx, &mut input));
            let rest = input.as_slice();
            if !rest.is_empty() {
                let (slots, pool) = self.split_pool();
                if let Some(conn) = conn_in(slots, id) {
                    conn.bufs.push_input(pool, rest);
                    over_limit = conn.over_input_limit(max_input);
                }
            }
            input.consumed()
        } else {
            conn.bufs.push_input(pool, data);
            let mut pending = conn.bufs.take_input();
            let mut input = Input::new(pending.bytes());
            self.call(id, |h, cx| h.on_data(cx, &mut input));
            let used = input.consumed();
            pending.consume(used);
            let (slots, pool) = self.split_pool();
            if let Some(conn) = conn_in(slots, id) {
                conn.bufs.restore_input(pool, pending);
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
        // Flushed with the rest of this dispatch pass in step 4, not now: the replies to one
        // batch of events leave together, so the peer wakes once for the lot and answers in a
        // burst, and the next poll returns a fuller batch (fewer epoll_wait calls per message).
        self.mark_dirty(id);
    }

    /// The peer's FIN was read.
    fn on_fin(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.flags |= FIN_SEEN;
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
            State::Closing if conn.flags & WR_SHUT != 0 => {
                self.close_with(id, CloseReason::Local);
            }
            _ => {}
        }
    }

    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conn_mut(id) {
            if conn.flags & DIRTY == 0 {
                conn.flags |= DIRTY;
                self.dirty.push(id);
            }
        }
    }

    /// Runs one handler callback for `id` with a context on this reactor. The handler is taken out
    /// of its slot for the duration, so the callback may freely use the context (even on its own
    /// connection); slots are only freed after dispatch, so it can always be put back.
    ///
    /// A panic in the callback closes this connection only (reset, `CloseReason::Panicked`,
    /// logged at error), unless the reactor was told to let panics through
    /// ([`Reactor::set_panic_policy`](crate::Reactor::set_panic_policy)). The handler is kept,
    /// so `on_close` can still clean up what it shares with others.
    pub(crate) fn call<R>(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut dyn Handler, &mut Context<'_>) -> R,
    ) -> Option<R> {
        let mut handler = self.conn_mut(id)?.handler.take()?;
        let result = if self.panic_policy != PanicPolicy::Unwind {
            // Unwind safety: after a panic the handler is only ever given `on_close`, and the
            // reactor's own state is changed by the context in whole steps, never left half-done.
            let mut cx = Context::new(self, id);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *handler, &mut cx)))
        } else {
            Ok(f(&mut *handler, &mut Context::new(self, id)))
        };
        if let Some(conn) = self.conn_mut(id) {
            conn.handler = Some(handler);
        }
        match result {
            Ok(r) => Some(r),
            Err(payload) => {
                let message = crate::handler::on_panic(self.panic_policy, id, payload);
                log::error!("{id}: handler panicked: {message}; closing this connection");
                let _ = self.close(id, CloseMode::Abort);
                if let Some(conn) = self.conn_mut(id) {
                    conn.override_reason(CloseReason::Panicked(message));
                }
                None
            }
        }
    }
}

/// Looks up a live connection in `slots` (for call sites that also borrow the pool).
pub(crate) fn conn_in(slots: &mut slab::Slab<Slot>, id: ConnId) -> Option<&mut Conn> {
    match slots.get_mut(id.key()) {
        Some(slot) if slot.gen == id.gen() => match &mut slot.entry {
            Entry::Conn(c) => Some(c),
            _ => None,
        },
        _ => None,
    }
}
