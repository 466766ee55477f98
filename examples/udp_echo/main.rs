//! A UDP echo server: every datagram is sent back to the address it came from.
//!
//! ```text
//! cargo run --example udp_echo                    # listens on 127.0.0.1:7879
//! cargo run --example udp_echo -- --listen 0.0.0.0:9001   # or wherever you ask
//! RUST_LOG=debug cargo run --example udp_echo     # log every datagram
//! ```
//!
//! Then try `echo hi | nc -u -w1 127.0.0.1 7879`. Ctrl-C (SIGINT) or SIGTERM stops it: the socket
//! closes once its send queue is empty, and it logs how many datagrams went in and out.

#[path = "../common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sockloop::{DatagramHandler, Reactor, Stats, UdpContext, UdpError};

const DEFAULT_ADDR: &str = "127.0.0.1:7879";
/// How long a signalled shutdown waits for queued replies to be sent.
const GRACE: Duration = Duration::from_secs(1);

#[derive(Parser, Debug)]
#[command(about = "A UDP echo server: every datagram is sent back to the address it came from")]
struct Args {
    /// Address to bind (port 0: any free port; the bound address is printed).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADDR)]
    listen: SocketAddr,
    /// The older form of --listen: the address as a bare argument.
    #[arg(value_name = "ADDR", hide = true, conflicts_with = "listen")]
    listen_positional: Option<SocketAddr>,
}

/// Echoes each datagram to its sender. The replies of one turn leave together, in batches
/// (`sendmmsg`, and UDP GSO for runs to one sender) on Linux.
struct UdpEcho;

impl DatagramHandler for UdpEcho {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
        log::debug!("{} bytes from {from}", data.len());
        // UDP may lose datagrams, and so may we: a reply that cannot be sent or queued (the
        // queue is full) is dropped, counted in the stats, and the server goes on.
        if let Err(e) = cx.send_to(data, from) {
            log::debug!("reply to {from} dropped: {e}");
        }
    }

    /// A reply the kernel refused (too big, no route): logged, the server goes on.
    fn on_error(&mut self, _cx: &mut UdpContext<'_>, error: UdpError) {
        log::debug!("{error}");
    }
}

/// The exit summary: the datagram counters (zeros included) and how busy the loop was.
fn summary(stats: &Stats) -> String {
    format!(
        "datagrams in {} out {} dropped {} errors {} | {} receive and {} send calls | iterations {} ({:.2} events each)",
        stats.datagrams_received,
        stats.datagrams_sent,
        stats.datagrams_dropped,
        stats.datagram_errors,
        stats.datagram_recv_calls,
        stats.datagram_send_calls,
        stats.iterations,
        stats.events_per_iteration(),
    )
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("udp_echo: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Binds, and echoes until SIGINT or SIGTERM.
fn run(args: Args) -> Result<(), String> {
    let addr = args.listen_positional.unwrap_or(args.listen);

    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let (_socket, bound) = reactor
        .bind_udp(addr, UdpEcho)
        .map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let exit = common::shutdown_on_signals(&mut reactor, "udp_echo", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    println!("udp echo server on {bound}");

    // Returns once a signal's shutdown has closed the socket.
    reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    exit.report(summary(&reactor.stats()));
    Ok(())
}
