//! The two halves of one proxied connection: the client's (accepted by the listener) and the
//! upstream's (opened by the client half with `Context::connect`). Each forwards what it reads
//! to the other with `Context::write_to`; they share a [`Link`].
//!
//! Flow control, download (upstream to client): when the client has more than its high
//! watermark queued (`on_writability(false)`), upstream is not read (`Context::pause_reading`)
//! until the client's queue is down to the low watermark. Upload (client to upstream): the
//! client is paused while the upload budget is spent (see `link.rs` for why the upload cannot
//! use the watermarks in the same way). Either way bytes wait in the kernel and TCP slows the
//! sender, so a fast side never fills the proxy's memory.
//!
//! Used by `main.rs`, and included by `tests/proxy.rs` and `benches/proxy.rs` (with `#[path]`)
//! so that they exercise exactly this code.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use sockloop::{CloseReason, ConnId, Context, Handler, Input, TimerId};

use crate::link::{hold, Link, Side};

/// How often a half looks for a FIN its partner asked it to send, while the pair is busy.
///
/// `Context::shutdown_write` acts only on the connection whose callback is running, and nothing
/// lets one connection's callback run another's. So when the client sends FIN, its half can only
/// leave a note in the [`Link`]; the upstream half sends the FIN on its next callback, which may
/// never come by itself (an echo server waits for that very FIN before it answers). Hence this
/// tick, per half, until it has sent its FIN. It bounds how late a half-close is passed on: 10 ms
/// after traffic, up to [`MAILBOX_TICK_IDLE`] after a quiet spell, as the tick slows down
/// (doubling) while neither peer sends anything, so that an idle pair costs a few timer firings
/// a second rather than two hundred.
pub const MAILBOX_TICK: Duration = Duration::from_millis(10);
/// The slowest mailbox tick, reached after about 300 ms without traffic.
pub const MAILBOX_TICK_IDLE: Duration = Duration::from_millis(250);

/// One half of a proxied connection; see the module docs.
pub struct Half {
    side: Side,
    link: Rc<RefCell<Link>>,
    /// Where the client half connects to (the upstream half keeps it for its log lines).
    upstream: SocketAddr,
    /// The tick, while armed: the mailbox tick, or (upstream half) a look on the next loop
    /// iteration while the client is uploading.
    tick: Option<TimerId>,
    /// The armed tick is the next-iteration one.
    fast: bool,
    /// The mailbox tick's current period, and the link's activity count it last saw.
    period: Duration,
    activity: u64,
    /// This half has sent its FIN (or asked for it): the mailbox is no longer needed.
    shut: bool,
}

impl Half {
    /// The handler for a connection accepted from a client: it opens the upstream connection
    /// to `upstream` and proxies between the two.
    pub fn client(upstream: SocketAddr) -> Half {
        Half {
            side: Side::Client,
            link: Rc::new(RefCell::new(Link::default())),
            upstream,
            tick: None,
            fast: false,
            period: MAILBOX_TICK,
            activity: 0,
            shut: false,
        }
    }

    fn upstream_of(client: &Half) -> Half {
        Half {
            side: Side::Upstream,
            link: Rc::clone(&client.link),
            upstream: client.upstream,
            tick: None,
            fast: false,
            period: MAILBOX_TICK,
            activity: 0,
            shut: false,
        }
    }

    /// The partner's connection, once known.
    fn partner(&self) -> Option<ConnId> {
        self.link.borrow().ids[self.side.other() as usize]
    }

    /// Catches up with what the partner left in the link. Called first in every callback.
    fn catch_up(&mut self, cx: &mut Context<'_>) {
        if self.side == Side::Upstream && !self.shut {
            // Upload accounting: see what left, take stashed bytes, free the client.
            if self.link.borrow_mut().refill_upstream(cx) && !self.fast {
                // The client is sending: look again on the next iteration, when what was
                // queued now has met the socket, so the client waits for room at most that long.
                if let Some(tick) = self.tick.take() {
                    cx.cancel_timer(tick);
                }
                self.tick = Some(cx.set_timer(Duration::ZERO));
                self.fast = true;
            }
        }
        let me = self.side as usize;
        let mut link = self.link.borrow_mut();
        // Stashed upload bytes go before upstream's FIN (the client is held until they are
        // queued, so this only guards the order).
        let stashed = self.side == Side::Upstream && !link.upload_stash.is_empty();
        if !link.must_shut[me] || stashed {
            return;
        }
        link.must_shut[me] = false;
        drop(link);
        log::debug!("{}: passing FIN on to the {}", cx.id(), self.side.name());
        // FIN leaves after everything queued; if this side's peer finished too, the reactor
        // closes the connection once it is out.
        cx.shutdown_write();
        self.shut = true;
        if let Some(tick) = self.tick.take() {
            cx.cancel_timer(tick);
        }
    }
}

