//! The three echo servers, each run in a child process of the benchmark: sockloop, a tokio
//! current-thread runtime with a task per connection, and a hand-written mio loop.
//!
//! All three listen on `127.0.0.1:0` with a backlog of 4096 (so a 10,000-connection ramp-up is
//! queued, not refused), set `TCP_NODELAY` on accepted sockets, and print their bound address as
//! the first line of stdout. They serve until their stdin reaches end-of-file: the benchmark keeps
//! the write end of that pipe, so a server never outlives the benchmark, even if it is killed.
//!
//! Each server counts the bytes it has echoed, and a control thread answers every line read
//! from stdin with that count: the benchmark divides the server's CPU time and system calls by
//! the messages the server itself handled between two such readings, which is exact at the
//! window's edges (the client's count is off there by up to one message per connection). The
//! counter has a single writer, the event loop, so counting is a plain load and store per read,
//! the same in all three servers.
//!
//! With [`SINK_ENV`] set in its environment, a server also listens on a second port, the sink,
//! where it reads and discards everything (counting the bytes apart from the echoed ones); the
//! control thread answers the line `sink` with that port's address (`none` without it). The
//! latency bench sends its blaster there. The three sinks do the same work: read into a 64 KiB
//! buffer until the socket is drained (sockloop's shared read buffer is 64 KiB), never write.
//! Without the variable nothing changes: no second listener, and every other line is answered
//! with the echoed-byte count as before.
//!
//! A fourth kind, `baseline`, is sockloop's server from another build of the same bench (an A/B
//! of two versions of the library, `--baseline PATH`): [`spawn`] starts that binary as its
//! `sockloop`, so it answers the same questions; this binary never serves it itself.

use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Socket, Type};
use sockloop::{Context, Handler, Input, ListenOptions, Reactor};

use crate::common::process::ServerProcess;

/// Listen backlog of every server; the kernel clamps it to `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// Environment variable with the sockloop server's flush batch (`--flush-batch`), if set.
pub const FLUSH_BATCH_ENV: &str = "ECHO_FLUSH_BATCH";

/// Environment variable with the tokio echo's read buffer in bytes, if not the canonical 1 KiB.
pub const TOKIO_BUF_ENV: &str = "ECHO_TOKIO_BUF";

/// Set (to anything) in a server's environment to make it listen on a sink port too.
pub const SINK_ENV: &str = "SOCKLOOP_ECHO_SINK";

/// The sink's read buffer, in the tokio and mio servers (sockloop's shared one is as large).
const SINK_BUF: usize = 64 * 1024;

/// Bytes echoed so far; written only by the serving thread, read by the control thread.
static ECHOED: AtomicU64 = AtomicU64::new(0);

/// Bytes read and discarded by the sink so far; likewise.
static SUNK: AtomicU64 = AtomicU64::new(0);

/// The sink's address, set before the server announces itself (so before any question).
static SINK_ADDR: OnceLock<SocketAddr> = OnceLock::new();

/// Counts `n` echoed bytes (a load and a store: there is one writer).
fn count_echoed(n: usize) {
    ECHOED.store(ECHOED.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
}

/// Counts `n` bytes read by the sink (one writer, as above).
fn count_sunk(n: usize) {
    SUNK.store(SUNK.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
}

/// The control thread's answer to one line from the benchmark.
fn answer(question: &str) -> String {
    match question.trim() {
        "sink" => SINK_ADDR
            .get()
            .map_or_else(|| "none".to_string(), |addr| addr.to_string()),
        "sunk" => SUNK.load(Ordering::Relaxed).to_string(),
        // "count", or anything else: the echoed bytes, as the echo bench asks.
        _ => ECHOED.load(Ordering::Relaxed).to_string(),
    }
}

/// The servers the benchmark compares, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sockloop,
    Tokio,
    Mio,
    /// sockloop's server from another build of the same bench (`--baseline PATH`): that binary
    /// re-executed as its `Sockloop` kind, for an A/B of two versions of the library. This
    /// binary never serves it itself.
    Baseline,
}

impl Kind {
    /// The servers compared by default.
    pub const ALL: [Kind; 3] = [Kind::Sockloop, Kind::Tokio, Kind::Mio];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Sockloop => "sockloop",
            Kind::Tokio => "tokio",
            Kind::Mio => "mio",
            Kind::Baseline => "baseline",
        }
    }

    /// The kind named `name`, `baseline` included.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .chain([Kind::Baseline])
            .find(|k| k.name() == name)
    }
}

