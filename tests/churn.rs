//! Churn soak: 20,000 short-lived connections of four hostile kinds to a sockloop echo server in
//! another process, after which the server's open descriptors are back at their baseline and its
//! resident memory has grown by less than 8 MiB.
//!
//! The server runs in a child process (see `tests/util/child.rs`) so that its descriptors and
//! memory can be read from `/proc` without this process's clients in the count. The clients are
//! plain non-blocking sockets on a mio poll of their own, not sockloop connections, so that a
//! fault shows on exactly one side and the clients can misbehave precisely: send and reset
//! before reading, half-close right after sending, or close without a word. At most [`WINDOW`]
//! are in flight at once, and they connect from 127.0.0.2 through 127.0.0.17, so their
//! TIME_WAIT sockets use those addresses' port ranges rather than 127.0.0.1's, which parallel
//! tests need.
//!
//! A connection's "before accept" moment cannot be arranged from outside while the server runs
//! freely, so a few times during the run the window is drained and the server's loop is held
//! busy: every client of the next window then connects and does its part while the server
//! cannot accept, and only then is the loop released. Which clients acted inside the hold is
//! decided by the order of events (started after the hold began, done before it ended), not by
//! a clock.
//!
//! No bound here is a speed: the hang guards ([`util::TIMEOUT`]) fail the test only when
//! nothing moves for that long.

#[path = "util/child.rs"]
mod child;
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use child::{ServerProcess, Stall};
use slab::Slab;
use sockloop::mio::net::TcpStream;
use sockloop::mio::{Events, Interest, Poll, Token};
use util::Echo;

/// Connections of the measured run.
const CONNECTIONS: usize = 20_000;
/// Connections before the baseline is taken: the server's slab, buffer pool and allocator grow
/// to their working size here, so what follows measures growth per connection, not start-up.
const WARMUP: usize = 1_000;
/// Connections in flight at once: enough to keep both cores busy, well inside the listen backlog.
const WINDOW: usize = 256;
/// Client source addresses: 127.0.0.2 and the following ones.
const FIRST_SOURCE: u8 = 2;
const SOURCES: u8 = 16;
/// Longest message a client sends (bytes); each length is drawn from 1..=this.
const MAX_MESSAGE: u64 = 2048;
/// Holds of the server's loop during the measured run (see the module docs).
const STALLS: usize = 4;
/// How long the server may take to close everything once the clients are done: a graceful
/// close lingers at most 5 s for a silent peer, so this is only the hang guard.
const SETTLE: Duration = util::TIMEOUT;
const RSS_GROWTH_LIMIT_KIB: u64 = 8 * 1024;
const SERVER_ENV: &str = "SOCKLOOP_CHURN_SERVER";

/// What a client does with its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Sends a message, reads the echo byte-exact, closes.
    Normal,
    /// Sends a message and shuts down its write side at once, then reads the echo until EOF.
    HalfClosed,
    /// Sends a message and resets (`SO_LINGER` 0) without reading anything.
    ResetEarly,
    /// Sends a message, reads the echo byte-exact, then resets instead of closing.
    ResetAfterEcho,
    /// Connects and closes without sending anything.
    Silent,
}

const KINDS: [Kind; 5] = [
    Kind::Normal,
    Kind::HalfClosed,
    Kind::ResetEarly,
    Kind::ResetAfterEcho,
    Kind::Silent,
];

/// The mix, by connection number: 40% normal, 20% half-closed, 20% reset, 20% silent.
const MIX: [Kind; 10] = [
    Kind::Normal,
    Kind::HalfClosed,
    Kind::Normal,
    Kind::Silent,
    Kind::ResetEarly,
    Kind::Normal,
    Kind::HalfClosed,
    Kind::ResetAfterEcho,
    Kind::Normal,
    Kind::Silent,
];

/// Outcomes per kind (indexed by `Kind as usize`).
#[derive(Default)]
struct Tally {
    ok: [usize; 5],
    failed: [usize; 5],
    /// Clients that did their part (sent, half-closed, reset or closed) while the server's loop
    /// was stalled, so before it could accept them.
    before_accept: [usize; 5],
    /// The first few failures, in full.
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, kind: Kind, why: String) {
        self.failed[kind as usize] += 1;
        if self.failures.len() < 20 {
            self.failures.push(why);
        }
    }

    fn total_failed(&self) -> usize {
        self.failed.iter().sum()
    }
}

