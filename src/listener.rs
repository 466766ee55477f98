//! Listeners (TCP and Unix domain): binding, the accept loop, and what to do when accepting fails.
//!
//! Accept errors fall in two groups. Per-connection ones (the client reset before we accepted,
//! a signal) concern one connection only: skip it and accept the next. Resource ones (`EMFILE`,
//! `ENFILE`, `ENOBUFS`, `ENOMEM`) would fail again at once: retrying in a loop would spin a core,
//! and with edge-triggered readiness simply returning would strand the queued connections forever.
//! So the listener pauses, and resumes when a connection of this reactor closes (a descriptor was
//! freed) or when a backoff timer fires (10 ms doubling to 1 s), whichever comes first. Queued
//! clients wait in the kernel's backlog meanwhile and are accepted, not dropped, once it works again.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use crate::conn::State;
use crate::core::{gone, Core, Entry, Slot, TimerAction};
use crate::handler::Handler;
use crate::id::ListenerId;
use crate::limits::Limits;
use crate::stream::{bind_unix, ListenSocket, Stream};

/// Connections accepted per readiness event before the listener yields to established
/// connections; the rest are taken on the next iteration via the still-ready queue.
const ACCEPT_BUDGET: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A persistent accept failure is logged at error at most this often; repeats go to debug.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Makes a fresh handler for each accepted connection.
pub(crate) type Factory = Box<dyn FnMut() -> Box<dyn Handler>>;

/// Options for [`Reactor::listen_with`](crate::Reactor::listen_with).
///
/// # Examples
///
/// ```
/// use sockloop::ListenOptions;
///
/// let options = ListenOptions::new().backlog(4096).nodelay(true);
/// assert_eq!(options.get_backlog(), 4096);
/// ```
#[derive(Clone, Debug)]
pub struct ListenOptions {
    backlog: i32,
    nodelay: bool,
    idle_timeout: Option<Duration>,
    reuse_port: bool,
    limits: Limits,
    max_connections: Option<usize>,
    overload_reply: Option<Arc<[u8]>>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        // The kernel clamps the backlog to net.core.somaxconn (4096 on current Linux); a large
        // request lets connection bursts (C10K ramp-ups) queue instead of being refused.
        ListenOptions {
            backlog: 4096,
            nodelay: true,
            idle_timeout: None,
            reuse_port: false,
            limits: Limits::default(),
            max_connections: None,
            overload_reply: None,
        }
    }
}

