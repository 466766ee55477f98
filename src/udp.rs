//! UDP sockets: datagrams in, datagrams out, on the same loop.
//!
//! On Linux datagrams are received up to 32 per system call (`recvmmsg`, with UDP GRO where the
//! kernel coalesces), and what a handler sends during its socket's turn leaves up to 64 per call
//! (`sendmmsg`) when the turn ends; elsewhere each datagram is one call. The handler still sees
//! one datagram at a time, in order. If the kernel's buffer is full a datagram is queued (in
//! order) and the queue is flushed when the socket becomes writable. The queue is bounded: UDP is
//! allowed to lose datagrams, and an unbounded queue would turn a slow network into unbounded
//! memory. A datagram refused because the queue is full is counted in
//! [`Stats::datagrams_dropped`](crate::Stats::datagrams_dropped) and reported to the sender;
//! one the kernel refuses is reported to [`DatagramHandler::on_error`].

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::engine::{gone, Core};
use crate::id::UdpId;
use crate::reactor::Reactor;
use crate::udp_options::UdpOptions;

/// Datagrams a socket's send queue holds before further sends are refused.
pub const UDP_QUEUE_LIMIT: usize = 1024;

/// The user's side of a UDP socket: it is given each datagram with its source address, and
/// the errors of its sends and receives.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use sockloop::{DatagramHandler, UdpContext};
///
/// /// Echoes every datagram to its sender.
/// struct UdpEcho;
/// impl DatagramHandler for UdpEcho {
///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
///         let _ = cx.send_to(data, from);
///     }
/// }
/// ```
pub trait DatagramHandler: 'static {
    /// A datagram arrived from `from`.
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr);

    /// A send or a receive failed: a queued datagram the kernel refused (too big, no route),
    /// or, on a connected socket, the peer's ICMP port unreachable (`ConnectionRefused`). The
    /// socket stays open. Errors of sends made in a callback come once that callback returned.
    /// By default they are logged at debug level.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use std::net::{SocketAddr, UdpSocket};
    /// use sockloop::{DatagramHandler, Reactor, UdpContext, UdpError};
    ///
    /// /// Sends to a port where nobody listens, and stops when the refusal comes back.
    /// struct Probe(Option<ErrorKind>);
    /// impl DatagramHandler for Probe {
    ///     fn on_datagram(&mut self, _cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {}
    ///     fn on_error(&mut self, cx: &mut UdpContext<'_>, error: UdpError) {
    ///         self.0 = Some(error.kind());
    ///         cx.stop();
    ///     }
    /// }
    ///
    /// // A port that was just free: nothing listens there now.
    /// let closed = UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.connect_udp(closed, Probe(None))?;
    /// reactor.send(id, b"anyone?")?;
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn on_error(&mut self, cx: &mut UdpContext<'_>, error: UdpError) {
        log::debug!("{}: {error}", cx.id());
    }
}

/// What failed on a UDP socket, as [`DatagramHandler::on_error`] is told.
///
/// # Examples
///
/// ```
/// use std::io::{Error, ErrorKind};
/// use sockloop::UdpError;
///
/// let error = UdpError::Receive(Error::from(ErrorKind::ConnectionRefused));
/// assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
/// assert_eq!(error.to(), None);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum UdpError {
    /// A datagram was not sent; it is dropped.
    Send {
        /// Where it was going (`None`: the connected peer).
        to: Option<SocketAddr>,
        /// Why the kernel refused it.
        error: io::Error,
    },
    /// A receive failed; the next one goes on. On a connected socket, `ConnectionRefused`
    /// means an earlier datagram met a closed port (ICMP port unreachable).
    Receive(io::Error),
}

impl UdpError {
    /// The error itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// let error = sockloop::UdpError::Receive(Error::from(ErrorKind::ConnectionRefused));
    /// assert_eq!(error.error().kind(), ErrorKind::ConnectionRefused);
    /// ```
    pub fn error(&self) -> &io::Error {
        match self {
            UdpError::Send { error, .. } => error,
            UdpError::Receive(error) => error,
        }
    }

    /// The error's kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// let error = sockloop::UdpError::Receive(Error::from(ErrorKind::ConnectionRefused));
    /// assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        self.error().kind()
    }

    /// Where the datagram that was not sent was going: `None` for a receive, or for a send to
    /// the connected peer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// use sockloop::UdpError;
    ///
    /// let to = "127.0.0.1:9".parse().unwrap();
    /// let error = UdpError::Send { to: Some(to), error: Error::from(ErrorKind::InvalidInput) };
    /// assert_eq!(error.to(), Some(to));
    /// ```
    pub fn to(&self) -> Option<SocketAddr> {
        match self {
            UdpError::Send { to, .. } => *to,
            UdpError::Receive(_) => None,
        }
    }
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdpError::Send {
                to: Some(to),
                error,
            } => write!(f, "send to {to} failed: {error}"),
            UdpError::Send { to: None, error } => write!(f, "send failed: {error}"),
            UdpError::Receive(error) => write!(f, "receive failed: {error}"),
        }
    }
}

