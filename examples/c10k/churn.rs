//! The handshake-heavy mode of c10k (`--churn`): connections that live for one round trip.
//!
//! Each of `slots` slots connects (with TLS, makes a full handshake), sends one message of
//! `size` bytes, checks its echo byte by byte, closes gracefully (with TLS, `close_notify` before
//! FIN), and connects again from its `on_close`, until the window ends or `total` connections
//! have been started. What it measures is what a server pays per connection: the accept, the
//! handshake and the teardown, far more than the echo. It works without TLS too, as a
//! connect/close churn.
//!
//! Included by `examples/c10k/main.rs`, and by `tests/c10k_tls.rs` with
//! `#[path = "../examples/c10k/churn.rs"] mod churn;`.

// The test reads the report's fields and not its summary.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sockloop::{CloseReason, ConnectOptions, Context, Handler, Input, Reactor};

/// How often the loop comes back to check the window and the hang guard.
const TICK: Duration = Duration::from_millis(50);
/// How many problems are told in full; the rest are only counted.
const MAX_ERRORS: usize = 10;

/// What a churn run does.
#[derive(Clone, Debug)]
pub struct ChurnConfig {
    /// The echo server.
    pub addr: SocketAddr,
    /// How to connect: TLS or not, timeouts, socket options (a `bind` here is overridden by
    /// `src_ips`).
    pub options: ConnectOptions,
    /// Connections in flight at once.
    pub slots: usize,
    /// Bytes of the one message each connection sends and gets back (at least 1).
    pub size: usize,
    /// Stop starting connections after this long (`None`: only `total` ends the run).
    pub duration: Option<Duration>,
    /// Stop after this many connections in all (`None`: only `duration` ends the run).
    pub total: Option<u64>,
    /// Source addresses for the client sockets, in turn; empty lets the kernel choose.
    pub src_ips: Vec<IpAddr>,
    /// The hang guard: the run fails if no connection finishes for this long.
    pub stall_limit: Duration,
}

/// What a churn run did.
#[derive(Clone, Debug, Default)]
pub struct ChurnReport {
    /// Connections started.
    pub started: u64,
    /// Connections that opened (handshake done), echoed every byte and closed cleanly.
    pub completed: u64,
    /// Connections that failed in any way (see `errors`).
    pub failed: u64,
    /// Echoed bytes verified.
    pub bytes: u64,
    /// From the first connect to the last close.
    pub elapsed: Duration,
    /// The first few problems, in full.
    pub errors: Vec<String>,
}

impl ChurnReport {
    /// Whether every connection started completed.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.completed == self.started
    }

    /// Completed connections per second.
    pub fn rate(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "connections: {} started, {} completed, {} failed in {:.2} s = {:.0} per second \
             (connect, handshake, one round trip, close)\nbytes:       {} echoed and verified\n",
            self.started,
            self.completed,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.bytes
        );
        for e in &self.errors {
            text.push_str(&format!("problem:     {e}\n"));
        }
        text
    }
}

/// Byte `i` of connection `n`'s message: shifts per connection, so that a reply sent to the
/// wrong connection shows.
fn pattern(n: u64, i: usize) -> u8 {
    (n.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8
}

/// What the connections of a run share.
struct Run {
    cfg: ChurnConfig,
    started: u64,
    open: u64,
    completed: u64,
    failed: u64,
    bytes: u64,
    errors: Vec<String>,
    /// Set when the window is over: no connection starts after it.
    stopping: bool,
}

impl Run {
    fn fail(&mut self, message: String) {
        self.failed += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(message);
        }
    }

    /// The next connection to start, if the run wants one more: its number and options.
    fn next(&mut self) -> Option<(u64, ConnectOptions)> {
        if self.stopping || self.total_reached() {
            return None;
        }
        let n = self.started;
        self.started += 1;
        self.open += 1;
        let options = match self.cfg.src_ips.len() {
            0 => self.cfg.options.clone(),
            k => {
                let ip = self.cfg.src_ips[(n % k as u64) as usize];
                self.cfg.options.clone().bind(SocketAddr::new(ip, 0))
            }
        };
        Some((n, options))
    }

    fn total_reached(&self) -> bool {
        self.cfg.total.is_some_and(|total| self.started >= total)
    }
}