impl ListenOptions {
    /// The defaults: backlog 4096 (clamped by the kernel's `somaxconn`), `TCP_NODELAY` on.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(sockloop::ListenOptions::new().get_nodelay());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the listen backlog: how many completed connections the kernel queues for `accept`.
    /// Values below 1024 are raised to 1024.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ListenOptions::new().backlog(10).get_backlog(), 1024);
    /// ```
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog.max(1024);
        self
    }

    /// Sets `TCP_NODELAY` on accepted connections (default `true`: small writes are not delayed
    /// by Nagle's algorithm).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::ListenOptions::new().nodelay(false).get_nodelay());
    /// ```
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Closes accepted connections that read and write nothing for `timeout`, with
    /// [`CloseReason::IdleTimeout`](crate::CloseReason::IdleTimeout). Checking costs O(1) per
    /// read or write (a timestamp store); the default is no idle timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockloop::ListenOptions;
    ///
    /// let options = ListenOptions::new().idle_timeout(Duration::from_secs(30));
    /// assert_eq!(options.get_idle_timeout(), Some(Duration::from_secs(30)));
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The idle timeout, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ListenOptions::new().get_idle_timeout(), None);
    /// ```
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// Sets `SO_REUSEPORT`, so that several listeners (one per reactor thread, or per process)
    /// can bind the same address and the kernel spreads incoming connections across them. This
    /// is how sockloop uses more than one core: N reactors, each with its own listener on the
    /// same port. Default `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input, ListenOptions, Reactor};
    ///
    /// struct Echo;
    /// impl Handler for Echo {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    /// }
    ///
    /// let options = ListenOptions::new().reuse_port(true);
    /// let mut first = Reactor::new()?;
    /// let (_, addr) = first.listen_with("127.0.0.1:0".parse().unwrap(), options.clone(), || Echo)?;
    /// let mut second = Reactor::new()?;
    /// let (_, same) = second.listen_with(addr, options, || Echo)?; // same port, no AddrInUse
    /// assert_eq!(addr, same);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reuse_port(mut self, reuse: bool) -> Self {
        self.reuse_port = reuse;
        self
    }

    /// Bounds the input a handler may leave unconsumed (a partial message it waits to
    /// complete): a connection holding more is reset with
    /// [`CloseReason::InputLimit`](crate::CloseReason::InputLimit). The default is 1 MiB; at
    /// least 1 byte.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ListenOptions::new().max_input(64 * 1024);
    /// assert_eq!(options.get_max_input(), 64 * 1024);
    /// ```
    pub fn max_input(mut self, bytes: usize) -> Self {
        self.limits.max_input = bytes.max(1);
        self
    }

    /// The input bound in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ListenOptions::new().get_max_input(), 1 << 20);
    /// ```
    pub fn get_max_input(&self) -> usize {
        self.limits.max_input
    }

    /// Sets the output watermarks (defaults: low 64 KiB, high 256 KiB). When more than `high`
    /// bytes are queued for a connection (the peer reads slower than it is sent to), the
    /// connection stops reading, so a peer that sends requests and never reads the answers
    /// cannot make the server buffer without end, and the handler gets
    /// [`on_writability(false)`](crate::Handler::on_writability). Once the queue is down to
    /// `low` it reads again and gets `on_writability(true)`. `low` is clamped to `high`.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ListenOptions::new().output_watermarks(16 << 10, 1 << 20);
    /// assert_eq!(options.get_output_watermarks(), (16 << 10, 1 << 20));
    /// ```
    pub fn output_watermarks(mut self, low: usize, high: usize) -> Self {
        self.limits.high_water = high.max(1);
        self.limits.low_water = low.min(self.limits.high_water);
        self
    }

    /// Whether a connection stops reading while its output is over the high watermark (default
    /// `true`). Turn it off for connections whose two directions are independent, such as a
    /// proxy's: there the handler pauses the *other* connection instead
    /// ([`Context::pause_reading`](crate::Context::pause_reading)) on
    /// [`on_writability`](crate::Handler::on_writability), which is still called.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ListenOptions::new().pause_reading_over_high(false);
    /// assert!(!options.get_pause_reading_over_high());
    /// ```
    pub fn pause_reading_over_high(mut self, pause: bool) -> Self {
        self.limits.pause_reads = pause;
        self
    }

    /// Whether connections stop reading over the high watermark.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(sockloop::ListenOptions::new().get_pause_reading_over_high());
    /// ```
    pub fn get_pause_reading_over_high(&self) -> bool {
        self.limits.pause_reads
    }

    /// The output watermarks (low, high) in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ListenOptions::new().get_output_watermarks(), (64 << 10, 256 << 10));
    /// ```
    pub fn get_output_watermarks(&self) -> (usize, usize) {
        (self.limits.low_water, self.limits.high_water)
    }

    /// Caps the output queued for one connection (default 16 MiB; never below the high
    /// watermark). Pausing reads keeps an echo-like handler under the high watermark; a handler
    /// that writes regardless (a broadcast to a member that never reads) reaches this cap, and
    /// the connection is reset with [`CloseReason::OutputLimit`](crate::CloseReason::OutputLimit).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ListenOptions::new().max_output(4 << 20);
    /// assert_eq!(options.get_max_output(), 4 << 20);
    /// ```
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.limits.max_output = bytes;
        self
    }

    /// The output cap in bytes, as it will apply (at least the high watermark).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ListenOptions::new().get_max_output(), 16 << 20);
    /// ```
    pub fn get_max_output(&self) -> usize {
        self.limits.normalized().max_output
    }

    /// Gives each accepted connection `timeout` to deliver a first message: if its handler has
    /// not consumed any input by then (for a framing handler: no complete request arrived),
    /// the connection is closed with
    /// [`CloseReason::FirstBytesTimeout`](crate::CloseReason::FirstBytesTimeout). This is the
    /// defence against slowloris clients that open many connections and trickle a byte now and
    /// then, which an idle timeout alone does not catch (nginx's `client_header_timeout`).
    /// Default: none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let options = sockloop::ListenOptions::new().first_bytes_timeout(Duration::from_secs(10));
    /// assert_eq!(options.get_first_bytes_timeout(), Some(Duration::from_secs(10)));
    /// ```
    pub fn first_bytes_timeout(mut self, timeout: Duration) -> Self {
        self.limits.first_bytes = Some(timeout);
        self
    }

    /// The first-bytes timeout, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ListenOptions::new().get_first_bytes_timeout(), None);
    /// ```
    pub fn get_first_bytes_timeout(&self) -> Option<std::time::Duration> {
        self.limits.first_bytes
    }

    /// Limits this listener to `max` open connections (default: no limit; see also
    /// [`Reactor::set_max_connections`](crate::Reactor::set_max_connections)). At the limit the
    /// listener stops accepting, and clients wait in the kernel's backlog until one of its
    /// connections closes; with an [`overload_reply`](Self::overload_reply) they are accepted,
    /// sent the reply and closed at once instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ListenOptions::new().max_connections(10_000);
    /// assert_eq!(options.get_max_connections(), Some(10_000));
    /// ```
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// The connection limit, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ListenOptions::new().get_max_connections(), None);
    /// ```
    pub fn get_max_connections(&self) -> Option<usize> {
        self.max_connections
    }

    /// At a connection limit, accept clients anyway, send them `reply` (one non-blocking write,
    /// so keep it small) and close, instead of leaving them in the backlog. A client then
    /// learns at once that the server is busy, where a backlogged one waits (and may time out);
    /// the cost is an accept and a close per refused client. Redis answers "max number of
    /// clients reached" the same way. They are counted in [`Stats::rejected`](crate::Stats::rejected).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ListenOptions::new()
    ///     .max_connections(100)
    ///     .overload_reply(b"-ERR busy\r\n".to_vec());
    /// assert_eq!(options.get_overload_reply(), Some(&b"-ERR busy\r\n"[..]));
    /// ```
    pub fn overload_reply(mut self, reply: impl Into<Vec<u8>>) -> Self {
        self.overload_reply = Some(reply.into().into());
        self
    }

    /// The reply sent to clients refused at a connection limit, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ListenOptions::new().get_overload_reply(), None);
    /// ```
    pub fn get_overload_reply(&self) -> Option<&[u8]> {
        self.overload_reply.as_deref()
    }

    /// Whether `SO_REUSEPORT` is set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::ListenOptions::new().get_reuse_port());
    /// ```
    pub fn get_reuse_port(&self) -> bool {
        self.reuse_port
    }

    /// The configured backlog.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ListenOptions::new().get_backlog(), 4096);
    /// ```
    pub fn get_backlog(&self) -> i32 {
        self.backlog
    }

    /// Whether accepted connections get `TCP_NODELAY`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(sockloop::ListenOptions::default().get_nodelay());
    /// ```
    pub fn get_nodelay(&self) -> bool {
        self.nodelay
    }
}