/// Starts a server of `kind` in a child process that `env` names the kind to, under
/// `taskset -c CPU` if `cpu` is given: this binary re-executed, or for [`Kind::Baseline`] the
/// `baseline` binary asked for its `sockloop` server (same variable, same placement).
pub fn spawn(
    kind: Kind,
    env: &str,
    baseline: Option<&Path>,
    cpu: Option<usize>,
) -> io::Result<ServerProcess> {
    match (kind, baseline) {
        (Kind::Baseline, Some(exe)) => {
            ServerProcess::spawn_exe(exe, env, Kind::Sockloop.name(), kind.name(), cpu)
        }
        (Kind::Baseline, None) => Err(io::Error::other("no baseline binary (--baseline PATH)")),
        _ => ServerProcess::spawn(env, kind.name(), cpu),
    }
}

/// The baseline binary of an A/B run, checked and made absolute (`taskset` would look a bare
/// name up in `PATH`), from the `--baseline` option or else from the variable `env_name`.
pub fn baseline_exe(option: Option<PathBuf>, env_name: &str) -> Result<Option<PathBuf>, String> {
    let Some(path) = option.or_else(|| std::env::var_os(env_name).map(PathBuf::from)) else {
        return Ok(None);
    };
    let exe = path
        .canonicalize()
        .map_err(|e| format!("baseline {}: {e}", path.display()))?;
    if !exe.is_file() {
        return Err(format!("baseline {}: not a file", exe.display()));
    }
    Ok(Some(exe))
}

/// The servers to run: `names` (or the defaults, with `baseline` added when there is a
/// baseline binary), each once, in the order given.
pub fn kinds(names: Option<Vec<String>>, baseline: Option<&Path>) -> Result<Vec<Kind>, String> {
    let names = names.unwrap_or_else(|| {
        let defaults = Kind::ALL
            .into_iter()
            .chain(baseline.map(|_| Kind::Baseline));
        defaults.map(|k| k.name().to_string()).collect()
    });
    let mut kinds = Vec::new();
    for name in &names {
        let kind = Kind::parse(name.trim())
            .ok_or_else(|| format!("unknown server {name:?} (sockloop, tokio, mio, baseline)"))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    match (kinds.contains(&Kind::Baseline), baseline) {
        (true, None) => Err("server baseline needs --baseline PATH".to_string()),
        (false, Some(exe)) => {
            println!(
                "note: --baseline {} given, but baseline is not among the servers",
                exe.display()
            );
            Ok(kinds)
        }
        _ => Ok(kinds),
    }
}

/// Entry point of a server child: serves `kind` until stdin closes.
pub fn serve(kind: &str) -> ExitCode {
    let Some(kind) = Kind::parse(kind) else {
        eprintln!("echo server: unknown kind {kind:?} (expected sockloop, tokio or mio)");
        return ExitCode::FAILURE;
    };
    // The benchmark raised its own limit and children inherit it; raising again is harmless and
    // covers a server started by hand.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    std::thread::spawn(|| {
        // Each line is a question (see `answer`); end-of-file (or an error) on stdin means the
        // benchmark is done with us.
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let mut out = io::stdout().lock();
            if writeln!(out, "{}", answer(&line))
                .and_then(|()| out.flush())
                .is_err()
            {
                break;
            }
        }
        std::process::exit(0);
    });
    let sink = std::env::var_os(SINK_ENV).is_some();
    let result = match kind {
        Kind::Sockloop => run_sockloop(sink),
        Kind::Tokio => run_tokio(sink),
        Kind::Mio => run_mio(sink),
        // The bench starts the baseline build's own binary as `sockloop` instead.
        Kind::Baseline => Err(io::Error::other(
            "the baseline is served by its own binary (--baseline PATH) as its sockloop",
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo server ({}): {e}", kind.name());
            ExitCode::FAILURE
        }
    }
}

