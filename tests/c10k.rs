//! C10K: 10,000 concurrent connections to a sockloop echo server in another process, each doing
//! several verified round trips, all driven by one sockloop reactor on the client side.
//!
//! The server and the clients must be in different processes: each end of a connection is a
//! descriptor, and 10,000 connections with both ends in one process would pass the 20,000
//! open-files limit. The test binary re-executes itself to run the ignored test
//! `c10k_server_process`, which serves until its standard input closes (so it cannot outlive
//! this test, even if this test panics).

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sockloop::mio::unix::SourceFd;
use sockloop::mio::Interest;
use sockloop::{CloseReason, ConnId, Context, Handler, Input, Reactor};

const CONNECTIONS: usize = 10_000;
const ROUND_TRIPS: usize = 5;
const MESSAGE: usize = 64;
/// Connects in flight at once: a burst of 10,000 SYNs would overflow the listen queue and leave
/// clients waiting for SYN retransmits (1 s, 3 s, ...) instead of testing the reactor.
const CONNECT_WINDOW: usize = 500;
/// The hang guard: the test fails if no connection starts, opens, finishes or closes for this
/// long. It bounds progress, not the whole run: a slow machine only makes the run longer.
const STALL_LIMIT: Duration = Duration::from_secs(20);
const SERVER_ENV: &str = "SOCKLOOP_C10K_SERVER";

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
#[ignore = "runs only as the C10K test's child server process"]
fn c10k_server_process() {
    if std::env::var_os(SERVER_ENV).is_none() {
        return;
    }
    raise_nofile();
    let mut reactor = Reactor::new().expect("reactor");
    let (_, addr) = reactor
        .listen("127.0.0.1:0".parse().unwrap(), || Echo)
        .expect("listen");
    // Standard input as a foreign source: EOF (the parent closed the pipe or died) stops us.
    static STDIN: RawFd = 0;
    reactor
        .add_source(SourceFd(&STDIN), Interest::READABLE, |reactor, _, _| {
            reactor.stop()
        })
        .expect("watch stdin");
    println!("ADDR {addr}");
    reactor.run().expect("run");
    println!("STATS {}", reactor.stats());
}

/// The child server process; killed when dropped.
struct ServerProcess(Child);

impl ServerProcess {
    fn start() -> (ServerProcess, SocketAddr) {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--exact",
                "c10k_server_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SERVER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn server process");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may print "test c10k_server_process ... " on the same line first.
                if let Some((_, addr)) = line.split_once("ADDR ") {
                    let _ = tx.send(addr.trim().parse::<SocketAddr>());
                }
            }
        });
        let server = ServerProcess(child);
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server process did not report its address")
            .expect("server address");
        (server, addr)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the client side shares between its handlers.
#[derive(Default)]
struct Tally {
    connecting: usize,
    started: usize,
    open: usize,
    peak_open: usize,
    finished: usize,
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
}

impl Client {
    fn send_one(&mut self, cx: &mut Context<'_>) {
        let msg: Vec<u8> = (self.sent..self.sent + MESSAGE)
            .map(|i| pattern(self.n, i))
            .collect();
        self.sent += MESSAGE;
        cx.write(&msg);
    }

    /// Starts the next connection while fewer than the window are connecting.
    fn refill(cx: &mut Context<'_>, tally: &Rc<RefCell<Tally>>, addr: SocketAddr) {
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
            cx.connect(
                addr,
                Client {
                    n,
                    sent: 0,
                    received: 0,
                    tally: Rc::clone(tally),
                    addr,
                },
            );
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
        }
        Client::refill(cx, &self.tally, self.addr);
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
        if self.received == self.sent {
            if self.sent == ROUND_TRIPS * MESSAGE {
                let mut t = self.tally.borrow_mut();
                t.finished += 1;
                t.done.push(cx.id());
                if t.finished == CONNECTIONS {
                    // Every connection is open at once now: close them all.
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
            _ => t.open -= 1,
        }
        if reason.is_error() && !matches!(reason, CloseReason::ConnectFailed(_)) {
            t.failures.push(format!("conn {}: {reason}", self.n));
        }
        drop(t);
        Client::refill(cx, &self.tally, self.addr);
    }
}

/// A placeholder handler that only kicks off the first window of connections.
struct Starter {
    tally: Rc<RefCell<Tally>>,
    addr: SocketAddr,
}

impl Handler for Starter {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        Client::refill(cx, &self.tally, self.addr);
        cx.close();
    }
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }
}

#[test]
fn ten_thousand_concurrent_connections_each_verify_their_round_trips() {
    let limit = raise_nofile();
    assert!(
        limit as usize > CONNECTIONS + 100,
        "open-files hard limit {limit} is too low for {CONNECTIONS} clients"
    );
    let (_server, addr) = ServerProcess::start();

    let tally = Rc::new(RefCell::new(Tally::default()));
    let mut reactor = Reactor::new().expect("reactor");
    // The first window is started from a callback (connect from inside a handler is what the
    // clients themselves do as they open); the starter is an ordinary connection to the server.
    reactor.connect(
        addr,
        Starter {
            tally: Rc::clone(&tally),
            addr,
        },
    );

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
            "C10K made no progress for {STALL_LIMIT:?}: {} started, {} connecting, {} open, \
             {} finished",
            t.started,
            t.connecting,
            t.open,
            t.finished
        );
    }
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
    assert_eq!(
        t.peak_open, CONNECTIONS,
        "all connections were open at the same time"
    );
    let stats = reactor.stats();
    assert_eq!(
        stats.connected,
        CONNECTIONS as u64 + 1,
        "outbound connections (plus the starter)"
    );
    assert_eq!(
        stats.bytes_read,
        (CONNECTIONS * ROUND_TRIPS * MESSAGE) as u64
    );
    eprintln!(
        "C10K: {CONNECTIONS} connections x {ROUND_TRIPS} round trips in {:.2?}",
        started.elapsed()
    );
}