pub(crate) struct Listener {
    socket: ListenSocket,
    factory: Factory,
    options: ListenOptions,
    /// Accepting is suspended after a resource error or at a connection limit; see the
    /// module docs.
    paused: bool,
    backoff: Duration,
    last_error_log: Option<Instant>,
    last_full_log: Option<Instant>,
    /// The class of its connections: their limits and their count (`src/limits.rs`).
    class: u16,
}

/// True (and `last` is updated) if a repeated condition should be logged now: once per
/// `ERROR_LOG_INTERVAL`, so that sustained overload does not flood the log.
fn log_due(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL) {
        *last = Some(now);
        true
    } else {
        false
    }
}

/// Binds and listens with `SO_REUSEADDR` (so a restarted server can rebind while old
/// connections sit in TIME_WAIT) and the requested backlog.
fn bind(addr: SocketAddr, options: &ListenOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(options.backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Accept errors that concern only the connection being accepted.
fn is_per_connection(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
        || matches!(e.raw_os_error(), Some(code) if code == libc_eproto() || code == libc_eperm())
}

// Linux errno values, named here to avoid a libc dependency for two constants.
fn libc_eproto() -> i32 {
    71
}
fn libc_eperm() -> i32 {
    1
}

impl Core {
    pub(crate) fn add_listener(
        &mut self,
        addr: SocketAddr,
        options: ListenOptions,
        factory: Factory,
    ) -> io::Result<(ListenerId, SocketAddr)> {
        let socket = bind(addr, &options)?;
        let local = socket.local_addr()?;
        let id = self.store_listener(ListenSocket::Tcp(socket), options, factory)?;
        log::debug!("{id}: listening on {local}");
        Ok((id, local))
    }

    /// Binds a Unix domain stream listener at `path`.
    pub(crate) fn add_unix_listener(
        &mut self,
        path: &std::path::Path,
        options: ListenOptions,
        factory: Factory,
    ) -> io::Result<ListenerId> {
        let socket = ListenSocket::Unix(bind_unix(path)?);
        let id = self.store_listener(socket, options, factory)?;
        log::debug!("{id}: listening on {}", path.display());
        Ok(id)
    }

    /// Registers a bound listener and stores it.
    fn store_listener(
        &mut self,
        mut socket: ListenSocket,
        options: ListenOptions,
        factory: Factory,
    ) -> io::Result<ListenerId> {
        let class = self.classes.add(options.limits, options.max_connections)?;
        let gen = self.take_gen();
        let vacant = self.slots.vacant_entry();
        let id = ListenerId::new(vacant.key(), gen);
        if let Err(e) =
            self.poll
                .registry()
                .register(socket.source(), id.token(), Interest::READABLE)
        {
            self.classes.retire(class);
            return Err(e);
        }
        let listener = Listener {
            socket,
            factory,
            options,
            paused: false,
            backoff: BACKOFF_MIN,
            last_error_log: None,
            last_full_log: None,
            class,
        };
        vacant.insert(Slot {
            gen,
            entry: Entry::Listener(Box::new(listener)),
        });
        // Connections may have queued between listen() and register(): look once.
        self.ready.push_back(id.token());
        Ok(id)
    }

    pub(crate) fn remove_listener(&mut self, id: ListenerId) -> io::Result<()> {
        match self.slots.get(id.key()) {
            Some(Slot {
                gen,
                entry: Entry::Listener(_),
            }) if *gen == id.gen() => {}
            _ => return Err(gone()),
        }
        if let Entry::Listener(mut l) = self.slots.remove(id.key()).entry {
            // Deregistering is not needed for the fd to leave epoll (closing it does that), but
            // keeps the intent explicit on a path that is not hot.
            let _ = self.poll.registry().deregister(l.socket.source());
            self.classes.retire(l.class);
        }
        self.paused.retain(|p| *p != id);
        log::debug!("{id}: closed");
        Ok(())
    }

    /// Accepts until the backlog is empty, the budget is spent, a connection limit is reached,
    /// or a resource error pauses us.
    pub(crate) fn accept(&mut self, id: ListenerId) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listener_mut(id) else {
                return;
            };
            if listener.paused {
                return;
            }
            let (class, rejects) = (listener.class, listener.options.overload_reply.is_some());
            let full = self.classes.is_full(class) || self.counters.open >= self.max_connections;
            if full && !rejects {
                return self.pause_full(id);
            }
            let Some(listener) = self.listener_mut(id) else {
                return;
            };
            match listener.socket.accept() {
                Ok((stream, peer)) if full => {
                    let reply = listener.options.overload_reply.clone();
                    self.reject(id, stream, &peer, reply.as_deref().unwrap_or_default());
                }
                Ok((stream, peer)) => {
                    listener.backoff = BACKOFF_MIN;
                    if listener.options.nodelay {
                        if let Err(e) = stream.set_nodelay(true) {
                            log::debug!("{id}: TCP_NODELAY not set for {peer}: {e}");
                        }
                    }
                    let idle = listener.options.idle_timeout;
                    let handler = (listener.factory)();
                    self.open_accepted(stream, handler, &peer, idle, class);
                }
                // Backlog drained.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // That client gave up (or a signal came); the next one may be fine.
                Err(e) if is_per_connection(&e) => {
                    self.counters.stats.accept_errors += 1;
                    log::debug!("{id}: accept: {e}; skipping that connection");
                }
                // Out of descriptors or memory (or something unexpected): back off.
                Err(e) => {
                    self.counters.stats.accept_errors += 1;
                    return self.pause(id, e);
                }
            }
        }
        self.ready.push_back(id.token());
    }

    /// Registers an accepted socket and runs its handler's `on_open`.
    fn open_accepted(
        &mut self,
        stream: Stream,
        handler: Box<dyn Handler>,
        peer: &str,
        idle: Option<Duration>,
        class: u16,
    ) {
        let id = match self.add_conn(stream, handler, State::Open, class) {
            Ok(id) => id,
            Err((_handler, e)) => {
                // The handler never saw the connection; dropping the socket closes it.
                log::warn!("dropping connection from {peer}: cannot register: {e}");
                return;
            }
        };
        self.counters.stats.accepted += 1;
        log::debug!("{id}: accepted from {peer}");
        if let Some(timeout) = self.classes.limits(class).first_bytes {
            self.arm_first_bytes(id, timeout);
        }
        if let Some(idle) = idle {
            if let Some(conn) = self.conn_mut(id) {
                conn.set_idle(idle);
            }
            self.arm_idle(id, idle);
        }
        self.call(id, |h, cx| h.on_open(cx));
        self.flush(id);
    }

    fn pause(&mut self, id: ListenerId, e: io::Error) {
        let Some(listener) = self.listener_mut(id) else {
            return;
        };
        let delay = listener.backoff;
        listener.backoff = (delay * 2).min(BACKOFF_MAX);
        listener.paused = true;
        // An operator must act (raise the limit, shed load), so this is an error, but under
        // sustained overload every freed descriptor ends in another failure: say it once per
        // interval, not once per retry.
        if log_due(&mut listener.last_error_log) {
            log::error!(
                "{id}: accept failed: {e}; pausing accepts, retrying as descriptors free up"
            );
        } else {
            log::debug!("{id}: accept still failing: {e}; next retry within {delay:?}");
        }
        self.paused.push(id);
        self.timers
            .insert(Instant::now() + delay, TimerAction::ResumeAccept(id));
    }

    /// At a connection limit without an overload reply: stop accepting until a connection
    /// closes (no timer: only a close can make room). Clients wait in the kernel's backlog,
    /// and past the backlog the kernel drops their SYNs, so they retry by themselves.
    fn pause_full(&mut self, id: ListenerId) {
        let open = self.counters.open;
        let max_reactor = self.max_connections;
        let Some(listener) = self.listener_mut(id) else {
            return;
        };
        listener.paused = true;
        let class = listener.class;
        let log_now = log_due(&mut listener.last_full_log);
        self.paused.push(id);
        if log_now {
            let (mine, max_mine) = self.classes.occupancy(class);
            log::warn!(
                "{id}: connection limit reached ({mine} of at most {max_mine} on this listener, \
                 {open} of at most {max_reactor} on this reactor); new clients wait in the \
                 backlog until a connection closes"
            );
        }
    }

    /// Refuses one client at a connection limit: sends `reply` and closes. What the client
    /// already sent is read and dropped first, because closing a socket with unread input
    /// makes the kernel send a reset, which can destroy the reply before the client reads it.
    fn reject(&mut self, id: ListenerId, stream: Stream, peer: &str, reply: &[u8]) {
        self.counters.stats.rejected += 1;
        let mut scratch = [0u8; 1024];
        for _ in 0..16 {
            match stream.read(&mut scratch) {
                Ok(n) if n > 0 => {}
                _ => break, // EOF, WouldBlock or an error: nothing more to drop now
            }
        }
        if !reply.is_empty() {
            if let Err(e) = stream.write(reply) {
                log::debug!("{id}: overload reply to {peer} not sent: {e}");
            }
        }
        let _ = stream.shutdown_write();
        if let Some(listener) = self.listener_mut(id) {
            if log_due(&mut listener.last_full_log) {
                log::warn!("{id}: connection limit reached; refusing {peer} and later clients with the overload reply");
            } else {
                log::debug!("{id}: connection limit reached; refused {peer}");
            }
        }
    }

    /// Un-pauses `id` and tries the backlog again.
    pub(crate) fn resume_accept(&mut self, id: ListenerId) {
        let Some(listener) = self.listener_mut(id) else {
            return;
        };
        if listener.paused {
            listener.paused = false;
            self.paused.retain(|p| *p != id);
            self.accept(id);
        }
    }

    /// A descriptor was freed: every paused listener gets one more try on the next iteration.
    pub(crate) fn resume_paused(&mut self) {
        for id in std::mem::take(&mut self.paused) {
            if let Some(l) = self.listener_mut(id) {
                l.paused = false;
                self.ready.push_back(id.token());
            }
        }
    }

    fn listener_mut(&mut self, id: ListenerId) -> Option<&mut Listener> {
        match self.slots.get_mut(id.key()) {
            Some(Slot {
                gen,
                entry: Entry::Listener(l),
            }) if *gen == id.gen() => Some(l),
            _ => None,
        }
    }
}
