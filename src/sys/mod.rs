//! The platform layer: every socket system call sockloop makes beyond mio's, the options it
//! sets and why, and the error numbers it tests for. Nothing above this layer names an errno or
//! a `cfg` of an operating system (Unix domain sockets aside, which are `cfg(unix)` where they
//! are offered).
//!
//! Linux is where sockloop is built and tested. Elsewhere mio's portable calls are used, and the
//! few Linux-only shortcuts below (`NODELAY_INHERITED`, priority readiness) fall back to the
//! portable way.

mod stream;
mod udp;

use std::io;
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, TcpKeepalive, Type};

pub(crate) use stream::{ListenSocket, Peer, Stream};
pub(crate) use udp::{
    enable_gro, recv_batch, send_batch, RecvBatch, SendBatch, GSO, RECV_BATCH, SEND_BATCH,
};

use crate::options::SocketOptions;

/// When socket options are applied: before `bind` (every option), or to a socket accepted from
/// a listener (not `IPV6_V6ONLY`, which only a socket that binds has).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    BeforeBind,
    Accepted,
}

/// Sets `options` on `socket` (TCP options only on a TCP socket).
pub(crate) fn apply(
    socket: &SockRef<'_>,
    options: &SocketOptions,
    v6: bool,
    stage: Stage,
) -> io::Result<()> {
    if options.is_empty() {
        return Ok(());
    }
    let tcp = socket.r#type()? == Type::STREAM;
    if let (Some(only_v6), true, Stage::BeforeBind) = (options.only_v6, v6, stage) {
        socket.set_only_v6(only_v6)?;
    }
    if let Some(bytes) = options.send_buffer {
        socket.set_send_buffer_size(bytes)?;
    }
    if let Some(bytes) = options.recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    if let Some(timeout) = options.linger {
        socket.set_linger(Some(timeout))?;
    }
    if let Some(tos) = options.tos {
        set_tos(socket, tos, v6)?;
    }
    if tcp {
        if let Some(idle) = options.keepalive {
            let mut params = TcpKeepalive::new().with_time(idle);
            if let Some(interval) = options.keepalive_interval {
                params = params.with_interval(interval);
            }
            if let Some(retries) = options.keepalive_retries {
                params = keepalive_retries(params, retries);
            }
            socket.set_tcp_keepalive(&params)?;
        }
        if let Some(timeout) = options.user_timeout {
            set_user_timeout(socket, timeout)?;
        }
    }
    if let Some(hook) = &options.hook {
        hook(socket)?;
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_tos(socket: &SockRef<'_>, tos: u32, v6: bool) -> io::Result<()> {
    match v6 {
        true => socket.set_tclass_v6(tos),
        false => socket.set_tos_v4(tos),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_tos(socket: &SockRef<'_>, tos: u32, v6: bool) -> io::Result<()> {
    match v6 {
        true => Err(unsupported("IPV6_TCLASS")),
        false => socket.set_tos_v4(tos),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_user_timeout(socket: &SockRef<'_>, timeout: std::time::Duration) -> io::Result<()> {
    socket.set_tcp_user_timeout(Some(timeout))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_user_timeout(_socket: &SockRef<'_>, _timeout: std::time::Duration) -> io::Result<()> {
    Err(unsupported("TCP_USER_TIMEOUT"))
}

#[cfg(unix)]
fn keepalive_retries(params: TcpKeepalive, retries: u32) -> TcpKeepalive {
    params.with_retries(retries)
}

#[cfg(not(unix))]
fn keepalive_retries(params: TcpKeepalive, _retries: u32) -> TcpKeepalive {
    params
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is not available on this platform"),
    )
}

/// Binds a UDP socket with `options` set before the bind.
pub(crate) fn bind_udp(
    addr: SocketAddr,
    options: &SocketOptions,
) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    apply(
        &SockRef::from(&socket),
        options,
        addr.is_ipv6(),
        Stage::BeforeBind,
    )?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A UDP socket connected to `peer`: bound to the unspecified address of `peer`'s family
/// (port 0, the kernel picks the source address by route), with `options` set before the bind.
pub(crate) fn connect_udp(
    peer: SocketAddr,
    options: &SocketOptions,
) -> io::Result<std::net::UdpSocket> {
    let any: SocketAddr = match peer {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = bind_udp(any, options)?;
    socket.connect(peer)?;
    Ok(socket)
}

/// Whether TCP urgent data (`MSG_OOB`) is delivered in line, as an ordinary byte of the stream
/// (`SO_OOBINLINE`). It is: the handler sees exactly the bytes the peer sent, and none is lost
/// (RFC 6093 advises applications that still meet urgent data to read it in line). Without it
/// the kernel would cut the urgent byte out of the stream, for a `recv(MSG_OOB)` that sockloop
/// never makes.
const URGENT_INLINE: bool = true;

/// What a stream socket is registered for, once, edge-triggered: both directions, and on Linux
/// priority readiness, which tells the read loop that urgent data is pending. A read stops
/// short at the urgent mark although more bytes are queued behind it, so after such an event a
/// short read no longer proves the socket empty (`src/engine/conn_event.rs`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const STREAM_INTEREST: Interest = Interest::READABLE
    .add(Interest::WRITABLE)
    .add(Interest::PRIORITY);
/// What a stream socket is registered for (no priority readiness on this platform).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const STREAM_INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

/// Whether an accepted TCP socket starts with the listener's `TCP_NODELAY`. On Linux it does
/// (the connection's socket is cloned from the listener's), so `bind_tcp` sets the option once
/// and each accept saves a `setsockopt`: one of the three system calls an accept takes, on the
/// path a burst of thousands of connects waits on. Elsewhere it is set per connection.
pub(crate) const NODELAY_INHERITED: bool = cfg!(target_os = "linux");

/// Binds and listens with `SO_REUSEADDR` (so a restarted server can rebind while old
/// connections sit in TIME_WAIT), `SO_REUSEPORT` if asked, urgent data in line (accepted sockets
/// inherit it, on Linux and the BSDs alike), and `TCP_NODELAY` for accepted sockets to inherit.
pub(crate) fn bind_tcp(
    addr: SocketAddr,
    backlog: i32,
    nodelay: bool,
    reuse_port: bool,
    options: &SocketOptions,
) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    apply(
        &SockRef::from(&socket),
        options,
        addr.is_ipv6(),
        Stage::BeforeBind,
    )?;
    if reuse_port {
        set_reuse_port(&socket)?;
    }
    socket.bind(&addr.into())?;
    if nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    socket.set_out_of_band_inline(URGENT_INLINE)?;
    socket.listen(backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}

#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this platform",
    ))
}

/// Starts a non-blocking TCP connect to `addr`, from `local` if given, with `TCP_NODELAY` on
/// (Nagle would delay small requests behind unacknowledged ones; latency wins by default) and
/// urgent data in line. Failing to set an option is logged, not fatal.
pub(crate) fn connect_tcp(
    addr: SocketAddr,
    local: Option<SocketAddr>,
    options: &SocketOptions,
) -> io::Result<TcpStream> {
    let stream = match (local, options.is_empty()) {
        (None, true) => TcpStream::connect(addr)?,
        _ => connect_from(local, addr, options)?,
    };
    if let Err(e) = stream.set_nodelay(true) {
        log::debug!("connect to {addr}: TCP_NODELAY not set: {e}");
    }
    if let Err(e) = SockRef::from(&stream).set_out_of_band_inline(URGENT_INLINE) {
        log::debug!("connect to {addr}: SO_OOBINLINE not set: {e}");
    }
    Ok(stream)
}

/// A non-blocking connect made with socket2: from a chosen local address, or with socket
/// options to set before the connect.
///
/// Binding port 0 reserves a port from the ephemeral range for `local`'s address before the
/// destination is known, so each source address gives at most one port range of connections
/// (about 28,000 on Linux by default), whatever the destinations.
fn connect_from(
    local: Option<SocketAddr>,
    addr: SocketAddr,
    options: &SocketOptions,
) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    apply(
        &SockRef::from(&socket),
        options,
        addr.is_ipv6(),
        Stage::BeforeBind,
    )?;
    if let Some(local) = local {
        socket.bind(&SockAddr::from(local))?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        // The normal outcome of a non-blocking connect: completion is reported by readiness.
        Err(e) if is_in_progress(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// "Connect in progress": the normal answer to a non-blocking connect.
#[cfg(unix)]
fn is_in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// "Connect in progress": the normal answer to a non-blocking connect.
#[cfg(not(unix))]
fn is_in_progress(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Accept errors that concern only the connection being accepted (the client reset before we
/// accepted, a signal, a protocol error on that one connection, a firewall's refusal): skip it
/// and accept the next. Everything else (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) would fail
/// again at once.
pub(crate) fn is_per_connection(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) || is_proto_or_perm(e)
}

#[cfg(unix)]
fn is_proto_or_perm(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPROTO | libc::EPERM))
}

#[cfg(not(unix))]
fn is_proto_or_perm(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
}
