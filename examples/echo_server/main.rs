//! An echo server: every byte a client sends is written back to it.
//!
//! ```text
//! cargo run --example echo_server                        # listens on 127.0.0.1:7878
//! cargo run --example echo_server -- --listen 0.0.0.0:9000   # or wherever you ask
//! cargo run --release --example echo_server -- --threads 2   # one reactor per core
//! RUST_LOG=debug cargo run --example echo_server         # watch every connection event
//! cargo run --features tls --example echo_server -- --tls   # TLS, with a throwaway CA
//! ```
//!
//! Then talk to it with `nc 127.0.0.1 7878`, `cargo run --example echo_client`, or load it with
//! `cargo run --release --example c10k -- --addr 127.0.0.1:7878`.
//!
//! With `--tls` (cargo feature `tls`) it serves TLS on the same port. Without `--cert` and
//! `--key` it makes a throwaway CA and a certificate for localhost and 127.0.0.1 at startup and
//! writes the CA's certificate to `target/sockloop-echo_server-ca.pem`, the file
//! `echo_client --tls` verifies the server with by default; try it with
//! `openssl s_client -CAfile target/sockloop-echo_server-ca.pem -connect localhost:7878` too.
//! The handler is the same: TLS is the reactor's, and the handler sees plaintext.
//!
//! With `--threads N` (N > 1) it runs N single-threaded reactors (`ReactorPool`), each with its
//! own listener on the same port (`SO_REUSEPORT`): the kernel spreads new connections over them,
//! and a connection stays on the thread that accepted it.
//!
//! Ctrl-C (SIGINT) or SIGTERM shuts it down gracefully: it stops accepting, each client's pending
//! echo is sent and its connection closed, and once none is left it logs a summary of its
//! counters and exits with status 0. Connections still open after 5 seconds are cut off (a client
//! that never closes its own side, like an idle `nc`, is sent FIN at once but waited for up to
//! then); a second signal exits at once.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/proxy.rs"]
mod proxy;
#[path = "../common/tls.rs"]
mod tls;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use clap::Parser;
use sockloop::{CloseReason, Context, Handler, Input, ListenOptions, Reactor, ReactorPool, Stats};

const DEFAULT_ADDR: &str = "127.0.0.1:7878";
/// How long a signalled shutdown waits for connections to finish before closing them.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(about = "An echo server: every byte a client sends is written back to it")]
struct Args {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADDR)]
    listen: SocketAddr,
    /// The older form of --listen: the address as a bare argument.
    #[arg(value_name = "ADDR", hide = true, conflicts_with = "listen")]
    listen_positional: Option<SocketAddr>,
    /// Reactor threads sharing the port with SO_REUSEPORT (1: the main thread serves alone).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(flatten)]
    tls: tls::ServerArgs,
    #[command(flatten)]
    proxy: proxy::ProxyArgs,
}

/// One client's protocol: write back whatever arrives.
///
/// When the client shuts down its write side, the default `on_read_closed` sends what is still
/// queued and then closes, so `nc -N` gets its whole echo before the connection ends.
struct Echo;

