//! The peer of the chunking property (see `harness.rs`): a plain non-blocking socket on the other
//! end of the reactor's connection, which writes the payload, reads replies, and ends with FIN or
//! a reset; or the same over a [`Layer`] (TLS, in `tests/tls_chunking.rs`), which it writes and
//! reads plaintext through.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// A TCP socket under a protocol layer; `fin_pending` once the peer ended but its layer
    /// still had bytes for the socket (the FIN follows them).
    Layered {
        sock: TcpStream,
        layer: Box<dyn Layer>,
        fin_pending: bool,
    },
}

/// A protocol between the peer and its TCP socket (TLS in `tests/tls_chunking.rs`), non-blocking
/// throughout: the peer writes and reads plaintext through it as it would through the socket.
pub trait Layer {
    /// Takes plaintext to send, as a non-blocking socket would: some bytes, or `WouldBlock`
    /// while what it took before has not reached the socket.
    fn write(&mut self, sock: &mut TcpStream, bytes: &[u8]) -> io::Result<usize>;
    /// Reads plaintext: `Ok(0)` at the clean end of the peer's stream, `WouldBlock` when there
    /// is nothing more for now.
    fn read(&mut self, sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what the layer holds for the socket; `Ok(true)` once nothing is left.
    fn flush(&mut self, sock: &mut TcpStream) -> io::Result<bool>;
    /// Ends the sending direction within the layer (TLS: queues `close_notify`); the peer sends
    /// FIN once [`Layer::flush`] has written it.
    fn close(&mut self);
    /// The layer's own opening (a handshake) is complete.
    fn is_ready(&self) -> bool;
}

/// The peer's socket and what it has seen.
pub struct Peer {
    /// `None` once the peer reset (or, on a Unix socket, plainly closed) its socket.
    stream: Option<Stream>,
    /// Replies read so far.
    pub got: Vec<u8>,
    /// The reactor's FIN was read.
    pub eof: bool,
    /// The first read error, which ends reading (a reset after the reactor aborted).
    pub read_error: Option<ErrorKind>,
    /// Failed writes and shutdowns, for the checks.
    pub errors: Vec<String>,
}

impl Peer {
    /// Connects to a TCP listener; `rcvbuf` shrinks the receive buffer (and so the window)
    /// first. The listener's backlog completes the connect before the reactor accepts it.
    pub fn tcp(addr: SocketAddr, rcvbuf: Option<usize>) -> Peer {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        socket.connect(&addr.into()).expect("connect");
        let stream = TcpStream::from(socket);
        // Each write leaves in its own segment, so the chunking reaches the reactor.
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream.set_nonblocking(true).expect("non-blocking");
        Peer::new(Stream::Tcp(stream))
    }

    /// Connects to a TCP listener, as [`Peer::tcp`], and speaks through `layer`.
    pub fn layered(addr: SocketAddr, rcvbuf: Option<usize>, layer: Box<dyn Layer>) -> Peer {
        let Peer {
            stream: Some(Stream::Tcp(sock)),
            ..
        } = Peer::tcp(addr, rcvbuf)
        else {
            unreachable!("Peer::tcp makes a TCP stream")
        };
        Peer::new(Stream::Layered {
            sock,
            layer,
            fin_pending: false,
        })
    }

    /// The layer's opening is complete (always, without a layer).
    pub fn is_ready(&self) -> bool {
        match &self.stream {
            Some(Stream::Layered { layer, .. }) => layer.is_ready(),
            _ => true,
        }
    }

    /// Connects to a Unix stream listener at `path`.
    pub fn unix(path: &Path) -> Peer {
        let stream = UnixStream::connect(path).expect("connect unix");
        stream.set_nonblocking(true).expect("non-blocking");
        Peer::new(Stream::Unix(stream))
    }

    fn new(stream: Stream) -> Peer {
        Peer {
            stream: Some(stream),
            got: Vec::new(),
            eof: false,
            read_error: None,
            errors: Vec::new(),
        }
    }

    /// The socket is gone (reset or closed by the peer).
    pub fn is_gone(&self) -> bool {
        self.stream.is_none()
    }

