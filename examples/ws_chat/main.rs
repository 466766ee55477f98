//! A WebSocket (RFC 6455) chat room on one sockloop thread: `GET /` serves a small page whose
//! script connects back to `GET /ws`, and every message a member sends is broadcast to all
//! members, in one order that every member sees alike.
//!
//! ```text
//! cargo run --example ws_chat                             # serves http://127.0.0.1:7890/
//! cargo run --example ws_chat -- --demo-peer              # with "bob", who answers you
//! cargo run --example ws_chat -- --listen 0.0.0.0:9000 --max-output 262144
//! RUST_LOG=debug cargo run --example ws_chat              # watch every connection and message
//! cargo run --features tls --example ws_chat -- --tls --demo-peer   # https:// and wss://
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
//! With `--tls` (cargo feature `tls`) the page is served over https and its script, seeing
//! `https:`, opens `wss://` on the same listener; the chat code is the same, as TLS is the
//! reactor's. Without `--cert` and `--key` a throwaway CA and a certificate for localhost and
//! 127.0.0.1 are made at startup, and the CA's certificate is written to
//! `target/sockloop-ws_chat-ca.pem` (a browser warns about it: accept it for the session, or
//! import that CA, or serve a certificate the browser trusts with `--cert`/`--key`). The demo
//! peer then joins over `wss://`, trusting that CA.
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
#[path = "../common/tls.rs"]
mod tls;

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
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, alias = "addr", value_name = "ADDR", default_value = DEFAULT_ADDR)]
    listen: SocketAddr,
    /// Bytes of output that may wait for one member before it is reset as not reading.
    #[arg(long, default_value_t = server::DEFAULT_MAX_OUTPUT)]
    max_output: usize,
    /// Also run a member named "bob" who greets whoever joins and answers first messages.
    #[arg(long)]
    demo_peer: bool,
    #[command(flatten)]
    tls: tls::ServerArgs,
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
    // Browsers offer h2 first on https; the page and the WebSocket handshake are HTTP/1.1.
    let tls = tls::server(&args.tls, "ws_chat", &[b"http/1.1"])?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let options = server::listen_options(args.max_output);
    let options = match &tls {
        Some(tls) => tls.listen_options(options),
        None => options,
    };
    let (bound, room) = server::serve(&mut reactor, args.listen, options)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let exit = common::shutdown_on_signals(&mut reactor, "ws_chat", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    match &tls {
        Some(tls) => {
            let port = bound.port();
            println!("chat on https://{bound}/ (WebSocket endpoint wss://{bound}/ws)");
            tls.announce(&format!("curl --cacert {{ca}} https://localhost:{port}/"));
        }
        None => println!("chat on http://{bound}/ (WebSocket endpoint ws://{bound}/ws)"),
    }
    if args.demo_peer {
        // Bob trusts what the server's clients should trust: the throwaway CA, or the last
        // certificate of --cert's chain.
        #[cfg(feature = "tls")]
        let secure = tls
            .as_ref()
            .map(|tls| tls::client_config(tls.roots.clone(), &[b"http/1.1"], true));
        #[cfg(not(feature = "tls"))]
        let secure = None;
        // Bob's connect is accepted by the kernel now and answered once the loop runs.
        demo_peer::spawn(bound, secure).map_err(|e| format!("cannot start the demo peer: {e}"))?;
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
