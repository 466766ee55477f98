//! The [`Context`] a handler callback gets: write, close, reach other connections, open new ones.

use std::io;
use std::net::SocketAddr;

use crate::conn::CloseMode;
use crate::core::{gone, Core};
use crate::handler::Handler;
use crate::id::ConnId;

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
        if let Err(e) = self.core.send(self.id, data, true) {
            log::debug!("{}: write of {} bytes discarded: {e}", self.id, data.len());
        }
    }

    /// Queues `data` for another connection (or this one); it is flushed before the reactor next
    /// waits for events.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// A broadcast room: whatever one member sends, every other member receives.
    /// struct Member { room: Rc<RefCell<Vec<ConnId>>> }
    /// impl Handler for Member {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         self.room.borrow_mut().push(cx.id());
    ///     }
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let (me, msg) = (cx.id(), input.take_all());
    ///         for &other in self.room.borrow().iter().filter(|&&m| m != me) {
    ///             let _ = cx.write_to(other, msg); // a member that just left is simply skipped
    ///         }
    ///     }
    ///     fn on_close(&mut self, cx: &mut Context<'_>, _reason: sockloop::CloseReason) {
    ///         self.room.borrow_mut().retain(|&m| m != cx.id());
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown, [`io::ErrorKind::BrokenPipe`] if
    /// its write side is already shut down.
    pub fn write_to(&mut self, id: ConnId, data: &[u8]) -> io::Result<()> {
        self.core.send(id, data, id == self.id)
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
        self.core.conn(self.id).map_or(0, |c| c.queued())
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
        self.core.conn(self.id).is_some_and(|c| c.is_writable())
    }

    /// Stops reading connection `id` (this one or another) until
    /// [`resume_reading`](Self::resume_reading): its input waits in the kernel, and TCP flow
    /// control slows its sender. This is how a proxy keeps one side from outrunning the other:
    /// when the side it writes to reports [`on_writability(false)`](Handler::on_writability),
    /// it pauses the side it reads from. Independent of the watermark pause; a connection reads
    /// only when neither holds it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// The upstream half of a proxy: forwards what it reads to `client`, and holds the
    /// /// client's reading while upstream is not keeping up with what the client sends.
    /// struct Upstream { client: ConnId }
    /// impl Handler for Upstream {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let _ = cx.write_to(self.client, input.take_all());
    ///     }
    ///     fn on_writability(&mut self, cx: &mut Context<'_>, writable: bool) {
    ///         let _ = if writable {
    ///             cx.resume_reading(self.client)
    ///         } else {
    ///             cx.pause_reading(self.client)
    ///         };
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed.
    pub fn pause_reading(&mut self, id: ConnId) -> io::Result<()> {
        self.core.set_reading(id, false)
    }

    /// Resumes reading connection `id` after [`pause_reading`](Self::pause_reading); input
    /// that arrived meanwhile is read on the next loop iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input, TimerId};
    /// use std::time::Duration;
    ///
    /// /// Reads in bursts: pauses itself after each chunk and resumes 10 ms later.
    /// struct Throttled;
    /// impl Handler for Throttled {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///         let me = cx.id();
    ///         let _ = cx.pause_reading(me);
    ///         cx.set_timer(Duration::from_millis(10));
    ///     }
    ///     fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
    ///         let me = cx.id();
    ///         let _ = cx.resume_reading(me);
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed.
    pub fn resume_reading(&mut self, id: ConnId) -> io::Result<()> {
        self.core.set_reading(id, true)
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

    /// Half-closes another connection: sends its FIN once its queued output is written (see
    /// [`shutdown_write`](Self::shutdown_write)). A proxy uses it to pass one side's FIN on to
    /// the other.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// One half of a proxy: what it reads goes to `other`, and so does its peer's FIN.
    /// struct Half { other: ConnId }
    /// impl Handler for Half {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let _ = cx.write_to(self.other, input.take_all());
    ///     }
    ///     fn on_read_closed(&mut self, cx: &mut Context<'_>) {
    ///         let _ = cx.shutdown_write_conn(self.other);
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown.
    pub fn shutdown_write_conn(&mut self, id: ConnId) -> io::Result<()> {
        self.core.shutdown_write(id)
    }

    /// Closes another connection gracefully (see [`close`](Self::close)).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// One side of a pair: closing either end closes the other gracefully.
    /// struct Paired { other: Option<ConnId> }
    /// impl Handler for Paired {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    ///     fn on_close(&mut self, cx: &mut Context<'_>, _reason: sockloop::CloseReason) {
    ///         if let Some(other) = self.other {
    ///             let _ = cx.close_conn(other); // NotFound if it is already gone
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown.
    pub fn close_conn(&mut self, id: ConnId) -> io::Result<()> {
        self.core.close(id, CloseMode::Graceful)
    }

    /// Aborts another connection (see [`abort`](Self::abort)).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// An admin connection: the line "kill <n>" aborts the connection whose id prints as given.
    /// struct Admin { known: Vec<ConnId> }
    /// impl Handler for Admin {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let text = String::from_utf8_lossy(input.take_all()).into_owned();
    ///         if let Some(name) = text.trim().strip_prefix("kill ") {
    ///             for id in self.known.iter().filter(|id| id.to_string() == name) {
    ///                 let _ = cx.abort_conn(*id);
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown.
    pub fn abort_conn(&mut self, id: ConnId) -> io::Result<()> {
        self.core.close(id, CloseMode::Abort)
    }

    /// The peer's address.
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
        self.core.conn(self.id).ok_or_else(gone)?.peer_addr()
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
        self.core.conn(self.id).ok_or_else(gone)?.local_addr()
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
            .conn(self.id)
            .ok_or_else(gone)?
            .set_nodelay(nodelay)
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
    pub fn connect<H: Handler>(&mut self, addr: SocketAddr, handler: H) -> ConnId {
        self.core.connect(addr, None, Box::new(handler))
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
        self.core.connect(addr, Some(local), Box::new(handler))
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

impl io::Write for Context<'_> {
    /// Queues all of `buf` (see [`Context::write`]); fails with `BrokenPipe` once this side can no
    /// longer send.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.core.send(self.id, buf, true).map(|()| buf.len())
    }

    /// Does nothing: queued bytes are flushed when the callback returns.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
