//! C10K over TLS: 10,000 concurrent TLS connections to a sockloop echo server in another
//! process, each making a full handshake and several verified round trips, all driven by one
//! sockloop reactor on the client side; and the handshake-heavy mode of `examples/c10k`
//! (`--churn`: connect, handshake, one round trip, close, again) against the same kind of server.
//!
//! The structure is `tests/c10k.rs`'s: the server and the clients must be in different
//! processes, as 10,000 connections with both ends in one process would pass the 20,000
//! open-files limit. The test binary re-executes itself to run the ignored test
//! `c10k_tls_server_process` (see `tests/util/child.rs`), which makes a fresh CA and a
//! certificate for localhost, writes the CA's certificate to [`ca_file`] of its process id
//! before it prints its address, and serves until its standard input closes. The clients connect from 127.0.0.18 through
//! 127.0.0.29, so that their TIME_WAIT sockets use those addresses' port ranges, not those of
//! 127.0.0.1 or of the addresses `tests/churn.rs` uses, when tests run in parallel.
//!
//! No bound here is a speed: the hang guard fails a test only when nothing moves for
//! [`STALL_LIMIT`].

#![cfg(feature = "tls")]

#[path = "util/child.rs"]
mod child;
#[path = "../examples/c10k/churn.rs"]
mod churn;
#[path = "util/tls.rs"]
mod tls_util;

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use child::ServerProcess;
use sockloop::rustls::pki_types::CertificateDer;
use sockloop::rustls::{client::Resumption, ClientConfig, ProtocolVersion, RootCertStore};
use sockloop::{CloseReason, ConnId, ConnectOptions, Context, Handler, Input, ListenOptions};
use tls_util::{localhost_name, Pki};

const CONNECTIONS: usize = 10_000;
const ROUND_TRIPS: usize = 3;
const MESSAGE: usize = 64;
/// Connects (TCP and TLS handshake) in flight at once. A connect completes only once the
/// server has accepted it and made its handshake, so this also bounds the server's accept
/// queue.
const CONNECT_WINDOW: usize = 256;
/// The hang guard: a test fails if no connection opens, finishes or closes for this long. It
/// bounds progress, not the whole run: a slow machine only makes the run longer.
const STALL_LIMIT: Duration = Duration::from_secs(30);
const SERVER_ENV: &str = "SOCKLOOP_C10K_TLS_SERVER";
/// The first of the client source addresses of the C10K test, and how many there are.
const C10K_SOURCES: (u8, u8) = (18, 8);
/// The same for the churn test.
const CHURN_SOURCES: (u8, u8) = (26, 4);

/// The number after `key` in a `Stats` display line, whatever punctuation follows it
/// ("truncated 0,", "tls error 0)").
fn count(line: &str, key: &str) -> u64 {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"));
    let digits: String = line[at + key.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key:?} in {line:?}"))
}

/// Raises this process's soft open-files limit to the hard limit (20,000 here).
fn raise_nofile() -> u64 {
    let (_, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
    rlimit::Resource::NOFILE.set(hard, hard).expect("setrlimit");
    hard
}

struct Echo;

impl Handler for Echo {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }
}

/// The server side, run in a child process (see the module docs).
#[test]
#[ignore = "runs only as the TLS C10K tests' child server process"]
fn c10k_tls_server_process() {
    if std::env::var_os(SERVER_ENV).is_none() {
        return;
    }
    raise_nofile();
    child::serve_until_stdin_closes(|reactor| {
        let pki = Pki::new();
        std::fs::write(ca_file(std::process::id()), pki.ca_cert.as_ref()).expect("write the CA");
        let options = ListenOptions::new().tls(pki.server_config(&[]));
        let (_, addr) = reactor
            .listen_with(SocketAddr::from(([127, 0, 0, 1], 0)), options, || Echo)
            .expect("listen");
        addr
    });
}

/// Where the server process with id `pid` writes its CA's certificate (DER).
fn ca_file(pid: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sockloop-c10k-tls-ca-{pid}.der"))
}

/// Starts a server process; returns it and client options that trust its CA, connect from
/// `sources` and make a full handshake every time (no session resumption), so that every
/// connection costs what a new client costs.
fn start_server() -> (ServerProcess, Arc<ClientConfig>) {
    let server = ServerProcess::start("c10k_tls_server_process", SERVER_ENV);
    // Written before the server printed its address, which `start` waited for.
    let file = ca_file(server.pid());
    let der = std::fs::read(&file).expect("the server's CA certificate file");
    let _ = std::fs::remove_file(&file);
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(der))
        .expect("the server's CA certificate");
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    (server, Arc::new(config))
}

