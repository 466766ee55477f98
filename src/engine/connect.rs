//! Outbound connections, and registering every connection (outbound or accepted) in a slot.
//!
//! Every outcome of a connect reaches its handler, even a failure before any socket exists:
//! that handler then waits in a `FailedConnect` slot for step 4, which gives it `on_close` with
//! `ConnectFailed`. So `connect` returns an id, never an error.

use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;

use super::slots::Conn;
use super::{Core, Entry, OUTBOUND};
use crate::conn::State;
use crate::handler::Handler;
use crate::id::ConnId;
use crate::options::{ConnectOptions, SocketOptions};
use crate::sys::{self, Stream, STREAM_INTEREST};
use crate::target::{Kind, Target};

impl Core {
    /// Starts an outbound TCP connection to `target` held to `options`: to one address at
    /// once, to several by racing them, to a name after resolving it (`dial.rs`). The connect
    /// timeout covers all of it.
    pub(crate) fn connect_with(
        &mut self,
        target: Target,
        options: &ConnectOptions,
        handler: Box<dyn Handler>,
    ) -> ConnId {
        let class = match self.classes.outbound(options.limits) {
            Ok(class) => class,
            Err(e) => return self.failed_connect(handler, e),
        };
        let (local, delay) = (options.local, options.attempt_delay);
        let id = match target.0 {
            Kind::Addrs(addrs) if addrs.len() == 1 => {
                self.connect_class(addrs[0], local, &options.socket, handler, class)
            }
            Kind::Addrs(addrs) if !addrs.is_empty() => match self.pending(handler, class) {
                Ok(id) => {
                    self.race(id, addrs, local, options.socket.clone(), delay);
                    id
                }
                Err(id) => id,
            },
            Kind::Host(host, port) => match self.pending(handler, class) {
                Ok(id) => {
                    log::debug!("{id}: resolving {host}");
                    self.resolve(id, host, port, local, options.socket.clone(), delay);
                    id
                }
                Err(id) => id,
            },
            Kind::Addrs(_) | Kind::Invalid(_) => {
                self.classes.retire(class);
                let what = Target(target.0).to_string();
                let e = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what:?}: not an address, nor a host name and port"),
                );
                return self.failed_connect(handler, e);
            }
        };
        if self.slots.conn(id).is_some_and(|c| c.is_connecting()) {
            self.arm_connect_timeout(id, options.connect_timeout);
            // First on the wire: before the ClientHello and anything the handler writes.
            #[cfg(feature = "proxy-protocol")]
            if let Some(header) = &options.proxy_header {
                match header.to_bytes() {
                    Ok(bytes) => {
                        if let Some(conn) = self.slots.conn_mut(id) {
                            conn.bufs.push_out(&mut self.output.pool, &bytes);
                        }
                    }
                    Err(e) => {
                        log::debug!("{id}: PROXY header not built: {e}");
                        self.close_with(id, crate::close_reason::CloseReason::ConnectFailed(e));
                        return id;
                    }
                }
            }
            #[cfg(feature = "tls")]
            if let Some((config, name)) = &options.tls {
                let session = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map(rustls::Connection::Client);
                self.start_tls(id, session, crate::options::TLS_HANDSHAKE_TIMEOUT);
            }
        }
        id
    }

    /// A connection that holds no socket yet (its name resolves, or its attempts race); `Err`
    /// with a failed connect's id if it could not be stored.
    fn pending(&mut self, handler: Box<dyn Handler>, class: u16) -> Result<ConnId, ConnId> {
        match self.add_conn(Stream::Pending, handler, State::Connecting, class) {
            Ok(id) => Ok(id),
            Err((handler, e)) => {
                self.classes.retire(class);
                Err(self.failed_connect(handler, e))
            }
        }
    }

    /// Gives connection `id` its TLS session (a client's queues its ClientHello now) and arms
    /// the handshake's deadline; a session that could not be made closes the connection.
    #[cfg(feature = "tls")]
    pub(crate) fn start_tls(
        &mut self,
        id: ConnId,
        session: Result<rustls::Connection, rustls::Error>,
        timeout: std::time::Duration,
    ) {
        let session = match session {
            Ok(session) => session,
            Err(e) => {
                log::debug!("{id}: no TLS session: {e}");
                return self.close_with(id, crate::close_reason::CloseReason::Tls(e));
            }
        };
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        let session = crate::conn::TlsSession::new(session, &mut conn.bufs, &mut self.output.pool);
        conn.set_tls(session);
        let at = std::time::Instant::now() + timeout;
        self.timers
            .queue
            .insert(at, super::TimerAction::HandshakeTimeout(id));
        // A server's session has nothing to send yet; a client's ClientHello goes out once the
        // TCP connect completes (`connected`).
    }

    fn connect_class(
        &mut self,
        addr: SocketAddr,
        local: Option<SocketAddr>,
        socket: &SocketOptions,
        handler: Box<dyn Handler>,
        class: u16,
    ) -> ConnId {
        let stream = match sys::connect_tcp(addr, local, socket) {
            Ok(s) => s,
            Err(e) => {
                // No connection will hold the class: free it now if it was made for this one.
                self.classes.retire(class);
                return self.failed_connect(handler, e);
            }
        };
        let id = match self.add_conn(Stream::Tcp(stream), handler, State::Connecting, class) {
            Ok(id) => id,
            Err((handler, e)) => {
                self.classes.retire(class);
                return self.failed_connect(handler, e);
            }
        };
        log::debug!("{id}: connecting to {addr}");
        id
    }

    /// Starts a Unix domain stream connect; outcomes reach `handler` as for TCP.
    #[cfg(unix)]
    pub(crate) fn connect_unix(&mut self, path: &Path, handler: Box<dyn Handler>) -> ConnId {
        let stream = match mio::net::UnixStream::connect(path) {
            Ok(s) => s,
            Err(e) => return self.failed_connect(handler, e),
        };
        let id = match self.add_conn(Stream::Unix(stream), handler, State::Connecting, OUTBOUND) {
            Ok(id) => id,
            Err((handler, e)) => return self.failed_connect(handler, e),
        };
        log::debug!("{id}: connecting to {}", path.display());
        id
    }

    fn failed_connect(&mut self, handler: Box<dyn Handler>, e: io::Error) -> ConnId {
        log::debug!("connect failed at once: {e}");
        let gen = self.slots.take_gen();
        let key = self.slots.insert(gen, Entry::FailedConnect(handler, e));
        self.closes.push(key);
        ConnId::new(key, gen)
    }

    /// Registers `stream` and stores it in a fresh slot. It is registered once, for both
    /// directions, edge-triggered: never re-registered, and WRITABLE events are simply ignored
    /// while nothing is queued. On failure nothing is stored and the handler is handed back.
    #[allow(clippy::type_complexity)]
    pub(crate) fn add_conn(
        &mut self,
        mut stream: Stream,
        handler: Box<dyn Handler>,
        state: State,
        class: u16,
    ) -> Result<ConnId, (Box<dyn Handler>, io::Error)> {
        let gen = self.slots.take_gen();
        let id = ConnId::new(self.slots.next_key(), gen);
        if let Err(e) = stream.register(self.poll.registry(), id.token(), STREAM_INTEREST) {
            return Err((handler, e));
        }
        let conn = Conn::new(stream, handler, state, self.clock.now_ms, class);
        self.slots.insert(gen, Entry::Conn(conn));
        self.counters.open += 1;
        self.classes.opened(class);
        Ok(id)
    }

    /// An outbound connect completed. A TLS connection starts its handshake (its ClientHello
    /// is already queued); any other is open: its handler hears `on_open`.
    pub(crate) fn connected(&mut self, id: ConnId) {
        self.counters.stats.connected += 1;
        log::debug!("{id}: connected");
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        if conn.has_tls() {
            conn.state = State::Handshaking;
            return self.flush(id);
        }
        conn.state = State::Open;
        self.opened(id);
    }

    /// Tells the handler its connection is open (and asks it to finish at once if a graceful
    /// shutdown began meanwhile), then sends what it wrote.
    pub(crate) fn opened(&mut self, id: ConnId) {
        self.call(id, |h, cx| h.on_open(cx));
        if self.shutdown.is_some() {
            // Opened during a graceful shutdown: it is asked to finish as well, but only now
            // that its handler has seen it open.
            self.call(id, |h, cx| h.on_shutdown(cx));
        }
        self.flush(id);
    }
}

#[cfg(test)]
mod tests {
    /// A connect with its own limits gets a class made for it; when the connect fails at once
    /// (TCP to a multicast address is refused by Linux before any packet), nothing else will
    /// ever free that class, so the failure must.
    #[test]
    fn the_class_of_a_connect_that_failed_at_once_is_freed() {
        struct Quiet;
        impl crate::Handler for Quiet {
            fn on_data(&mut self, _cx: &mut crate::Context<'_>, input: &mut crate::Input<'_>) {
                input.consume(input.len());
            }
        }
        let mut reactor = crate::Reactor::new().unwrap();
        let before = reactor.core.classes.len();
        let options = crate::ConnectOptions::new().max_input(1234);
        let addr: std::net::SocketAddr = ([224, 0, 0, 1], 80).into();
        for _ in 0..3 {
            reactor.connect_with(addr, options.clone(), Quiet);
        }
        reactor.run_once(Some(std::time::Duration::ZERO)).unwrap();
        assert_eq!(reactor.connection_count(), 0);
        assert_eq!(
            reactor.core.classes.len(),
            before,
            "a class outlived its connect"
        );
    }
}
