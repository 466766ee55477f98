//! A small HTTP/1.1 server: keep-alive, pipelining, and the limits a server facing the open
//! internet needs, on one sockloop reactor. Requests are parsed with httparse.
//!
//! ```text
//! cargo run --release --example http_server                   # http://127.0.0.1:8080/
//! cargo run --release --example http_server -- --listen 0.0.0.0:9000 --max-body 65536
//! RUST_LOG=debug cargo run --example http_server              # every connection event
//! cargo run --release --features tls --example http_server -- --tls   # https://localhost:8443/
//! ```
//!
//! Then try it with a real client:
//!
//! ```text
//! curl -v http://127.0.0.1:8080/                              # 200, "hello from sockloop"
//! curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080/nope   # "Re-using existing connection", 404
//! curl -v --http1.0 http://127.0.0.1:8080/                    # Connection: close
//! curl -v --data-binary @big.file http://127.0.0.1:8080/      # over --max-body: 413
//! wrk -t1 -c100 -d5s http://127.0.0.1:8080/                   # load
//! ```
//!
//! With `--tls` (cargo feature `tls`) it serves HTTPS, on port 8443 unless `--listen` says
//! otherwise, offering ALPN `http/1.1`. Without `--cert` and `--key` it makes a throwaway CA
//! and a certificate for localhost and 127.0.0.1 at startup, writes the CA's certificate to
//! `target/sockloop-http_server-ca.pem` and prints a `curl --cacert` command that trusts it.
//! The handler is the same: TLS is the reactor's, and the session sees plaintext requests.
//!
//! What it answers:
//!
//! - `GET /` and `HEAD /`: 200 with a short plain-text body; other methods on `/`: 405; any
//!   other path: 404. The connection stays open (HTTP/1.1), unless the request said
//!   `Connection: close` or was HTTP/1.0 without `Connection: keep-alive`.
//! - Pipelined requests (several in one read) are answered in order, their responses leaving
//!   together in one write.
//! - A request the server will not serve is answered and the connection closed: 400 for a
//!   malformed head, or an HTTP/1.1 head without exactly one `Host`; 414 or 431 for a head over
//!   `--max-head` (8 KiB; 414 when the request line alone is that long) or with more than 64
//!   headers; 413 for a `Content-Length` over `--max-body` (1 MiB); 411 for a chunked body
//!   (not supported: send a Content-Length instead).
//! - A body within the limit is read and discarded (`Expect: 100-continue` gets its
//!   `100 Continue` first), then the request is answered.
//! - A request head must be complete within `--header-timeout` (10 s) of its start (for a new
//!   connection: of the accept), or the connection is closed without a response, as nginx
//!   does (for a first request with FIN, for a later one with a reset). A connection silent
//!   for `--idle-timeout` (60 s) is closed too, and one that goes on sending after its closing
//!   response is reset after `--lingering-time` (30 s).
//!
//! The code: `request.rs` parses a head, `response.rs` writes responses (with `write!` on the
//! `Context`), `session.rs` is the connection's protocol state without I/O, and `handler.rs`
//! joins that to sockloop, with the timeouts. `tests/http.rs` runs the same handler in-process.
//!
//! Ctrl-C (SIGINT) or SIGTERM shuts it down gracefully, as `echo_server` does.

#[path = "../common/mod.rs"]
mod common;
mod handler;
#[path = "../common/proxy.rs"]
mod proxy;
mod request;
mod response;
mod session;
#[path = "../common/tls.rs"]
mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sockloop::Reactor;

use handler::{Config, HttpConn};
use request::Limits;

/// How long a signalled shutdown waits for connections to finish before closing them.
const GRACE: Duration = Duration::from_secs(5);
/// The port without `--listen`: HTTP's usual unprivileged port, and HTTPS's with `--tls`.
const HTTP_PORT: u16 = 8080;
const HTTPS_PORT: u16 = 8443;

#[derive(Parser, Debug)]
#[command(about = "A small HTTP/1.1 server on sockloop: keep-alive, pipelining, limits")]
struct Args {
    /// Address to listen on (port 0: any free port; the bound address is printed)
    /// [default: 127.0.0.1:8080, or 127.0.0.1:8443 with --tls].
    #[arg(long, alias = "addr", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Largest request body accepted, in bytes (by its Content-Length); larger gets 413.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: u64,
    /// Largest request head (request line and headers) in bytes; larger gets 431 (or 414).
    #[arg(long, default_value_t = 8 << 10)]
    max_head: usize,
    /// Seconds a request head may take to arrive in full before the connection is closed.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    header_timeout: f64,
    /// Seconds a connection may stay silent (between requests, or mid-body) before it is closed.
    #[arg(long, default_value_t = 60.0, value_parser = seconds)]
    idle_timeout: f64,
    /// Seconds a closing connection may go on receiving the client's bytes before it is reset.
    #[arg(long, default_value_t = 30.0, value_parser = seconds)]
    lingering_time: f64,
    #[command(flatten)]
    tls: tls::ServerArgs,
    #[command(flatten)]
    proxy: proxy::ProxyArgs,
}

/// A positive number of seconds that a `Duration` can hold.
fn seconds(text: &str) -> Result<f64, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(secs),
        _ => Err(format!("{text} is not a positive number of seconds")),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let config = Config {
        limits: Limits {
            max_head: args.max_head.max(1),
            max_body: args.max_body,
        },
        // `seconds` accepted them, so these cannot fail.
        header_timeout: Duration::from_secs_f64(args.header_timeout),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        lingering_time: Duration::from_secs_f64(args.lingering_time),
    };
    let port = if args.tls.tls { HTTPS_PORT } else { HTTP_PORT };
    let addr = args
        .listen
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    match run(addr, config, &args.tls, &args.proxy) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("http_server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGINT or SIGTERM.
fn run(
    addr: SocketAddr,
    config: Config,
    tls_args: &tls::ServerArgs,
    proxy_args: &proxy::ProxyArgs,
) -> Result<(), String> {
    // HTTP/1.1 is all this server speaks: ALPN says so, so that a client that would rather
    // speak h2 (curl, browsers) settles on HTTP/1.1 in the handshake.
    let tls = tls::server(tls_args, "http_server", &[b"http/1.1"])?;
    let options = match &tls {
        Some(tls) => tls.listen_options(config.listen_options()),
        None => config.listen_options(),
    };
    let options = proxy_args.apply(options, "http_server")?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let (_listener, bound) = reactor
        .listen_with(addr, options, move || HttpConn::new(&config))
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let exit = common::shutdown_on_signals(&mut reactor, "http_server", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    // On stdout, for scripts and tests that start the server on port 0.
    match &tls {
        Some(tls) => {
            println!("http_server listening on https://{bound}/");
            let url = format!("https://localhost:{}/", bound.port());
            tls.announce(&format!("curl --cacert {{ca}} {url}"));
        }
        None => println!("http_server listening on http://{bound}/"),
    }
    log::info!(
        "limits: head {} B, body {} B, header timeout {:?}, idle timeout {:?}, lingering time {:?}",
        config.limits.max_head,
        config.limits.max_body,
        config.header_timeout,
        config.idle_timeout,
        config.lingering_time
    );

    // Returns once a signal's graceful shutdown has closed every connection.
    reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    exit.report(reactor.stats());
    Ok(())
}
