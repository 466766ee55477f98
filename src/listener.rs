//! TCP listeners: binding, the accept loop, and what to do when accepting fails.
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
use crate::handler::Handler;
use crate::id::ListenerId;
use crate::reactor::{gone, Core, Entry, Slot, TimerAction};

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
}

impl Default for ListenOptions {
    fn default() -> Self {
        // The kernel clamps the backlog to net.core.somaxconn (4096 on current Linux); a large
        // request lets connection bursts (C10K ramp-ups) queue instead of being refused.
        ListenOptions {
            backlog: 4096,
            nodelay: true,
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
    socket: TcpListener,
    factory: Factory,
    options: ListenOptions,
    /// Accepting is suspended after a resource error; see the module docs.
    paused: bool,
    backoff: Duration,
    last_error_log: Option<Instant>,
}

/// Binds and listens with `SO_REUSEADDR` (so a restarted server can rebind while old
/// connections sit in TIME_WAIT) and the requested backlog.
fn bind(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
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
        let socket = bind(addr, options.backlog)?;
        let local = socket.local_addr()?;
        let listener = Listener {
            socket,
            factory,
            options,
            paused: false,
            backoff: BACKOFF_MIN,
            last_error_log: None,
        };
        let (key, gen) = self.insert(Entry::Listener(listener));
        let id = ListenerId::new(key, gen);
        if let Some(Slot {
            entry: Entry::Listener(l),
            ..
        }) = self.slots.get_mut(key)
        {
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut l.socket, id.token(), Interest::READABLE)
            {
                self.slots.remove(key);
                return Err(e);
            }
        }
        log::debug!("{id}: listening on {local}");
        // Connections may have queued between listen() and register(): look once.
        self.ready.push_back(id.token());
        Ok((id, local))
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
            let _ = self.poll.registry().deregister(&mut l.socket);
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
                    let handler = (listener.factory)();
                    self.open_accepted(stream, handler, peer);
                }
                // Backlog drained.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // That client gave up (or a signal came); the next one may be fine.
                Err(e) if is_per_connection(&e) => {
                    log::debug!("{id}: accept: {e}; skipping that connection");
                }
                // Out of descriptors or memory (or something unexpected): back off.
                Err(e) => return self.pause(id, e),
            }
        }
        self.ready.push_back(id.token());
    }

    /// Registers an accepted socket and runs its handler's `on_open`.
    fn open_accepted(
        &mut self,
        stream: mio::net::TcpStream,
        handler: Box<dyn Handler>,
        peer: SocketAddr,
    ) {
        let id = match self.add_conn(stream, handler, State::Open) {
            Ok(id) => id,
            Err((_handler, e)) => {
                // The handler never saw the connection; dropping the socket closes it.
                log::warn!("dropping connection from {peer}: cannot register: {e}");
                return;
            }
        };
        log::debug!("{id}: accepted from {peer}");
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
