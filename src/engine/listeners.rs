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

use mio::Interest;

use super::{gone, Core, Entry, Slot, TimerAction};
use crate::conn::State;
use crate::handler::Handler;
use crate::id::ListenerId;
use crate::options::ListenOptions;
use crate::sys::{self, ListenSocket, Peer, Stream, NODELAY_INHERITED};

/// Connections accepted per readiness event before the listener yields to established
/// connections; the rest are taken on the next iteration via the still-ready queue.
const ACCEPT_BUDGET: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A persistent accept failure is logged at error at most this often; repeats go to debug.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Makes a fresh handler for each accepted connection.
pub(crate) type Factory = Box<dyn FnMut() -> Box<dyn Handler>>;

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

/// What an accepted connection is set up with, from its listener's options.
struct Setup {
    idle: Option<Duration>,
    /// Socket options to set on the accepted socket, if any.
    socket: Option<crate::options::SocketOptions>,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    handshake_timeout: Duration,
    #[cfg(feature = "proxy-protocol")]
    proxy: crate::proxy::ProxyProtocol,
}

/// The reactor-wide connection limit and the listeners it (or a resource error) paused.
pub(crate) struct Admission {
    /// Most open connections (accepted and outbound) before listeners stop accepting.
    pub(crate) max_connections: u64,
    /// Listeners waiting for file descriptors (or memory, or room under a limit) to accept again.
    paused: Vec<ListenerId>,
}

impl Default for Admission {
    fn default() -> Admission {
        Admission {
            max_connections: u64::MAX,
            paused: Vec::new(),
        }
    }
}

impl Core {
    pub(crate) fn add_listener(
        &mut self,
        addr: SocketAddr,
        options: ListenOptions,
        factory: Factory,
    ) -> io::Result<(ListenerId, SocketAddr)> {
        let socket = sys::bind_tcp(
            addr,
            options.backlog,
            options.nodelay,
            options.reuse_port,
            &options.socket,
        )?;
        let local = socket.local_addr()?;
        let id = self.store_listener(ListenSocket::Tcp(socket), options, factory)?;
        log::debug!("{id}: listening on {local}");
        Ok((id, local))
    }

