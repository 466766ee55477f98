//! A WebSocket (RFC 6455) chat room on one sockloop thread: `GET /` serves a small page whose
//! script connects back to `GET /ws`, and every message a member sends is broadcast to all
//! members, in one order that every member sees alike.
//!
//! ```text
//! cargo run --example ws_chat                             # serves http://127.0.0.1:7890/
//! cargo run --example ws_chat -- --demo-peer              # with "bob", who answers you
//! cargo run --example ws_chat -- --addr 0.0.0.0:9000 --max-output 262144
//! RUST_LOG=debug cargo run --example ws_chat              # watch every connection and message
//! ```
//!
//! Then open `http://127.0.0.1:7890/?name=alice` in two browser tabs (`&say=hello` sends a first
//! message at once), or talk to it from a terminal with any WebSocket client, e.g. Python's
//! (Debian's `python3-websockets`): `python3 -m websockets 'ws://127.0.0.1:7890/ws?name=carol'`.
//!
//! What it shows:
//! - one listener, two protocols: each connection starts with an HTTP request (parsed by
//!   tungstenite), which gets the page, an error, or the WebSocket handshake (`http.rs`);
//! - tungstenite's WebSocket state machine driven from `on_data` through a non-blocking
//!   `Read + Write` adapter over the callback's input and the connection's output
//!   (`stream.rs`, `server.rs`): frames, fragments, UTF-8 checks, pings and close frames are
//!   tungstenite's, the sockets are sockloop's;
//! - broadcast with `Context::write_to`: a message is encoded as a frame once and the same bytes
//!   are queued for every member (`room.rs`);
//! - a member that stops reading is reset once `--max-output` bytes wait for it (1 MiB by
//!   default), while the others go on receiving at full speed.
//!
//! Ctrl-C (SIGINT) or SIGTERM shuts down gracefully: every member gets a close frame ("going
//! away", 1001) and is disconnected once it answers, within 5 seconds; a second signal exits at
//! once.

#[path = "../common/mod.rs"]
mod common;
mod demo_peer;
mod http;
mod room;
mod server;
mod stream;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sockloop::Reactor;

const DEFAULT_ADDR: &str = "127.0.0.1:7890";
/// How long a signalled shutdown waits for members to answer their close frames.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(about = "A WebSocket chat room: GET / serves the page, GET /ws joins the room")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Bytes of output that may wait for one member before it is reset as not reading.
    #[arg(long, default_value_t = server::DEFAULT_MAX_OUTPUT)]
    max_output: usize,
    /// Also run a member named "bob" who greets whoever joins and answers first messages.
    #[arg(long)]
    demo_peer: bool,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ws_chat: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the chat until SIGINT or SIGTERM.
fn run(args: Args) -> Result<(), String> {
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let (bound, room) = server::serve(&mut reactor, args.addr, args.max_output)
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let exit = common::shutdown_on_signals(&mut reactor, "ws_chat", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    println!("chat on http://{bound}/ (WebSocket endpoint ws://{bound}/ws)");
    if args.demo_peer {
        // Bob's connect is accepted by the kernel now and answered once the loop runs.
        demo_peer::spawn(bound).map_err(|e| format!("cannot start the demo peer: {e}"))?;
    }

    // Returns once a signal's graceful shutdown has closed every connection.
    reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    let broadcasts = room.borrow().broadcasts();
    exit.report(format_args!(
        "{} | {broadcasts} broadcasts",
        reactor.stats()
    ));
    Ok(())
}