impl std::error::Error for UdpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

/// What a [`DatagramHandler`] can do from its callback.
///
/// # Examples
///
/// See [`DatagramHandler`].
pub struct UdpContext<'a> {
    core: &'a mut Core,
    id: UdpId,
}

impl fmt::Debug for UdpContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpContext").field("id", &self.id).finish()
    }
}

impl<'a> UdpContext<'a> {
    pub(crate) fn new(core: &'a mut Core, id: UdpId) -> Self {
        UdpContext { core, id }
    }

    /// This socket's id.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use sockloop::{DatagramHandler, UdpContext};
    /// struct Tell;
    /// impl DatagramHandler for Tell {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], from: SocketAddr) {
    ///         let _ = cx.send_to(format!("{:?}", cx.id()).as_bytes(), from);
    ///     }
    /// }
    /// ```
    pub fn id(&self) -> UdpId {
        self.id
    }

    /// Sends a datagram to `to`. It is queued and leaves with the others this turn sends, in
    /// order, in one system call per batch when the turn ends (or, sent from outside the
    /// socket's turn, at once); if the kernel's buffer is full it waits until the socket is
    /// writable.
    ///
    /// # Examples
    ///
    /// See [`DatagramHandler`].
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the send queue already holds [`UDP_QUEUE_LIMIT`] datagrams (this one is
    /// dropped and counted). The kernel's own refusal of a queued datagram (e.g. `EMSGSIZE`)
    /// comes to [`DatagramHandler::on_error`]; outside the turn, the error of `sendto` is
    /// returned here.
    pub fn send_to(&mut self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        self.core.udp_send(self.id, data, Some(to))
    }

    /// Sends a datagram to the peer of a connected socket ([`Reactor::connect_udp`]), as
    /// [`send_to`](Self::send_to) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sockloop::{DatagramHandler, UdpContext};
    ///
    /// /// A client that answers every datagram from its server with "ack".
    /// struct Ack;
    /// impl DatagramHandler for Ack {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {
    ///         let _ = cx.send(b"ack");
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// `NotConnected` if the socket is not connected; otherwise as [`send_to`](Self::send_to).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.core.udp_send(self.id, data, None)
    }

    /// The peer of a connected socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use sockloop::{DatagramHandler, UdpContext};
    /// struct Check;
    /// impl DatagramHandler for Check {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], from: SocketAddr) {
    ///         assert_eq!(cx.peer_addr().ok(), Some(from));
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// `NotConnected` if the socket is not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.core
            .slots
            .udp(self.id)
            .ok_or_else(gone)?
            .socket
            .peer_addr()
    }

    /// This socket's options, to read or change: broadcast, multicast membership, TTL and
    /// loop, buffer sizes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use sockloop::{DatagramHandler, UdpContext};
    /// struct Shout;
    /// impl DatagramHandler for Shout {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], _from: SocketAddr) {
    ///         if let Ok(options) = cx.options() {
    ///             let _ = options.set_broadcast(true);
    ///         }
    ///         let _ = cx.send_to(data, "255.255.255.255:9".parse().unwrap());
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// `NotFound` if the socket is closed.
    pub fn options(&self) -> io::Result<UdpOptions<'_>> {
        let udp = self.core.slots.udp(self.id).ok_or_else(gone)?;
        Ok(UdpOptions::new(&udp.socket))
    }

    /// The socket's local address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use sockloop::{DatagramHandler, UdpContext};
    /// struct Where;
    /// impl DatagramHandler for Where {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], from: SocketAddr) {
    ///         if let Ok(me) = cx.local_addr() {
    ///             let _ = cx.send_to(me.to_string().as_bytes(), from);
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.core
            .slots
            .udp(self.id)
            .ok_or_else(gone)?
            .socket
            .local_addr()
    }

    /// Datagrams waiting in this socket's send queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use sockloop::{DatagramHandler, UdpContext};
    /// struct Polite;
    /// impl DatagramHandler for Polite {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
    ///         if cx.queued() < 100 {
    ///             let _ = cx.send_to(data, from);
    ///         }
    ///     }
    /// }
    /// ```
    pub fn queued(&self) -> usize {
        self.core.slots.udp(self.id).map_or(0, |u| u.queued())
    }

    /// This socket, for socket options sockloop does not name (or to read one back). It
    /// belongs to the reactor: change its options, not its mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sockloop::{DatagramHandler, UdpContext};
    ///
    /// struct Marked;
    /// impl DatagramHandler for Marked {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {
    ///         if let Some(socket) = cx.socket() {
    ///             println!("SO_RCVBUF {:?}", socket.recv_buffer_size());
    ///         }
    ///     }
    /// }
    /// ```
    pub fn socket(&self) -> Option<socket2::SockRef<'_>> {
        Some(socket2::SockRef::from(
            &self.core.slots.udp(self.id)?.socket,
        ))
    }

    /// Makes [`Reactor::run`] return after the current iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use sockloop::{DatagramHandler, UdpContext};
    /// struct Once;
    /// impl DatagramHandler for Once {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {
    ///         cx.stop();
    ///     }
    /// }
    /// ```
    pub fn stop(&mut self) {
        self.core.stop();
    }
}

