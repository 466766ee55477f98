//! An echo client: sends stdin (or a greeting) to an echo server and prints what comes back.
//!
//! ```text
//! cargo run --example echo_server &
//! cargo run --example echo_client                                  # sends a built-in greeting
//! printf 'hello\nworld\n' | cargo run --example echo_client        # sends stdin
//! cargo run --example echo_client -- 127.0.0.1:9000 < some_file    # another server
//! cargo run --features tls --example echo_client -- --tls           # to `echo_server --tls`
//! ```
//!
//! With `--tls` (cargo feature `tls`) it speaks TLS and verifies the server's certificate
//! against the CA certificates of `--cacert FILE`: by default the file that `echo_server --tls`
//! writes when it makes its throwaway CA (`target/sockloop-echo_server-ca.pem`), for the name
//! `localhost` (`--server-name`). A server it cannot verify ends the connection with the
//! TLS error, before a byte of the input is sent.
//!
//! The connection is made through the reactor (`Reactor::connect`), like any other socket: the
//! handler below sees `on_open`, the echoed bytes, and finally `on_close` with the reason. Once
//! every byte sent has come back, the client closes gracefully and stops the loop.
//!
//! Ctrl-C (SIGINT) or SIGTERM aborts the connection at once (the server sees a reset, not a
//! complete stream); the client then prints its summary and exits with 128 + the signal's number,
//! as an interrupted command does, so a script can tell that the echo did not complete.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/tls.rs"]
mod tls;

use std::cell::RefCell;
use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use sockloop::{CloseReason, ConnectOptions, Context, Handler, Input, Reactor};

const DEFAULT_ADDR: &str = "127.0.0.1:7878";
const GREETING: &[u8] = b"hello from sockloop\n";
/// Only a backstop: `on_shutdown` aborts the connection at once.
const GRACE: Duration = Duration::from_secs(1);

#[derive(Parser, Debug)]
#[command(about = "An echo client: sends stdin (or a greeting) and prints the echo")]
struct Args {
    /// The echo server's address.
    #[arg(default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    #[command(flatten)]
    tls: tls::ClientArgs,
}

/// Sends `sent` once connected, then counts (and checks) the echo as it arrives.
struct Client {
    addr: SocketAddr,
    sent: Vec<u8>,
    received: usize,
    /// Where `main` finds out how it went: `Some(message)` if something went wrong.
    failure: Rc<RefCell<Option<String>>>,
}

impl Client {
    /// Records the first failure; later ones are consequences of it.
    fn fail(&self, message: String) {
        self.failure.borrow_mut().get_or_insert(message);
    }
}

impl Handler for Client {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        log::info!(
            "connected to {}; sending {} bytes",
            self.addr,
            self.sent.len()
        );
        #[cfg(feature = "tls")]
        if let Some(tls) = cx.tls() {
            log::info!(
                "TLS: {:?}, {:?}; the server's certificate verified",
                tls.protocol_version(),
                tls.cipher_suite().map(|s| s.suite())
            );
        }
        if self.sent.is_empty() {
            return cx.close();
        }
        // One write for everything: the reactor sends what the socket takes and the rest as it
        // drains, while the echo is read back concurrently, so a large input cannot deadlock.
        cx.write(&self.sent);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let echo = input.take_all();
        if !self.sent[self.received..].starts_with(echo) {
            self.fail(format!(
                "echo differs from what was sent, at byte {}",
                self.received
            ));
            return cx.abort();
        }
        self.received += echo.len();
        // A blocking write to stdout stalls the loop while it lasts; with one connection that
        // only slows this connection, which is what a slow reader of our output should do.
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = stdout.write_all(echo).and_then(|()| stdout.flush()) {
            self.fail(format!("cannot write to stdout: {e}"));
            return cx.abort();
        }
        if self.received == self.sent.len() {
            cx.close();
        }
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        if self.received < self.sent.len() {
            self.fail(format!(
                "server closed the connection after echoing {} of {} bytes",
                self.received,
                self.sent.len()
            ));
        }
        cx.close();
    }

    /// A signal arrived: the user wants to stop now, not after the rest of the echo.
    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        cx.abort();
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        match reason {
            CloseReason::ConnectFailed(e) => {
                self.fail(format!("cannot connect to {}: {e}", self.addr))
            }
            reason if reason.is_error() => self.fail(format!("connection lost: {reason}")),
            reason => log::info!("{} bytes echoed; connection {reason}", self.received),
        }
        cx.stop();
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Args::parse()) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(signal)) => ExitCode::from(128 + signal as u8),
        Err(message) => {
            eprintln!("echo_client: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Sends, checks the echo, and returns the signal that interrupted it, if one did.
fn run(args: Args) -> Result<Option<i32>, String> {
    let addr = args.addr;
    let options = match tls::client(&args.tls, "echo_client", &[])? {
        Some(tls) => {
            log::info!(
                "TLS: verifying the server with the CA of {}",
                tls::shown(&tls.ca_file)
            );
            tls.connect_options(ConnectOptions::new())
        }
        None => ConnectOptions::new(),
    };

    // The reactor thread must never block, and reading a terminal or a pipe would. Input that is
    // not a terminal is a pipe or a file that ends, so the simplest correct plan is to read all of
    // it before the loop starts. (Streaming an endless pipe would need a reader thread feeding the
    // loop; an echo demo does not need that.)
    let stdin = std::io::stdin();
    let sent = if stdin.is_terminal() {
        GREETING.to_vec()
    } else {
        let mut all = Vec::new();
        stdin
            .lock()
            .read_to_end(&mut all)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        all
    };

    let failure = Rc::new(RefCell::new(None));
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let exit = common::shutdown_on_signals(&mut reactor, "echo_client", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    reactor.connect_with(
        addr,
        options,
        Client {
            addr,
            sent,
            received: 0,
            failure: Rc::clone(&failure),
        },
    );
    // Returns once on_close has called stop(): every outcome, even a refused connect or a
    // signal, ends there.
    reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    exit.report(reactor.stats());

    let result = failure.borrow_mut().take();
    match result {
        Some(message) => Err(message),
        None => Ok(exit.signal()),
    }
}
