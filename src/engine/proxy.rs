//! Reading an accepted connection's PROXY protocol header (feature `proxy-protocol`).
//!
//! The header is looked for with `MSG_PEEK`, so nothing is taken from the socket until a
//! whole header is there: a header split across segments is simply peeked again at the next
//! edge (each arrival raises one), and the bytes behind it stay in the kernel for the
//! transport's first read (a TLS ClientHello, or the handler's first bytes). Once the header
//! is read, exactly its length is consumed, and the connection goes on: to its TLS handshake,
//! or open, when the handler hears `on_open` with `peer_addr` already the client's.

use std::io;
use std::time::{Duration, Instant};

use super::{Core, TimerAction};
use crate::close_reason::CloseReason;
use crate::conn::{CloseMode, ProxyStage, State};
use crate::id::ConnId;
use crate::proxy::{self, Parsed, ProxyProtocol};

/// How long a header may take when the listener sets no first-bytes timeout.
pub(crate) const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

impl Core {
    /// Makes accepted connection `id` wait for its header (`mode` is not `Off`), with a
    /// deadline unless the first-bytes timeout already gives one.
    pub(crate) fn await_proxy_header(&mut self, id: ConnId, mode: ProxyProtocol, first: bool) {
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        conn.set_proxy(ProxyStage::Awaited(mode));
        if !first {
            self.timers.queue.insert(
                Instant::now() + PROXY_HEADER_TIMEOUT,
                TimerAction::ProxyHeader(id),
            );
        }
    }

    /// Looks for `id`'s header in what has arrived; `true` once it is read (or was never
    /// awaited) and the read turn may go on, `false` while it waits for more bytes or the
    /// connection was closed for a bad header. `fin`: the peer has closed its side, so what
    /// arrived is all there will be (a peek cannot see a FIN behind data).
    #[inline]
    pub(crate) fn read_proxy_header(&mut self, rbuf: &mut [u8], id: ConnId, fin: bool) -> bool {
        let Some(conn) = self.slots.conn_mut(id) else {
            return false;
        };
        if conn.state != State::Handshaking {
            return true;
        }
        let Some(mode) = conn.proxy_awaited() else {
            return true;
        };
        let seen = loop {
            match conn.stream.peek(rbuf) {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the stream ended before a PROXY protocol header",
                    );
                    return self.bad_proxy_header(id, e, 0);
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{id}: read error before the PROXY header: {e}");
                    self.close_with(id, CloseReason::Error(e));
                    return false;
                }
            }
        };
        let (len, header) = match proxy::parse(&rbuf[..seen], mode) {
            Parsed::Incomplete if fin => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended inside its PROXY protocol header",
                );
                return self.bad_proxy_header(id, e, seen);
            }
            Parsed::Incomplete if seen < rbuf.len() => return false,
            Parsed::Incomplete => {
                let e = io::Error::new(io::ErrorKind::InvalidData, "PROXY header too long");
                return self.bad_proxy_header(id, e, seen);
            }
            Parsed::Invalid(why) => {
                let e = io::Error::new(io::ErrorKind::InvalidData, why);
                return self.bad_proxy_header(id, e, seen);
            }
            Parsed::Absent => (0, None),
            Parsed::Header(len, header) => (len, Some(Box::new(header))),
        };
        // Take exactly the header; the peek proved it is there.
        if let Err(e) = take(&conn.stream, &mut rbuf[..len]) {
            log::debug!("{id}: read error in the PROXY header: {e}");
            self.close_with(id, CloseReason::Error(e));
            return false;
        }
        self.counters.stats.bytes_read += len as u64;
        match &header {
            Some(h) => log::debug!(
                "{id}: PROXY {} header: client {:?}, to {:?}",
                h.version(),
                h.source(),
                h.destination()
            ),
            None => log::debug!("{id}: no PROXY header (optional)"),
        }
        conn.set_proxy(ProxyStage::Read(header));
        // A TLS connection's handshake comes next; any other is open now.
        if !conn.has_tls() {
            conn.state = State::Open;
            self.opened(id);
        }
        self.slots.conn(id).is_some_and(|c| c.is_open())
    }

    /// The header is missing or malformed: that connection closes, the others go on. The
    /// `seen` bytes peeked are taken first, so that the close is a FIN (unread input would
    /// make the kernel send a reset instead); what comes after them is read and dropped while
    /// the close waits for the peer's FIN.
    fn bad_proxy_header(&mut self, id: ConnId, e: io::Error, seen: usize) -> bool {
        log::debug!("{id}: closing: {e}");
        let Some(conn) = self.slots.conn_mut(id) else {
            return false;
        };
        let mut sink = [0; 256];
        let mut left = seen;
        while left > 0 {
            let n = left.min(sink.len());
            if take(&conn.stream, &mut sink[..n]).is_err() {
                break;
            }
            left -= n;
        }
        conn.override_reason(CloseReason::ProxyProtocol(e));
        let _ = self.close(id, CloseMode::Graceful);
        false
    }

    /// `id`'s header deadline passed: close it if its header is still awaited.
    pub(crate) fn proxy_header_expired(&mut self, id: ConnId) {
        if self
            .slots
            .conn(id)
            .is_some_and(|c| c.proxy_awaited().is_some())
        {
            let e = io::Error::new(io::ErrorKind::TimedOut, "no PROXY protocol header in time");
            self.bad_proxy_header(id, e, 0);
        }
    }
}

/// Reads exactly `buf.len()` bytes that a peek showed are there.
fn take(stream: &crate::sys::Stream, buf: &mut [u8]) -> io::Result<()> {
    let mut taken = 0;
    while taken < buf.len() {
        match stream.read(&mut buf[taken..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => taken += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
