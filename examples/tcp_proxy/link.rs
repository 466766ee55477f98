//! What the two halves of one proxied connection share: each other's ids, who has finished
//! sending, the half-close one half leaves for the other, and the upload's flow control.
//!
//! # Why the upload is metered
//!
//! The reactor stops reading a connection while more than its high watermark of output is
//! queued for it. That suits request/response, where reading makes output, but on the upstream
//! connection what is read goes to the client: if the proxy stops reading upstream because
//! upstream is slow to take the client's bytes, an upstream that itself stops reading while its
//! replies are not taken (any echo server, sockloop's included) waits for the proxy, which waits
//! for it. Outbound connections have the default watermarks (no options reach them), so the
//! client half keeps at most [`UPLOAD_BUDGET`] bytes queued for upstream, below the 256 KiB
//! high mark, and the reactor never has a reason to stop reading upstream.
//!
//! The budget is counted here because a half can see only its own connection's queue
//! (`Context::queued`): the upstream half records its queue whenever one of its callbacks runs
//! ([`Link::upstream_seen`]), and the client half adds what it writes after that. Bytes that do
//! not fit wait in [`Link::upload_stash`] (one read's worth at most: the client is paused when
//! it fills) until the upstream half has room for them.

use sockloop::{ConnId, Context};

/// Most bytes queued for upstream by the proxy at any time: below the reactor's default high
/// watermark (256 KiB), which is what outbound connections get, so that upstream is never
/// taken for a connection that must stop reading (see the module docs).
pub const UPLOAD_BUDGET: usize = 192 << 10;

/// Which connection of the pair a half serves; indexes the per-side arrays of [`Link`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client = 0,
    Upstream = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }
}

/// Why the client is not being read; it is read again when no reason is left.
pub mod hold {
    /// Upstream is still connecting.
    pub const CONNECTING: u8 = 1;
    /// The upload budget is spent: upstream has not taken what it was given yet.
    pub const BUDGET: u8 = 2;
    /// Upstream's queue went over its high watermark after all (not expected: the budget keeps
    /// it below; handled so that a change of default cannot make the proxy buffer unbounded).
    pub const BACKLOG: u8 = 4;
}

/// The shared state of one proxied connection.
#[derive(Default)]
pub struct Link {
    /// Each side's connection: the client's from its `on_open`, the upstream's from
    /// `cx.connect`'s return value (known before the connect completes).
    pub ids: [Option<ConnId>; 2],
    /// That side's peer sent FIN: nothing more will be read from it.
    pub eof: [bool; 2],
    /// That side must send FIN once its queued output is out, because its partner's peer
    /// finished sending. Left by the partner, acted on by that side's own next callback.
    pub must_shut: [bool; 2],
    /// Bytes read from that side's peer and passed on.
    pub forwarded: [u64; 2],
    /// That side's connection is closed.
    pub closed: [bool; 2],
    /// Bumped whenever either peer sends data or FIN: the halves' mailbox ticks slow down while
    /// it stands still.
    pub activity: u64,
    /// Upstream's queued output as its half last saw it.
    pub upstream_seen: usize,
    /// Bytes queued for upstream since then.
    pub upstream_unseen: usize,
    /// Client bytes that did not fit the budget, oldest first.
    pub upload_stash: Vec<u8>,
    /// Reasons the client is paused ([`hold`]).
    pub client_holds: u8,
}

impl Link {
    /// Room left in the upload budget, as far as anyone can know.
    pub fn upload_room(&self) -> usize {
        UPLOAD_BUDGET.saturating_sub(self.upstream_seen + self.upstream_unseen)
    }

    /// Adds or removes a reason to hold the client, pausing or resuming it when the first
    /// reason comes or the last one goes. Called from either half's context.
    pub fn hold_client(&mut self, cx: &mut Context<'_>, reason: u8, on: bool) {
        let Some(client) = self.ids[Side::Client as usize] else {
            return;
        };
        let before = self.client_holds;
        if on {
            self.client_holds |= reason;
        } else {
            self.client_holds &= !reason;
        }
        // NotFound only if the client is gone, and then its close has reached this pair.
        let _ = match (before, self.client_holds) {
            (0, held) if held != 0 => cx.pause_reading(client),
            (held, 0) if held != 0 => cx.resume_reading(client),
            _ => Ok(()),
        };
    }

    /// Client bytes for upstream, from the client half: queued for upstream as far as the
    /// budget allows, the rest stashed and the client paused until upstream has room. Order is
    /// kept: while anything is stashed, new bytes go behind it.
    pub fn upload(&mut self, cx: &mut Context<'_>, upstream: ConnId, data: &[u8]) -> bool {
        let now = if self.upload_stash.is_empty() {
            data.len().min(self.upload_room())
        } else {
            0
        };
        if now > 0 {
            if let Err(e) = cx.write_to(upstream, &data[..now]) {
                log::debug!(
                    "{}: {} bytes for {upstream} undeliverable: {e}",
                    cx.id(),
                    data.len()
                );
                return false;
            }
            self.upstream_unseen += now;
        }
        if now < data.len() {
            self.upload_stash.extend_from_slice(&data[now..]);
            self.hold_client(cx, hold::BUDGET, true);
        }
        true
    }

    /// From the upstream half's context: records its queue, moves stashed bytes into it as far
    /// as the budget allows, and releases the client once nothing is stashed. Returns whether
    /// bytes were queued since the previous look (more may follow: look again soon).
    pub fn refill_upstream(&mut self, cx: &mut Context<'_>) -> bool {
        let moved = self.upstream_unseen > 0;
        self.upstream_seen = cx.queued();
        self.upstream_unseen = 0;
        let n = self.upload_room().min(self.upload_stash.len());
        if n > 0 {
            cx.write(&self.upload_stash[..n]);
            self.upload_stash.drain(..n);
            self.upstream_seen += n;
        }
        if self.upload_stash.is_empty() {
            self.hold_client(cx, hold::BUDGET, false);
        }
        moved || n > 0
    }
}
