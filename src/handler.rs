//! The user's per-connection state machine (`Handler`), the context its callbacks get, and the
//! reasons a connection can close.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::conn::CloseMode;
use crate::core::{gone, Core};
use crate::id::ConnId;
use crate::input::Input;
use crate::schedule::TimerId;

/// The protocol side of one connection: it sees bytes, drained output and closes, never sockets.
///
/// The reactor owns the socket and its buffers and calls these methods from its single thread.
/// Only [`on_data`](Self::on_data) must be written; every other method has a default.
///
/// Writes made through the [`Context`] are queued and flushed together before the reactor next
/// waits for events: one `write` system call per connection per loop iteration when the socket
/// takes them all. Replies to `on_data` leave after the whole batch of events was dispatched, so
/// a peer receives them together (see `src/reactor.rs`, step 4).
///
/// # Examples
///
/// An echo handler, served on an ephemeral port:
///
/// ```
/// use sockloop::{Context, Handler, Input, Reactor};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
///         cx.write(input.take_all());
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let (_id, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Echo)?;
/// assert_ne!(addr.port(), 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Handler: 'static {
    /// The connection is established: accepted by a listener, or an outbound connect completed.
    ///
    /// The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// struct Banner;
    /// impl Handler for Banner {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.write(b"220 ready\r\n");
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// Bytes arrived. Consume what can be parsed from `input`; the rest is kept and offered again,
    /// followed by newer bytes, on the next call.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Answers each complete line with its length; a partial line waits for more bytes.
    /// struct LineLength;
    /// impl Handler for LineLength {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         while let Some(end) = input.iter().position(|&b| b == b'\n') {
    ///             let line = input.take_prefix(end + 1);
    ///             cx.write(format!("{}\n", line.len() - 1).as_bytes());
    ///         }
    ///     }
    /// }
    /// ```
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>);

    /// Output that had to wait for the socket (the kernel's send buffer was full) has now all been
    /// written. Not called when writes go out at once. Proxies use it to resume reading the other
    /// side.
    ///
    /// The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Streams a large reply in chunks, producing the next chunk only once the last one left.
    /// struct Streamer { left: usize }
    /// impl Handler for Streamer {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         self.on_drained(cx);
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    ///     fn on_drained(&mut self, cx: &mut Context<'_>) {
    ///         while self.left > 0 && cx.queued() < 64 * 1024 {
    ///             let n = self.left.min(16 * 1024);
    ///             cx.write(&vec![b'x'; n]);
    ///             self.left -= n;
    ///         }
    ///     }
    /// }
    /// ```
    fn on_drained(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// The peer shut down its write side (we read EOF). The connection can still send.
    ///
    /// The default finishes writing queued output and then closes, which is right for
    /// request/response protocols such as echo.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Counts bytes until the peer finishes sending, answers with the total, then closes.
    /// struct Counter { n: usize }
    /// impl Handler for Counter {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         self.n += input.take_all().len();
    ///     }
    ///     fn on_read_closed(&mut self, cx: &mut Context<'_>) {
    ///         cx.write(format!("{} bytes\n", self.n).as_bytes());
    ///         cx.close();
    ///     }
    /// }
    /// ```
    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        cx.close();
    }

    /// A timer set with [`Context::set_timer`] fired. Never called after the connection closed.
    ///
    /// The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockloop::{Context, Handler, Input, TimerId};
    ///
    /// /// Sends a heartbeat every second.
    /// struct Heartbeat;
    /// impl Handler for Heartbeat {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.set_timer(Duration::from_secs(1));
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    ///     fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
    ///         cx.write(b"tick\n");
    ///         cx.set_timer(Duration::from_secs(1));
    ///     }
    /// }
    /// ```
    fn on_timer(&mut self, cx: &mut Context<'_>, timer: TimerId) {
        let _ = (cx, timer);
    }

    /// The reactor is shutting down gracefully ([`Reactor::shutdown`](crate::Reactor::shutdown)):
    /// finish what is in progress and close. Connections still open at the shutdown deadline
    /// are closed with [`CloseReason::ShutdownDeadline`].
    ///
    /// The default closes gracefully at once (queued output is sent first).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Says goodbye before closing.
    /// struct Polite;
    /// impl Handler for Polite {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    ///     fn on_shutdown(&mut self, cx: &mut Context<'_>) {
    ///         cx.write(b"server going down, bye\n");
    ///         cx.close();
    ///     }
    /// }
    /// ```
    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        cx.close();
    }

    /// The connection is closed and its socket released; `reason` says why. Called exactly once
    /// for every connection, including an outbound connect that failed (with
    /// [`CloseReason::ConnectFailed`]). The context can still reach other connections.
    ///
    /// The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{CloseReason, Context, Handler, Input};
    ///
    /// struct Logged;
    /// impl Handler for Logged {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    ///     fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
    ///         if reason.is_error() {
    ///             eprintln!("{} ended badly: {reason}", cx.id());
    ///         }
    ///     }
    /// }
    /// ```
    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let _ = (cx, reason);
    }
}

/// Why a connection closed.
///
/// # Examples
///
/// ```
/// use sockloop::CloseReason;
///
/// let reason = CloseReason::Error(std::io::ErrorKind::ConnectionReset.into());
/// assert!(reason.is_error());
/// assert!(!CloseReason::PeerClosed.is_error());
/// assert_eq!(CloseReason::Local.to_string(), "closed locally");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed first (clean EOF) and everything queued for it was sent.
    PeerClosed,
    /// Closed gracefully by this side ([`Context::close`] or [`Reactor::close`](crate::Reactor::close)):
    /// queued output was sent first.
    Local,
    /// Closed by [`Context::abort`] or [`Reactor::abort`](crate::Reactor::abort): output was
    /// discarded and the peer was sent a reset.
    Aborted,
    /// An outbound connect failed (refused, unreachable, timed out); `on_open` was never called.
    ConnectFailed(io::Error),
    /// A socket error (reset by peer, broken pipe, ...) ended the connection.
    Error(io::Error),
    /// No byte was read or written for the listener's idle timeout
    /// ([`ListenOptions::idle_timeout`](crate::ListenOptions::idle_timeout)).
    IdleTimeout,
    /// Still open when a graceful shutdown's deadline passed; queued output was discarded.
    ShutdownDeadline,
    /// The handler left more unconsumed input than allowed
    /// ([`ListenOptions::max_input`](crate::ListenOptions::max_input)); the connection was reset.
    InputLimit,
    /// The handler panicked (the message is given); the connection was reset and the reactor
    /// went on serving the others.
    Panicked(String),
}

impl CloseReason {
    /// True if the connection ended because of an error rather than an orderly close.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::CloseReason::Local.is_error());
    /// ```
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            CloseReason::ConnectFailed(_) | CloseReason::Error(_) | CloseReason::Panicked(_)
        )
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message), for logs.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match payload.downcast_ref::<&str>() {
        Some(s) => (*s).to_string(),
        None => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "non-text panic".to_string()),
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Aborted => f.write_str("aborted"),
            CloseReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            CloseReason::Error(e) => write!(f, "error: {e}"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::ShutdownDeadline => f.write_str("closed at the shutdown deadline"),
            CloseReason::Panicked(m) => write!(f, "handler panicked: {m}"),
            CloseReason::InputLimit => f.write_str("input limit exceeded"),
        }
    }
}

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
