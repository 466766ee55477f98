//! Options for listeners and outbound connections, and the per-connection limits they set.

mod connect;
mod limits;
mod listen;
mod socket;

pub use connect::ConnectOptions;
#[cfg(test)]
pub(crate) use limits::DEFAULT_MAX_INPUT;
pub(crate) use limits::{Limits, DEFAULT_LIMITS};
pub use listen::ListenOptions;
#[cfg(feature = "tls")]
pub(crate) use listen::TLS_HANDSHAKE_TIMEOUT;
pub use socket::SocketOptions;
