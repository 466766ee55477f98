//! A live UDP socket's options: broadcast, multicast membership, TTL/hops and loop, buffer
//! sizes. Each method is one `setsockopt` or `getsockopt`, through socket2.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use socket2::SockRef;

/// A UDP socket's options, from [`UdpContext::options`](crate::UdpContext::options) or
/// [`Reactor::udp_options`](crate::Reactor::udp_options). It borrows the socket; setters change
/// the socket at once.
///
/// # Examples
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
/// use sockloop::{DatagramHandler, Reactor, UdpContext};
///
/// struct Sink;
/// impl DatagramHandler for Sink {
///     fn on_datagram(&mut self, _cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {}
/// }
///
/// let mut reactor = Reactor::new()?;
/// let (id, _) = reactor.bind_udp("0.0.0.0:0".parse().unwrap(), Sink)?;
/// let options = reactor.udp_options(id)?;
/// options.set_multicast_ttl_v4(2)?;
/// options.set_multicast_loop_v4(true)?;
/// assert_eq!(options.multicast_ttl_v4()?, 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UdpOptions<'a> {
    socket: SockRef<'a>,
}

impl<'a> UdpOptions<'a> {
    pub(crate) fn new(socket: &'a mio::net::UdpSocket) -> UdpOptions<'a> {
        UdpOptions {
            socket: SockRef::from(socket),
        }
    }

    /// Lets this socket send to broadcast addresses (`SO_BROADCAST`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
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
    /// The error of `setsockopt`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.socket.set_broadcast(on)
    }