impl Reactor {
    /// Binds a UDP socket whose datagrams go to `handler`. Returns its id and bound address.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{SocketAddr, UdpSocket};
    /// use sockloop::{DatagramHandler, Reactor, UdpContext};
    ///
    /// struct UdpEcho;
    /// impl DatagramHandler for UdpEcho {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
    ///         let _ = cx.send_to(data, from);
    ///         cx.stop();
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (_id, addr) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), UdpEcho)?;
    /// let client = UdpSocket::bind("127.0.0.1:0")?;
    /// client.send_to(b"ping", addr)?;
    /// reactor.run()?;
    /// let mut buf = [0u8; 16];
    /// let (n, _) = client.recv_from(&mut buf)?;
    /// assert_eq!(&buf[..n], b"ping");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `bind` or of the epoll registration.
    pub fn bind_udp<H: DatagramHandler>(
        &mut self,
        addr: SocketAddr,
        handler: H,
    ) -> io::Result<(UdpId, SocketAddr)> {
        let socket = std::net::UdpSocket::bind(addr)?;
        let local = socket.local_addr()?;
        let id = self.add_udp_socket(socket, handler)?;
        Ok((id, local))
    }

    /// Like [`bind_udp`](Self::bind_udp), with socket options set before the bind (a receive
    /// buffer that holds a burst, the TOS byte, IPv6-only, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sockloop::{DatagramHandler, Reactor, SocketOptions, UdpContext};
    ///
    /// struct Sink;
    /// impl DatagramHandler for Sink {
    ///     fn on_datagram(&mut self, _cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {}
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let options = SocketOptions::new().recv_buffer_size(4 << 20);
    /// let (_id, addr) = reactor.bind_udp_with("127.0.0.1:0".parse().unwrap(), options, Sink)?;
    /// assert!(addr.port() > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`bind_udp`](Self::bind_udp), and the error of setting an option.
    pub fn bind_udp_with<H: DatagramHandler>(
        &mut self,
        addr: SocketAddr,
        options: crate::SocketOptions,
        handler: H,
    ) -> io::Result<(UdpId, SocketAddr)> {
        let socket = crate::sys::bind_udp(addr, &options)?;
        let local = socket.local_addr()?;
        let id = self.add_udp_socket(socket, handler)?;
        Ok((id, local))
    }

    /// Serves a UDP socket that the caller made and configured (receive buffer size, multicast
    /// membership, `SO_REUSEPORT`, ... with `std` or `socket2`), like one from
    /// [`bind_udp`](Self::bind_udp). It is switched to non-blocking mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{SocketAddr, UdpSocket};
    /// use sockloop::{DatagramHandler, Reactor, UdpContext};
    ///
    /// struct Count(usize);
    /// impl DatagramHandler for Count {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {
    ///         self.0 += 1;
    ///         cx.stop();
    ///     }
    /// }
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// socket2::SockRef::from(&socket).set_recv_buffer_size(1 << 20)?;
    /// let addr = socket.local_addr()?;
    /// let mut reactor = Reactor::new()?;
    /// reactor.add_udp_socket(socket, Count(0))?;
    /// UdpSocket::bind("127.0.0.1:0")?.send_to(b"hi", addr)?;
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of switching the socket to non-blocking mode, of `getsockname`, or of the
    /// epoll registration.
    pub fn add_udp_socket<H: DatagramHandler>(
        &mut self,
        socket: std::net::UdpSocket,
        handler: H,
    ) -> io::Result<UdpId> {
        socket.set_nonblocking(true)?;
        let id = self.core.add_udp(socket, Box::new(handler))?;
        Ok(id)
    }

    /// Sends a datagram from UDP socket `id` (queued if the socket's buffer is full).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (a, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let (_, b_addr) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// reactor.send_to(a, b"hello", b_addr)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`UdpContext::send_to`], or `NotFound` if the socket is closed.
    pub fn send_to(&mut self, id: UdpId, data: &[u8], to: SocketAddr) -> io::Result<()> {
        self.core.udp_send(id, data, Some(to))
    }

    /// Sends a datagram from connected UDP socket `id` to its peer (queued if the socket's
    /// buffer is full).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{SocketAddr, UdpSocket};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let server = UdpSocket::bind("127.0.0.1:0")?;
    /// let mut reactor = Reactor::new()?;
    /// let (id, local) = reactor.connect_udp(server.local_addr()?, Sink)?;
    /// reactor.send(id, b"hello")?;
    /// let mut buf = [0u8; 16];
    /// assert_eq!(server.recv_from(&mut buf)?, (5, local));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `NotConnected` if the socket is not connected, `NotFound` if it is closed, otherwise as
    /// [`UdpContext::send_to`].
    pub fn send(&mut self, id: UdpId, data: &[u8]) -> io::Result<()> {
        self.core.udp_send(id, data, None)
    }

    /// A UDP socket connected to `peer`: it receives only `peer`'s datagrams, sends to it
    /// without an address ([`UdpContext::send`], [`Reactor::send`]), and hears of an ICMP
    /// port unreachable as `ConnectionRefused` ([`DatagramHandler::on_error`]). It is bound to
    /// the unspecified address of `peer`'s family, port 0. Returns its id and local address.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{SocketAddr, UdpSocket};
    /// use sockloop::{DatagramHandler, Reactor, UdpContext};
    ///
    /// struct Reply(Vec<u8>);
    /// impl DatagramHandler for Reply {
    ///     fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], _from: SocketAddr) {
    ///         self.0 = data.to_vec();
    ///         cx.stop();
    ///     }
    /// }
    ///
    /// let server = UdpSocket::bind("127.0.0.1:0")?;
    /// let mut reactor = Reactor::new()?;
    /// let (id, local) = reactor.connect_udp(server.local_addr()?, Reply(Vec::new()))?;
    /// reactor.send(id, b"ping")?;
    /// let mut buf = [0u8; 16];
    /// let (n, from) = server.recv_from(&mut buf)?;
    /// server.send_to(&buf[..n], from)?;
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `bind`, `connect` or of the epoll registration.
    pub fn connect_udp<H: DatagramHandler>(
        &mut self,
        peer: SocketAddr,
        handler: H,
    ) -> io::Result<(UdpId, SocketAddr)> {
        self.connect_udp_with(peer, crate::SocketOptions::new(), handler)
    }

    /// Like [`connect_udp`](Self::connect_udp), with socket options set before the bind.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{SocketAddr, UdpSocket};
    /// # use sockloop::{DatagramHandler, Reactor, SocketOptions, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let server = UdpSocket::bind("127.0.0.1:0")?;
    /// let mut reactor = Reactor::new()?;
    /// let options = SocketOptions::new().recv_buffer_size(1 << 20);
    /// let (_id, local) = reactor.connect_udp_with(server.local_addr()?, options, Sink)?;
    /// assert!(local.port() > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect_udp`](Self::connect_udp), and the error of setting an option.
    pub fn connect_udp_with<H: DatagramHandler>(
        &mut self,
        peer: SocketAddr,
        options: crate::SocketOptions,
        handler: H,
    ) -> io::Result<(UdpId, SocketAddr)> {
        let socket = crate::sys::connect_udp(peer, &options)?;
        let local = socket.local_addr()?;
        let id = self.add_udp_socket(socket, handler)?;
        Ok((id, local))
    }

    /// UDP socket `id`'s options, to read or change: broadcast, multicast membership, TTL and
    /// loop, buffer sizes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// options.set_broadcast(true)?;
    /// assert!(options.broadcast()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `NotFound` if the socket is closed.
    pub fn udp_options(&self, id: UdpId) -> io::Result<UdpOptions<'_>> {
        let udp = self.core.slots.udp(id).ok_or_else(gone)?;
        Ok(UdpOptions::new(&udp.socket))
    }

    /// Closes UDP socket `id`; datagrams still queued are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// reactor.close_udp(id)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `NotFound` if it is already closed.
    pub fn close_udp(&mut self, id: UdpId) -> io::Result<()> {
        self.core.close_udp(id)
    }
}
