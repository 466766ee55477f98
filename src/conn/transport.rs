//! The transport: what stands between the socket's bytes and the handler's bytes.
//!
//! Today there is one, `Plain`, the identity. The seam exists so that TLS (and a PROXY-protocol
//! header) are additions here, not a rewrite of the engine. Its three points:
//!
//! - **read**: one read from the socket gives bytes for the handler in the reactor's shared read
//!   buffer. TLS will read ciphertext into the session (`rustls`'s `read_tls`), process it, and
//!   copy plaintext into the same buffer; ciphertext the session did not take stays in the
//!   kernel (no read is made while the handler holds unconsumed plaintext), never dropped.
//! - **encode**: the handler's bytes (its own writes and every other connection's `write_to`, so
//!   a broadcast encrypts per recipient) go into the connection's output queue as they will be
//!   sent. So watermarks, `max_output` and `queued()` count what is on its way to the socket
//!   (ciphertext), and `max_input` counts what the handler left unconsumed (plaintext).
//! - **finish**: bytes that must precede our FIN (a TLS `close_notify`); none for plain. An
//!   abort sends none.
//!
//! Handshakes will surface as more [`ReadStep`](super::ReadStep) outcomes, so that the engine
//! calls `on_open` once the session is established.

use std::io;

use super::{BufPool, Queues};
use crate::sys::Stream;

/// The transport of one connection. Zero bytes while it is plain.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Bytes pass unchanged.
    Plain,
}

impl Transport {
    /// Reads from `stream` into `buf`; returns how many bytes the handler gets there.
    #[inline]
    pub(crate) fn read(&mut self, stream: &Stream, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain => stream.read(buf),
        }
    }

    /// Queues the handler's `data` for the socket.
    #[inline]
    pub(crate) fn encode(&mut self, data: &[u8], bufs: &mut Queues, pool: &mut BufPool) {
        match self {
            Transport::Plain => bufs.push_out(pool, data),
        }
    }

    /// Queues what must be sent before our FIN: nothing for plain.
    pub(crate) fn finish(&mut self, _bufs: &mut Queues, _pool: &mut BufPool) {
        match self {
            Transport::Plain => {}
        }
    }
}
