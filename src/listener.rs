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
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use crate::conn::State;
use crate::core::{gone, Core, Entry, Slot, TimerAction};
use crate::handler::Handler;
use crate::id::ListenerId;
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
    input_limit_kib: u16,
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
            input_limit_kib: crate::conn::DEFAULT_INPUT_LIMIT_KIB,
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
    /// [`CloseReason::InputLimit`](crate::CloseReason::InputLimit). Rounded up to whole KiB,
    /// between 1 KiB and 64 MiB; the default is 1 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ListenOptions::new().max_input(64 * 1024);
    /// assert_eq!(options.get_max_input(), 64 * 1024);
    /// ```
    pub fn max_input(mut self, bytes: usize) -> Self {
        self.input_limit_kib = bytes.div_ceil(1024).clamp(1, u16::MAX as usize) as u16;
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
        self.input_limit_kib as usize * 1024
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
    /// Accepting is suspended after a resource error; see the module docs.
    paused: bool,
    backoff: Duration,
    last_error_log: Option<Instant>,
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
        let gen = self.take_gen();
        let vacant = self.slots.vacant_entry();
        let id = ListenerId::new(vacant.key(), gen);
        self.poll
            .registry()
            .register(socket.source(), id.token(), Interest::READABLE)?;
        let listener = Listener {
            socket,
            factory,
            options,
            paused: false,
            backoff: BACKOFF_MIN,
            last_error_log: None,
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
        }
        self.paused.retain(|p| *p != id);
        log::debug!("{id}: closed");
        Ok(())
    }

    /// Accepts until the backlog is empty, the budget is spent, or a resource error pauses us.
    pub(crate) fn accept(&mut self, id: ListenerId) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listener_mut(id) else {
                return;
            };
            if listener.paused {
                return;
            }
            match listener.socket.accept() {
                Ok((stream, peer)) => {
                    listener.backoff = BACKOFF_MIN;
                    if listener.options.nodelay {
                        if let Err(e) = stream.set_nodelay(true) {
                            log::debug!("{id}: TCP_NODELAY not set for {peer}: {e}");
                        }
                    }
                    let (idle, input_kib) = (
                        listener.options.idle_timeout,
                        listener.options.input_limit_kib,
                    );
                    let handler = (listener.factory)();
                    self.open_accepted(stream, handler, &peer, idle, input_kib);
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
        input_kib: u16,
    ) {
        let id = match self.add_conn(stream, handler, State::Open) {
            Ok(id) => id,
            Err((_handler, e)) => {
                // The handler never saw the connection; dropping the socket closes it.
                log::warn!("dropping connection from {peer}: cannot register: {e}");
                return;
            }
        };
        self.counters.stats.accepted += 1;
        log::debug!("{id}: accepted from {peer}");
        if let Some(conn) = self.conn_mut(id) {
            conn.set_input_limit_kib(input_kib);
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
        let now = Instant::now();
        if listener
            .last_error_log
            .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL)
        {
            listener.last_error_log = Some(now);
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
