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
            CloseReason::ConnectFailed(_) | CloseReason::Error(_) | CloseReason::Panicked(_)
        )
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
        }
    }
}
