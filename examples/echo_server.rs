//! An echo server: every byte a client sends is written back to it.
//!
//! ```text
//! cargo run --example echo_server                  # listens on 127.0.0.1:7878
//! cargo run --example echo_server -- 0.0.0.0:9000  # or wherever you ask
//! RUST_LOG=debug cargo run --example echo_server   # watch every connection event
//! ```
//!
//! Then talk to it with `nc 127.0.0.1 7878` or `cargo run --example echo_client`.
//!
//! Ctrl-C (SIGINT) or SIGTERM shuts it down gracefully: it stops accepting, each client's pending
//! echo is sent and its connection closed, and once none is left it logs a summary of its
//! counters and exits with status 0. Connections still open after 5 seconds are cut off (a client
//! that never closes its own side, like an idle `nc`, is sent FIN at once but waited for up to
//! then); a second signal exits at once.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use sockloop::{CloseReason, Context, Handler, Input, Reactor};

const DEFAULT_ADDR: &str = "127.0.0.1:7878";
/// How long a signalled shutdown waits for connections to finish before closing them.
const GRACE: Duration = Duration::from_secs(5);

/// One client's protocol: write back whatever arrives.
///
/// When the client shuts down its write side, the default `on_read_closed` sends what is still
/// queued and then closes, so `nc -N` gets its whole echo before the connection ends.
struct Echo;

impl Handler for Echo {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        match cx.peer_addr() {
            Ok(peer) => log::info!("{}: connected from {peer}", cx.id()),
            Err(e) => log::info!("{}: connected (peer address unknown: {e})", cx.id()),
        }
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
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("echo_server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the address, listens, and serves until SIGINT or SIGTERM.
fn run() -> Result<(), String> {
    let arg = std::env::args().nth(1);
    let text = arg.as_deref().unwrap_or(DEFAULT_ADDR);
    let addr: SocketAddr = text
        .parse()
        .map_err(|e| format!("invalid address {text:?}: {e} (expected e.g. {DEFAULT_ADDR})"))?;

    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let (_listener, bound) = reactor
        .listen(addr, || Echo)
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
