//! A Redis-protocol (RESP2) server: one in-memory map, served to every client by one
//! single-threaded sockloop reactor.
//!
//! ```text
//! cargo run --release --example resp_server                       # listens on 127.0.0.1:6380
//! cargo run --release --example resp_server -- --listen 0.0.0.0:7000
//! RUST_LOG=debug cargo run --example resp_server                  # every connection event
//! ```
//!
//! Then use the real Redis clients (`apt-get install redis-tools`):
//!
//! ```text
//! redis-cli -p 6380 ping                          # PONG
//! redis-cli -p 6380 set counter 41                # OK
//! redis-cli -p 6380 incr counter                  # (integer) 42
//! redis-cli -p 6380 exists counter nope           # (integer) 1
//! printf 'PING\r\nECHO "hi there"\r\n' | nc -q1 127.0.0.1 6380   # inline commands
//! redis-benchmark -p 6380 -t ping,set,get -n 100000 -q -P 16      # pipelined load
//! ```
//!
//! Commands: `PING [msg]`, `ECHO msg`, `SET key value [NX|XX] [GET]`, `GET key`,
//! `DEL key...`, `INCR key`, `EXISTS key...`, `QUIT`, and `CONFIG GET` of `save` and
//! `appendonly` (which redis-benchmark asks for). Requests are RESP2 multibulk frames or inline lines, pipelined as deep as
//! the client likes: every complete request in a read is answered in order, and the replies of
//! the batch leave in one write. Errors use Redis's exact words; a malformed request gets
//! `-ERR Protocol error: ...` and the connection is closed, as Redis does.
//!
//! Limits, as in Redis: a bulk argument of at most 512 MiB, and at most `--max-input` (1 GiB,
//! Redis's `client-query-buffer-limit`) of one client's unparsed requests held, beyond which
//! the connection is reset. A client that pipelines requests without reading the replies stops
//! being read once 256 KiB of replies wait (sockloop's output watermark), and is reset at
//! `--max-output`.
//!
//! `--busy-poll 20` (the default; `Reactor::set_busy_poll`) keeps the loop polling, without
//! sleeping, for 20 µs after the last event.
//! The server is then already awake when the next requests of a busy client arrive, instead of
//! paying a wake-up (long on a virtual machine, whose idle CPU is halted) for each burst. Under
//! `redis-benchmark` on this project's 2-core VM (`cargo bench -p sockloop-benches --bench
//! resp`, medians of 7 rounds, see BENCHMARKS.md) it cut the sleeps per request to a fifth and took requests/s from
//! about Redis's (0.93 to 1.18 of it) to above (1.01 to 1.31), while CPU per request rose from
//! 0.59-0.93 of Redis's to 0.71-1.03. At a light load each request costs up to 20 µs of
//! spinning; `--busy-poll 0` turns it off.
//!
//! Ctrl-C (SIGINT) or SIGTERM shuts it down gracefully: it stops accepting, sends what each
//! client is owed and closes, then logs a summary; a second signal exits at once.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/proxy.rs"]
mod proxy;

mod commands;
mod num;
mod parse;
mod reply;
mod session;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use sockloop::{ListenOptions, Reactor};

use session::Session;

/// One port above Redis's 6379, so a real Redis on the same machine is left alone.
const DEFAULT_ADDR: &str = "127.0.0.1:6380";
/// How long a signalled shutdown waits for connections to finish before closing them.
const GRACE: Duration = Duration::from_secs(5);

#[derive(clap::Parser, Debug)]
#[command(about = "A Redis-protocol (RESP2) server with an in-memory map, on one sockloop reactor")]
struct Args {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, alias = "addr", value_name = "ADDR", default_value = DEFAULT_ADDR)]
    listen: SocketAddr,
    /// Bytes of unparsed requests one client may leave waiting before it is reset (Redis's
    /// client-query-buffer-limit).
    #[arg(long, default_value_t = 1 << 30)]
    max_input: usize,
    /// Bytes of unsent replies one client may accumulate before it is reset (Redis leaves
    /// normal clients unlimited; a single GET of a big value needs that much).
    #[arg(long, default_value_t = 1 << 30)]
    max_output: usize,
    /// Microseconds to keep polling without sleeping after the last event (0: sleep at once).
    #[arg(long, default_value_t = 20, value_name = "MICROSECONDS")]
    busy_poll: u64,
    #[command(flatten)]
    proxy: proxy::ProxyArgs,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("resp_server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let shared = session::shared();
    let keyspace = Rc::clone(&shared);
    let options = ListenOptions::new()
        .max_input(args.max_input)
        .max_output(args.max_output);
    let options = args.proxy.apply(options, "resp_server")?;
    let (_listener, bound) = reactor
        .listen_with(args.listen, options, move || {
            Session::new(Rc::clone(&shared))
        })
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let exit = common::shutdown_on_signals(&mut reactor, "resp_server", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    // On stdout, for scripts and the benchmark that start it on port 0.
    println!("resp server listening on {bound}");

    reactor.set_busy_poll(Duration::from_micros(args.busy_poll));
    // Returns once a signal's graceful shutdown has closed every connection.
    reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    let keys = keyspace.borrow().map.len();
    exit.report(format_args!("{} | {keys} keys", reactor.stats()));
    Ok(())
}