/// Tells the benchmark where we listen: the first line of stdout.
fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{addr}")?;
    out.flush()
}

/// A non-blocking loopback listener on an ephemeral port with the common backlog (the peers'
/// own `bind` would use 1024).
fn bind_listener() -> io::Result<std::net::TcpListener> {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Records the sink's address, for the control thread's `sink` answer.
fn set_sink_addr(addr: SocketAddr) -> io::Result<()> {
    SINK_ADDR
        .set(addr)
        .map_err(|_| io::Error::other("the sink listens twice"))
}

/// sockloop's echo: the handler of `examples/echo_server/main.rs` without its logging.
struct Echo;

impl Handler for Echo {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        count_echoed(input.len());
        cx.write(input.take_all());
    }
}

/// sockloop's sink: consumes whatever arrives and never writes.
struct Sink;

impl Handler for Sink {
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        count_sunk(input.len());
        input.consume(input.len());
    }
}

fn run_sockloop(sink: bool) -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    if let Some(n) = std::env::var(FLUSH_BATCH_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        reactor.set_flush_batch(n);
    }
    let options = ListenOptions::new().backlog(BACKLOG).nodelay(true);
    if sink {
        let (_, addr) =
            reactor.listen_with(([127, 0, 0, 1], 0).into(), options.clone(), || Sink)?;
        set_sink_addr(addr)?;
    }
    let (_, addr) = reactor.listen_with(([127, 0, 0, 1], 0).into(), options, || Echo)?;
    announce(addr)?;
    reactor.run()
}

/// tokio's canonical echo server (its README's), on the current-thread runtime: one task per
/// connection reading into a 1 KiB buffer (another size if [`TOKIO_BUF_ENV`] says so) and
/// writing it back with `write_all`. The sink, if asked for, is another accept loop on the same
/// runtime, with a task per connection reading into a 64 KiB buffer.
fn run_tokio(sink: bool) -> io::Result<()> {
    use tokio::io::AsyncReadExt;

    let tokio_buf: Option<usize> = std::env::var(TOKIO_BUF_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        if sink {
            let sink = tokio::net::TcpListener::from_std(bind_listener()?)?;
            set_sink_addr(sink.local_addr()?)?;
            tokio::spawn(async move {
                loop {
                    let Ok((mut socket, _)) = sink.accept().await else {
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; SINK_BUF];
                        // Until the peer closes or the connection fails.
                        while let Ok(n @ 1..) = socket.read(&mut buf).await {
                            count_sunk(n);
                        }
                    });
                }
            });
        }
        let listener = tokio::net::TcpListener::from_std(bind_listener()?)?;
        announce(listener.local_addr()?)?;
        loop {
            let (mut socket, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("tokio echo: accept failed: {e}");
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            match tokio_buf {
                // The canonical server: its 1 KiB lives in the task.
                None => tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    tokio_echo(&mut socket, &mut buf).await
                }),
                Some(n) => tokio::spawn(async move {
                    let mut buf = vec![0u8; n];
                    tokio_echo(&mut socket, &mut buf).await
                }),
            };
        }
    })
}

