//! The TLS bench's load: one thread, a mio loop that drives rustls `ClientConnection`s
//! directly. It shares no code with either server, so that a defect of sockloop's TLS layer
//! cannot count on both sides of a comparison.
//!
//! Each connection has a [`Role`]:
//!
//! - [`Role::Cycle`]: connect, handshake, send 64 bytes, wait for their echo, send a
//!   `close_notify` and a FIN, wait for the server's end of stream; then the connection is done
//!   and (while [`Client::cycling`]) a new one takes its place.
//! - [`Role::Stream`]: after the handshake, keep `window` bytes of plaintext in flight, written
//!   in chunks, and count the echo.
//! - [`Role::Idle`]: handshake, then nothing until [`Client::echo_idle`] sends one 64-byte
//!   message on each.
//!
//! The client reads its sockets 64 KiB at a time and feeds rustls from memory (rustls's own
//! `read_tls` would read at most 4 KiB per system call), and its writes leave in one
//! `write_tls` per turn: it spends as little as it can per byte, because on this two-core
//! machine its single CPU is what limits the load.
//!
//! Connections come from the source addresses 127.0.0.2, 127.0.0.3, ... in turn, with
//! `IP_BIND_ADDRESS_NO_PORT`, so that the kernel picks the port at `connect` for the whole
//! address pair: each source address then has the ephemeral range (32768-60999) to the
//! server's address, and a port that a closed connection left in `TIME_WAIT` can be reused on
//! loopback (`tcp_tw_reuse`).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use sockloop::rustls::pki_types::ServerName;
use sockloop::rustls::{ClientConfig, ClientConnection};

/// Bytes of the message a [`Role::Cycle`] or [`Role::Idle`] connection has echoed.
pub const MESSAGE: usize = 64;

/// How many error messages are kept for the report.
const KEEP_ERRORS: usize = 5;

/// What a connection does once its handshake is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// One 64-byte echo, then a graceful close.
    Cycle,
    /// Keep this many plaintext bytes in flight.
    Stream { window: usize },
    /// Stay open, silent unless asked to echo once.
    Idle,
}

/// What the client has seen so far.
#[derive(Debug, Default)]
pub struct Stats {
    /// Handshakes completed.
    pub handshakes: u64,
    /// [`Role::Cycle`] connections that went through their whole life.
    pub cycles: u64,
    /// [`Role::Idle`] connections whose one echo came back.
    pub echoes: u64,
    /// Plaintext bytes received.
    pub received: u64,
    /// Connections that failed (connect, TLS, or an early end).
    pub failed: u64,
    /// The first few failures.
    pub errors: Vec<String>,
}

struct Conn {
    stream: TcpStream,
    tls: ClientConnection,
    role: Role,
    /// The TCP connect completed.
    connected: bool,
    /// The TLS handshake completed.
    established: bool,
    /// Plaintext bytes written (for a `Stream`: written and not yet echoed).
    sent: u64,
    /// Echo bytes still awaited (a `Cycle`'s message, an `Idle`'s one echo).
    awaited: u64,
    /// Our `close_notify` is queued (a `Cycle` that got its echo).
    closing: bool,
    /// Our FIN is sent.
    fin_sent: bool,
}

/// How a connection's turn ended.
enum Step {
    /// It goes on.
    Open,
    /// It is done (a `Cycle` whose server closed after ours).
    Done,
}

/// The client: a mio loop of TLS connections to one server.
pub struct Client {
    poll: Poll,
    events: Events,
    conns: Slab<Conn>,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    server: SocketAddr,
    sources: Vec<Ipv4Addr>,
    next_source: usize,
    /// The socket read buffer (ciphertext).
    cipher: Vec<u8>,
    /// Where rustls's plaintext is read to (and dropped: only its length matters).
    plain: Vec<u8>,
    /// What a `Stream` connection writes, one chunk at a time.
    chunk: Vec<u8>,
    /// Whether a finished or failed `Cycle` connection is replaced by a new one.
    pub cycling: bool,
    pub stats: Stats,
}

