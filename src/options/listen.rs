//! Options for listeners: backlog, socket options, and the limits every accepted connection
//! is held to (`src/limits.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::limits::Limits;

/// Options for [`Reactor::listen_with`](crate::Reactor::listen_with): the backlog, socket
/// options, and the limits every accepted connection is held to. The table below lists every
/// limit of a reactor, its default, and what happens when it is hit.
///
#[doc = include_str!("../../docs/limits.md")]
///
/// # Examples
///
/// ```
/// use sockloop::ListenOptions;
///
/// let options = ListenOptions::new().backlog(4096).nodelay(true);
/// ```
#[derive(Clone, Debug)]
pub struct ListenOptions {
    pub(crate) backlog: i32,
    pub(crate) nodelay: bool,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) reuse_port: bool,
    pub(crate) limits: Limits,
    pub(crate) max_connections: Option<usize>,
    pub(crate) overload_reply: Option<Arc<[u8]>>,
    /// TLS: the server configuration every accepted connection handshakes with.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// How long an accepted TLS connection may take to complete its handshake.
    pub(crate) tls_handshake_timeout: Duration,
    /// Options for the listening socket and every accepted one.
    pub(crate) socket: super::SocketOptions,
    /// Whether accepted connections start with a PROXY protocol header.
    #[cfg(feature = "proxy-protocol")]
    pub(crate) proxy: crate::proxy::ProxyProtocol,
}

/// An accepted TLS connection's handshake must complete within this by default.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
            #[cfg(feature = "tls")]
            tls: None,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            socket: super::SocketOptions::default(),
            #[cfg(feature = "proxy-protocol")]
            proxy: crate::proxy::ProxyProtocol::Off,
        }
    }
}

