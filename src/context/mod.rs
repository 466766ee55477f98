//! The [`Context`] a handler callback gets: write, close, reach other connections, open new ones.

use std::io;
use std::net::SocketAddr;

mod others;

use std::fmt;

use crate::conn::CloseMode;
use crate::engine::{gone, Core, Writer};
use crate::handler::Handler;
use crate::id::ConnId;
use crate::options::ConnectOptions;
use crate::target::Target;

/// What a handler callback can do: write, close, reach other connections, open new ones.
///
/// A context is bound to the connection whose callback received it. It also implements
/// [`std::io::Write`], so `write!` and crates that write into an `io::Write` can produce output
/// directly.
///
/// # Examples
///
/// A handler that greets, answers one line, and closes:
///
/// ```
/// use std::io::Write;
/// use sockloop::{Context, Handler, Input};
///
/// struct Greeter;
///
/// impl Handler for Greeter {
///     fn on_open(&mut self, cx: &mut Context<'_>) {
///         cx.write(b"who are you?\n");
///     }
///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
///         if let Some(end) = input.iter().position(|&b| b == b'\n') {
///             let name = String::from_utf8_lossy(&input.take_prefix(end + 1)[..end]).into_owned();
///             let _ = writeln!(cx, "hello, {name} (you are {})", cx.id());
///             cx.close();
///         }
///     }
/// }
/// ```
pub struct Context<'a> {
    pub(crate) core: &'a mut Core,
    pub(crate) id: ConnId,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("id", &self.id).finish()
    }
}

impl<'a> Context<'a> {
    pub(crate) fn new(core: &'a mut Core, id: ConnId) -> Self {
        Context { core, id }
    }

    /// This connection's id, usable later with [`write_to`](Self::write_to) or
    /// [`Reactor::write_to`](crate::Reactor::write_to).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// struct Tagged;
    /// impl Handler for Tagged {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         let greeting = format!("you are {}\n", cx.id());
    ///         cx.write(greeting.as_bytes());
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queues `data` for this connection. Everything written during one loop iteration goes
    /// out in a single write before the reactor next waits for events; what the socket does not
    /// take at once is kept, in order, and sent as it becomes writable.
    ///
    /// Writing after [`close`](Self::close), [`abort`](Self::abort) or
    /// [`shutdown_write`](Self::shutdown_write) discards the bytes (logged at debug).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// struct Shout;
    /// impl Handler for Shout {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         // Two writes, one system call: both leave together after this callback.
    ///         cx.write(&input.take_all().to_ascii_uppercase());
    ///         cx.write(b"!");
    ///     }
    /// }
    /// ```
    pub fn write(&mut self, data: &[u8]) {
        if let Err(e) = self.core.send(self.id, data, Writer::Own) {
            log::debug!("{}: write of {} bytes discarded: {e}", self.id, data.len());
        }
    }

    /// Bytes queued for this connection and not yet accepted by the kernel.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Drops a client that lets more than 1 MiB of replies pile up.
    /// struct Guarded;
    /// impl Handler for Guarded {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///         if cx.queued() > 1 << 20 {
    ///             cx.abort();
    ///         }
    ///     }
    /// }
    /// ```
    pub fn queued(&self) -> usize {
        self.core.slots.conn(self.id).map_or(0, |c| c.queued())
    }

    /// False while more output is queued than the high watermark allows (between
    /// [`Handler::on_writability`]`(false)` and `(true)`); see
    /// [`ListenOptions::output_watermarks`](crate::ListenOptions::output_watermarks).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Acknowledges every line, but skips the acknowledgements while the peer lags behind.
    /// struct Acker { skipped: u64 }
    /// impl Handler for Acker {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let lines = input.take_all().iter().filter(|&&b| b == b'\n').count();
    ///         for _ in 0..lines {
    ///             if cx.is_writable() {
    ///                 cx.write(b"ok\n");
    ///             } else {
    ///                 self.skipped += 1;
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    pub fn is_writable(&self) -> bool {
        self.core
            .slots
            .conn(self.id)
            .is_some_and(|c| c.is_writable())
    }

    /// Closes gracefully: queued output is sent first, then the connection closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Answers one request, then closes (the answer is sent first).
    /// struct OneShot;
    /// impl Handler for OneShot {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///         cx.write(b"bye\n");
    ///         cx.close();
    ///     }
    /// }
    /// ```
    pub fn close(&mut self) {
        let _ = self.core.close(self.id, CloseMode::Graceful);
    }

