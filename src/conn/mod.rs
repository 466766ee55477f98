//! One connection as a value: its socket, its transport, its buffers, its state and flags. This
//! layer makes the system calls of one connection and says what happened as data
//! ([`ReadStep`], [`WriteStep`]); it never calls a handler and knows nothing of the reactor.
//! What to do about what happened is the engine's (`src/engine/conn_event.rs`).
//!
//! ```text
//!             connect ok                 peer FIN
//! Connecting ───────────▶ Open ───────────────────▶ ReadClosed ──┐
//!     │   (TLS:) └──▶ Handshaking ──▲  handshake done; accepted TLS connections start here
//!     │                  │  │  shutdown_write          │          │ close()/default
//!     │ connect error    │  └──────────▶ WriteClosed   │ close()  ▼
//!     │                  │ close()            │ FIN    └──────▶ Closing ──▶ Closed
//!     └──────────────────┴────────────────────┴──── error / abort ───────────▲
//!
//! Flags, beside the state (src/conn/flags.rs):
//!   WriteBlocked   a write met WouldBlock; on_drained is due when the queue empties
//!   FinPending     shutdown_write asked; FIN goes out when the queue is empty   (Open)
//!   FinSent        our FIN is out                          (WriteClosed, Closing)
//!   FinSeen        the peer's FIN was read                 (ReadClosed, Closing)
//!   OverHigh       output over the high watermark: reads paused, not writable
//!   ReadPaused     a handler paused reading (Context::pause_reading)
//!   AwaitingFirst  the first-bytes deadline is armed and not met yet
//!   Dirty          on the reactor's dirty list, flushed in step 4
//! ```
//!
//! `Closing` sends what is queued, then sends FIN and reads (discarding) until the peer's FIN or a
//! linger timeout: closing a socket that still has unread input makes the kernel send a reset,
//! which can destroy the last response before the peer reads it. `Closed` is final: the reactor
//! releases the slot after the current dispatch and calls `on_close`.

mod buf;
mod flags;
mod io_step;
#[cfg(feature = "tls")]
mod tls;
mod transport;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) use buf::{BufPool, Queues};
pub(crate) use flags::{Flag, Flags};
pub(crate) use io_step::{ReadStep, WriteStep};
#[cfg(feature = "tls")]
pub(crate) use tls::TlsSession;
use transport::Extra;
#[cfg(feature = "proxy-protocol")]
pub(crate) use transport::ProxyStage;

use crate::close_reason::CloseReason;
use crate::options::Limits;
use crate::sys::Stream;

/// The library-side connection states; see the module docs for the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Outbound connect in progress.
    Connecting,
    /// Connected, with a TLS handshake under way: the handler has not heard `on_open` yet.
    Handshaking,
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

/// Outcome of checking a pending outbound connect.
#[derive(Debug)]
pub(crate) enum ConnectCheck {
    Pending,
    Done,
    Failed(io::Error),
}

/// One connection. `H` is its handler, which this layer only holds: the engine calls it.
pub(crate) struct Conn<H> {
    pub(crate) stream: Stream,
    /// Taken out while one of its callbacks runs, so the callback can borrow the reactor.
    handler: Option<H>,
    pub(crate) state: State,
    pub(crate) flags: Flags,
    /// Unconsumed input and unsent output; holds no memory while both are empty.
    pub(crate) bufs: Queues,
    /// Why it closed, and a TLS session if it has one: what only some connections need, boxed
    /// so that a plain one pays 8 bytes for it (`src/conn/transport.rs`).
    extra: Option<Box<Extra>>,
    /// Coarse loop time (ms) of the last read or write: idle and linger checks compare against
    /// it, so activity costs one store.
    pub(crate) last_active: u64,
    /// Idle timeout in ms; 0 for none.
    idle_ms: u32,
    /// Its class: the limits it is held to, and whose connection count it is part of
    /// (`src/engine/classes.rs`); two bytes where the limits themselves would take forty.
    class: u16,
}

impl<H> Conn<H> {
    pub(crate) fn new(
        stream: Stream,
        handler: H,
        state: State,
        now_ms: u64,
        class: u16,
    ) -> Conn<H> {
        Conn {
            stream,
            handler: Some(handler),
            state,
            flags: Flags::default(),
            bufs: Queues::default(),
            extra: None,
            last_active: now_ms,
            idle_ms: 0,
            class,
        }
    }

    /// Takes the handler out for a callback; `None` if a callback of it is already running.
    pub(crate) fn take_handler(&mut self) -> Option<H> {
        self.handler.take()
    }

    /// Puts the handler back after a callback.
    pub(crate) fn put_handler(&mut self, handler: H) {
        self.handler = Some(handler);
    }

    /// The handler left more than `max` bytes unconsumed on a connection that still reads for
    /// it. One that closed meanwhile is exempt: its input is moot, and "reply with an error,
    /// close, consume nothing" must not turn the graceful close into a reset.
    pub(crate) fn over_input_limit(&self, max: usize) -> bool {
        self.bufs.input_len() > max && !matches!(self.state, State::Closing | State::Closed)
    }

    pub(crate) fn class(&self) -> u16 {
        self.class
    }

    /// Below the high watermark (or back under the low one since).
    pub(crate) fn is_writable(&self) -> bool {
        !self.flags.over_high()
    }

    /// Reading is held: by a handler's pause, or by the watermark when `limits` say so. A
    /// closing connection reads on regardless: it only looks for the peer's FIN.
    pub(crate) fn reads_held(&self, limits: &Limits) -> bool {
        let held = self.flags.read_paused() || (limits.pause_reads && self.flags.over_high());
        held && self.state != State::Closing
    }

