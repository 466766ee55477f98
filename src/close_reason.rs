//! Why a connection closed: what `on_close` is told.

use std::fmt;
use std::io;

/// Why a connection closed.
///
/// # Examples
///
/// ```
/// use sockloop::CloseReason;
///
/// let reason = CloseReason::Error(std::io::ErrorKind::ConnectionReset.into());
/// assert!(reason.is_error());
/// assert!(!CloseReason::PeerClosed.is_error());
/// assert_eq!(CloseReason::Local.to_string(), "closed locally");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed first (clean EOF) and everything queued for it was sent.
    PeerClosed,
    /// Closed gracefully by this side ([`Context::close`](crate::Context::close) or [`Reactor::close`](crate::Reactor::close)):
    /// queued output was sent first.
    Local,
    /// Closed by [`Context::abort`](crate::Context::abort) or [`Reactor::abort`](crate::Reactor::abort): output was
    /// discarded and the peer was sent a reset.
    Aborted,
    /// An outbound connect failed (refused, unreachable, timed out); `on_open` was never called.
    ConnectFailed(io::Error),
    /// A socket error (reset by peer, broken pipe, ...) ended the connection.
    Error(io::Error),
    /// No byte was read or written for the listener's idle timeout
    /// ([`ListenOptions::idle_timeout`](crate::ListenOptions::idle_timeout)).
    IdleTimeout,
    /// Still open when a graceful shutdown's deadline passed; queued output was discarded.
    ShutdownDeadline,
    /// The handler left more unconsumed input than allowed
    /// ([`ListenOptions::max_input`](crate::ListenOptions::max_input)); the connection was reset.
    InputLimit,
    /// More output was queued than allowed
    /// ([`ListenOptions::max_output`](crate::ListenOptions::max_output)): the peer does not read
    /// what it is sent, and the connection was reset rather than buffering without end.
    OutputLimit,
    /// The handler did not consume any input within the listener's first-bytes timeout
    /// ([`ListenOptions::first_bytes_timeout`](crate::ListenOptions::first_bytes_timeout)): a
    /// client that opens connections and sends little or nothing (slowloris) loses them.
    FirstBytesTimeout,
    /// The handler panicked (the message is given); the connection was reset and the reactor
    /// went on serving the others.
    Panicked(String),
    /// A TLS connection's peer ended the stream without the `close_notify` that says it meant
    /// to: what it sent last may have been cut off. Reported after every plaintext byte was
    /// delivered (and after `on_read_closed`, which the handler hears as for a FIN).
    Truncated,
    /// A TLS handshake did not complete within the listener's handshake timeout
    /// ([`ListenOptions::tls_handshake_timeout`](crate::ListenOptions)); the handler never heard
    /// `on_open`.
    HandshakeTimeout,
    /// A fatal TLS error: a failed handshake (no common version or cipher, a certificate that
    /// does not verify, garbage instead of a ClientHello) or a bad record. The alert rustls
    /// queued was sent before the close. After a failed handshake the handler never heard
    /// `on_open`.
    #[cfg(feature = "tls")]
    Tls(rustls::Error),
    /// A listener that takes the PROXY protocol
    /// ([`ListenOptions::proxy_protocol`](crate::ListenOptions), feature `proxy-protocol`) got
    /// a connection without a valid header: none where one is required or a malformed one
    /// (`InvalidData`), the stream ended before it (`UnexpectedEof`), or it did not come in
    /// time (`TimedOut`). The handler never heard `on_open`.
    ProxyProtocol(io::Error),
}

impl CloseReason {
    /// True if the connection ended because of an error rather than an orderly close.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::CloseReason::Local.is_error());
    /// ```
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            CloseReason::ConnectFailed(_)
                | CloseReason::Error(_)
                | CloseReason::Panicked(_)
                | CloseReason::Truncated
                | CloseReason::ProxyProtocol(_)
        ) || self.is_tls_error()
    }

    #[cfg(feature = "tls")]
    fn is_tls_error(&self) -> bool {
        matches!(self, CloseReason::Tls(_))
    }

    #[cfg(not(feature = "tls"))]
    fn is_tls_error(&self) -> bool {
        false
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Aborted => f.write_str("aborted"),
            CloseReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            CloseReason::Error(e) => write!(f, "error: {e}"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::ShutdownDeadline => f.write_str("closed at the shutdown deadline"),
            CloseReason::Panicked(m) => write!(f, "handler panicked: {m}"),
            CloseReason::InputLimit => f.write_str("input limit exceeded"),
            CloseReason::OutputLimit => f.write_str("output limit exceeded"),
            CloseReason::FirstBytesTimeout => f.write_str("first bytes timeout"),
            CloseReason::Truncated => {
                f.write_str("truncated: the stream ended without TLS close_notify")
            }
            CloseReason::HandshakeTimeout => f.write_str("TLS handshake timeout"),
            #[cfg(feature = "tls")]
            CloseReason::Tls(e) => write!(f, "TLS error: {e}"),
            CloseReason::ProxyProtocol(e) => write!(f, "PROXY protocol: {e}"),
        }
    }
}
