//! Socket options: the ones people set most, by name, and a hook for any other.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;

/// A function that configures a socket sockloop made, before it is used.
type Hook = Arc<dyn Fn(&SockRef<'_>) -> io::Result<()> + Send + Sync>;

/// Socket options for the sockets sockloop makes: a listener and every connection it accepts
/// ([`ListenOptions::socket_options`](crate::ListenOptions::socket_options)), an outbound
/// connection ([`ConnectOptions::socket_options`](crate::ConnectOptions::socket_options)), a UDP
/// socket ([`Reactor::bind_udp_with`](crate::Reactor::bind_udp_with)).
///
/// Each named option is set with one `setsockopt` when the socket is made, and reported as an
/// error of the call that makes it (`listen_with`, `bind_udp_with`) or, for an outbound
/// connection, as its `ConnectFailed`. [`configure`](Self::configure) runs any other setting on
/// the socket, after the named ones.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockloop::{ListenOptions, SocketOptions};
///
/// let socket = SocketOptions::new()
///     .keepalive(Duration::from_secs(60))
///     .keepalive_interval(Duration::from_secs(10))
///     .keepalive_retries(5)
///     .recv_buffer_size(1 << 20)
///     .user_timeout(Duration::from_secs(30));
/// let options = ListenOptions::new().socket_options(socket);
/// ```
#[derive(Clone, Default)]
pub struct SocketOptions {
    pub(crate) keepalive: Option<Duration>,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) keepalive_retries: Option<u32>,
    pub(crate) send_buffer: Option<usize>,
    pub(crate) recv_buffer: Option<usize>,
    pub(crate) linger: Option<Duration>,
    pub(crate) user_timeout: Option<Duration>,
    pub(crate) tos: Option<u32>,
    pub(crate) only_v6: Option<bool>,
    pub(crate) hook: Option<Hook>,
}

impl fmt::Debug for SocketOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketOptions")
            .field("keepalive", &self.keepalive)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("keepalive_retries", &self.keepalive_retries)
            .field("send_buffer", &self.send_buffer)
            .field("recv_buffer", &self.recv_buffer)
            .field("linger", &self.linger)
            .field("user_timeout", &self.user_timeout)
            .field("tos", &self.tos)
            .field("only_v6", &self.only_v6)
            .field("hook", &self.hook.as_ref().map(|_| "Fn"))
            .finish()
    }
}

impl SocketOptions {
    /// No option set: the system's defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let _none = sockloop::SocketOptions::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// TCP keepalive: probe an idle connection after `idle` without traffic (`SO_KEEPALIVE`,
    /// `TCP_KEEPIDLE`), so that a peer that vanished (a crashed host, a dropped NAT mapping) is
    /// noticed and the connection ends with an error.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = sockloop::SocketOptions::new().keepalive(std::time::Duration::from_secs(60));
    /// ```
    pub fn keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = Some(idle);
        self
    }

    /// Time between keepalive probes (`TCP_KEEPINTVL`); with [`keepalive`](Self::keepalive).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = sockloop::SocketOptions::new()
    ///     .keepalive(Duration::from_secs(60))
    ///     .keepalive_interval(Duration::from_secs(5));
    /// ```
    pub fn keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive_interval = Some(interval);
        self
    }

    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`); with
    /// [`keepalive`](Self::keepalive).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = sockloop::SocketOptions::new().keepalive(Duration::from_secs(60)).keepalive_retries(3);
    /// ```
    pub fn keepalive_retries(mut self, retries: u32) -> Self {
        self.keepalive_retries = Some(retries);
        self
    }

    /// The kernel's send buffer size (`SO_SNDBUF`; Linux doubles the value and caps it at
    /// `net.core.wmem_max`).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = sockloop::SocketOptions::new().send_buffer_size(256 << 10);
    /// ```
    pub fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.send_buffer = Some(bytes);
        self
    }

    /// The kernel's receive buffer size (`SO_RCVBUF`; Linux doubles the value and caps it at
    /// `net.core.rmem_max`). For UDP, how many datagrams can wait while the loop is busy.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = sockloop::SocketOptions::new().recv_buffer_size(4 << 20);
    /// ```
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }

    /// `SO_LINGER` with a timeout: the kernel's `close` waits up to `timeout` for unsent data.
    /// sockloop closes gracefully on its own (it sends what is queued, then FIN, then waits for
    /// the peer's FIN), so this matters only for what the kernel still holds at the close;
    /// [`Context::abort`](crate::Context::abort) still sends a reset.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = sockloop::SocketOptions::new().linger(std::time::Duration::from_secs(2));
    /// ```
    pub fn linger(mut self, timeout: Duration) -> Self {
        self.linger = Some(timeout);
        self
    }

    /// `TCP_USER_TIMEOUT` (Linux): how long sent data may stay unacknowledged before the
    /// connection is dropped, so that a peer that vanished mid-transfer is noticed without
    /// waiting for the kernel's retransmissions (about 15 minutes).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = sockloop::SocketOptions::new().user_timeout(std::time::Duration::from_secs(30));
    /// ```
    pub fn user_timeout(mut self, timeout: Duration) -> Self {
        self.user_timeout = Some(timeout);
        self
    }

    /// The type-of-service byte (`IP_TOS` for IPv4, `IPV6_TCLASS` for IPv6), e.g. a DSCP mark
    /// shifted left by two (`0xb8` for expedited forwarding).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = sockloop::SocketOptions::new().tos(0xb8);
    /// ```
    pub fn tos(mut self, tos: u32) -> Self {
        self.tos = Some(tos);
        self
    }

    /// For an IPv6 listener or UDP socket bound to `[::]`: accept IPv6 only (`true`), or IPv4
    /// too, as IPv4-mapped addresses (`false`, Linux's default). Set before binding.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = sockloop::SocketOptions::new().only_v6(true);
    /// ```
    pub fn only_v6(mut self, only_v6: bool) -> Self {
        self.only_v6 = Some(only_v6);
        self
    }

    /// Runs `hook` on the socket after the named options: any other option, with socket2's
    /// whole API. For a listener it runs on the listening socket (before `bind`) and on every
    /// accepted socket; its error fails the call that made the socket (an accepted connection
    /// is dropped, logged at warn).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::SocketOptions;
    ///
    /// let o = SocketOptions::new().configure(|socket| socket.set_reuse_address(true));
    /// ```
    pub fn configure<F>(mut self, hook: F) -> Self
    where
        F: Fn(&SockRef<'_>) -> io::Result<()> + Send + Sync + 'static,
    {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Whether nothing is set (no system call to make).
    pub(crate) fn is_empty(&self) -> bool {
        self.keepalive.is_none()
            && self.send_buffer.is_none()
            && self.recv_buffer.is_none()
            && self.linger.is_none()
            && self.user_timeout.is_none()
            && self.tos.is_none()
            && self.only_v6.is_none()
            && self.hook.is_none()
    }
}
