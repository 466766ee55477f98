//! Options for outbound connections: the limits that [`ListenOptions`](crate::ListenOptions)
//! gives accepted ones.

use super::limits::Limits;

/// Limits for an outbound connection, for
/// [`Reactor::connect_with`](crate::Reactor::connect_with) and
/// [`Context::connect_with`](crate::Context::connect_with). Plain `connect` uses the defaults
/// (those of [`ListenOptions`](crate::ListenOptions)).
///
/// # Examples
///
/// ```
/// use sockloop::ConnectOptions;
///
/// // A proxy's upstream side: its two directions are independent, so it keeps reading while
/// // the upstream server is slow to take what it is sent.
/// let options = ConnectOptions::new().pause_reading_over_high(false).max_output(4 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub(crate) limits: Limits,
    /// The local address to connect from, if chosen.
    pub(crate) local: Option<std::net::SocketAddr>,
    /// Options set on the socket before it connects.
    pub(crate) socket: super::SocketOptions,
    /// How long the whole connect may take (resolution and attempts included).
    pub(crate) connect_timeout: std::time::Duration,
    /// Between two attempts of a Happy Eyeballs race.
    pub(crate) attempt_delay: std::time::Duration,
    /// TLS: the client configuration and the name the server's certificate must carry.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// A PROXY protocol header to send before anything else.
    #[cfg(feature = "proxy-protocol")]
    pub(crate) proxy_header: Option<crate::proxy::ProxyHeader>,
}

/// How long a connect may take by default: a host that drops SYNs is given up on after this,
/// not after the kernel's retransmissions (about two minutes on Linux).
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// RFC 8305's recommended delay between two connection attempts.
pub(crate) const ATTEMPT_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            limits: Limits::default(),
            local: None,
            socket: super::SocketOptions::default(),
            connect_timeout: CONNECT_TIMEOUT,
            attempt_delay: ATTEMPT_DELAY,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "proxy-protocol")]
            proxy_header: None,
        }
    }
}

impl PartialEq for ConnectOptions {
    /// Equal limits and local address, no socket options on either (a hook cannot be
    /// compared), and (with TLS) the same configuration object and server name.
    fn eq(&self, other: &Self) -> bool {
        #[cfg(feature = "tls")]
        let same_tls = match (&self.tls, &other.tls) {
            (None, None) => true,
            (Some((a, an)), Some((b, bn))) => std::sync::Arc::ptr_eq(a, b) && an == bn,
            _ => false,
        };
        #[cfg(not(feature = "tls"))]
        let same_tls = true;
        let same_socket = self.socket.is_empty() && other.socket.is_empty();
        #[cfg(feature = "proxy-protocol")]
        let same_tls = same_tls && self.proxy_header == other.proxy_header;
        self.limits == other.limits
            && self.local == other.local
            && self.connect_timeout == other.connect_timeout
            && self.attempt_delay == other.attempt_delay
            && same_socket
            && same_tls
    }
}

impl Eq for ConnectOptions {}

impl ConnectOptions {
    /// The defaults: watermarks 64 KiB / 256 KiB, output cap 16 MiB, input bound 1 MiB,
    /// reading paused over the high watermark.
    ///
    /// # Examples
    ///
    /// ```
    /// let _options = sockloop::ConnectOptions::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the output watermarks; see
    /// [`ListenOptions::output_watermarks`](crate::ListenOptions::output_watermarks).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ConnectOptions::new().output_watermarks(1 << 10, 8 << 10);
    /// ```
    pub fn output_watermarks(mut self, low: usize, high: usize) -> Self {
        self.limits.set_watermarks(low, high);
        self
    }