impl Client {
    /// A client of `server` from `sources` source addresses (127.0.0.2 and on) that writes
    /// `chunk` bytes at a time on `Stream` connections.
    pub fn new(
        server: SocketAddr,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        sources: usize,
        chunk: usize,
    ) -> io::Result<Client> {
        let sources = (0..sources.clamp(1, 250))
            .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i as u8))
            .collect();
        Ok(Client {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: Slab::new(),
            config,
            name,
            server,
            sources,
            next_source: 0,
            cipher: vec![0; 64 * 1024],
            plain: vec![0; 64 * 1024],
            chunk: (0..chunk.max(1)).map(|i| (i % 251) as u8).collect(),
            cycling: false,
            stats: Stats::default(),
        })
    }

    /// Starts a connection with `role`; a failure to start is counted, not returned.
    pub fn open(&mut self, role: Role) {
        let source = self.sources[self.next_source % self.sources.len()];
        self.next_source = self.next_source.wrapping_add(1);
        if let Err(e) = self.try_open(role, source) {
            self.fail(format!("connect from {source}: {e}"));
        }
    }

    fn try_open(&mut self, role: Role, source: Ipv4Addr) -> io::Result<()> {
        let mut stream = connect(self.server, source)?;
        let mut tls = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(io::Error::other)?;
        // The window bounds what a connection buffers; rustls's own limit would split writes.
        tls.set_buffer_limit(None);
        let entry = self.conns.vacant_entry();
        self.poll.registry().register(
            &mut stream,
            Token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Conn {
            stream,
            tls,
            role,
            connected: false,
            established: false,
            sent: 0,
            awaited: 0,
            closing: false,
            fin_sent: false,
        });
        Ok(())
    }

    fn fail(&mut self, error: String) {
        self.stats.failed += 1;
        if self.stats.errors.len() < KEEP_ERRORS {
            self.stats.errors.push(error);
        }
    }

    /// Waits up to `timeout` for events and serves them.
    pub fn turn(&mut self, timeout: Duration) -> io::Result<()> {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        let keys: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        for key in keys {
            if !self.conns.contains(key) {
                continue;
            }
            let outcome = self.step(key);
            let finished = match outcome {
                Ok(Step::Open) => continue,
                Ok(Step::Done) => {
                    self.stats.cycles += 1;
                    self.conns.remove(key)
                }
                Err(e) => {
                    self.fail(e);
                    self.conns.remove(key)
                }
            };
            if finished.role == Role::Cycle && self.cycling {
                self.open(Role::Cycle);
            }
        }
        Ok(())
    }

    /// Serves events until `deadline`.
    pub fn run_until(&mut self, deadline: Instant) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            self.turn((deadline - now).min(Duration::from_millis(10)))?;
        }
    }

    /// Serves events until `done` holds, or fails at `deadline` with `what`.
    pub fn run_until_true(
        &mut self,
        deadline: Instant,
        what: &str,
        mut done: impl FnMut(&Client) -> bool,
    ) -> io::Result<()> {
        while !done(self) {
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "timed out waiting for {what} ({} open, stats {:?})",
                    self.conns.len(),
                    self.stats
                )));
            }
            self.turn(Duration::from_millis(10))?;
        }
        Ok(())
    }

    /// Sends one message on every established `Idle` connection.
    pub fn echo_idle(&mut self) -> io::Result<()> {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let conn = &mut self.conns[key];
            if conn.role != Role::Idle || !conn.established {
                continue;
            }
            conn.tls
                .writer()
                .write_all(&self.chunk[..MESSAGE.min(self.chunk.len())])?;
            conn.sent += MESSAGE as u64;
            conn.awaited += MESSAGE as u64;
            if let Err(e) = flush(conn) {
                self.fail(e);
                self.conns.remove(key);
            }
        }
        Ok(())
    }

    /// One turn of connection `key`: finish the connect, read and process everything there is,
    /// act on it, write what is queued.
    fn step(&mut self, key: usize) -> Result<Step, String> {
        let conn = &mut self.conns[key];
        if !conn.connected {
            if let Ok(Some(e)) | Err(e) = conn.stream.take_error() {
                return Err(format!("connect: {e}"));
            }
            match conn.stream.peer_addr() {
                Ok(_) => conn.connected = true,
                // Still connecting: the next event says how it went.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(Step::Open),
                Err(e) => return Err(format!("connect: {e}")),
            }
        }
        // Read to WouldBlock (edge-triggered) and feed rustls from memory.
        let (mut eof, mut new) = (false, 0);
        loop {
            match conn.stream.read(&mut self.cipher) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => new += feed(conn, &self.cipher[..n], &mut self.plain)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        self.stats.received += new;
        if !conn.established && !conn.tls.is_handshaking() {
            conn.established = true;
            self.stats.handshakes += 1;
            if conn.role == Role::Cycle {
                conn.tls
                    .writer()
                    .write_all(&self.chunk[..MESSAGE.min(self.chunk.len())])
                    .map_err(|e| e.to_string())?;
                conn.sent += MESSAGE as u64;
                conn.awaited = MESSAGE as u64;
            }
        }
        let was_awaited = conn.awaited;
        conn.awaited = conn.awaited.saturating_sub(new);
        match conn.role {
            Role::Cycle => {
                if conn.established && was_awaited > 0 && conn.awaited == 0 && !conn.closing {
                    conn.tls.send_close_notify();
                    conn.closing = true;
                }
            }
            Role::Idle => {
                if was_awaited > 0 && conn.awaited == 0 {
                    self.stats.echoes += 1;
                }
            }
            Role::Stream { window } => {
                // `sent` counts what is in flight: written and not yet echoed.
                conn.sent = conn.sent.saturating_sub(new);
                if conn.established {
                    let chunk = self.chunk.len() as u64;
                    while conn.sent + chunk <= window as u64 {
                        conn.tls
                            .writer()
                            .write_all(&self.chunk)
                            .map_err(|e| e.to_string())?;
                        conn.sent += chunk;
                    }
                }
            }
        }
        flush(conn)?;
        if eof {
            return match conn.closing {
                true => Ok(Step::Done),
                false => Err("the server ended the stream first".to_string()),
            };
        }
        Ok(Step::Open)
    }
}