/// Connect options for connection `n`: TLS with `config`, from one of `sources` in turn.
fn options(config: &Arc<ClientConfig>, sources: (u8, u8), n: usize) -> ConnectOptions {
    let from = child::source_addr(sources.0, sources.1, n);
    ConnectOptions::new()
        .tls(Arc::clone(config), localhost_name())
        .bind(SocketAddr::from((from, 0)))
}

/// What the client side shares between its handlers.
#[derive(Default)]
struct Tally {
    connecting: usize,
    started: usize,
    open: usize,
    peak_open: usize,
    /// Connections whose `on_open` saw TLS 1.3 negotiated.
    tls13: usize,
    finished: usize,
    /// Plaintext bytes echoed and verified.
    verified: usize,
    failures: Vec<String>,
    /// Connections that finished their round trips and wait for the others (to be concurrent).
    done: Vec<ConnId>,
}

/// Byte `i` of connection `n`'s stream: a pattern that shifts per connection, so crossed
/// streams, lost bytes and reordering all show as mismatches.
fn pattern(n: usize, i: usize) -> u8 {
    (n.wrapping_mul(31).wrapping_add(i.wrapping_mul(7)) % 251) as u8
}

struct Client {
    n: usize,
    sent: usize,
    received: usize,
    tally: Rc<RefCell<Tally>>,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
}

impl Client {
    fn send_one(&mut self, cx: &mut Context<'_>) {
        let msg: Vec<u8> = (self.sent..self.sent + MESSAGE)
            .map(|i| pattern(self.n, i))
            .collect();
        self.sent += MESSAGE;
        cx.write(&msg);
    }

    /// Starts the next connections while fewer than the window are connecting.
    fn refill(
        cx: &mut Context<'_>,
        tally: &Rc<RefCell<Tally>>,
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
    ) {
        loop {
            let n = {
                let mut t = tally.borrow_mut();
                if t.started == CONNECTIONS || t.connecting >= CONNECT_WINDOW {
                    return;
                }
                t.started += 1;
                t.connecting += 1;
                t.started - 1
            };
            let client = Client {
                n,
                sent: 0,
                received: 0,
                tally: Rc::clone(tally),
                addr,
                config: Arc::clone(config),
            };
            cx.connect_with(addr, options(config, C10K_SOURCES, n), client);
        }
    }
}

impl Handler for Client {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        {
            let mut t = self.tally.borrow_mut();
            t.connecting -= 1;
            t.open += 1;
            t.peak_open = t.peak_open.max(t.open);
            let version = cx.tls().and_then(|tls| tls.protocol_version());
            if version == Some(ProtocolVersion::TLSv1_3) {
                t.tls13 += 1;
            }
        }
        Client::refill(cx, &self.tally, self.addr, &self.config);
        self.send_one(cx);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        for (k, &b) in input.take_all().iter().enumerate() {
            let i = self.received + k;
            if b != pattern(self.n, i) {
                self.tally
                    .borrow_mut()
                    .failures
                    .push(format!("conn {}: wrong byte at {i}", self.n));
                return cx.abort();
            }
        }
        self.received += input.consumed();
        self.tally.borrow_mut().verified += input.consumed();
        if self.received == self.sent {
            if self.sent == ROUND_TRIPS * MESSAGE {
                let mut t = self.tally.borrow_mut();
                t.finished += 1;
                t.done.push(cx.id());
                if t.finished == CONNECTIONS {
                    // Every connection is open at once now: close them all (close_notify, FIN).
                    for id in std::mem::take(&mut t.done) {
                        let _ = cx.close_conn(id);
                    }
                }
            } else {
                self.send_one(cx);
            }
        }
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        if self.received < ROUND_TRIPS * MESSAGE {
            let msg = format!(
                "conn {}: EOF after {} of {} bytes",
                self.n,
                self.received,
                ROUND_TRIPS * MESSAGE
            );
            self.tally.borrow_mut().failures.push(msg);
        }
        cx.close();
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let mut t = self.tally.borrow_mut();
        match &reason {
            CloseReason::ConnectFailed(e) => {
                t.connecting -= 1;
                t.failures
                    .push(format!("conn {}: connect failed: {e}", self.n));
            }
            // A handshake that failed never opened.
            CloseReason::Tls(e) if self.sent == 0 => {
                t.connecting -= 1;
                t.failures
                    .push(format!("conn {}: handshake failed: {e}", self.n));
            }
            _ => t.open -= 1,
        }
        if reason.is_error() && !matches!(reason, CloseReason::ConnectFailed(_)) {
            t.failures.push(format!("conn {}: {reason}", self.n));
        }
        drop(t);
        Client::refill(cx, &self.tally, self.addr, &self.config);
    }
}