impl ListenOptions {
    /// The defaults: backlog 4096 (clamped by the kernel's `somaxconn`), `TCP_NODELAY` on.
    ///
    /// # Examples
    ///
    /// ```
    /// let _options = sockloop::ListenOptions::new();
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
    /// let _options = sockloop::ListenOptions::new().backlog(10);
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
    /// let _options = sockloop::ListenOptions::new().nodelay(false);
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
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
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
    /// ```
    pub fn max_input(mut self, bytes: usize) -> Self {
        self.limits.max_input = bytes.max(1);
        self
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
    /// ```
    pub fn output_watermarks(mut self, low: usize, high: usize) -> Self {
        self.limits.set_watermarks(low, high);
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
    /// ```
    pub fn pause_reading_over_high(mut self, pause: bool) -> Self {
        self.limits.pause_reads = pause;
        self
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
    /// ```
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.limits.max_output = bytes;
        self
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
    /// ```
    pub fn first_bytes_timeout(mut self, timeout: Duration) -> Self {
        self.limits.first_bytes = Some(timeout);
        self
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
    /// ```
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
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
    /// ```
    pub fn overload_reply(mut self, reply: impl Into<Vec<u8>>) -> Self {
        self.overload_reply = Some(reply.into().into());
        self
    }

    /// Serves TLS with `config` on every accepted connection (rustls, TLS 1.2 and 1.3). The
    /// handshake runs before the handler hears of the connection: `on_open` comes once it is
    /// done, and the handler reads and writes plaintext. [`Context::tls`](crate::Context::tls)
    /// tells it the negotiated version, cipher suite, ALPN protocol, SNI name and the peer's
    /// certificates.
    ///
    /// - `close` sends a `close_notify`, then the queued output, then FIN; `shutdown_write`
    ///   sends a `close_notify`; `abort` sends none.
    /// - The peer's `close_notify` is heard as `on_read_closed`. A stream that ends without one
    ///   is reported as [`CloseReason::Truncated`](crate::CloseReason::Truncated), after every
    ///   plaintext byte was delivered.
    /// - A failed handshake closes with `CloseReason::Tls` carrying rustls's error (logged at
    ///   debug) after sending the alert; one that takes longer than
    ///   [`tls_handshake_timeout`](Self::tls_handshake_timeout) closes with
    ///   [`CloseReason::HandshakeTimeout`](crate::CloseReason::HandshakeTimeout). Either way
    ///   the handler hears `on_close` without `on_open`.
    /// - The output watermarks, `max_output` and `queued()` count ciphertext; `max_input`
    ///   counts the plaintext the handler left unconsumed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sockloop::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    /// use sockloop::rustls::ServerConfig;
    /// use sockloop::{Context, Handler, Input, ListenOptions, Reactor};
    ///
    /// struct Echo;
    /// impl Handler for Echo {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    /// }
    ///
    /// // A self-signed certificate for localhost (rcgen); a real server loads its PEM files.
    /// let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    /// let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    /// let mut config = ServerConfig::builder()
    ///     .with_no_client_auth()
    ///     .with_single_cert(vec![certified.cert.der().clone()], key)?;
    /// config.alpn_protocols = vec![b"http/1.1".to_vec()];
    ///
    /// let mut reactor = Reactor::new()?;
    /// let options = ListenOptions::new().tls(Arc::new(config));
    /// let (_, addr) = reactor.listen_with("127.0.0.1:0".parse()?, options, || Echo)?;
    /// # let _ = addr;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Socket options for the listening socket and every connection it accepts: keepalive,
    /// buffer sizes, `TCP_USER_TIMEOUT`, the TOS byte, IPv6-only, or any other through
    /// [`SocketOptions::configure`](crate::SocketOptions::configure).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockloop::{ListenOptions, SocketOptions};
    ///
    /// let options = ListenOptions::new()
    ///     .socket_options(SocketOptions::new().keepalive(Duration::from_secs(60)));
    /// ```
    pub fn socket_options(mut self, socket: crate::SocketOptions) -> Self {
        self.socket = socket;
        self
    }

    /// How long an accepted TLS connection may take to complete its handshake before it is
    /// closed with [`CloseReason::HandshakeTimeout`](crate::CloseReason::HandshakeTimeout)
    /// (default 10 s): a client that connects and says nothing, or dribbles its ClientHello,
    /// holds a connection no longer. Without [`tls`](Self::tls) it does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = sockloop::ListenOptions::new().tls_handshake_timeout(Duration::from_secs(3));
    /// ```
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// Reads a PROXY protocol header (v1 or v2, as HAProxy's `send-proxy` and `send-proxy-v2`
    /// write them) at the start of every accepted connection, before its handler hears of it
    /// (feature `proxy-protocol`).
    ///
    /// - The header is consumed before the handler sees a byte, however it is split across
    ///   reads; then the handler hears `on_open` (after the TLS handshake, on a TLS listener:
    ///   the header comes before the ClientHello).
    /// - [`Context::peer_addr`](crate::Context::peer_addr) is the client's address the header
    ///   gives, [`Context::socket_peer_addr`](crate::Context::socket_peer_addr) the balancer's,
    ///   and [`Context::proxy_header`](crate::Context::proxy_header) the header itself (v2
    ///   TLVs raw). A header without addresses (v1 `UNKNOWN`, v2 `LOCAL`: health checks) leaves
    ///   the socket's addresses.
    /// - A missing ([`ProxyProtocol::Required`](crate::ProxyProtocol)) or malformed header
    ///   closes that connection with
    ///   [`CloseReason::ProxyProtocol`](crate::CloseReason::ProxyProtocol), logged at debug.
    /// - The header must come within the [first-bytes timeout](Self::first_bytes_timeout) if
    ///   one is set, and within 10 s otherwise (then the error is `TimedOut`).
    /// - On TCP listeners only: [`Reactor::listen_unix_with`](crate::Reactor::listen_unix_with)
    ///   refuses it.
    ///
    /// Only a listener that clients reach through the balancer alone may take headers: a
    /// client that could connect directly could claim any address.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use sockloop::{Context, Handler, Input, ListenOptions, ProxyProtocol, Reactor};
    ///
    /// /// Answers with the client's address, as the balancer saw it.
    /// struct WhoAmI;
    /// impl Handler for WhoAmI {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         let client = cx.peer_addr().unwrap();
    ///         cx.write(format!("{client}\n").as_bytes());
    ///         cx.close();
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let options = ListenOptions::new().proxy_protocol(ProxyProtocol::Required);
    /// let (_, addr) = reactor.listen_with("127.0.0.1:0".parse().unwrap(), options, || WhoAmI)?;
    ///
    /// // What HAProxy's `send-proxy` would send for a client at 192.0.2.7.
    /// let mut balancer = std::net::TcpStream::connect(addr)?;
    /// balancer.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 50000 80\r\n")?;
    /// while reactor.connection_count() > 0 || reactor.stats().accepted == 0 {
    ///     reactor.run_once(Some(std::time::Duration::from_millis(100)))?;
    /// }
    /// let mut answer = String::new();
    /// std::io::Read::read_to_string(&mut balancer, &mut answer)?;
    /// assert_eq!(answer, "192.0.2.7:50000\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "proxy-protocol")]
    pub fn proxy_protocol(mut self, mode: crate::proxy::ProxyProtocol) -> Self {
        self.proxy = mode;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::ListenOptions;

    #[test]
    fn defaults_and_clamps() {
        let options = ListenOptions::new();
        assert_eq!(options.backlog, 4096);
        assert!(options.nodelay && !options.reuse_port);
        assert_eq!(ListenOptions::new().backlog(10).backlog, 1024);
        let limits = ListenOptions::new()
            .output_watermarks(16 << 10, 1 << 20)
            .limits;
        assert_eq!((limits.low_water, limits.high_water), (16 << 10, 1 << 20));
    }
}