    /// Closes now: queued output is discarded and the peer gets a reset.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Resets any client that sends a NUL byte.
    /// struct Strict;
    /// impl Handler for Strict {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         if input.contains(&0) {
    ///             return cx.abort();
    ///         }
    ///         cx.write(input.take_all());
    ///     }
    /// }
    /// ```
    pub fn abort(&mut self) {
        let _ = self.core.close(self.id, CloseMode::Abort);
    }

    /// Sends FIN once queued output is written; the connection keeps reading until the peer
    /// closes too.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Sends a whole reply, marks its end with FIN, and keeps listening.
    /// struct Reply;
    /// impl Handler for Reply {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.write(b"the whole answer");
    ///         cx.shutdown_write();
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    pub fn shutdown_write(&mut self) {
        let _ = self.core.shutdown_write(self.id);
    }

    /// The peer's address: the client's. Behind a load balancer that sends the PROXY protocol
    /// (a listener with `ListenOptions::proxy_protocol`, feature `proxy-protocol`), that is the
    /// address its header gives; [`socket_peer_addr`](Self::socket_peer_addr) is the
    /// balancer's then.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// struct LocalOnly;
    /// impl Handler for LocalOnly {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         match cx.peer_addr() {
    ///             Ok(peer) if peer.ip().is_loopback() => {}
    ///             _ => cx.abort(),
    ///         }
    ///     }
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] inside `on_close` (the socket is gone), or the error of
    /// `getpeername`, e.g. `NotConnected` while an outbound connect is pending.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.core.slots.conn(self.id).ok_or_else(gone)?.peer_addr()
    }

    /// The address of the socket's peer, whatever a PROXY protocol header said: the load
    /// balancer's, on a connection that came through one. Without a header it is
    /// [`peer_addr`](Self::peer_addr).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// struct Audit;
    /// impl Handler for Audit {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         if let (Ok(client), Ok(via)) = (cx.peer_addr(), cx.socket_peer_addr()) {
    ///             log::info!("{client} (via {via})");
    ///         }
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`peer_addr`](Self::peer_addr).
    pub fn socket_peer_addr(&self) -> io::Result<SocketAddr> {
        self.core
            .slots
            .conn(self.id)
            .ok_or_else(gone)?
            .socket_peer_addr()
    }

    /// This side's address.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// struct WhereAmI;
    /// impl Handler for WhereAmI {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         if let Ok(local) = cx.local_addr() {
    ///             cx.write(format!("served by {local}\n").as_bytes());
    ///         }
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] inside `on_close`, or the error of `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.core.slots.conn(self.id).ok_or_else(gone)?.local_addr()
    }

    /// This connection's socket, for socket options sockloop does not name (or to read one
    /// back). `None` once it is closed, or while an outbound connection's socket is not chosen
    /// yet (its host name is being resolved, or its attempts race).
    ///
    /// The socket belongs to the reactor: change its options, not its mode (it must stay
    /// non-blocking) or its state (shut it down through [`close`](Self::close) and
    /// [`shutdown_write`](Self::shutdown_write), or the reactor will not know).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Turns keepalive on for each connection and logs the receive buffer it got.
    /// struct Configured;
    /// impl Handler for Configured {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         if let Some(socket) = cx.socket() {
    ///             let _ = socket.set_keepalive(true);
    ///             println!("SO_RCVBUF {:?}", socket.recv_buffer_size());
    ///         }
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    pub fn socket(&self) -> Option<socket2::SockRef<'_>> {
        let conn = self.core.slots.conn(self.id)?;
        conn.stream.sock_ref().filter(|_| conn.is_live())
    }

    /// Turns Nagle's algorithm off (`true`, the default for every connection) or on.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// A bulk sender that prefers full segments to low latency.
    /// struct Bulk;
    /// impl Handler for Bulk {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         let _ = cx.set_nodelay(false);
    ///     }
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] inside `on_close`, or the error of `setsockopt`.
    pub fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        self.core
            .slots
            .conn(self.id)
            .ok_or_else(gone)?
            .set_nodelay(nodelay)
    }

    /// Whether Nagle's algorithm is off for this connection (`TCP_NODELAY`); always `false`
    /// for a Unix-domain connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Says whether its connection has Nagle's algorithm off, then echoes.
    /// struct Report;
    /// impl Handler for Report {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         match cx.nodelay() {
    ///             Ok(on) => log::info!("{}: TCP_NODELAY {on}", cx.id()),
    ///             Err(e) => log::warn!("{}: TCP_NODELAY unknown: {e}", cx.id()),
    ///         }
    ///     }
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] inside `on_close`, or the error of `getsockopt`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.core.slots.conn(self.id).ok_or_else(gone)?.nodelay()
    }

    /// Starts a non-blocking outbound connection served by `handler`; see
    /// [`Reactor::connect`](crate::Reactor::connect).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input, Reactor};
    ///
    /// struct Echo;
    /// impl Handler for Echo {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    /// }
    ///
    /// /// Once it is open, opens a second connection from inside its own callback.
    /// struct Spawner { target: std::net::SocketAddr }
    /// impl Handler for Spawner {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.connect(self.target, Last);
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, _input: &mut Input<'_>) {}
    /// }
    ///
    /// struct Last;
    /// impl Handler for Last {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.stop(); // the connection opened from a callback is up
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, _input: &mut Input<'_>) {}
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Echo)?;
    /// reactor.connect(addr, Spawner { target: addr });
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<H: Handler>(&mut self, target: impl Into<Target>, handler: H) -> ConnId {
        let options = ConnectOptions::default();
        self.core
            .connect_with(target.into(), &options, Box::new(handler))
    }

    /// Like [`connect`](Self::connect), with limits for the new connection; see
    /// [`Reactor::connect_with`](crate::Reactor::connect_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sockloop::{ConnectOptions, Context, Handler, Input};
    ///
    /// /// Opens its upstream as a proxy would: reading it never pauses for its own output.
    /// struct Client { upstream: SocketAddr }
    /// impl Handler for Client {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         let options = ConnectOptions::new().pause_reading_over_high(false);
    ///         cx.connect_with(self.upstream, options, Client { upstream: self.upstream });
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    pub fn connect_with<H: Handler>(
        &mut self,
        target: impl Into<Target>,
        options: ConnectOptions,
        handler: H,
    ) -> ConnId {
        self.core
            .connect_with(target.into(), &options, Box::new(handler))
    }

    /// Starts an outbound connection from a chosen local address; see
    /// [`Reactor::connect_from`](crate::Reactor::connect_from).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Opens its upstream connection from a fixed source address.
    /// struct Relay { upstream: SocketAddr }
    /// impl Handler for Relay {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.connect_from("127.0.0.3:0".parse().unwrap(), self.upstream, Relay { upstream: self.upstream });
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    pub fn connect_from<H: Handler>(
        &mut self,
        local: SocketAddr,
        addr: SocketAddr,
        handler: H,
    ) -> ConnId {
        let options = ConnectOptions::new().bind(local);
        self.core
            .connect_with(addr.into(), &options, Box::new(handler))
    }

    /// Makes [`Reactor::run`](crate::Reactor::run) return once the current iteration finishes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Stops the whole loop when a client sends "shutdown".
    /// struct Control;
    /// impl Handler for Control {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         if input.take_all().starts_with(b"shutdown") {
    ///             cx.stop();
    ///         }
    ///     }
    /// }
    /// ```
    pub fn stop(&mut self) {
        self.core.stop();
    }
}

