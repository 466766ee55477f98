//! Connections from a chosen source address (`LoadConfig::src_ips`), driven as foreign sources.
//!
//! Why this exists: one source IP gives at most ~28,000 connections to one server address (the
//! ephemeral port range), so more need several source addresses, and that means `bind` before
//! `connect`. `Reactor::connect` creates its own socket and cannot bind it, and sockloop has no
//! way to adopt a socket made elsewhere as a connection (`Reactor::connect_std` or
//! `connect_from` would do it). Until it has, these sockets are registered with
//! `Reactor::add_source`, and this file does for them the little a client needs: finish the
//! connect, read until `WouldBlock`, write (keeping what the socket refused until it is
//! writable again), and close. The protocol (pattern, verification, latency) is the same
//! [`Run`] code the sockloop handler uses, so results are comparable.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use sockloop::mio::event::Source;
use sockloop::mio::net::TcpStream;
use sockloop::mio::{Interest, Registry, Token};
use sockloop::{Reactor, SourceId};

use super::track::{Ended, Run};

/// `EINPROGRESS` on Linux: a non-blocking connect has started.
const EINPROGRESS: i32 = 115;

/// One source-bound connection.
pub(super) struct Bound {
    stream: TcpStream,
    c: usize,
    /// Bytes the socket did not take yet; sent when it is writable again.
    out: Vec<u8>,
    open: bool,
    /// We sent FIN; the peer's FIN ends the connection.
    finishing: bool,
    source: Option<SourceId>,
}

pub(super) type BoundRef = Rc<RefCell<Bound>>;

/// The registered source: the driver keeps another reference to write the first messages.
struct Shared(BoundRef);

impl Source for Shared {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.0
            .borrow_mut()
            .stream
            .register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.0
            .borrow_mut()
            .stream
            .reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.0.borrow_mut().stream.deregister(registry)
    }
}

/// Starts a non-blocking connect from `src` (any port) to `addr` for connection `c`. On `Err`
/// nothing is registered and the caller reports the failure.
pub(super) fn connect_from(
    reactor: &mut Reactor,
    run: &Rc<RefCell<Run>>,
    rbuf: &Rc<RefCell<Vec<u8>>>,
    c: usize,
    src: IpAddr,
    addr: SocketAddr,
    connect_timeout: Duration,
) -> io::Result<BoundRef> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&SocketAddr::new(src, 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let bound = Rc::new(RefCell::new(Bound {
        stream: TcpStream::from_std(socket.into()),
        c,
        out: Vec::new(),
        open: false,
        finishing: false,
        source: None,
    }));
    let (shared_run, rbuf) = (Rc::clone(run), Rc::clone(rbuf));
    let interest = Interest::READABLE | Interest::WRITABLE;
    let id = reactor.add_source(Shared(Rc::clone(&bound)), interest, move |reactor, s, _| {
        let mut b = s.0.borrow_mut();
        let mut run = shared_run.borrow_mut();
        if let Some(ended) = b.ready(&mut run, &mut rbuf.borrow_mut()) {
            run.closed(b.c, ended, connect_timeout);
            run.bound_live -= 1;
            if let Some(id) = b.source.take() {
                let _ = reactor.remove_source(id);
            }
        }
    })?;
    bound.borrow_mut().source = Some(id);
    run.borrow_mut().bound_live += 1;
    Ok(bound)
}

impl Bound {
    /// Handles readiness (edge-triggered: it reads until `WouldBlock`); `Some` means the
    /// connection is over and must be removed.
    fn ready(&mut self, run: &mut Run, rbuf: &mut [u8]) -> Option<Ended> {
        if !self.open {
            match self.connect_result() {
                None => return None,
                Some(Err(e)) => return Some(Ended::ConnectFailed(e.to_string())),
                Some(Ok(())) => {
                    self.open = true;
                    run.opened(self.c);
                }
            }
        }
        if let Err(e) = self.flush() {
            return Some(Ended::Error(e.to_string()));
        }
        loop {
            match (&self.stream).read(rbuf) {
                // The peer sent FIN: expected only after ours.
                Ok(0) => {
                    run.peer_eof(self.c);
                    return Some(Ended::Clean);
                }
                Ok(_) if self.finishing => {} // closing: what arrives now is moot
                Ok(n) => {
                    let mut out = std::mem::take(&mut run.scratch);
                    out.clear();
                    let result = run.received(self.c, &rbuf[..n], &mut out);
                    let sent = match result {
                        Ok(()) => self.send(&out),
                        Err(message) => {
                            run.broken(self.c, message);
                            run.scratch = out;
                            return Some(Ended::Clean);
                        }
                    };
                    run.scratch = out;
                    if let Err(e) = sent {
                        return Some(Ended::Error(e.to_string()));
                    }
                }
                // Drained; the next arrival raises a new edge.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Reset and the like.
                Err(e) => return Some(Ended::Error(e.to_string())),
            }
        }
    }

    /// `None` while the connect is in progress.
    fn connect_result(&self) -> Option<io::Result<()>> {
        match self.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(Err(e)),
            Ok(None) => match self.stream.peer_addr() {
                Ok(_) => Some(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
                Err(e) => Some(Err(e)),
            },
        }
    }

    /// Writes `data` after anything still queued; keeps what the socket does not take.
    pub(super) fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(data);
        self.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match (&self.stream).write(&self.out) {
                Ok(n) => drop(self.out.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Starts the close: FIN now (anything unsent is abandoned: the run is over); the peer's
    /// FIN, read in `ready`, ends it.
    pub(super) fn finish(&mut self) {
        self.finishing = true;
        self.out.clear();
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Removes a connection that did not finish in time (dropping the source closes the socket).
pub(super) fn remove(bound: &BoundRef, reactor: &mut Reactor, run: &mut Run, timeout: Duration) {
    // Let go of the connection before `remove_source` deregisters it, which borrows it again.
    let (source, c) = {
        let mut b = bound.borrow_mut();
        (b.source.take(), b.c)
    };
    if let Some(id) = source {
        let _ = reactor.remove_source(id);
        run.closed(c, Ended::Clean, timeout);
        run.bound_live -= 1;
    }
}
