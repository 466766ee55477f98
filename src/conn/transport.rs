//! The transport: what stands between the socket's bytes and the handler's bytes.
//!
//! Plain is the identity. TLS (feature `tls`, `src/conn/tls.rs`) is the other. Its three points:
//!
//! - **read**: one read step gives bytes for the handler in the reactor's shared read buffer.
//!   TLS reads ciphertext into the session (`rustls`'s `read_tls`), processes it, and copies
//!   plaintext into that buffer; the handshake's and alerts' answers go to the output queue.
//!   Ciphertext the session does not take stays in the kernel (no read is made while reading is
//!   paused), never dropped.
//! - **encode**: the handler's bytes (its own writes and every other connection's `write_to`, so
//!   a broadcast encrypts per recipient) go into the connection's output queue as they will be
//!   sent. So watermarks, `max_output` and `queued()` count what is on its way to the socket
//!   (ciphertext), and `max_input` counts what the handler left unconsumed (plaintext).
//! - **finish**: bytes that must precede our FIN (a TLS `close_notify`); none for plain. An
//!   abort sends none.
//!
//! A plain connection carries no transport state at all: what a connection needs only rarely
//! (why it closed, a TLS session) lives in one boxed `Extra`, absent while not needed, so that
//! a connection's slot stays within a cache line.

use std::io;

#[cfg(feature = "tls")]
use super::tls::TlsSession;
use super::{BufPool, Queues, ReadStep};
use crate::close_reason::CloseReason;
use crate::sys::Stream;
#[cfg(not(feature = "tls"))]
use no_tls::TlsSession;

/// What a connection holds only sometimes.
#[derive(Default)]
pub(crate) struct Extra {
    /// Why it closed, once decided.
    pub(crate) reason: Option<CloseReason>,
    /// Its TLS session, if it speaks TLS.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsSession>,
    /// Its PROXY protocol header: awaited, or what came.
    #[cfg(feature = "proxy-protocol")]
    pub(crate) proxy: Option<ProxyStage>,
}

/// Where an accepted connection is with its PROXY protocol header.
#[cfg(feature = "proxy-protocol")]
pub(crate) enum ProxyStage {
    /// Not read yet; the handler has not heard of the connection.
    Awaited(crate::proxy::ProxyProtocol),
    /// Read (`None`: an optional header that was not there).
    Read(Option<Box<crate::proxy::ProxyHeader>>),
}

impl Extra {
    /// The TLS session, if the connection has one.
    #[inline]
    pub(crate) fn tls_mut(&mut self) -> Option<&mut TlsSession> {
        #[cfg(feature = "tls")]
        return self.tls.as_mut();
        #[cfg(not(feature = "tls"))]
        None
    }
}

/// One read through the transport: plain reads the socket into `buf`; TLS reads ciphertext and
/// gives plaintext (see `tls.rs`).
#[inline]
pub(crate) fn read(
    extra: Option<&mut Extra>,
    stream: &Stream,
    buf: &mut [u8],
    bufs: &mut Queues,
    pool: &mut BufPool,
) -> ReadStep {
    if let Some(tls) = extra.and_then(Extra::tls_mut) {
        return tls.read(stream, buf, bufs, pool);
    }
    loop {
        match stream.read(buf) {
            Ok(0) => return ReadStep::Fin,
            Ok(n) => return ReadStep::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadStep::Drained,
            // A signal interrupted the call; nothing was read.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return ReadStep::Error(e),
        }
    }
}

/// Queues the handler's `data` for the socket.
#[inline]
pub(crate) fn encode(
    extra: Option<&mut Extra>,
    data: &[u8],
    bufs: &mut Queues,
    pool: &mut BufPool,
) {
    match extra.and_then(Extra::tls_mut) {
        Some(tls) => tls.encode(data, bufs, pool),
        None => bufs.push_out(pool, data),
    }
}

/// Queues what must be sent before our FIN: nothing for plain, a `close_notify` for TLS.
pub(crate) fn finish(extra: Option<&mut Extra>, bufs: &mut Queues, pool: &mut BufPool) {
    if let Some(tls) = extra.and_then(Extra::tls_mut) {
        tls.finish(bufs, pool);
    }
}

#[cfg(not(feature = "tls"))]
mod no_tls {
    use super::{BufPool, Queues, ReadStep};
    use crate::sys::Stream;

    /// Without the `tls` feature there is no session type; this one is never made.
    pub(crate) enum TlsSession {}

    impl TlsSession {
        pub(crate) fn read(
            &mut self,
            _: &Stream,
            _: &mut [u8],
            _: &mut Queues,
            _: &mut BufPool,
        ) -> ReadStep {
            match *self {}
        }
        pub(crate) fn encode(&mut self, _: &[u8], _: &mut Queues, _: &mut BufPool) {
            match *self {}
        }
        pub(crate) fn finish(&mut self, _: &mut Queues, _: &mut BufPool) {
            match *self {}
        }
    }
}