impl Handler for Echo {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        log::info!("{}: connected from {}", cx.id(), proxy::peer(cx));
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        log::info!("{}: {reason}", cx.id());
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let result = serve(&args);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("echo_server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Serves on one reactor or on `--threads` of them, with TLS if asked.
fn serve(args: &Args) -> Result<(), String> {
    let tls = tls::server(&args.tls, "echo_server", &[])?;
    let options = match &tls {
        Some(tls) => tls.listen_options(ListenOptions::new()),
        None => ListenOptions::new(),
    };
    let options = args.proxy.apply(options, "echo_server")?;
    let announce = |bound: SocketAddr| {
        if let Some(tls) = &tls {
            let port = bound.port();
            tls.announce(&format!(
                "cargo run --features tls --example echo_client -- --tls 127.0.0.1:{port}  \
                 (or: openssl s_client -CAfile {{ca}} -connect localhost:{port})"
            ));
        }
    };
    let addr = args.listen_positional.unwrap_or(args.listen);
    match args.threads {
        0 => Err("--threads must be at least 1".to_string()),
        1 => run(addr, options, announce),
        n => run_pool(addr, n, options, announce),
    }
}

/// Listens on the main thread's reactor and serves until SIGINT or SIGTERM.
fn run(
    addr: SocketAddr,
    options: ListenOptions,
    announce: impl Fn(SocketAddr),
) -> Result<(), String> {
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let (_listener, bound) = reactor
        .listen_with(addr, options, || Echo)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let exit = common::shutdown_on_signals(&mut reactor, "echo_server", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    println!("echo server listening on {bound}");
    announce(bound);

    // Returns once a signal's graceful shutdown has closed every connection.
    reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    exit.report(reactor.stats());
    Ok(())
}

/// Serves from `threads` reactors sharing the port, until SIGINT or SIGTERM.
///
/// The signals are read by one thread that tells every reactor to shut down through its
/// `Handle` (the single-reactor mode registers them in the reactor's own poll instead, but here
/// no one reactor can reach the others).
fn run_pool(
    addr: SocketAddr,
    threads: usize,
    options: ListenOptions,
    announce: impl Fn(SocketAddr),
) -> Result<(), String> {
    // Reactors start in order: the first binds (perhaps port 0), the others reuse its port.
    let port = Arc::new(Mutex::new(addr));
    let (pool, started) = ReactorPool::spawn(threads, move |_index, reactor| {
        let mut addr = port.lock().unwrap_or_else(|e| e.into_inner());
        let options = options.clone().reuse_port(true);
        let (_, bound) = reactor.listen_with(*addr, options, || Echo)?;
        *addr = bound;
        Ok(bound)
    })
    .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!(
        "echo server listening on {} ({threads} reactor threads)",
        started[0]
    );
    announce(started[0]);
    let watcher = watch_signals(pool.handles().to_vec())?;

    // Returns once every reactor's graceful shutdown has closed all its connections.
    let served = pool.join();
    let signal = watcher.finish();
    let stats: Vec<Stats> = served.map_err(|e| format!("event loop failed: {e}"))?;
    let summary = format!("{threads} reactors | {}", stats.into_iter().sum::<Stats>());
    match signal {
        Some(name) => log::info!("echo_server: stopped by {name}: {summary}"),
        None => log::info!("echo_server: finished: {summary}"),
    }
    Ok(())
}

/// The thread that turns SIGINT or SIGTERM into a graceful shutdown of every reactor.
#[cfg(unix)]
struct SignalWatcher {
    stop: signal_hook::iterator::Handle,
    thread: thread::JoinHandle<Option<&'static str>>,
}

#[cfg(unix)]
fn watch_signals(handles: Vec<sockloop::Handle>) -> Result<SignalWatcher, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    use signal_hook::low_level::signal_name;

    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot watch for signals: {e}"))?;
    let stop = signals.handle();
    let thread = thread::spawn(move || {
        let mut first = None;
        for sig in signals.forever() {
            let name = signal_name(sig).unwrap_or("signal");
            if first.is_some() {
                eprintln!("echo_server: {name} again: exiting at once");
                std::process::exit(128 + sig);
            }
            log::info!("{name}: shutting down within {GRACE:?} ({name} again exits at once)");
            first = Some(name);
            for handle in &handles {
                let _ = handle.shutdown(GRACE);
            }
        }
        first
    });
    Ok(SignalWatcher { stop, thread })
}

#[cfg(unix)]
impl SignalWatcher {
    /// Stops watching; returns the signal that started the shutdown, if one did.
    fn finish(self) -> Option<&'static str> {
        self.stop.close();
        self.thread.join().ok().flatten()
    }
}

/// Without Unix signals there is nothing to watch: the server runs until it is killed.
#[cfg(not(unix))]
struct SignalWatcher;

#[cfg(not(unix))]
fn watch_signals(_handles: Vec<sockloop::Handle>) -> Result<SignalWatcher, String> {
    Ok(SignalWatcher)
}

#[cfg(not(unix))]
impl SignalWatcher {
    fn finish(self) -> Option<&'static str> {
        None
    }
}