impl Handler for Half {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let me = cx.id();
        self.link.borrow_mut().ids[self.side as usize] = Some(me);
        match self.side {
            Side::Client => {
                // Hold the client's bytes in the kernel until upstream is connected: written to
                // a connection still connecting, they would only pile up in its queue.
                self.link
                    .borrow_mut()
                    .hold_client(cx, hold::CONNECTING, true);
                let upstream = cx.connect(self.upstream, Half::upstream_of(self));
                self.link.borrow_mut().ids[Side::Upstream as usize] = Some(upstream);
                match cx.peer_addr() {
                    Ok(peer) => log::debug!("{me}: client {peer}; upstream {upstream} connecting"),
                    Err(_) => log::debug!("{me}: client accepted; upstream {upstream} connecting"),
                }
            }
            Side::Upstream => {
                let client = self.partner();
                self.link
                    .borrow_mut()
                    .hold_client(cx, hold::CONNECTING, false);
                if let Some(client) = client {
                    log::info!("{client} <-> {me}: connected to upstream {}", self.upstream);
                }
            }
        }
        self.tick = Some(cx.set_timer(MAILBOX_TICK));
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.catch_up(cx);
        // The client is only read once upstream is open, and upstream once it exists, so the
        // partner is always known here.
        let Some(other) = self.partner() else {
            return;
        };
        let data = input.take_all();
        let mut link = self.link.borrow_mut();
        link.forwarded[self.side as usize] += data.len() as u64;
        link.activity += 1;
        let delivered = match self.side {
            Side::Client => link.upload(cx, other, data),
            Side::Upstream => match cx.write_to(other, data) {
                Ok(()) => true,
                Err(e) => {
                    log::debug!(
                        "{}: {} bytes for {other} undeliverable: {e}",
                        cx.id(),
                        data.len()
                    );
                    false
                }
            },
        };
        drop(link);
        if !delivered {
            // The partner is closing or gone: these bytes cannot be delivered. A reset tells
            // this side's peer that the stream was cut rather than complete.
            cx.abort();
        }
    }

    fn on_writability(&mut self, cx: &mut Context<'_>, writable: bool) {
        self.catch_up(cx);
        match self.side {
            // The client lags behind (or caught up): stop (or resume) reading upstream.
            Side::Client => {
                if let Some(upstream) = self.partner() {
                    let _ = if writable {
                        cx.resume_reading(upstream)
                    } else {
                        cx.pause_reading(upstream)
                    };
                }
            }
            Side::Upstream => {
                self.link
                    .borrow_mut()
                    .hold_client(cx, hold::BACKLOG, !writable);
            }
        }
    }

    fn on_drained(&mut self, cx: &mut Context<'_>) {
        self.catch_up(cx);
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        self.catch_up(cx);
        let (me, other) = (self.side as usize, self.side.other() as usize);
        let partner = {
            let mut link = self.link.borrow_mut();
            link.eof[me] = true;
            link.activity += 1;
            if !link.eof[other] {
                // The partner still reads from its peer; it sends FIN on its next callback.
                link.must_shut[other] = true;
            }
            link.ids[other].filter(|_| link.eof[other])
        };
        log::debug!("{}: {} finished sending", cx.id(), self.side.name());
        if let Some(partner) = partner {
            // Both peers have finished sending: the partner only has to deliver what it holds.
            // For a connection whose peer already sent FIN, a graceful close does exactly that
            // (flush, then FIN), at once rather than at the partner's next tick.
            let _ = cx.close_conn(partner);
        }
        // Not the default close: this side goes on delivering what the partner's peer sends.
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, timer: TimerId) {
        if self.tick != Some(timer) {
            return;
        }
        self.tick = None;
        self.fast = false;
        self.catch_up(cx);
        if self.tick.is_none() && !self.shut {
            let activity = self.link.borrow().activity;
            self.period = if activity == self.activity {
                (self.period * 2).min(MAILBOX_TICK_IDLE)
            } else {
                MAILBOX_TICK
            };
            self.activity = activity;
            self.tick = Some(cx.set_timer(self.period));
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let me = cx.id();
        let Some(other) = self.partner() else {
            return;
        };
        match &reason {
            CloseReason::ConnectFailed(e) => {
                log::warn!(
                    "{other}: cannot reach upstream {}: {e}; closing the client (is anything \
                     listening there?)",
                    self.upstream
                );
                let _ = cx.close_conn(other);
            }
            // Finished normally: both peers sent FIN and this side delivered everything, so the
            // partner has nothing left but its own queue, which a graceful close still sends.
            CloseReason::PeerClosed | CloseReason::Local => {
                log::debug!("{me}: {} done: {reason}", self.side.name());
                let _ = cx.close_conn(other);
            }
            // A reset, an error or a limit: the stream is broken, and the other peer must not
            // take a truncated stream for a complete one.
            _ => {
                log::info!("{me}: {} {reason}; resetting {other}", self.side.name());
                let _ = cx.abort_conn(other);
            }
        }
        let mut link = self.link.borrow_mut();
        link.closed[self.side as usize] = true;
        if link.closed[self.side.other() as usize] {
            let [up, down] = link.forwarded;
            log::info!("{me}: last of the pair closed; {up} bytes to upstream, {down} back");
        }
    }
}