/// One short-lived connection.
struct Conn {
    n: u64,
    received: usize,
    run: Rc<RefCell<Run>>,
}

impl Conn {
    fn new(n: u64, run: &Rc<RefCell<Run>>) -> Conn {
        Conn {
            n,
            received: 0,
            run: Rc::clone(run),
        }
    }

    fn size(&self) -> usize {
        self.run.borrow().cfg.size
    }
}

impl Handler for Conn {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let message: Vec<u8> = (0..self.size()).map(|i| pattern(self.n, i)).collect();
        cx.write(&message);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let size = self.size();
        let data = input.take_all();
        for (k, &byte) in data.iter().enumerate() {
            let i = self.received + k;
            if i >= size || byte != pattern(self.n, i) {
                let what = if i >= size { "an extra" } else { "a wrong" };
                let message = format!("connection {}: {what} byte at {i}", self.n);
                self.run.borrow_mut().fail(message);
                // Counted now: the close must not count it again.
                self.received = usize::MAX;
                return cx.abort();
            }
        }
        self.received += data.len();
        if self.received == size {
            cx.close();
        }
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        cx.close();
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let mut run = self.run.borrow_mut();
        run.open -= 1;
        let size = run.cfg.size;
        if self.received == usize::MAX {
            // A bad byte, already counted.
        } else if self.received == size && !reason.is_error() {
            run.completed += 1;
            run.bytes += size as u64;
        } else {
            let message = format!(
                "connection {}: closed ({reason}) with {} of {size} bytes echoed",
                self.n, self.received
            );
            run.fail(message);
        }
        // The slot goes on: the next connection starts from here, on the loop thread.
        if let Some((n, options)) = run.next() {
            let addr = run.cfg.addr;
            drop(run);
            cx.connect_with(addr, options, Conn::new(n, &self.run));
        }
    }
}

/// Runs the churn to its end and reports.
///
/// # Errors
///
/// `InvalidInput` for zero slots or size, or neither a duration nor a total; `TimedOut` if no
/// connection finished for `stall_limit`; the reactor's own errors.
pub fn run_churn(cfg: &ChurnConfig) -> io::Result<ChurnReport> {
    if cfg.slots == 0 || cfg.size == 0 || (cfg.duration.is_none() && cfg.total.is_none()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "churn needs slots and size of at least 1, and a duration or a total",
        ));
    }
    let mut reactor = Reactor::new()?;
    let run = Rc::new(RefCell::new(Run {
        cfg: cfg.clone(),
        started: 0,
        open: 0,
        completed: 0,
        failed: 0,
        bytes: 0,
        errors: Vec::new(),
        stopping: false,
    }));
    let started = Instant::now();
    for _ in 0..cfg.slots {
        let Some((n, options)) = run.borrow_mut().next() else {
            break;
        };
        reactor.connect_with(cfg.addr, options, Conn::new(n, &run));
    }

    let mut finished = 0;
    let mut last_progress = Instant::now();
    loop {
        {
            let mut r = run.borrow_mut();
            if cfg.duration.is_some_and(|d| started.elapsed() >= d) {
                r.stopping = true;
            }
            if r.open == 0 {
                break;
            }
            if r.completed + r.failed != finished {
                finished = r.completed + r.failed;
                last_progress = Instant::now();
            } else if last_progress.elapsed() >= cfg.stall_limit {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no connection finished for {:?}: {} started, {} open, {} completed, \
                         {} failed",
                        cfg.stall_limit, r.started, r.open, r.completed, r.failed
                    ),
                ));
            }
        }
        reactor.run_once(Some(TICK))?;
    }
    let elapsed = started.elapsed();
    let r = run.borrow();
    Ok(ChurnReport {
        started: r.started,
        completed: r.completed,
        failed: r.failed,
        bytes: r.bytes,
        elapsed,
        errors: r.errors.clone(),
    })
}
