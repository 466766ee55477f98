//! A connection's TLS session: rustls's sans-IO `Connection` driven by the connection's reads
//! and writes (see `transport.rs` for where it stands).
//!
//! rustls keeps three buffers: ciphertext read but not yet processed, plaintext decrypted but not
//! yet read, and records to send. The read step drains the second into the reactor's shared read
//! buffer each time, and every record to send is moved at once into the connection's own output
//! queue, so an idle session holds no buffered bytes of ours or of rustls's beyond its deframer's
//! small read buffer.
//!
//! Edge-triggered reading needs care here: rustls reads the socket in pieces of a few KiB, so a
//! short `read_tls` proves nothing, and the engine reads a TLS connection until `WouldBlock`
//! (or its budget). rustls's `reader()` says `WouldBlock` when no plaintext is pending, `Ok(0)`
//! after the peer's `close_notify`, and `UnexpectedEof` when the TCP stream ended without one
//! (truncation), each only once all plaintext before it was read.

use std::io::{self, Read, Write};

use rustls::Connection;

use super::{BufPool, Queues, ReadStep};
use crate::sys::Stream;

/// One connection's TLS session.
pub(crate) struct TlsSession {
    conn: Connection,
    /// A fatal TLS error happened: no `close_notify` is due, only the alert already queued.
    failed: bool,
}

/// `io::Read` over a connection's socket, for `read_tls`.
struct SocketReader<'a>(&'a Stream);

impl Read for SocketReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// `io::Write` into a connection's output queue, for `write_tls`.
struct QueueWriter<'a> {
    bufs: &'a mut Queues,
    pool: &'a mut BufPool,
}

impl Write for QueueWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.bufs.push_out(self.pool, data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsSession {
    /// Wraps a new session. Its limit on buffered plaintext and records is lifted: records
    /// leave rustls as soon as they are made, and what waits to be sent is bounded by the
    /// connection's own output cap instead. A client session queues its ClientHello now.
    pub(crate) fn new(mut conn: Connection, bufs: &mut Queues, pool: &mut BufPool) -> TlsSession {
        conn.set_buffer_limit(None);
        let mut session = TlsSession {
            conn,
            failed: false,
        };
        session.drain_records(bufs, pool);
        session
    }

    /// The rustls connection, for what the handler may ask of it.
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Moves every record rustls has to send into the output queue; true if there were any.
    fn drain_records(&mut self, bufs: &mut Queues, pool: &mut BufPool) -> bool {
        let mut moved = false;
        while self.conn.wants_write() {
            // Writing into memory cannot fail or stop short.
            match self.conn.write_tls(&mut QueueWriter {
                bufs: &mut *bufs,
                pool: &mut *pool,
            }) {
                Ok(0) | Err(_) => break,
                Ok(_) => moved = true,
            }
        }
        moved
    }

    /// One read step: plaintext if some is pending; otherwise one `read_tls` from the socket
    /// and its processing, repeated until there is something to report.
    pub(crate) fn read(
        &mut self,
        stream: &Stream,
        buf: &mut [u8],
        bufs: &mut Queues,
        pool: &mut BufPool,
    ) -> ReadStep {
        loop {
            match self.conn.reader().read(buf) {
                Ok(0) => return ReadStep::Fin,
                Ok(n) => return ReadStep::Data(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The TCP stream ended without a close_notify, after all plaintext was read.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return match self.conn.is_handshaking() {
                        // A peer that gave up during the handshake closed, nothing was cut.
                        true => ReadStep::Fin,
                        false => ReadStep::Truncated,
                    };
                }
                Err(e) => return ReadStep::Error(e),
            }
            if self.failed {
                // The session is over; the connection is closing and reads only to find the
                // peer's FIN (what comes is discarded).
                return match stream.read(buf) {
                    Ok(0) => ReadStep::Fin,
                    Ok(n) => ReadStep::Data(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadStep::Drained,
                    Err(e) => ReadStep::Error(e),
                };
            }
            match self.conn.read_tls(&mut SocketReader(stream)) {
                // EOF is noted by rustls: the reader reports it once the plaintext is read.
                Ok(0) => {
                    if self.conn.is_handshaking() {
                        return ReadStep::Fin;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadStep::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return ReadStep::Error(e),
            }
            let was_handshaking = self.conn.is_handshaking();
            let processed = self.conn.process_new_packets();
            // Handshake messages, an alert, a key update: to the output queue, in order.
            let wrote = self.drain_records(bufs, pool);
            match processed {
                Err(e) => {
                    self.failed = true;
                    return ReadStep::Tls(e);
                }
                Ok(_) if was_handshaking && !self.conn.is_handshaking() => {
                    return ReadStep::Established
                }
                Ok(_) if wrote => return ReadStep::Wrote,
                Ok(_) => {}
            }
        }
    }

    /// Encrypts the handler's `data` into the output queue (before the handshake ends rustls
    /// holds it, and sends it once the session is established).
    pub(crate) fn encode(&mut self, data: &[u8], bufs: &mut Queues, pool: &mut BufPool) {
        // With no buffer limit the writer takes everything.
        if let Err(e) = self.conn.writer().write_all(data) {
            log::debug!("TLS writer refused {} bytes: {e}", data.len());
        }
        self.drain_records(bufs, pool);
    }

    /// Queues our `close_notify` (not after a fatal error: its alert is already queued).
    pub(crate) fn finish(&mut self, bufs: &mut Queues, pool: &mut BufPool) {
        if !self.failed {
            self.conn.send_close_notify();
            self.drain_records(bufs, pool);
        }
    }
}
