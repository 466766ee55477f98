//! The two halves of one proxied connection: the client's (accepted by the listener) and the
//! upstream's (opened by the client half with `Context::connect_with`). Each half forwards what
//! it reads to its partner with `Context::write_to`, and knows nothing else of it but its id.
//!
//! - **Backpressure, both ways alike.** A half whose own peer reads slower than the partner
//!   sends to it hears `on_writability(false)` and pauses the partner's reading
//!   (`Context::pause_reading`); `on_writability(true)` resumes it. Bytes then wait in the
//!   kernel and TCP slows the fast sender. The handler hears that in step 4 of the iteration,
//!   so the half that writes also checks `Context::is_writable_conn(partner)` after each
//!   `write_to` (a write that takes the partner over its high mark is sent at once, and the
//!   partner marked not writable if the kernel refuses it) and pauses itself: what the proxy
//!   holds per direction is then the high watermark (256 KiB by default) plus one read.
//! - **Independent directions.** Both connections are opened with
//!   `pause_reading_over_high(false)`: the reactor's default, to stop reading a connection whose
//!   own output is over its high mark, suits request/response, but here what a half reads goes
//!   to the *other* connection. With the default, an upstream slow to take the client's bytes
//!   would stop the proxy reading upstream's replies, and an upstream that stops reading while
//!   its replies are not taken (any echo server) would wait for the proxy forever.
//! - **Half-close passed on.** When a half's peer sends FIN, the half asks for FIN on the
//!   partner (`Context::shutdown_write_conn`), which the reactor sends once everything queued
//!   for the partner is written; the other direction goes on. When both peers have finished,
//!   the reactor closes each connection once it has delivered what it holds.
//! - **Ends passed on.** An orderly close of one side closes the other gracefully (what it
//!   holds is still delivered); a reset, error or limit resets the other, so that its peer
//!   does not take a cut stream for a complete one.
//!
//! Used by `main.rs`, and included by `tests/proxy.rs` and `benches/proxy.rs` (with `#[path]`)
//! so that they exercise exactly this code.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use sockloop::{
    CloseReason, ConnId, ConnectOptions, Context, Handler, Input, ListenOptions, Reactor,
};

/// Serves the proxy on `addr`, forwarding every client to `upstream`; returns the address it
/// listens on.
#[allow(dead_code)] // the example's main uses `listen_with`; tests/proxy.rs and benches this
pub fn listen(
    reactor: &mut Reactor,
    addr: SocketAddr,
    upstream: SocketAddr,
) -> io::Result<SocketAddr> {
    listen_with(reactor, addr, upstream, |_| ConnectOptions::new())
}