/// One connection of the tokio echo: read into `buf`, write it back with `write_all`, until the
/// peer closes or the connection fails.
async fn tokio_echo(socket: &mut tokio::net::TcpStream, buf: &mut [u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    loop {
        let n = match socket.read(buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        count_echoed(n);
        if socket.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The listener's token; connections use their slab key.
const LISTENER: Token = Token(usize::MAX);
/// The sink listener's token, when there is one.
const SINK_LISTENER: Token = Token(usize::MAX - 1);

/// One connection of the mio loop: the socket and whatever the kernel did not take yet.
struct MioConn {
    stream: TcpStream,
    pending: Vec<u8>,
    /// Accepted by the sink: what it reads is discarded, and it never writes.
    sink: bool,
}

impl MioConn {
    /// Handles one readiness event; returns false when the connection is finished.
    fn ready(&mut self, event: &mio::event::Event, buf: &mut [u8]) -> bool {
        if event.is_writable() && !self.pending.is_empty() && !self.flush() {
            return false;
        }
        if !(event.is_readable() || event.is_read_closed() || event.is_error()) {
            return true;
        }
        // Edge-triggered: read until WouldBlock, echoing each chunk.
        loop {
            match self.stream.read(buf) {
                // Peer sent FIN: echo servers close in turn.
                Ok(0) => return false,
                Ok(n) if self.sink => count_sunk(n),
                Ok(n) => {
                    count_echoed(n);
                    if !self.send(&buf[..n]) {
                        return false;
                    }
                }
                // Drained; the next arrival raises a new edge.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                // A signal; nothing was read.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Reset or other failure: drop the connection.
                Err(_) => return false,
            }
        }
    }

    /// Writes `data`, keeping what the socket does not take; false on a write error.
    fn send(&mut self, data: &[u8]) -> bool {
        if !self.pending.is_empty() {
            // Earlier output is still waiting: keep the order, WRITABLE will flush it.
            self.pending.extend_from_slice(data);
            return true;
        }
        let mut sent = 0;
        while sent < data.len() {
            match self.stream.write(&data[sent..]) {
                Ok(0) => return false,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.pending.extend_from_slice(&data[sent..]);
        true
    }

    /// Writes pending output until done or `WouldBlock`; false on a write error.
    fn flush(&mut self) -> bool {
        let mut sent = 0;
        let ok = loop {
            if sent == self.pending.len() {
                break true;
            }
            match self.stream.write(&self.pending[sent..]) {
                Ok(0) => break false,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        self.pending.drain(..sent);
        if self.pending.is_empty() {
            // Hand the allocation back: an idle connection holds no buffer.
            self.pending = Vec::new();
        }
        ok
    }
}

/// Accepts every pending connection of `listener` into `conns` (as sink connections if `sink`).
fn mio_accept(
    listener: &TcpListener,
    sink: bool,
    poll: &Poll,
    conns: &mut Slab<MioConn>,
) -> io::Result<()> {
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            // The client gave up before we accepted it (or a signal): next one.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                // Out of descriptors or memory; the benchmark stays well below.
                eprintln!("mio echo: accept failed: {e}");
                return Ok(());
            }
        };
        let _ = stream.set_nodelay(true);
        let entry = conns.vacant_entry();
        let interest = Interest::READABLE | Interest::WRITABLE;
        poll.registry()
            .register(&mut stream, Token(entry.key()), interest)?;
        entry.insert(MioConn {
            stream,
            pending: Vec::new(),
            sink,
        });
    }
}

/// A plain mio echo loop in the style of mio's `tcp_server` example: a slab of streams by token,
/// one shared read buffer, sockets registered once for both directions (edge-triggered). The
/// sink, if asked for, is a second listener whose connections share the slab.
fn run_mio(sink: bool) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut sink_listener = None;
    if sink {
        let mut listener = TcpListener::from_std(bind_listener()?);
        poll.registry()
            .register(&mut listener, SINK_LISTENER, Interest::READABLE)?;
        set_sink_addr(listener.local_addr()?)?;
        sink_listener = Some(listener);
    }
    let mut listener = TcpListener::from_std(bind_listener()?);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    announce(listener.local_addr()?)?;
    let mut conns: Slab<MioConn> = Slab::new();
    // Shared by echo and sink connections: the sink reads into 64 KiB, like the others.
    let mut buf = vec![0u8; SINK_BUF];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                mio_accept(&listener, false, &poll, &mut conns)?;
                continue;
            }
            if event.token() == SINK_LISTENER {
                if let Some(sink) = &sink_listener {
                    mio_accept(sink, true, &poll, &mut conns)?;
                }
                continue;
            }
            let key = event.token().0;
            let keep = match conns.get_mut(key) {
                Some(conn) => conn.ready(event, &mut buf),
                None => continue,
            };
            if !keep {
                // Dropping the stream closes it, which also removes it from epoll.
                conns.remove(key);
            }
        }
    }
}