/// Feeds `data` (ciphertext) to the session and drains the plaintext it yields into `plain`;
/// returns how many plaintext bytes that was.
fn feed(conn: &mut Conn, mut data: &[u8], plain: &mut [u8]) -> Result<u64, String> {
    let mut plaintext = 0;
    while !data.is_empty() {
        conn.tls
            .read_tls(&mut data)
            .map_err(|e| format!("read_tls: {e}"))?;
        conn.tls
            .process_new_packets()
            .map_err(|e| format!("TLS: {e}"))?;
        loop {
            match conn.tls.reader().read(plain) {
                Ok(0) => break,
                Ok(n) => plaintext += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("TLS read: {e}")),
            }
        }
    }
    Ok(plaintext)
}

/// Writes the session's queued records to the socket until done or `WouldBlock` (the next
/// writable edge goes on), and the FIN once a closing session has nothing left to send.
fn flush(conn: &mut Conn) -> Result<(), String> {
    if !conn.connected {
        return Ok(());
    }
    while conn.tls.wants_write() {
        match conn.tls.write_tls(&mut conn.stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    if conn.closing && !conn.fin_sent {
        conn.fin_sent = true;
        conn.stream
            .shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
    }
    Ok(())
}

/// A non-blocking connect to `server` from `source`, the port chosen by the kernel at connect
/// time for the pair of addresses (`IP_BIND_ADDRESS_NO_PORT`), with `TCP_NODELAY`.
fn connect(server: SocketAddr, source: Ipv4Addr) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::IPV4,
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    bind_address_no_port(&socket)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&server.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// `IP_BIND_ADDRESS_NO_PORT`: `bind` takes the address only, and `connect` picks the port.
fn bind_address_no_port(socket: &Socket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to an int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