    /// Binds a Unix domain stream listener at `path`.
    #[cfg(unix)]
    pub(crate) fn add_unix_listener(
        &mut self,
        path: &std::path::Path,
        options: ListenOptions,
        factory: Factory,
    ) -> io::Result<ListenerId> {
        #[cfg(feature = "proxy-protocol")]
        if options.proxy != crate::proxy::ProxyProtocol::Off {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the PROXY protocol is for TCP listeners",
            ));
        }
        let socket = ListenSocket::bind_unix(path)?;
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
        let gen = self.slots.take_gen();
        let id = ListenerId::new(self.slots.next_key(), gen);
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
        self.slots.insert(gen, Entry::Listener(Box::new(listener)));
        // Connections may have queued between listen() and register(): look once.
        self.mark_ready(id.token());
        Ok(id)
    }

    pub(crate) fn remove_listener(&mut self, id: ListenerId) -> io::Result<()> {
        if !matches!(
            self.slots.get(id.key(), id.gen()),
            Some(Slot {
                entry: Entry::Listener(_),
                ..
            })
        ) {
            return Err(gone());
        }
        if let Entry::Listener(mut l) = self.slots.remove(id.key()).entry {
            // Deregistering is not needed for the fd to leave epoll (closing it does that), but
            // keeps the intent explicit on a path that is not hot.
            let _ = self.poll.registry().deregister(l.socket.source());
            self.classes.retire(l.class);
        }
        self.admission.paused.retain(|p| *p != id);
        log::debug!("{id}: closed");
        Ok(())
    }

    /// Accepts until the backlog is empty, the budget is spent, a connection limit is reached,
    /// or a resource error pauses us.
    pub(crate) fn accept(&mut self, id: ListenerId) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.slots.listener_mut(id) else {
                return;
            };
            if listener.paused {
                return;
            }
            let (class, rejects) = (listener.class, listener.options.overload_reply.is_some());
            let full =
                self.classes.is_full(class) || self.counters.open >= self.admission.max_connections;
            if full && !rejects {
                return self.pause_full(id);
            }
            let Some(listener) = self.slots.listener_mut(id) else {
                return;
            };
            match listener.socket.accept() {
                Ok((stream, peer)) if full => {
                    let reply = listener.options.overload_reply.clone();
                    self.reject(id, stream, &peer, reply.as_deref().unwrap_or_default());
                }
                Ok((stream, peer)) => {
                    listener.backoff = BACKOFF_MIN;
                    if listener.options.nodelay && !NODELAY_INHERITED {
                        if let Err(e) = stream.set_nodelay(true) {
                            log::debug!("{id}: TCP_NODELAY not set for {peer}: {e}");
                        }
                    }
                    let socket = &listener.options.socket;
                    let setup = Setup {
                        idle: listener.options.idle_timeout,
                        socket: (!socket.is_empty()).then(|| socket.clone()),
                        #[cfg(feature = "tls")]
                        tls: listener.options.tls.clone(),
                        handshake_timeout: listener.options.tls_handshake_timeout,
                        #[cfg(feature = "proxy-protocol")]
                        proxy: listener.options.proxy,
                    };
                    let handler = (listener.factory)();
                    self.open_accepted(stream, handler, &peer, setup, class);
                }
                // Backlog drained.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // That client gave up (or a signal came); the next one may be fine.
                Err(e) if sys::is_per_connection(&e) => {
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
        self.mark_ready(id.token());
    }

    /// Registers an accepted socket and runs its handler's `on_open`.
    fn open_accepted(
        &mut self,
        stream: Stream,
        handler: Box<dyn Handler>,
        peer: &Peer,
        setup: Setup,
        class: u16,
    ) {
        if let Some(options) = &setup.socket {
            let v6 = stream.local_addr().is_ok_and(|a| a.is_ipv6());
            let applied = match stream.sock_ref() {
                Some(socket) => sys::apply(&socket, options, v6, sys::Stage::Accepted),
                None => Ok(()),
            };
            if let Err(e) = applied {
                log::warn!("dropping connection from {peer}: socket options not set: {e}");
                return;
            }
        }
        // The handler hears of it once its PROXY header is read and its TLS handshake is done.
        #[cfg(feature = "tls")]
        let handshake = setup.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let handshake = false;
        #[cfg(feature = "proxy-protocol")]
        let handshake = handshake || setup.proxy != crate::proxy::ProxyProtocol::Off;
        let state = if handshake {
            State::Handshaking
        } else {
            State::Open
        };
        let id = match self.add_conn(stream, handler, state, class) {
            Ok(id) => id,
            Err((_handler, e)) => {
                // The handler never saw the connection; dropping the socket closes it.
                log::warn!("dropping connection from {peer}: cannot register: {e}");
                return;
            }
        };
        self.counters.stats.accepted += 1;
        log::debug!("{id}: accepted from {peer}");
        let first_bytes = self.classes.limits(class).first_bytes;
        if let Some(timeout) = first_bytes {
            self.arm_first_bytes(id, timeout);
        }
        #[cfg(feature = "proxy-protocol")]
        if setup.proxy != crate::proxy::ProxyProtocol::Off {
            self.await_proxy_header(id, setup.proxy, first_bytes.is_some());
        }
        if let Some(idle) = setup.idle {
            if let Some(conn) = self.slots.conn_mut(id) {
                conn.set_idle(idle);
            }
            self.arm_idle(id, idle);
        }
        #[cfg(feature = "tls")]
        if let Some(config) = setup.tls {
            // The handler hears `on_open` once the handshake is done (`conn_event.rs`).
            let session = rustls::ServerConnection::new(config).map(rustls::Connection::Server);
            return self.start_tls(id, session, setup.handshake_timeout);
        }
        let _ = setup.handshake_timeout;
        if handshake {
            return; // `on_open` once the PROXY header is read (`proxy.rs`)
        }
        self.call(id, |h, cx| h.on_open(cx));
        self.flush(id);
    }

    fn pause(&mut self, id: ListenerId, e: io::Error) {
        let Some(listener) = self.slots.listener_mut(id) else {
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
        self.admission.paused.push(id);
        self.timers
            .queue
            .insert(Instant::now() + delay, TimerAction::ResumeAccept(id));
    }

    /// At a connection limit without an overload reply: stop accepting until a connection
    /// closes (no timer: only a close can make room). Clients wait in the kernel's backlog,
    /// and past the backlog the kernel drops their SYNs, so they retry by themselves.
    fn pause_full(&mut self, id: ListenerId) {
        let open = self.counters.open;
        let max_reactor = self.admission.max_connections;
        let Some(listener) = self.slots.listener_mut(id) else {
            return;
        };
        listener.paused = true;
        let class = listener.class;
        let log_now = log_due(&mut listener.last_full_log);
        self.admission.paused.push(id);
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
    fn reject(&mut self, id: ListenerId, stream: Stream, peer: &Peer, reply: &[u8]) {
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
        if let Some(listener) = self.slots.listener_mut(id) {
            if log_due(&mut listener.last_full_log) {
                log::warn!("{id}: connection limit reached; refusing {peer} and later clients with the overload reply");
            } else {
                log::debug!("{id}: connection limit reached; refused {peer}");
            }
        }
    }

    /// Un-pauses `id`; it tries the backlog again in its turn of the next retry pass.
    pub(crate) fn resume_accept(&mut self, id: ListenerId) {
        let Some(listener) = self.slots.listener_mut(id) else {
            return;
        };
        if listener.paused {
            listener.paused = false;
            self.admission.paused.retain(|p| *p != id);
            self.mark_ready(id.token());
        }
    }

    /// A descriptor was freed: every paused listener gets one more try on the next iteration.
    pub(crate) fn resume_paused(&mut self) {
        for id in std::mem::take(&mut self.admission.paused) {
            if let Some(l) = self.slots.listener_mut(id) {
                l.paused = false;
                self.mark_ready(id.token());
            }
        }
    }
}
