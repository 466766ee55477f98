//! The sockloop side of one HTTP connection: it feeds the reactor's input to the connection's
//! [`Session`], lets the responses leave through the `Context`, closes when the session says so,
//! and enforces the header timeout and the lingering time.
//!
//! The header timeout has two halves. A new connection must deliver its first complete request
//! head within `header_timeout` of being accepted: that is the listener's
//! `first_bytes_timeout`, which the reactor enforces without a timer of ours (it counts input
//! as delivered only once the handler consumed some, and a partial head is never consumed).
//! Later requests on a kept-alive connection get a connection timer, armed when the start of a
//! head is left waiting and cancelled when the head completes; it is not re-armed by new bytes,
//! so a client trickling a byte at a time is cut off as surely as a silent one. Between
//! requests the idle timeout applies instead (nginx: `keepalive_timeout`), and also while a
//! body is being received: a body is bounded by size, and its sender by the idle timeout. A
//! later head that times out is aborted (reset), not closed gracefully: there is nothing to
//! deliver, and a graceful close would wait for a FIN the trickler never sends (see below).
//!
//! A response that ends the connection (a rejection, `Connection: close`) is followed by a
//! graceful close: the reactor sends it, then FIN, and reads and drops what the client still
//! sends until the client's FIN, so a client in the middle of a refused upload reads the 413
//! instead of a reset. The reactor gives that wait up after 5 s without progress, but counts
//! bytes read as progress, so a client that keeps trickling would hold the connection forever;
//! a connection timer caps the whole wait at `lingering_time` (nginx: `lingering_time 30s`)
//! and then resets the connection.

use std::time::Duration;

use sockloop::{CloseReason, Context, Handler, Input, ListenOptions, TimerId};

use crate::proxy;
use crate::request::Limits;
use crate::session::{Next, Session};

/// Everything a connection needs to know about the server's limits.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub limits: Limits,
    /// A request head must be complete this long after it started (for the first request:
    /// after the connection was accepted); the connection is closed otherwise.
    pub header_timeout: Duration,
    /// A connection that sends and receives nothing for this long is closed.
    pub idle_timeout: Duration,
    /// How long a closing connection may go on receiving (and dropping) the client's bytes
    /// before it is reset.
    pub lingering_time: Duration,
}

impl Config {
    /// The listener options that go with this configuration.
    pub fn listen_options(&self) -> ListenOptions {
        ListenOptions::new()
            .first_bytes_timeout(self.header_timeout)
            .idle_timeout(self.idle_timeout)
            // The session never leaves more than a partial head unconsumed (a longer one is
            // rejected with 431), so more held input means a bug: reset rather than grow.
            .max_input(self.limits.max_head)
    }
}

/// What a connection's timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// A request head after the first must be complete by then.
    Header,
    /// The graceful close must be over by then.
    Linger,
}

/// One connection: its protocol session and its timer.
pub struct HttpConn {
    session: Session,
    header_timeout: Duration,
    lingering_time: Duration,
    /// Armed while a head after the first is incomplete, or while the connection closes.
    timer: Option<(TimerId, Deadline)>,
    /// Whether a complete head has arrived yet; until then the first-bytes timeout guards.
    started: bool,
    /// Unconsumed input is the start of a head.
    partial: bool,
    /// A graceful shutdown began: close at the next boundary between requests.
    draining: bool,
}

impl HttpConn {
    pub fn new(config: &Config) -> HttpConn {
        HttpConn {
            session: Session::new(config.limits),
            header_timeout: config.header_timeout,
            lingering_time: config.lingering_time,
            timer: None,
            started: false,
            partial: false,
            draining: false,
        }
    }

    fn cancel_timer(&mut self, cx: &mut Context<'_>) {
        if let Some((timer, _)) = self.timer.take() {
            cx.cancel_timer(timer);
        }
    }

    fn arm(&mut self, cx: &mut Context<'_>, deadline: Deadline, after: Duration) {
        self.cancel_timer(cx);
        self.timer = Some((cx.set_timer(after), deadline));
    }

    /// Whether the connection is idle between two requests, having answered at least one.
    fn idle(&self) -> bool {
        self.started && !self.partial && self.session.between_requests()
    }

    /// Closes gracefully (the queued responses are sent first), for at most `lingering_time`.
    fn close(&mut self, cx: &mut Context<'_>) {
        self.arm(cx, Deadline::Linger, self.lingering_time);
        cx.close();
    }
}

impl Handler for HttpConn {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        log::info!("{}: connected from {}", cx.id(), proxy::peer(cx));
    }

    /// A graceful shutdown (SIGTERM): an idle keep-alive connection closes now; one in the
    /// middle of a request answers it first, and one that has not had its first request yet
    /// waits for it (behind a load balancer it is on its way: the balancer connected for it, and
    /// does not retry an established connection), within the header timeout and the grace.
    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        self.draining = true;
        if self.idle() {
            self.close(cx);
        }
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let progress = match self.session.feed(input.as_slice(), cx) {
            Ok(progress) => progress,
            Err(e) => {
                // The connection can no longer send (reset, or over its output cap).
                log::debug!("{}: response not queued: {e}; closing", cx.id());
                input.consume(input.len());
                return self.close(cx);
            }
        };
        input.consume(progress.consumed);
        self.partial = matches!(progress.next, Next::Read { partial_head: true });
        if progress.heads > 0 {
            // The request the timer was guarding is complete.
            self.started = true;
            self.cancel_timer(cx);
        }
        match progress.next {
            Next::Read { partial_head: true } if self.started => {
                if self.timer.is_none() {
                    self.arm(cx, Deadline::Header, self.header_timeout);
                }
            }
            Next::Read { .. } if self.draining && self.idle() => self.close(cx),
            Next::Read { .. } => self.cancel_timer(cx),
            Next::Close(rejected) => {
                if let Some(status) = rejected {
                    log::warn!(
                        "{}: bad request, answered {} {}; closing",
                        cx.id(),
                        status.code(),
                        status.reason()
                    );
                }
                self.close(cx);
            }
        }
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, timer: TimerId) {
        let Some((armed, deadline)) = self.timer else {
            return;
        };
        if armed != timer {
            return;
        }
        self.timer = None;
        match deadline {
            Deadline::Header => log::warn!(
                "{}: request head incomplete after {:?}; resetting",
                cx.id(),
                self.header_timeout
            ),
            Deadline::Linger => log::debug!(
                "{}: client still sending {:?} after the close; resetting",
                cx.id(),
                self.lingering_time
            ),
        }
        cx.abort();
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        // Most closes end long before the linger cap: free its timer now, not at its deadline.
        self.cancel_timer(cx);
        log::debug!("{}: {reason}", cx.id());
    }
}