/// One client connection.
struct Client {
    n: usize,
    kind: Kind,
    stream: TcpStream,
    msg: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    connected: bool,
    shut: bool,
    /// When the connect was started.
    begun: Instant,
    /// When the client had done what needs no answer from the server (see `Tally::before_accept`).
    acted: Option<Instant>,
}

/// What to do with a client after it made what progress it could.
enum Step {
    /// Wait for the next readiness event.
    Wait,
    /// Done: close (FIN).
    Close,
    /// Done: close with a reset.
    Reset,
    Fail(String),
}

impl Client {
    /// Moves the client's script forward as far as the socket allows (edge-triggered: writes
    /// and reads go on until `WouldBlock`).
    fn advance(&mut self, buf: &mut [u8]) -> Step {
        if !self.connected {
            match self.stream.take_error() {
                Ok(Some(e)) | Err(e) => return Step::Fail(format!("connect: {e}")),
                Ok(None) => {}
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                // A spurious wake-up: the connect is still in progress.
                Err(e) if e.kind() == ErrorKind::NotConnected => return Step::Wait,
                Err(e) => return Step::Fail(format!("connect: {e}")),
            }
        }
        if self.kind == Kind::Silent {
            self.acted = Some(Instant::now());
            return Step::Close;
        }
        while self.sent < self.msg.len() {
            match self.stream.write(&self.msg[self.sent..]) {
                Ok(0) => return Step::Fail("the socket took no bytes".into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Step::Fail(format!("write after {} bytes: {e}", self.sent)),
            }
        }
        match self.kind {
            Kind::ResetEarly => {
                self.acted = Some(Instant::now());
                return Step::Reset;
            }
            Kind::HalfClosed if !self.shut => {
                if let Err(e) = self.stream.shutdown(Shutdown::Write) {
                    return Step::Fail(format!("shutdown(Write): {e}"));
                }
                self.shut = true;
                self.acted = Some(Instant::now());
            }
            _ => {
                self.acted.get_or_insert_with(Instant::now);
            }
        }
        loop {
            match self.stream.read(buf) {
                // The server closed: only a half-closed client expects that before its own close.
                Ok(0) => return self.at_eof(),
                Ok(n) => {
                    self.got.extend_from_slice(&buf[..n]);
                    if self.got.len() > self.msg.len() {
                        let (got, sent) = (self.got.len(), self.msg.len());
                        return Step::Fail(format!("{got} bytes echoed for {sent} sent"));
                    }
                }
                // Drained; wait for the next edge.
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    let (got, sent) = (self.got.len(), self.msg.len());
                    return Step::Fail(format!("read after {got} of {sent} echoed bytes: {e}"));
                }
            }
        }
        if self.got.len() == self.msg.len() {
            if let Some(why) = self.mismatch() {
                return Step::Fail(why);
            }
            match self.kind {
                Kind::Normal => return Step::Close,
                Kind::ResetAfterEcho => return Step::Reset,
                _ => {} // a half-closed client waits for the server's FIN
            }
        }
        Step::Wait
    }

    fn at_eof(&self) -> Step {
        let (got, sent) = (self.got.len(), self.msg.len());
        if self.kind != Kind::HalfClosed || got != sent {
            return Step::Fail(format!("EOF after {got} of {sent} echoed bytes"));
        }
        match self.mismatch() {
            Some(why) => Step::Fail(why),
            None => Step::Close,
        }
    }

    /// Where the echo differs from the message, if it does.
    fn mismatch(&self) -> Option<String> {
        let at = self.got.iter().zip(&self.msg).position(|(a, b)| a != b)?;
        Some(format!(
            "echo differs at byte {at} of {}: got {:#04x}, sent {:#04x}",
            self.msg.len(),
            self.got[at],
            self.msg[at]
        ))
    }
}

/// The client side: a window of connections on one mio poll.
struct Driver {
    poll: Poll,
    clients: Slab<Client>,
    addr: SocketAddr,
    next: usize,
    /// The latest stall of the server's loop.
    stall: Option<Stall>,
    tally: Tally,
    buf: Vec<u8>,
}

