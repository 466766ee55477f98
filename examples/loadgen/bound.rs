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
    /// A retry timer is pending (the read budget ran out).
    retry_armed: bool,
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

/// What the connections of one run share: the run, a read buffer, and the connect timeout
/// (for the wording of a timed-out connect).
pub(super) struct Env {
    pub(super) run: Rc<RefCell<Run>>,
    pub(super) rbuf: RefCell<Vec<u8>>,
    pub(super) connect_timeout: Duration,
}

/// Reads per readiness event before the connection lets the others run, as sockloop's own
/// connections do: a fast peer would otherwise keep one connection reading while the rest wait.
const READ_BUDGET: usize = 16;

/// What one service call left behind.
enum Outcome {
    /// Drained: the next arrival raises a new edge.
    Wait,
    /// Stopped on the read budget with data left; no new edge may come, so retry on a timer.
    Busy,
    Ended(Ended),
}

/// Starts a non-blocking connect from `src` (any port) to `addr` for connection `c`. On `Err`
/// nothing is registered and the caller reports the failure.
pub(super) fn connect_from(
    reactor: &mut Reactor,
    env: &Rc<Env>,
    c: usize,
    src: IpAddr,
    addr: SocketAddr,
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
        retry_armed: false,
        source: None,
    }));
    let mine = Rc::clone(env);
    let interest = Interest::READABLE | Interest::WRITABLE;
    let id = reactor.add_source(Shared(Rc::clone(&bound)), interest, move |reactor, s, _| {
        let bound = Rc::clone(&s.0);
        service(reactor, &bound, &mine);
    })?;
    bound.borrow_mut().source = Some(id);
    env.run.borrow_mut().bound_live += 1;
    Ok(bound)
}

/// Serves one connection's readiness (from its event or from a retry timer).
fn service(reactor: &mut Reactor, bound: &BoundRef, env: &Rc<Env>) {
    let outcome = {
        let mut b = bound.borrow_mut();
        if b.source.is_none() {
            return; // removed since the retry was armed
        }
        b.ready(&mut env.run.borrow_mut(), &mut env.rbuf.borrow_mut())
    };
    match outcome {
        Outcome::Wait => {}
        Outcome::Busy => {
            let mut b = bound.borrow_mut();
            if !b.retry_armed {
                b.retry_armed = true;
                let (weak, env) = (Rc::downgrade(bound), Rc::clone(env));
                // Fires on the next iteration, after the other connections had their turn.
                reactor.add_timer(Duration::ZERO, move |reactor| {
                    if let Some(bound) = weak.upgrade() {
                        bound.borrow_mut().retry_armed = false;
                        service(reactor, &bound, &env);
                    }
                });
            }
        }
        Outcome::Ended(ended) => end(reactor, bound, &env.run, ended, env.connect_timeout),
    }
}

/// Removes a connection (dropping the source closes the socket) and tells the run how it ended.
fn end(
    reactor: &mut Reactor,
    bound: &BoundRef,
    run: &RefCell<Run>,
    ended: Ended,
    timeout: Duration,
) {
    // Let go of the connection before `remove_source` deregisters it, which borrows it again.
    let (source, c) = {
        let mut b = bound.borrow_mut();
        (b.source.take(), b.c)
    };
    if let Some(id) = source {
        let _ = reactor.remove_source(id);
        let mut run = run.borrow_mut();
        run.closed(c, ended, timeout);
        run.bound_live -= 1;
    }
}

/// Removes a connection that did not finish in time.
pub(super) fn remove(reactor: &mut Reactor, bound: &BoundRef, env: &Env) {
    end(reactor, bound, &env.run, Ended::Clean, env.connect_timeout);
}

impl Bound {
    /// Handles readiness: finishes a connect, flushes, reads (edge-triggered: until
    /// `WouldBlock`, or the budget).
    fn ready(&mut self, run: &mut Run, rbuf: &mut [u8]) -> Outcome {
        if !self.open {
            match self.connect_result() {
                None => return Outcome::Wait,
                Some(Err(e)) => return Outcome::Ended(Ended::ConnectFailed(e.to_string())),
                Some(Ok(())) => {
                    self.open = true;
                    run.opened(self.c);
                }
            }
        }
        if let Err(e) = self.flush() {
            return Outcome::Ended(Ended::Error(e.to_string()));
        }
        for _ in 0..READ_BUDGET {
            match (&self.stream).read(rbuf) {
                // The peer sent FIN: expected only after ours.
                Ok(0) => {
                    run.peer_eof(self.c);
                    return Outcome::Ended(Ended::Clean);
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
                            return Outcome::Ended(Ended::Clean);
                        }
                    };
                    run.scratch = out;
                    if let Err(e) = sent {
                        return Outcome::Ended(Ended::Error(e.to_string()));
                    }
                }
                // Drained; the next arrival raises a new edge.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Reset and the like.
                Err(e) => return Outcome::Ended(Ended::Error(e.to_string())),
            }
        }
        Outcome::Busy
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