#[test]
fn ten_thousand_tls_connections_each_verify_their_round_trips() {
    let limit = raise_nofile();
    assert!(
        limit as usize > CONNECTIONS + 100,
        "open-files hard limit {limit} is too low for {CONNECTIONS} clients"
    );
    let (server, config) = start_server();
    let addr = server.addr;

    let tally = Rc::new(RefCell::new(Tally::default()));
    let mut reactor = sockloop::Reactor::new().expect("reactor");
    // The first window; each connection that opens or closes starts the next ones.
    for _ in 0..CONNECT_WINDOW {
        let n = {
            let mut t = tally.borrow_mut();
            t.started += 1;
            t.connecting += 1;
            t.started - 1
        };
        let client = Client {
            n,
            sent: 0,
            received: 0,
            tally: Rc::clone(&tally),
            addr,
            config: Arc::clone(&config),
        };
        reactor.connect_with(addr, options(&config, C10K_SOURCES, n), client);
    }

    let started = Instant::now();
    let mut last_state = (0, 0, 0, 0);
    let mut last_progress = Instant::now();
    loop {
        reactor
            .run_once(Some(Duration::from_millis(100)))
            .expect("run_once");
        let t = tally.borrow();
        let settled = t.started == CONNECTIONS && t.connecting == 0 && t.open == 0;
        if settled || !t.failures.is_empty() {
            break;
        }
        let state = (t.started, t.connecting, t.open, t.finished);
        if state != last_state {
            last_state = state;
            last_progress = Instant::now();
        }
        assert!(
            last_progress.elapsed() < STALL_LIMIT,
            "TLS C10K made no progress for {STALL_LIMIT:?}: {} started, {} connecting, {} open, \
             {} finished",
            t.started,
            t.connecting,
            t.open,
            t.finished
        );
    }
    let elapsed = started.elapsed();
    let t = tally.borrow();
    assert!(
        t.failures.is_empty(),
        "{} failures, first: {:?}",
        t.failures.len(),
        &t.failures[..t.failures.len().min(5)]
    );
    assert_eq!(
        t.finished, CONNECTIONS,
        "every connection completes its round trips"
    );
    assert_eq!(t.tls13, CONNECTIONS, "every connection negotiated TLS 1.3");
    assert_eq!(
        t.peak_open, CONNECTIONS,
        "all connections were open at the same time"
    );
    assert_eq!(t.verified, CONNECTIONS * ROUND_TRIPS * MESSAGE);
    let stats = reactor.stats();
    assert_eq!(stats.connected, CONNECTIONS as u64);
    assert_eq!(stats.closed.tls_error, 0);

    let server_stats = server.finish();
    assert_eq!(count(&server_stats, "accepted "), CONNECTIONS as u64);
    assert_eq!(count(&server_stats, "tls error "), 0, "{server_stats}");
    assert_eq!(count(&server_stats, "truncated "), 0, "{server_stats}");
    eprintln!("TLS C10K: {CONNECTIONS} connections x {ROUND_TRIPS} round trips in {elapsed:.2?}");
}

#[test]
fn handshake_churn_completes_every_connection() {
    const TOTAL: u64 = 2_000;
    const SLOTS: usize = 32;
    let (server, config) = start_server();
    let sources = (0..CHURN_SOURCES.1)
        .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, CHURN_SOURCES.0 + k)))
        .collect();
    let cfg = churn::ChurnConfig {
        addr: server.addr,
        options: ConnectOptions::new().tls(config, localhost_name()),
        slots: SLOTS,
        size: MESSAGE,
        duration: None,
        total: Some(TOTAL),
        src_ips: sources,
        stall_limit: STALL_LIMIT,
    };
    let report = churn::run_churn(&cfg).expect("the churn ran");
    assert!(report.ok(), "{}", report.summary());
    assert_eq!(
        (report.started, report.completed, report.failed),
        (TOTAL, TOTAL, 0)
    );
    assert_eq!(report.bytes, TOTAL * MESSAGE as u64);

    let server_stats = server.finish();
    assert_eq!(count(&server_stats, "accepted "), TOTAL);
    assert_eq!(count(&server_stats, "tls error "), 0, "{server_stats}");
    assert_eq!(count(&server_stats, "truncated "), 0, "{server_stats}");
    eprintln!(
        "TLS churn: {TOTAL} connections, {SLOTS} at a time, in {:.2?}",
        report.elapsed
    );
}
