//! Counters the reactor keeps as it works, and the snapshot users read.
//!
//! Every counter is a plain integer bumped on a path that already touches the same data, so
//! keeping them costs a few additions per event; a snapshot is a copy.

use std::fmt;

use crate::close_reason::CloseReason;

/// Connections closed, by reason.
///
/// # Examples
///
/// ```
/// let stats = sockloop::Reactor::new()?.stats();
/// assert_eq!(stats.closed.total(), 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClosedStats {
    /// The peer closed first ([`CloseReason::PeerClosed`]).
    pub peer_closed: u64,
    /// Closed gracefully by this side ([`CloseReason::Local`]).
    pub local: u64,
    /// Aborted by this side ([`CloseReason::Aborted`]).
    pub aborted: u64,
    /// Outbound connects that failed ([`CloseReason::ConnectFailed`]).
    pub connect_failed: u64,
    /// Ended by a socket error ([`CloseReason::Error`]).
    pub error: u64,
    /// Closed for inactivity ([`CloseReason::IdleTimeout`]).
    pub idle_timeout: u64,
    /// Still busy when a graceful shutdown's deadline passed ([`CloseReason::ShutdownDeadline`]).
    pub shutdown_deadline: u64,
    /// Closed because the handler panicked ([`CloseReason::Panicked`]).
    pub panicked: u64,
    /// Closed for holding too much unconsumed input ([`CloseReason::InputLimit`]).
    pub input_limit: u64,
    /// Closed for letting too much output pile up ([`CloseReason::OutputLimit`]).
    pub output_limit: u64,
    /// Closed for not completing a first message in time ([`CloseReason::FirstBytesTimeout`]).
    pub first_bytes_timeout: u64,
    /// TLS streams that ended without `close_notify` ([`CloseReason::Truncated`]).
    pub truncated: u64,
    /// TLS handshakes that did not complete in time ([`CloseReason::HandshakeTimeout`]).
    pub handshake_timeout: u64,
    /// Connections ended by a TLS error (`CloseReason::Tls`, with the `tls` feature).
    pub tls_error: u64,
    /// Connections without a valid PROXY protocol header ([`CloseReason::ProxyProtocol`]).
    pub proxy_protocol: u64,
}

impl ClosedStats {
    /// All closes, whatever the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ClosedStats::default().total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.peer_closed
            + self.local
            + self.aborted
            + self.connect_failed
            + self.error
            + self.idle_timeout
            + self.shutdown_deadline
            + self.panicked
            + self.input_limit
            + self.output_limit
            + self.first_bytes_timeout
            + self.truncated
            + self.handshake_timeout
            + self.tls_error
            + self.proxy_protocol
    }
}

/// A snapshot of a reactor's counters, from [`Reactor::stats`](crate::Reactor::stats).
///
/// Its `Display` form is a one-line summary, handy for a log line at exit.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut reactor = sockloop::Reactor::new()?;
/// reactor.run_once(Some(Duration::ZERO))?;
/// let stats = reactor.stats();
/// assert_eq!(stats.iterations, 1);
/// assert_eq!(stats.open_connections, 0);
/// println!("{stats}");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections open now (including connecting and closing ones).
    pub open_connections: u64,
    /// Connections accepted by listeners.
    pub accepted: u64,
    /// Outbound connections that were established.
    pub connected: u64,
    /// Connections closed, by reason.
    pub closed: ClosedStats,
    /// Bytes read from stream sockets.
    pub bytes_read: u64,
    /// Bytes written to stream sockets.
    pub bytes_written: u64,
    /// Failed `accept` calls (of any kind, including those that paused a listener).
    pub accept_errors: u64,
    /// Connections accepted and closed at once because a connection limit was reached
    /// ([`ListenOptions::overload_reply`](crate::ListenOptions::overload_reply)); they never
    /// reached a handler.
    pub rejected: u64,
    /// Timers that fired: connection timers, loop timers and idle checks (not the reactor's own
    /// linger checks and accept retries).
    pub timers_fired: u64,
    /// Loop iterations run.
    pub iterations: u64,
    /// Readiness events handled.
    pub events: u64,
    /// `read` system calls on stream sockets (those that returned `WouldBlock` included).
    pub reads: u64,
    /// `write` system calls on stream sockets (those that returned `WouldBlock` included).
    pub writes: u64,
    /// Turns that ended with work possibly left (a read, accept or receive budget spent, or
    /// output past the high watermark) or reads resumed after a pause: each put a source on
    /// the still-ready queue, which serves it again after the next iteration's fresh events.
    /// A source is on that queue at most once, so this grows by at most the number of
    /// sources per iteration.
    pub still_ready: u64,
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// UDP datagrams sent.
    pub datagrams_sent: u64,
    /// UDP datagrams dropped by the library because a socket's send queue was full.
    pub datagrams_dropped: u64,
    /// UDP datagrams that a send or a receive failed for (each reported to its handler's
    /// [`on_error`](crate::DatagramHandler::on_error)).
    pub datagram_errors: u64,
    /// Receive system calls on UDP sockets (`recvmmsg` on Linux, which takes up to 32
    /// datagrams, `recvfrom` elsewhere), those that returned `WouldBlock` included.
    pub datagram_recv_calls: u64,
    /// Send system calls on UDP sockets (`sendmmsg` on Linux, which gives up to 64 datagrams,
    /// `sendto` elsewhere), those that returned `WouldBlock` included.
    pub datagram_send_calls: u64,
}