impl Driver {
    fn new(addr: SocketAddr) -> Driver {
        Driver {
            poll: Poll::new().expect("Poll::new"),
            clients: Slab::with_capacity(WINDOW),
            addr,
            next: 0,
            stall: None,
            tally: Tally::default(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// Starts connection number `self.next`.
    fn start(&mut self) {
        let n = self.next;
        self.next += 1;
        let kind = MIX[n % MIX.len()];
        let len = 1 + util::Rng::new(n as u64).below(MAX_MESSAGE) as usize;
        let msg = util::pattern(!(n as u64), len);
        let from = child::source_addr(FIRST_SOURCE, SOURCES, n);
        let begun = Instant::now();
        let mut stream = match child::connect_nonblocking(from, self.addr) {
            Ok(stream) => stream,
            Err(e) => {
                let why = format!("conn {n} ({kind:?}): connect from {from}: {e}");
                return self.tally.fail(kind, why);
            }
        };
        let entry = self.clients.vacant_entry();
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(entry.key()),
                Interest::READABLE | Interest::WRITABLE,
            )
            .expect("register a client");
        entry.insert(Client {
            n,
            kind,
            stream,
            msg,
            sent: 0,
            got: Vec::new(),
            connected: false,
            shut: false,
            begun,
            acted: None,
        });
    }

    fn ready(&mut self, key: usize) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        let step = client.advance(&mut self.buf);
        if matches!(step, Step::Wait) {
            return;
        }
        // Closing the descriptor takes it out of the poll.
        let client = self.clients.remove(key);
        let k = client.kind as usize;
        if let (Some(stall), Some(acted)) = (self.stall, client.acted) {
            if stall.covers(client.begun, acted) {
                self.tally.before_accept[k] += 1;
            }
        }
        match step {
            Step::Wait => unreachable!(),
            Step::Close => self.tally.ok[k] += 1,
            Step::Reset => {
                socket2::SockRef::from(&client.stream)
                    .set_linger(Some(Duration::ZERO))
                    .expect("SO_LINGER 0");
                self.tally.ok[k] += 1;
            }
            Step::Fail(why) => {
                let (n, kind, len) = (client.n, client.kind, client.msg.len());
                self.tally
                    .fail(kind, format!("conn {n} ({kind:?}, {len} bytes): {why}"));
            }
        }
    }

    /// Drives `count` more connections through the window. `stalls` times, evenly spread, the
    /// window is drained and the next window runs while the server's loop is held.
    fn run(&mut self, server: &mut ServerProcess, count: usize, stalls: usize) {
        let first = self.next;
        let end = first + count;
        let mut stall_points: Vec<usize> = (1..=stalls)
            .rev()
            .map(|i| first + count * i / (stalls + 1))
            .collect();
        let mut events = Events::with_capacity(1024);
        let mut progress = (self.next, self.clients.len());
        let mut progressed = Instant::now();
        loop {
            let limit = stall_points.last().copied().unwrap_or(end);
            while self.clients.len() < WINDOW && self.next < limit {
                self.start();
            }
            if self.clients.is_empty() {
                if self.next == end {
                    return;
                }
                stall_points.pop();
                let limit = stall_points.last().copied().unwrap_or(end);
                self.window_while_held(server, limit, &mut events);
                continue;
            }
            // The hang guard: no client started or finished for that long.
            if (self.next, self.clients.len()) != progress {
                progress = (self.next, self.clients.len());
                progressed = Instant::now();
            }
            assert!(
                progressed.elapsed() < util::TIMEOUT,
                "churn stuck for {:?}: {} of {end} started, {} in flight, e.g. {}",
                util::TIMEOUT,
                self.next,
                self.clients.len(),
                self.describe_stuck()
            );
            self.poll_once(&mut events);
        }
    }

    /// Holds the server's loop, starts a window of clients (up to connection `limit`), lets each
    /// of them do its part (everything that needs no answer from the server), and releases the
    /// loop.
    fn window_while_held(&mut self, server: &mut ServerProcess, limit: usize, events: &mut Events) {
        self.stall = Some(server.hold());
        while self.clients.len() < WINDOW && self.next < limit {
            self.start();
        }
        let deadline = Instant::now() + util::TIMEOUT;
        while self.clients.iter().any(|(_, c)| c.acted.is_none()) {
            assert!(
                Instant::now() < deadline,
                "clients could not do their part while the server was held, e.g. {}",
                self.describe_stuck()
            );
            self.poll_once(events);
        }
        let stall = self.stall.as_mut().expect("held");
        server.release(stall);
    }

    /// Waits for readiness (at most 50 ms) and moves the ready clients on.
    fn poll_once(&mut self, events: &mut Events) {
        self.poll
            .poll(events, Some(Duration::from_millis(50)))
            .expect("poll");
        for event in events.iter() {
            self.ready(event.token().0);
        }
    }

    /// The state of a few clients still in flight, for a failure message.
    fn describe_stuck(&self) -> String {
        let sample: Vec<String> = self
            .clients
            .iter()
            .take(5)
            .map(|(_, c)| {
                format!(
                    "conn {} ({:?}): connected {}, sent {}/{}, echoed {}",
                    c.n,
                    c.kind,
                    c.connected,
                    c.sent,
                    c.msg.len(),
                    c.got.len()
                )
            })
            .collect();
        sample.join("; ")
    }
}

/// The server side, run in a child process (see the module docs).
#[test]
#[ignore = "runs only as the churn test's child server process"]
fn churn_server_process() {
    if std::env::var_os(SERVER_ENV).is_none() {
        return;
    }
    child::serve_until_stdin_closes(|reactor| {
        reactor
            .listen(util::localhost(), || Echo)
            .expect("listen on 127.0.0.1:0")
            .1
    });
}

#[test]
fn churn_of_hostile_short_connections_returns_descriptors_and_memory_to_baseline() {
    let started = Instant::now();
    let mut server = ServerProcess::start("churn_server_process", SERVER_ENV);
    let idle_fds = server.fds();
    let mut driver = Driver::new(server.addr);

    driver.run(&mut server, WARMUP, 1);
    let warm = std::mem::take(&mut driver.tally);
    assert!(
        warm.failures.is_empty(),
        "{} failures in the warm-up, first: {:#?}",
        warm.total_failed(),
        warm.failures
    );
    let warm_settle = server
        .wait_for_fds(idle_fds, SETTLE)
        .unwrap_or_else(|n| panic!("after the warm-up the server holds {n} fds, not {idle_fds}"));
    let (base_fds, base_rss) = (server.fds(), server.rss_kib());

    let churn_started = Instant::now();
    driver.run(&mut server, CONNECTIONS, STALLS);
    let churn_time = churn_started.elapsed();
    let settled = server.wait_for_fds(base_fds, SETTLE);
    let (end_fds, end_rss) = (server.fds(), server.rss_kib());
    let stats = server.finish();

    let t = &driver.tally;
    eprintln!(
        "churn: {CONNECTIONS} connections in {churn_time:.2?} ({:.0}/s), window {WINDOW}, \
         {STALLS} holds of the server's loop; total test time {:.2?}",
        CONNECTIONS as f64 / churn_time.as_secs_f64(),
        started.elapsed()
    );
    for kind in KINDS {
        let k = kind as usize;
        eprintln!(
            "  {:<14} ok {:>5}  failed {:>3}  before accept {:>4}",
            format!("{kind:?}"),
            t.ok[k],
            t.failed[k],
            t.before_accept[k]
        );
    }
    eprintln!(
        "  server fds: idle {idle_fds}, baseline {base_fds} (after warm-up, settled in \
         {warm_settle:.2?}), after churn {end_fds} ({settled:?})"
    );
    eprintln!(
        "  server RSS: baseline {base_rss} KiB, after churn {end_rss} KiB, growth {} KiB",
        end_rss as i64 - base_rss as i64
    );
    eprintln!("  server stats: {stats}");

    assert!(
        t.failures.is_empty(),
        "{} failures {:?} (by kind {KINDS:?}), first: {:#?}",
        t.total_failed(),
        t.failed,
        t.failures
    );
    assert_eq!(
        t.ok.iter().sum::<usize>(),
        CONNECTIONS,
        "every connection ran its script"
    );
    if let Err(n) = settled {
        panic!(
            "the server still holds {n} fds {SETTLE:?} after the churn ended (baseline \
             {base_fds}): connections leaked; server stats: {stats}"
        );
    }
    assert_eq!(
        child::stat(&stats, "open "),
        0,
        "the server's own count of open connections"
    );
    assert!(
        end_rss < base_rss + RSS_GROWTH_LIMIT_KIB,
        "server RSS grew from {base_rss} KiB to {end_rss} KiB over {CONNECTIONS} connections"
    );
    for kind in [Kind::HalfClosed, Kind::ResetEarly, Kind::Silent] {
        assert!(
            t.before_accept[kind as usize] > 0,
            "no {kind:?} client finished its part while the server was stalled"
        );
    }
}
