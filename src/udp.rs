//! UDP sockets: datagrams in, datagrams out, on the same loop.
//!
//! A send is tried at once; if the kernel's buffer is full the datagram is queued (in order) and
//! the queue is flushed when the socket becomes writable. The queue is bounded: UDP is allowed to
//! lose datagrams, and an unbounded queue would turn a slow network into unbounded memory. A
//! datagram refused because the queue is full is counted in
//! [`Stats::datagrams_dropped`](crate::Stats::datagrams_dropped) and reported to the sender.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::engine::{gone, Core};
use crate::id::UdpId;
use crate::reactor::Reactor;

/// Datagrams a socket's send queue holds before further sends are refused.
pub const UDP_QUEUE_LIMIT: usize = 1024;

/// The user's side of a UDP socket: it is given each datagram with its source address.
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

    /// Sends a datagram (or queues it if the socket's buffer is full).
    ///
    /// # Examples
    ///
    /// See [`DatagramHandler`].
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the send queue already holds [`UDP_QUEUE_LIMIT`] datagrams (this one is
    /// dropped and counted), or the error of `sendto` (e.g. `EMSGSIZE`).
    pub fn send_to(&mut self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        self.core.udp_send(self.id, data, to)
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
        self.core.udp_send(id, data, to)
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