impl Stats {
    /// Mean readiness events per loop iteration (0 before the first iteration).
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = sockloop::Reactor::new()?.stats();
    /// assert_eq!(stats.events_per_iteration(), 0.0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn events_per_iteration(&self) -> f64 {
        if self.iterations == 0 {
            0.0
        } else {
            self.events as f64 / self.iterations as f64
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.closed;
        write!(
            f,
            "open {} | accepted {} connected {} | closed {} (peer {}, local {}, aborted {}, \
             error {}, connect failed {}, idle {}, shutdown {}, panicked {}, input limit {}, output limit {}, \
             first bytes {}, truncated {}, handshake timeout {}, tls error {}, proxy protocol {}) | read {} B in {} reads, written {} B in {} writes | still-ready {} | accept errors {} rejected {} | timers {} | iterations {} ({:.2} events each)",
            self.open_connections,
            self.accepted,
            self.connected,
            c.total(),
            c.peer_closed,
            c.local,
            c.aborted,
            c.error,
            c.connect_failed,
            c.idle_timeout,
            c.shutdown_deadline,
            c.panicked,
            c.input_limit,
            c.output_limit,
            c.first_bytes_timeout,
            c.truncated,
            c.handshake_timeout,
            c.tls_error,
            c.proxy_protocol,
            self.bytes_read,
            self.reads,
            self.bytes_written,
            self.writes,
            self.still_ready,
            self.accept_errors,
            self.rejected,
            self.timers_fired,
            self.iterations,
            self.events_per_iteration(),
        )?;
        if self.datagrams_received + self.datagrams_sent + self.datagrams_dropped > 0 {
            write!(
                f,
                " | datagrams in {} out {} dropped {} errors {} in {} receive and {} send calls",
                self.datagrams_received,
                self.datagrams_sent,
                self.datagrams_dropped,
                self.datagram_errors,
                self.datagram_recv_calls,
                self.datagram_send_calls
            )?;
        }
        Ok(())
    }
}

impl std::ops::Add for ClosedStats {
    type Output = ClosedStats;

    fn add(self, o: ClosedStats) -> ClosedStats {
        ClosedStats {
            peer_closed: self.peer_closed + o.peer_closed,
            local: self.local + o.local,
            aborted: self.aborted + o.aborted,
            connect_failed: self.connect_failed + o.connect_failed,
            error: self.error + o.error,
            idle_timeout: self.idle_timeout + o.idle_timeout,
            shutdown_deadline: self.shutdown_deadline + o.shutdown_deadline,
            panicked: self.panicked + o.panicked,
            input_limit: self.input_limit + o.input_limit,
            output_limit: self.output_limit + o.output_limit,
            first_bytes_timeout: self.first_bytes_timeout + o.first_bytes_timeout,
            truncated: self.truncated + o.truncated,
            handshake_timeout: self.handshake_timeout + o.handshake_timeout,
            tls_error: self.tls_error + o.tls_error,
            proxy_protocol: self.proxy_protocol + o.proxy_protocol,
        }
    }
}

/// Adds two snapshots, e.g. of the reactors of a [`ReactorPool`](crate::ReactorPool).
impl std::ops::Add for Stats {
    type Output = Stats;

    fn add(self, o: Stats) -> Stats {
        Stats {
            open_connections: self.open_connections + o.open_connections,
            accepted: self.accepted + o.accepted,
            connected: self.connected + o.connected,
            closed: self.closed + o.closed,
            bytes_read: self.bytes_read + o.bytes_read,
            bytes_written: self.bytes_written + o.bytes_written,
            accept_errors: self.accept_errors + o.accept_errors,
            rejected: self.rejected + o.rejected,
            timers_fired: self.timers_fired + o.timers_fired,
            iterations: self.iterations + o.iterations,
            events: self.events + o.events,
            reads: self.reads + o.reads,
            writes: self.writes + o.writes,
            still_ready: self.still_ready + o.still_ready,
            datagrams_received: self.datagrams_received + o.datagrams_received,
            datagrams_sent: self.datagrams_sent + o.datagrams_sent,
            datagrams_dropped: self.datagrams_dropped + o.datagrams_dropped,
            datagram_errors: self.datagram_errors + o.datagram_errors,
            datagram_recv_calls: self.datagram_recv_calls + o.datagram_recv_calls,
            datagram_send_calls: self.datagram_send_calls + o.datagram_send_calls,
        }
    }
}

impl std::iter::Sum for Stats {
    fn sum<I: Iterator<Item = Stats>>(iter: I) -> Stats {
        iter.fold(Stats::default(), |a, b| a + b)
    }
}

/// The live counters inside a reactor.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) stats: Stats,
    pub(crate) open: u64,
}

impl Counters {
    pub(crate) fn count_close(&mut self, reason: &CloseReason) {
        let c = &mut self.stats.closed;
        match reason {
            CloseReason::PeerClosed => c.peer_closed += 1,
            CloseReason::Local => c.local += 1,
            CloseReason::Aborted => c.aborted += 1,
            CloseReason::ConnectFailed(_) => c.connect_failed += 1,
            CloseReason::Error(_) => c.error += 1,
            CloseReason::IdleTimeout => c.idle_timeout += 1,
            CloseReason::ShutdownDeadline => c.shutdown_deadline += 1,
            CloseReason::Panicked(_) => c.panicked += 1,
            CloseReason::InputLimit => c.input_limit += 1,
            CloseReason::OutputLimit => c.output_limit += 1,
            CloseReason::FirstBytesTimeout => c.first_bytes_timeout += 1,
            CloseReason::Truncated => c.truncated += 1,
            CloseReason::HandshakeTimeout => c.handshake_timeout += 1,
            #[cfg(feature = "tls")]
            CloseReason::Tls(_) => c.tls_error += 1,
            CloseReason::ProxyProtocol(_) => c.proxy_protocol += 1,
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            open_connections: self.open,
            ..self.stats
        }
    }
}
