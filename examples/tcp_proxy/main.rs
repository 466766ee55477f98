//! A TCP proxy: every accepted connection is forwarded to an upstream address, byte for byte,
//! both ways, through the reactor's own outbound connect.
//!
//! ```text
//! cargo run --release --example echo_server              # an upstream on 127.0.0.1:7878
//! cargo run --release --example tcp_proxy                # listens on 127.0.0.1:7070
//! cargo run --release --example tcp_proxy -- --listen 127.0.0.1:8080 --upstream 127.0.0.1:8000
//! RUST_LOG=debug cargo run --example tcp_proxy           # every connect, FIN and close
//! ```
//!
//! Then `nc -N 127.0.0.1 7070` talks to the echo server through the proxy (`-N` sends FIN at the
//! end of input: the FIN travels through the proxy, the echo server answers what is left and
//! closes, and that FIN comes back). Any TCP service works as upstream: with
//! `python3 -m http.server 8000` and `--upstream 127.0.0.1:8000`, try
//! `curl -v http://127.0.0.1:7070/`.
//!
//! What it shows: two connections that know each other's `ConnId` (the client half learns the
//! upstream's from `cx.connect_with`, the upstream half is given the client's), `write_to`
//! between them, backpressure across them (`on_writability` of one side pauses reading the
//! other; both are opened with `pause_reading_over_high(false)`, as a proxy's two directions are
//! independent), half-close passed on in both directions with `shutdown_write_conn`, and resets
//! passed on as resets. No timers and no state shared between the halves but their ids. If
//! nothing listens upstream, each client is closed at once and the reason is logged. Ctrl-C
//! (SIGINT) or SIGTERM stops it gracefully.

#[path = "../common/mod.rs"]
mod common;
mod proxy;

use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sockloop::Reactor;

/// How long a signalled shutdown waits for proxied connections to finish before closing them.
const GRACE: Duration = Duration::from_secs(5);
/// How long the start-up check waits for the upstream to accept a connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Parser, Debug)]
#[command(about = "A TCP proxy: forwards every connection to an upstream address")]
struct Args {
    /// Address to listen on for clients (port 0: any free port; the bound address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Address every client is forwarded to (echo_server's default).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    upstream: SocketAddr,
    /// Start every upstream connection with a PROXY protocol header (v1 or v2) that names the
    /// client, for an upstream that takes it (echo_server --proxy-protocol). Needs the
    /// proxy-protocol feature.
    #[arg(long, value_name = "VERSION")]
    send_proxy: Option<String>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tcp_proxy: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What each upstream connection is opened with: a PROXY header naming the client with
/// `--send-proxy v1|v2`.
fn upstream_options(
    send_proxy: Option<&str>,
) -> Result<impl Fn(&sockloop::Context<'_>) -> sockloop::ConnectOptions, String> {
    #[cfg(feature = "proxy-protocol")]
    {
        let version = send_proxy
            .map(|v| v.parse::<sockloop::ProxyVersion>())
            .transpose()
            .map_err(|e| format!("--send-proxy: {e}"))?;
        Ok(move |cx: &sockloop::Context<'_>| {
            let options = sockloop::ConnectOptions::new();
            match (version, cx.peer_addr(), cx.local_addr()) {
                (Some(version), Ok(client), Ok(front)) => {
                    options.proxy_header(sockloop::ProxyHeader::new(version, client, front))
                }
                _ => options,
            }
        })
    }
    #[cfg(not(feature = "proxy-protocol"))]
    {
        if send_proxy.is_some() {
            return Err("--send-proxy needs the proxy-protocol feature: cargo run \
                        --features proxy-protocol --example tcp_proxy -- --send-proxy v2"
                .to_string());
        }
        Ok(|_: &sockloop::Context<'_>| sockloop::ConnectOptions::new())
    }
}

fn run(args: Args) -> Result<(), String> {
    let upstream = args.upstream;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let options_for = upstream_options(args.send_proxy.as_deref())?;
    let bound = proxy::listen_with(&mut reactor, args.listen, upstream, options_for)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let exit = common::shutdown_on_signals(&mut reactor, "tcp_proxy", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    println!("tcp proxy listening on {bound}, forwarding to {upstream}");
    probe(upstream);

    // Returns once a signal's graceful shutdown has closed every connection.
    reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    exit.report(reactor.stats());
    Ok(())
}

/// Says so up front if nothing answers upstream. The proxy starts anyway (the upstream may come
/// later): each client is then closed as soon as its upstream connect fails. The check is one
/// connection, opened and closed at once, which the upstream will see.
fn probe(upstream: SocketAddr) {
    if let Err(e) = TcpStream::connect_timeout(&upstream, PROBE_TIMEOUT) {
        log::warn!(
            "nothing answers on {upstream} ({e}): clients will be closed until something \
             listens there; start `cargo run --example echo_server -- {upstream}` in another \
             terminal, or pass --upstream ADDR"
        );
    }
}