    /// Nothing more will arrive: EOF, a read error, or the socket is gone.
    pub fn is_done(&self) -> bool {
        self.stream.is_none() || self.eof || self.read_error.is_some()
    }

    /// One non-blocking write; `Ok(0)` once the socket is gone. Errors other than `WouldBlock`
    /// and `Interrupted` are recorded.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let result = match &mut self.stream {
            Some(Stream::Tcp(s)) => s.write(bytes),
            Some(Stream::Unix(s)) => s.write(bytes),
            Some(Stream::Layered { sock, layer, .. }) => layer.write(sock, bytes),
            None => return Ok(0),
        };
        if let Err(e) = &result {
            if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) {
                self.errors.push(format!("write: {e}"));
            }
        }
        result
    }

    /// Reads whatever replies have arrived, until `WouldBlock`, EOF or an error.
    /// A layer first writes what it holds for the socket (and the FIN behind it, once due).
    pub fn read_available(&mut self) {
        self.flush_layer();
        let mut buf = [0u8; 64 * 1024];
        while !self.eof && self.read_error.is_none() {
            let result = match &mut self.stream {
                Some(Stream::Tcp(s)) => s.read(&mut buf),
                Some(Stream::Unix(s)) => s.read(&mut buf),
                Some(Stream::Layered { sock, layer, .. }) => layer.read(sock, &mut buf),
                None => return,
            };
            match result {
                // The reactor sent FIN.
                Ok(0) => self.eof = true,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset; whether one may happen is checked against the scenario.
                Err(e) => self.read_error = Some(e.kind()),
            }
        }
    }

    /// Holds back what is written next (TCP only) until the socket is shut down, so that the
    /// FIN travels in the segment of the last data (Linux adds it to an unsent tail segment).
    pub fn cork(&self) {
        if let Some(Stream::Tcp(s) | Stream::Layered { sock: s, .. }) = &self.stream {
            SockRef::from(s).set_tcp_cork(true).expect("TCP_CORK");
        }
    }

    /// Writes what a layer holds for the socket; sends the FIN behind it once that is all out.
    fn flush_layer(&mut self) {
        let Some(Stream::Layered {
            sock,
            layer,
            fin_pending,
        }) = &mut self.stream
        else {
            return;
        };
        match layer.flush(sock) {
            Ok(true) if *fin_pending => {
                *fin_pending = false;
                if let Err(e) = sock.shutdown(Shutdown::Write) {
                    self.errors.push(format!("shutdown: {e}"));
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                // The FIN cannot follow bytes that will never be written.
                *fin_pending = false;
                self.errors.push(format!("write: {e}"));
            }
        }
    }

    /// Sends FIN; through a layer, ends the layer's stream first (TLS: `close_notify`), and the
    /// FIN follows once that is written.
    pub fn shutdown_write(&mut self) {
        if let Some(Stream::Layered {
            layer, fin_pending, ..
        }) = &mut self.stream
        {
            layer.close();
            *fin_pending = true;
            self.flush_layer();
            return;
        }
        let result = match &self.stream {
            Some(Stream::Tcp(s)) => s.shutdown(Shutdown::Write),
            Some(Stream::Unix(s)) => s.shutdown(Shutdown::Write),
            Some(Stream::Layered { .. }) | None => Ok(()),
        };
        if let Err(e) = result {
            self.errors.push(format!("shutdown: {e}"));
        }
    }

    /// Closes without FIN: `SO_LINGER` 0 makes a TCP close send RST; a Unix socket just closes.
    pub fn reset(&mut self) {
        if let Some(Stream::Tcp(s) | Stream::Layered { sock: s, .. }) = &self.stream {
            SockRef::from(s)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER 0");
        }
        self.stream = None;
    }
}

/// A Unix socket path unique to this process and run, removed again on drop.
pub struct SocketPath(pub PathBuf);

impl SocketPath {
    pub fn new() -> SocketPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("sockloop-chunking-{}-{n}.sock", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        SocketPath(path)
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
