//! The byte streams a connection can run on (TCP or Unix domain) and the listeners that make
//! them, behind one interface so the connection state machine and the accept loop are written
//! once for both.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
#[cfg(unix)]
use std::path::Path;
use std::time::Duration;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream};
#[cfg(unix)]
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

/// A connected (or connecting) stream socket.
pub(crate) enum Stream {
    /// No socket yet: an outbound connection whose host name is being resolved, or whose
    /// connect attempts are racing (`src/engine/dial.rs`). Reads and writes would block.
    Pending,
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

/// The error for an address query that only TCP can answer.
#[cfg(unix)]
fn not_inet() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a Unix domain socket has no IP address",
    )
}

impl Stream {
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Pending => Err(io::ErrorKind::WouldBlock.into()),
            Stream::Tcp(s) => (&*s).read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => (&*s).read(buf),
        }
    }

    /// Reads without consuming (`MSG_PEEK`): what a PROXY protocol header is looked for in.
    /// TCP only.
    #[cfg(feature = "proxy-protocol")]
    pub(crate) fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Pending => Err(io::ErrorKind::WouldBlock.into()),
            Stream::Tcp(s) => s.peek(buf),
            #[cfg(unix)]
            Stream::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no peeking on a Unix stream",
            )),
        }
    }

    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Pending => Err(io::ErrorKind::WouldBlock.into()),
            Stream::Tcp(s) => (&*s).write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Pending => Ok(()),
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Pending => Ok(None),
            Stream::Tcp(s) => s.take_error(),
            #[cfg(unix)]
            Stream::Unix(s) => s.take_error(),
        }
    }

    /// Whether a pending connect has completed (`Ok(false)`: still in progress).
    pub(crate) fn is_connected(&self) -> io::Result<bool> {
        let result = match self {
            Stream::Pending => return Ok(false),
            Stream::Tcp(s) => s.peer_addr().map(drop),
            #[cfg(unix)]
            Stream::Unix(s) => s.peer_addr().map(drop),
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Pending => Err(io::ErrorKind::NotConnected.into()),
            Stream::Tcp(s) => s.peer_addr(),
            #[cfg(unix)]
            Stream::Unix(_) => Err(not_inet()),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Pending => Err(io::ErrorKind::NotConnected.into()),
            Stream::Tcp(s) => s.local_addr(),
            #[cfg(unix)]
            Stream::Unix(_) => Err(not_inet()),
        }
    }

    /// Sets `TCP_NODELAY`; Unix sockets have no Nagle algorithm, so there it does nothing.
    pub(crate) fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            Stream::Pending => Ok(()),
            Stream::Tcp(s) => s.set_nodelay(nodelay),
            #[cfg(unix)]
            Stream::Unix(_) => Ok(()),
        }
    }

    /// Whether Nagle's algorithm is off (`TCP_NODELAY`); `false` for a Unix stream.
    pub(crate) fn nodelay(&self) -> io::Result<bool> {
        match self {
            Stream::Pending => Ok(true),
            Stream::Tcp(s) => s.nodelay(),
            #[cfg(unix)]
            Stream::Unix(_) => Ok(false),
        }
    }

    /// The socket, for socket options.
    pub(crate) fn sock_ref(&self) -> Option<socket2::SockRef<'_>> {
        match self {
            Stream::Pending => None,
            Stream::Tcp(s) => Some(socket2::SockRef::from(s)),
            #[cfg(unix)]
            Stream::Unix(s) => Some(socket2::SockRef::from(s)),
        }
    }

    /// Makes the coming close send a reset (TCP); a Unix peer just sees the close.
    pub(crate) fn set_reset_on_close(&self) {
        if let Stream::Tcp(s) = self {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }

    /// Registers again under another token (a connect attempt's socket moving into the
    /// connection it won for).
    pub(crate) fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Pending => Ok(()),
            Stream::Tcp(s) => s.reregister(registry, token, interest),
            #[cfg(unix)]
            Stream::Unix(s) => s.reregister(registry, token, interest),
        }
    }

    pub(crate) fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Pending => Ok(()),
            Stream::Tcp(s) => s.register(registry, token, interest),
            #[cfg(unix)]
            Stream::Unix(s) => s.register(registry, token, interest),
        }
    }
}

/// A listening socket.
pub(crate) enum ListenSocket {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener),
}

/// Who an accepted connection came from, for logs. Formatted only when a log line is
/// written: an accept burst of thousands of connections should not format an address each.
pub(crate) enum Peer {
    Tcp(std::net::SocketAddr),
    #[cfg(unix)]
    Unix,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            #[cfg(unix)]
            Peer::Unix => f.write_str("a unix peer"),
        }
    }
}

impl ListenSocket {
    /// Accepts one connection.
    pub(crate) fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            ListenSocket::Tcp(l) => l
                .accept()
                .map(|(s, peer)| (Stream::Tcp(s), Peer::Tcp(peer))),
            #[cfg(unix)]
            ListenSocket::Unix(l) => l.accept().map(|(s, _)| (Stream::Unix(s), Peer::Unix)),
        }
    }

    pub(crate) fn source(&mut self) -> &mut dyn Source {
        match self {
            ListenSocket::Tcp(l) => l,
            #[cfg(unix)]
            ListenSocket::Unix(l) => l,
        }
    }
}

impl ListenSocket {
    /// Binds a Unix domain listener at `path` (which must not exist yet).
    #[cfg(unix)]
    pub(crate) fn bind_unix(path: &Path) -> io::Result<ListenSocket> {
        UnixListener::bind(path).map(ListenSocket::Unix)
    }
}