    /// Caps the queued output; see
    /// [`ListenOptions::max_output`](crate::ListenOptions::max_output).
    ///
    /// # Examples
    ///
    /// ```
    /// let _options = sockloop::ConnectOptions::new().max_output(1 << 20);
    /// ```
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.limits.max_output = bytes;
        self
    }

    /// Bounds the unconsumed input; see
    /// [`ListenOptions::max_input`](crate::ListenOptions::max_input).
    ///
    /// # Examples
    ///
    /// ```
    /// let _options = sockloop::ConnectOptions::new().max_input(4096);
    /// ```
    pub fn max_input(mut self, bytes: usize) -> Self {
        self.limits.max_input = bytes.max(1);
        self
    }

    /// Whether the connection stops reading while its output is over the high watermark; see
    /// [`ListenOptions::pause_reading_over_high`](crate::ListenOptions::pause_reading_over_high).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ConnectOptions::new().pause_reading_over_high(false);
    /// ```
    pub fn pause_reading_over_high(mut self, pause: bool) -> Self {
        self.limits.pause_reads = pause;
        self
    }

    /// Connects from the local address `local` (port 0: any port), as
    /// [`Reactor::connect_from`](crate::Reactor::connect_from) does: load generators spread
    /// connections over several source addresses (127.0.0.2, 127.0.0.3, ...), each with its own
    /// range of ephemeral ports.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ConnectOptions::new().bind("127.0.0.2:0".parse().unwrap());
    /// ```
    pub fn bind(mut self, local: std::net::SocketAddr) -> Self {
        self.local = Some(local);
        self
    }

    /// Gives up on a connect that is not established within `timeout` (default 30 s): the
    /// handler hears `on_close` with [`CloseReason::ConnectFailed`](crate::CloseReason) whose
    /// error is `TimedOut`. It covers name resolution and every attempt of a race.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = sockloop::ConnectOptions::new().connect_timeout(Duration::from_secs(3));
    /// ```
    pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// With several addresses to try (a name that resolves to several, or a list), how long an
    /// attempt runs before the next one starts beside it (default 250 ms, as RFC 8305
    /// recommends); a failed attempt starts the next at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = sockloop::ConnectOptions::new().attempt_delay(Duration::from_millis(100));
    /// ```
    pub fn attempt_delay(mut self, delay: std::time::Duration) -> Self {
        self.attempt_delay = delay;
        self
    }

    /// Socket options for the connection's socket, set before it connects.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockloop::{ConnectOptions, SocketOptions};
    ///
    /// let options = ConnectOptions::new()
    ///     .socket_options(SocketOptions::new().user_timeout(Duration::from_secs(20)));
    /// ```
    pub fn socket_options(mut self, socket: crate::SocketOptions) -> Self {
        self.socket = socket;
        self
    }

    /// Speaks TLS with `config`, to a server whose certificate names `server_name` (the name is
    /// also sent as SNI). The handler hears `on_open` once the handshake is done, and sees only
    /// plaintext; see [`ListenOptions::tls`](crate::ListenOptions::tls) for the lifecycle.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sockloop::rustls::{pki_types::ServerName, ClientConfig, RootCertStore};
    /// use sockloop::ConnectOptions;
    ///
    /// # let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    /// # let ca_der = certified.cert.der().clone();
    /// let mut roots = RootCertStore::empty();
    /// roots.add(ca_der)?; // the CA that signed the server's certificate
    /// let config = ClientConfig::builder()
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let name = ServerName::try_from("localhost")?;
    /// let options = ConnectOptions::new().tls(Arc::new(config), name);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(
        mut self,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> Self {
        self.tls = Some((config, server_name));
        self
    }

    /// Sends `header` (PROXY protocol v1 or v2) as the first bytes of the connection, before
    /// the TLS ClientHello and before anything the handler writes (feature `proxy-protocol`).
    /// A proxy in front of a server that takes the protocol uses it to pass on who its client
    /// is.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnectOptions, ProxyHeader, ProxyVersion};
    ///
    /// let client = "192.0.2.7:50000".parse().unwrap();
    /// let front = "198.51.100.1:80".parse().unwrap();
    /// let options =
    ///     ConnectOptions::new().proxy_header(ProxyHeader::new(ProxyVersion::V2, client, front));
    /// # let _ = options;
    /// ```
    #[cfg(feature = "proxy-protocol")]
    pub fn proxy_header(mut self, header: crate::proxy::ProxyHeader) -> Self {
        self.proxy_header = Some(header);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectOptions;

    #[test]
    fn options_set_the_limits() {
        let limits = ConnectOptions::new()
            .max_input(4096)
            .max_output(1 << 20)
            .limits;
        assert_eq!((limits.max_input, limits.max_output), (4096, 1 << 20));
        assert!(ConnectOptions::new().limits.pause_reads);
    }
}