/// Makes the options of a client's upstream connection, from the client's connection (to send
/// a PROXY protocol header that names the client, say).
pub type UpstreamOptions = Rc<dyn Fn(&Context<'_>) -> ConnectOptions>;

/// Like [`listen`], with `options_for` making each upstream connection's options (reading is
/// never paused over the high mark, whatever it says; see the module docs).
pub fn listen_with(
    reactor: &mut Reactor,
    addr: SocketAddr,
    upstream: SocketAddr,
    options_for: impl Fn(&Context<'_>) -> ConnectOptions + 'static,
) -> io::Result<SocketAddr> {
    // Default watermarks (64 KiB / 256 KiB) and output cap (16 MiB); see the module docs for
    // why reading is not paused over the high mark.
    let options = ListenOptions::new().pause_reading_over_high(false);
    let options_for: UpstreamOptions = Rc::new(options_for);
    let (_, bound) = reactor.listen_with(addr, options, move || {
        Half::client(upstream, Rc::clone(&options_for))
    })?;
    Ok(bound)
}

/// Which connection of the pair a half serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }
}

/// One half of a proxied connection; see the module docs.
pub struct Half {
    side: Side,
    /// The other connection of the pair: for the client half, upstream's id as `connect_with`
    /// returns it (before the connect completes); for the upstream half, the client's.
    partner: Option<ConnId>,
    /// Where the client half connects to (the upstream half keeps it for its log lines).
    upstream: SocketAddr,
    /// Bytes read from this half's peer and passed on to the partner.
    forwarded: u64,
    /// The client half's maker of its upstream connection's options.
    options_for: Option<UpstreamOptions>,
}

impl Half {
    /// The handler for a connection accepted from a client: it opens the upstream connection
    /// to `upstream` and proxies between the two.
    pub fn client(upstream: SocketAddr, options_for: UpstreamOptions) -> Half {
        Half {
            side: Side::Client,
            partner: None,
            upstream,
            forwarded: 0,
            options_for: Some(options_for),
        }
    }

    fn upstream_for(client: ConnId, upstream: SocketAddr) -> Half {
        Half {
            side: Side::Upstream,
            partner: Some(client),
            upstream,
            forwarded: 0,
            options_for: None,
        }
    }
}

impl Handler for Half {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let me = cx.id();
        match self.side {
            Side::Client => {
                // Not read until upstream is connected. Writes to a connection that is still
                // connecting are queued, but its watermarks are only checked when its queue is
                // flushed, which cannot happen before it connects: a fast client facing a slow
                // connect would fill upstream's queue up to the 16 MiB cap, unchecked.
                let _ = cx.pause_reading(me);
                let options = match &self.options_for {
                    Some(options_for) => options_for(cx),
                    None => ConnectOptions::new(),
                };
                let options = options.pause_reading_over_high(false);
                let upstream = cx.connect_with(
                    self.upstream,
                    options,
                    Half::upstream_for(me, self.upstream),
                );
                self.partner = Some(upstream);
                match cx.peer_addr() {
                    Ok(peer) => log::debug!("{me}: client {peer}; upstream {upstream} connecting"),
                    Err(_) => log::debug!("{me}: client accepted; upstream {upstream} connecting"),
                }
            }
            Side::Upstream => {
                if let Some(client) = self.partner {
                    log::info!("{client} <-> {me}: connected to upstream {}", self.upstream);
                    // NotFound only if the client is gone, and then its close resets us.
                    let _ = cx.resume_reading(client);
                }
            }
        }
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let data = input.take_all();
        // The client is read only once upstream is open, and upstream knows its client from
        // the start, so the partner is always known here.
        let Some(partner) = self.partner else {
            return;
        };
        self.forwarded += data.len() as u64;
        if let Err(e) = cx.write_to(partner, data) {
            // The partner is closing or gone: these bytes cannot be delivered. A reset tells
            // this side's peer that the stream was cut rather than complete.
            log::debug!(
                "{}: {} bytes for {partner} undeliverable: {e}",
                cx.id(),
                data.len()
            );
            cx.abort();
            return;
        }
        // The partner's peer lags (the reactor has just tried to send what is queued for it and
        // it is over its high mark): stop reading here at once, rather than queue the rest of
        // this read loop's megabytes for it. `on_writability(true)` on the partner resumes us.
        if cx.is_writable_conn(partner).is_ok_and(|w| !w) {
            let me = cx.id();
            let _ = cx.pause_reading(me);
        }
    }

    fn on_writability(&mut self, cx: &mut Context<'_>, writable: bool) {
        // This half's peer lags behind what the partner sends it (or caught up): stop (or
        // resume) reading the partner. NotFound only if the partner is gone.
        if let Some(partner) = self.partner {
            let _ = if writable {
                cx.resume_reading(partner)
            } else {
                cx.pause_reading(partner)
            };
        }
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        log::debug!(
            "{}: {} finished sending; passing FIN on",
            cx.id(),
            self.side.name()
        );
        // FIN leaves after everything queued for the partner. If the partner's peer finished
        // too, that completes the partner's close; NotFound if it is gone already. Not the
        // default close: this side goes on delivering what the partner's peer sends.
        if let Some(partner) = self.partner {
            let _ = cx.shutdown_write_conn(partner);
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let me = cx.id();
        let (side, forwarded) = (self.side.name(), self.forwarded);
        let Some(partner) = self.partner else {
            return;
        };
        match &reason {
            CloseReason::ConnectFailed(e) => {
                log::warn!(
                    "{partner}: cannot reach upstream {}: {e}; closing the client (is anything \
                     listening there?)",
                    self.upstream
                );
                let _ = cx.close_conn(partner);
            }
            // Finished in order: the partner is told to finish too, and a graceful close still
            // delivers what it holds (NotFound if it closed first).
            CloseReason::PeerClosed | CloseReason::Local => {
                log::info!("{me}: {side} done ({reason}); {forwarded} bytes passed on from it");
                let _ = cx.close_conn(partner);
            }
            // A reset, an error or a limit: the stream is broken, and the other peer must not
            // take a truncated stream for a complete one.
            _ => {
                log::info!("{me}: {side} {reason} after {forwarded} bytes; resetting {partner}");
                let _ = cx.abort_conn(partner);
            }
        }
    }
}
