//! An echo server: every byte a client sends is written back to it.
//!
//! ```text
//! cargo run --example echo_server                        # listens on 127.0.0.1:7878
//! cargo run --example echo_server -- 0.0.0.0:9000        # or wherever you ask
//! cargo run --release --example echo_server -- --threads 2   # one reactor per core
//! RUST_LOG=debug cargo run --example echo_server         # watch every connection event
//! ```
//!
//! Then talk to it with `nc 127.0.0.1 7878`, `cargo run --example echo_client`, or load it with
//! `cargo run --release --example c10k -- --addr 127.0.0.1:7878`.
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

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use signal_hook::low_level::signal_name;
use sockloop::{CloseReason, Context, Handler, Input, ListenOptions, Reactor, ReactorPool};

const DEFAULT_ADDR: &str = "127.0.0.1:7878";
/// How long a signalled shutdown waits for connections to finish before closing them.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(about = "An echo server: every byte a client sends is written back to it")]
struct Args {
    /// Address to listen on.
    #[arg(default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Reactor threads sharing the port with SO_REUSEPORT (1: the main thread serves alone).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// One client's protocol: write back whatever arrives.
///
/// When the client shuts down its write side, the default `on_read_closed` sends what is still
/// queued and then closes, so `nc -N` gets its whole echo before the connection ends.
struct Echo {
    /// Where a multi-reactor server counts its connections (see [`Tally`]); `None` with one
    /// reactor, whose own `Stats` are printed at exit.
    tally: Option<Arc<Tally>>,
    echoed: u64,
}

impl Echo {
    fn new(tally: Option<Arc<Tally>>) -> Echo {
        Echo { tally, echoed: 0 }
    }
}

impl Handler for Echo {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        match cx.peer_addr() {
            Ok(peer) => log::info!("{}: connected from {peer}", cx.id()),
            Err(e) => log::info!("{}: connected (peer address unknown: {e})", cx.id()),
        }
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let data = input.take_all();
        self.echoed += data.len() as u64;
        cx.write(data);
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        log::info!("{}: {reason}", cx.id());
        if let Some(tally) = &self.tally {
            tally.record(self.echoed, &reason);
        }
    }
}

/// Totals of one reactor of a pool, kept by its handlers as connections close.
///
/// A pool's reactors end on their own threads, and `ReactorPool::join` returns no `Stats`, so
/// the summary of a multi-reactor server is counted here instead. Handlers add to it once per
/// connection (at close), never per message, and each reactor has its own, so the counters are
/// never contended.
#[derive(Default)]
struct Tally {
    closed: AtomicU64,
    errors: AtomicU64,
    echoed: AtomicU64,
}

impl Tally {
    fn record(&self, echoed: u64, reason: &CloseReason) {
        self.closed.fetch_add(1, Relaxed);
        self.echoed.fetch_add(echoed, Relaxed);
        if reason.is_error() || matches!(reason, CloseReason::ShutdownDeadline) {
            self.errors.fetch_add(1, Relaxed);
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let result = match args.threads {
        0 => Err("--threads must be at least 1".to_string()),
        1 => run(args.addr),
        n => run_pool(args.addr, n),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("echo_server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Listens on the main thread's reactor and serves until SIGINT or SIGTERM.
fn run(addr: SocketAddr) -> Result<(), String> {
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let (_listener, bound) = reactor
        .listen(addr, || Echo::new(None))
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let exit = common::shutdown_on_signals(&mut reactor, "echo_server", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    println!("echo server listening on {bound}");

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
fn run_pool(addr: SocketAddr, threads: usize) -> Result<(), String> {
    // Reactors start in order: the first binds (perhaps port 0), the others reuse its port.
    let port = Arc::new(Mutex::new(addr));
    let (pool, started) = ReactorPool::spawn(threads, move |_index, reactor| {
        let mut addr = port.lock().unwrap_or_else(|e| e.into_inner());
        let tally = Arc::new(Tally::default());
        let mine = Arc::clone(&tally);
        let options = ListenOptions::new().reuse_port(true);
        let (_, bound) =
            reactor.listen_with(*addr, options, move || Echo::new(Some(Arc::clone(&mine))))?;
        *addr = bound;
        Ok((bound, tally))
    })
    .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot watch for signals: {e}"))?;
    println!(
        "echo server listening on {} ({threads} reactor threads)",
        started[0].0
    );

    let handles = pool.handles().to_vec();
    let stop = signals.handle();
    let watcher = thread::spawn(move || {
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

    // Returns once every reactor's graceful shutdown has closed all its connections.
    let served = pool.join();
    stop.close();
    let signal = watcher.join().ok().flatten();
    served.map_err(|e| format!("event loop failed: {e}"))?;

    let total = |f: fn(&Tally) -> &AtomicU64| -> u64 {
        started.iter().map(|(_, t)| f(t).load(Relaxed)).sum()
    };
    let summary = format!(
        "{threads} reactors | connections {} ({} closed by errors or the deadline) | echoed {} B",
        total(|t| &t.closed),
        total(|t| &t.errors),
        total(|t| &t.echoed)
    );
    match signal {
        Some(name) => log::info!("echo_server: stopped by {name}: {summary}"),
        None => log::info!("echo_server: finished: {summary}"),
    }
    Ok(())
}