/// Largest formatting scratch buffer the reactor keeps between `write!` calls.
const FMT_SCRATCH_KEEP: usize = 16 << 10;

impl io::Write for Context<'_> {
    /// Queues all of `buf` (see [`Context::write`]); fails with `BrokenPipe` once this side can no
    /// longer send.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.core
            .send(self.id, buf, Writer::Own)
            .map(|()| buf.len())
    }

    /// Queues all of `buf` at once.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.core.send(self.id, buf, Writer::Own)
    }

    /// Formats into a scratch buffer the reactor keeps, then queues the result at once:
    /// `write!` hands over its pieces one by one, and queueing each would look the connection
    /// up once per piece (measured at 18% of an HTTP server's CPU under pipelined load).
    fn write_fmt(&mut self, args: std::fmt::Arguments<'_>) -> io::Result<()> {
        if let Some(literal) = args.as_str() {
            return self.core.send(self.id, literal.as_bytes(), Writer::Own);
        }
        let mut scratch = std::mem::take(&mut self.core.output.fmt_scratch);
        scratch.clear();
        let result = io::Write::write_fmt(&mut scratch, args)
            .and_then(|()| self.core.send(self.id, &scratch, Writer::Own));
        // Keep a modest scratch for next time; a huge one-off is given back.
        if scratch.capacity() <= FMT_SCRATCH_KEEP {
            self.core.output.fmt_scratch = scratch;
        }
        result
    }

    /// Does nothing: queued bytes are flushed when the callback returns.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
