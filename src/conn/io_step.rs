//! One read and one write of a connection, and what they found, as data for the engine to act
//! on. These are the only places a connection's socket is read or written.

use std::io;

use super::{transport, BufPool, Conn, Flag};

/// What one read found.
#[derive(Debug)]
pub(crate) enum ReadStep {
    /// This many bytes for the handler, at the start of the read buffer.
    Data(usize),
    /// The peer's FIN.
    Fin,
    /// Nothing more for now (`WouldBlock`): the next arrival raises a new edge.
    Drained,
    /// The connection failed (a reset, a timeout, ...).
    Error(io::Error),
    /// The transport queued bytes to send (a handshake message, an alert); nothing for the
    /// handler yet.
    #[cfg(feature = "tls")]
    Wrote,
    /// The TLS handshake completed: the connection is open for the handler.
    #[cfg(feature = "tls")]
    Established,
    /// The stream ended without the TLS `close_notify` that says the peer meant to stop: what
    /// came before may have been cut short. Reported after all plaintext was read.
    #[cfg(feature = "tls")]
    Truncated,
    /// A fatal TLS error; its alert is queued for the peer.
    #[cfg(feature = "tls")]
    Tls(rustls::Error),
}

/// What writing the queued output came to.
#[derive(Debug)]
pub(crate) enum WriteStep {
    /// The queue is empty (or was).
    Emptied,
    /// The socket took what it could; the rest waits for a writable event.
    Blocked,
    /// The connection failed (the peer reset, `EPIPE`, ...).
    Error(io::Error),
}

/// Bytes written and `write` calls made by one [`Conn::write_step`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Written {
    pub(crate) bytes: u64,
    pub(crate) calls: u64,
}

impl<H> Conn<H> {
    /// Reads once into `buf`, through the transport (which may queue output of its own).
    #[inline]
    pub(crate) fn read_step(&mut self, buf: &mut [u8], pool: &mut BufPool) -> ReadStep {
        transport::read(
            self.extra.as_deref_mut(),
            &self.stream,
            buf,
            &mut self.bufs,
            pool,
        )
    }

    /// Writes queued output until the queue is empty or the socket is full. A full socket
    /// sets `WriteBlocked`, which asks for `on_drained` once the queue empties.
    #[inline]
    pub(crate) fn write_step(&mut self, pool: &mut BufPool) -> (WriteStep, Written) {
        let mut written = Written::default();
        let step = loop {
            if self.bufs.out_is_empty() {
                break WriteStep::Emptied;
            }
            written.calls += 1;
            match self.stream.write(self.bufs.out_bytes()) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes");
                    break WriteStep::Error(e);
                }
                Ok(n) => {
                    self.bufs.consume_out(pool, n);
                    written.bytes += n as u64;
                }
                // Kernel buffer full: WRITABLE will tell us when to go on.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flags.set(Flag::WriteBlocked, true);
                    break WriteStep::Blocked;
                }
                // A signal interrupted the call; nothing was written.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The peer is gone (EPIPE, ECONNRESET): only this connection ends.
                Err(e) => break WriteStep::Error(e),
            }
        };
        (step, written)
    }
}
