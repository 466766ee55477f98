//! The two TLS echo servers, each run in a child process of the bench: sockloop with
//! `ListenOptions::tls`, and tokio-rustls on tokio's current-thread runtime with a task per
//! connection. Both use the same `ServerConfig` (`config.rs`), listen on `127.0.0.1:0` with a
//! backlog of 4096, set `TCP_NODELAY`, and print their address as the first line of stdout.
//!
//! Each server counts the handshakes it completed and the plaintext bytes it echoed, and a
//! control thread answers each line read from stdin: `handshakes` with the first count,
//! anything else with the second. The bench divides the server's CPU time by the counts it
//! reads at a window's edges. The counters have a single writer, the serving thread, so
//! counting is a plain load and store, the same in both servers. End of stdin ends the server.
//!
//! The tokio server is what a user of tokio-rustls writes (its own examples' shape): accept,
//! spawn a task, `TlsAcceptor::accept`, then read into a buffer and `write_all` it back; at end
//! of stream it calls `shutdown`, which sends a `close_notify` and a FIN, as sockloop's `close`
//! does. Its buffer is a `Vec` of [`DEFAULT_TOKIO_BUF`] bytes by default (see the bench's top
//! comment for why that size).
//!
//! A third kind, `baseline`, is sockloop's server from another build of this bench (an A/B of
//! two versions of the library): [`spawn`] starts that binary as its `sockloop`.

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use socket2::{Domain, Socket, Type};
use sockloop::{Context, Handler, Input, ListenOptions, Reactor};

use crate::common::process::ServerProcess;
use crate::config;

/// Listen backlog of both servers; the kernel clamps it to `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// Environment variable with the tokio server's read buffer in bytes.
pub const TOKIO_BUF_ENV: &str = "SOCKLOOP_TLS_BENCH_TOKIO_BUF";

/// The tokio server's read buffer unless [`TOKIO_BUF_ENV`] says otherwise: the most plaintext
/// one TLS record carries.
pub const DEFAULT_TOKIO_BUF: usize = 16 * 1024;

/// Handshakes completed so far; written only by the serving thread.
static HANDSHAKES: AtomicU64 = AtomicU64::new(0);

/// Plaintext bytes echoed so far; likewise.
static ECHOED: AtomicU64 = AtomicU64::new(0);

fn count_handshake() {
    HANDSHAKES.store(HANDSHAKES.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn count_echoed(n: usize) {
    ECHOED.store(ECHOED.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
}

/// The servers the bench compares, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sockloop,
    Tokio,
    /// sockloop's server from another build of this bench (`--baseline PATH`).
    Baseline,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sockloop => "sockloop",
            Kind::Tokio => "tokio",
            Kind::Baseline => "baseline",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        [Kind::Sockloop, Kind::Tokio, Kind::Baseline]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// Starts a server of `kind` (this binary with `env`=`kind`, or the baseline binary asked for
/// its `sockloop`), under `taskset -c CPU` if `cpu` is given.
pub fn spawn(
    kind: Kind,
    env: &str,
    baseline: Option<&Path>,
    cpu: Option<usize>,
) -> io::Result<ServerProcess> {
    let mut server = match (kind, baseline) {
        (Kind::Baseline, Some(exe)) => {
            ServerProcess::spawn_exe(exe, env, Kind::Sockloop.name(), kind.name(), cpu)?
        }
        (Kind::Baseline, None) => {
            return Err(io::Error::other("no baseline binary (--baseline PATH)"))
        }
        _ => ServerProcess::spawn(env, kind.name(), cpu)?,
    };
    // Closing 10,000 connections may take longer than the usual second.
    server.exit_grace = std::time::Duration::from_secs(3);
    Ok(server)
}

/// Entry point of a server child: serves `kind` until stdin closes.
pub fn serve(kind: &str) -> ExitCode {
    let Some(kind) = Kind::parse(kind).filter(|k| *k != Kind::Baseline) else {
        eprintln!("tls server: unknown kind {kind:?} (expected sockloop or tokio)");
        return ExitCode::FAILURE;
    };
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    std::thread::spawn(|| {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let answer = match line.trim() {
                "handshakes" => HANDSHAKES.load(Ordering::Relaxed),
                _ => ECHOED.load(Ordering::Relaxed),
            };
            let mut out = io::stdout().lock();
            if writeln!(out, "{answer}")
                .and_then(|()| out.flush())
                .is_err()
            {
                break;
            }
        }
        std::process::exit(0);
    });
    let result = match kind {
        Kind::Sockloop => run_sockloop(),
        _ => run_tokio(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tls server ({}): {e}", kind.name());
            ExitCode::FAILURE
        }
    }
}

/// Tells the bench where we listen: the first line of stdout.
fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{addr}")?;
    out.flush()
}

/// sockloop's TLS echo: the plain echo handler, served with `ListenOptions::tls`.
struct Echo;

impl Handler for Echo {
    fn on_open(&mut self, _cx: &mut Context<'_>) {
        // With TLS, `on_open` comes once the handshake is done.
        count_handshake();
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        count_echoed(input.len());
        cx.write(input.take_all());
    }
}

fn run_sockloop() -> io::Result<()> {
    let tls = config::server_config().map_err(io::Error::other)?;
    let mut reactor = Reactor::new()?;
    let options = ListenOptions::new().backlog(BACKLOG).nodelay(true).tls(tls);
    let (_, addr) = reactor.listen_with(([127, 0, 0, 1], 0).into(), options, || Echo)?;
    announce(addr)?;
    reactor.run()
}

/// A non-blocking loopback listener on an ephemeral port with the common backlog (tokio's own
/// `bind` would use 1024).
fn bind_listener() -> io::Result<std::net::TcpListener> {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// tokio-rustls's echo on the current-thread runtime: a task per connection that completes
/// the handshake, then reads into its buffer and writes what it read back.
fn run_tokio() -> io::Result<()> {
    let tls = config::server_config().map_err(io::Error::other)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let buf_size = std::env::var(TOKIO_BUF_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(DEFAULT_TOKIO_BUF);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(bind_listener()?)?;
        announce(listener.local_addr()?)?;
        loop {
            let (socket, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("tokio-rustls echo: accept failed: {e}");
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(socket).await {
                    count_handshake();
                    tokio_echo(&mut stream, buf_size).await;
                }
            });
        }
    })
}

/// One connection of the tokio echo after its handshake: read into a buffer of `buf_size`
/// bytes and write it back with `write_all` until the peer's `close_notify` (or an error); then
/// `shutdown`, which sends our `close_notify` and a FIN.
async fn tokio_echo(
    stream: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    buf_size: usize,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut buf = vec![0u8; buf_size];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => return,
        };
        count_echoed(n);
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = stream.shutdown().await;
}