    /// Output queued past the high watermark while reads would pause for it: a read turn ends
    /// here, so that the flush after it decides whether the peer is behind.
    pub(crate) fn output_over_high(&self, limits: &Limits) -> bool {
        limits.pause_reads
            && self.state != State::Closing
            && self.bufs.out_len() > limits.high_water
    }

    /// Reads can happen in this state at all (connected, the peer's FIN not yet read).
    pub(crate) fn reads_open(&self) -> bool {
        !matches!(
            self.state,
            State::Connecting | State::ReadClosed | State::Closed
        ) && !self.flags.fin_seen()
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

    /// Open (or finishing its TLS handshake), half-closed either way: not connecting, not
    /// closing.
    pub(crate) fn is_open(&self) -> bool {
        matches!(
            self.state,
            State::Handshaking | State::Open | State::ReadClosed | State::WriteClosed
        )
    }

    /// The TLS handshake is under way.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.state == State::Handshaking
    }

    /// Whether the connection speaks TLS.
    pub(crate) fn has_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls().is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Gives the connection a TLS session.
    #[cfg(feature = "tls")]
    pub(crate) fn set_tls(&mut self, session: TlsSession) {
        self.extra.get_or_insert_with(Default::default).tls = Some(session);
    }

    /// Its TLS session, if it has one.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(&self) -> Option<&TlsSession> {
        self.extra.as_ref().and_then(|x| x.tls.as_ref())
    }

    /// Not closed (or about to be released).
    pub(crate) fn is_live(&self) -> bool {
        self.state != State::Closed
    }

    /// Everything was sent, our FIN too; only the peer's FIN is awaited.
    pub(crate) fn is_lingering(&self) -> bool {
        self.state == State::Closing && self.flags.fin_sent() && self.bufs.out_is_empty()
    }

    /// Replaces the recorded close reason (a forced close that should say why it happened).
    pub(crate) fn override_reason(&mut self, reason: CloseReason) {
        self.extra.get_or_insert_with(Default::default).reason = Some(reason);
    }

    pub(crate) fn queued(&self) -> usize {
        self.bufs.out_len()
    }

    /// The peer's address: the client's that a PROXY protocol header gave, if one did, or
    /// else the socket's.
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        #[cfg(feature = "proxy-protocol")]
        if let Some(source) = self.proxy_header().and_then(|h| h.source()) {
            return Ok(source);
        }
        self.stream.peer_addr()
    }

    /// The socket's peer, whatever a PROXY protocol header said (the balancer, behind one).
    pub(crate) fn socket_peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// The PROXY protocol header the connection came with, once read.
    #[cfg(feature = "proxy-protocol")]
    pub(crate) fn proxy_header(&self) -> Option<&crate::proxy::ProxyHeader> {
        match self.extra.as_ref()?.proxy.as_ref()? {
            ProxyStage::Read(header) => header.as_deref(),
            ProxyStage::Awaited(_) => None,
        }
    }

    /// The PROXY protocol mode, while the connection's header is still to be read.
    #[cfg(feature = "proxy-protocol")]
    pub(crate) fn proxy_awaited(&self) -> Option<crate::proxy::ProxyProtocol> {
        if self.state != State::Handshaking {
            return None;
        }
        match self.extra.as_ref()?.proxy.as_ref()? {
            ProxyStage::Awaited(mode) => Some(*mode),
            ProxyStage::Read(_) => None,
        }
    }

    /// Sets where the connection is with its PROXY protocol header.
    #[cfg(feature = "proxy-protocol")]
    pub(crate) fn set_proxy(&mut self, stage: ProxyStage) {
        self.extra.get_or_insert_with(Default::default).proxy = Some(stage);
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
            State::Connecting | State::Handshaking | State::Open | State::ReadClosed
        ) && !self.flags.fin_pending()
    }

    /// Whether the socket should be written to now.
    pub(crate) fn can_flush(&self) -> bool {
        !matches!(self.state, State::Connecting | State::Closed) && !self.flags.fin_sent()
    }

    /// Queues the handler's bytes for the socket, through the transport.
    pub(crate) fn queue_output(&mut self, pool: &mut BufPool, data: &[u8]) {
        transport::encode(self.extra.as_deref_mut(), data, &mut self.bufs, pool);
    }

    /// Queues what the transport sends before our FIN (once a FIN has been asked for: the
    /// handler can write no more).
    pub(crate) fn finish_output(&mut self, pool: &mut BufPool) {
        transport::finish(self.extra.as_deref_mut(), &mut self.bufs, pool);
    }

    /// Whether a pending outbound connect has completed.
    pub(crate) fn check_connect(&self) -> ConnectCheck {
        check_connect(&self.stream)
    }

    /// Moves to `Closed` once, recording why; returns true if this call did it.
    pub(crate) fn mark_closed(&mut self, reason: CloseReason) -> bool {
        if self.state == State::Closed {
            return false;
        }
        self.state = State::Closed;
        let extra = self.extra.get_or_insert_with(Default::default);
        if extra.reason.is_none() {
            extra.reason = Some(reason);
        }
        true
    }

    /// Takes what `on_close` needs, dropping the socket (the fd is closed, which also removes it
    /// from epoll: no `epoll_ctl(DEL)` system call is spent per close).
    pub(crate) fn into_parts(self) -> (Option<H>, CloseReason, Queues) {
        let reason = self
            .extra
            .and_then(|x| x.reason)
            .unwrap_or(CloseReason::Local);
        (self.handler, reason, self.bufs)
    }
}

/// Whether a non-blocking connect on `stream` has completed.
pub(crate) fn check_connect(stream: &Stream) -> ConnectCheck {
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