    /// Whether this socket may send to broadcast addresses (`SO_BROADCAST`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// assert!(!options.broadcast()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.socket.broadcast()
    }

    /// Joins IPv4 multicast `group` on the interface with address `interface` (`IP_ADD_MEMBERSHIP`;
    /// `Ipv4Addr::UNSPECIFIED` lets the kernel choose).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// let group = Ipv4Addr::new(239, 1, 2, 3);
    /// # if options.join_multicast_v4(group, Ipv4Addr::LOCALHOST).is_err() { return Ok(()); } // no multicast here
    /// options.leave_multicast_v4(group, Ipv4Addr::LOCALHOST)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket.join_multicast_v4(&group, &interface)
    }

    /// Leaves IPv4 multicast `group` on the interface with address `interface` (`IP_DROP_MEMBERSHIP`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// let group = Ipv4Addr::new(239, 1, 2, 4);
    /// # if options.join_multicast_v4(group, Ipv4Addr::LOCALHOST).is_err() { return Ok(()); } // no multicast here
    /// options.leave_multicast_v4(group, Ipv4Addr::LOCALHOST)?;
    /// assert!(options.leave_multicast_v4(group, Ipv4Addr::LOCALHOST).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket.leave_multicast_v4(&group, &interface)
    }

    /// Joins IPv6 multicast `group` on the interface with index `interface` (`IPV6_ADD_MEMBERSHIP`; 0
    /// lets the kernel choose). The socket must be IPv6.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// # let Ok((v6, _)) = reactor.bind_udp("[::1]:0".parse().unwrap(), Sink) else { return Ok(()) }; // no IPv6 here
    /// let options = reactor.udp_options(v6)?;
    /// let group: Ipv6Addr = "ff02::1:3".parse().unwrap();
    /// # if options.join_multicast_v6(group, 0).is_err() { return Ok(()); } // no IPv6 multicast here
    /// options.leave_multicast_v6(group, 0)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket.join_multicast_v6(&group, interface)
    }

    /// Leaves IPv6 multicast `group` on the interface with index `interface` (`IPV6_DROP_MEMBERSHIP`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// # let Ok((v6, _)) = reactor.bind_udp("[::1]:0".parse().unwrap(), Sink) else { return Ok(()) }; // no IPv6 here
    /// let options = reactor.udp_options(v6)?;
    /// let group: Ipv6Addr = "ff02::1:4".parse().unwrap();
    /// # if options.join_multicast_v6(group, 0).is_err() { return Ok(()); } // no IPv6 multicast here
    /// options.leave_multicast_v6(group, 0)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket.leave_multicast_v6(&group, interface)
    }

    /// Sends IPv4 multicast out of the interface with address `interface` (`IP_MULTICAST_IF`), e.g.
    /// `127.0.0.1` to keep it on loopback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// options.set_multicast_interface_v4(Ipv4Addr::LOCALHOST)?;
    /// assert_eq!(options.multicast_interface_v4()?, Ipv4Addr::LOCALHOST);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn set_multicast_interface_v4(&self, interface: Ipv4Addr) -> io::Result<()> {
        self.socket.set_multicast_if_v4(&interface)
    }

    /// The address of the interface IPv4 multicast is sent from (`IP_MULTICAST_IF`; unspecified: the
    /// kernel's choice).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// assert_eq!(options.multicast_interface_v4()?, Ipv4Addr::UNSPECIFIED);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    pub fn multicast_interface_v4(&self) -> io::Result<Ipv4Addr> {
        self.socket.multicast_if_v4()
    }

    /// Sends IPv6 multicast out of the interface with index `interface` (`IPV6_MULTICAST_IF`; 0: the
    /// kernel's choice).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// # let Ok((v6, _)) = reactor.bind_udp("[::1]:0".parse().unwrap(), Sink) else { return Ok(()) }; // no IPv6 here
    /// let options = reactor.udp_options(v6)?;
    /// options.set_multicast_interface_v6(0)?;
    /// assert_eq!(options.multicast_interface_v6()?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn set_multicast_interface_v6(&self, interface: u32) -> io::Result<()> {
        self.socket.set_multicast_if_v6(interface)
    }

    /// The index of the interface IPv6 multicast is sent from (`IPV6_MULTICAST_IF`; 0: the kernel's
    /// choice).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// # let Ok((v6, _)) = reactor.bind_udp("[::1]:0".parse().unwrap(), Sink) else { return Ok(()) }; // no IPv6 here
    /// assert_eq!(reactor.udp_options(v6)?.multicast_interface_v6()?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    pub fn multicast_interface_v6(&self) -> io::Result<u32> {
        self.socket.multicast_if_v6()
    }

    /// How many routers IPv4 multicast from this socket may cross (`IP_MULTICAST_TTL`; 1 by default:
    /// the local network only).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// options.set_multicast_ttl_v4(4)?;
    /// assert_eq!(options.multicast_ttl_v4()?, 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.socket.set_multicast_ttl_v4(ttl)
    }

    /// The TTL of IPv4 multicast sent from this socket (`IP_MULTICAST_TTL`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// assert_eq!(options.multicast_ttl_v4()?, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.socket.multicast_ttl_v4()
    }

    /// How many routers IPv6 multicast from this socket may cross (`IPV6_MULTICAST_HOPS`; 1 by
    /// default).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// # let Ok((v6, _)) = reactor.bind_udp("[::1]:0".parse().unwrap(), Sink) else { return Ok(()) }; // no IPv6 here
    /// let options = reactor.udp_options(v6)?;
    /// options.set_multicast_hops_v6(8)?;
    /// assert_eq!(options.multicast_hops_v6()?, 8);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn set_multicast_hops_v6(&self, hops: u32) -> io::Result<()> {
        self.socket.set_multicast_hops_v6(hops)
    }

    /// The hop limit of IPv6 multicast sent from this socket (`IPV6_MULTICAST_HOPS`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// # let Ok((v6, _)) = reactor.bind_udp("[::1]:0".parse().unwrap(), Sink) else { return Ok(()) }; // no IPv6 here
    /// assert_eq!(reactor.udp_options(v6)?.multicast_hops_v6()?, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    pub fn multicast_hops_v6(&self) -> io::Result<u32> {
        self.socket.multicast_hops_v6()
    }

    /// Whether IPv4 multicast this socket sends is also delivered to this host's members
    /// (`IP_MULTICAST_LOOP`; on by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// options.set_multicast_loop_v4(false)?;
    /// assert!(!options.multicast_loop_v4()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.socket.set_multicast_loop_v4(on)
    }

    /// Whether IPv4 multicast this socket sends loops back to this host (`IP_MULTICAST_LOOP`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// assert!(options.multicast_loop_v4()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.socket.multicast_loop_v4()
    }

    /// Whether IPv6 multicast this socket sends is also delivered to this host's members
    /// (`IPV6_MULTICAST_LOOP`; on by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// # let Ok((v6, _)) = reactor.bind_udp("[::1]:0".parse().unwrap(), Sink) else { return Ok(()) }; // no IPv6 here
    /// let options = reactor.udp_options(v6)?;
    /// options.set_multicast_loop_v6(false)?;
    /// assert!(!options.multicast_loop_v6()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.socket.set_multicast_loop_v6(on)
    }

    /// Whether IPv6 multicast this socket sends loops back to this host (`IPV6_MULTICAST_LOOP`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// # let Ok((v6, _)) = reactor.bind_udp("[::1]:0".parse().unwrap(), Sink) else { return Ok(()) }; // no IPv6 here
    /// assert!(reactor.udp_options(v6)?.multicast_loop_v6()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.socket.multicast_loop_v6()
    }

    /// The kernel's receive buffer (`SO_RCVBUF`; Linux doubles the value and caps it at
    /// `net.core.rmem_max`): how many datagrams can wait while the loop is busy.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// options.set_recv_buffer_size(64 << 10)?;
    /// assert!(options.recv_buffer_size()? >= 64 << 10);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn set_recv_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.socket.set_recv_buffer_size(bytes)
    }

    /// The kernel's receive buffer size (`SO_RCVBUF`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// assert!(options.recv_buffer_size()? > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.socket.recv_buffer_size()
    }

    /// The kernel's send buffer (`SO_SNDBUF`; Linux doubles the value and caps it at
    /// `net.core.wmem_max`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// options.set_send_buffer_size(64 << 10)?;
    /// assert!(options.send_buffer_size()? >= 64 << 10);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    pub fn set_send_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.socket.set_send_buffer_size(bytes)
    }

    /// The kernel's send buffer size (`SO_SNDBUF`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    /// # use sockloop::{DatagramHandler, Reactor, UdpContext};
    /// # struct Sink;
    /// # impl DatagramHandler for Sink {
    /// #     fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (id, _) = reactor.bind_udp("127.0.0.1:0".parse().unwrap(), Sink)?;
    /// let options = reactor.udp_options(id)?;
    /// assert!(options.send_buffer_size()? > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.socket.send_buffer_size()
    }
}
