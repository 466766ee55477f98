//! A closed-loop echo load generator built on sockloop's own client side.
//!
//! Every connection is an outbound [`Reactor::connect`] served by a small [`Handler`]; one
//! reactor on the calling thread drives them all (dogfooding the client half of the library).
//! It works against any echo server. Included by `examples/c10k/main.rs`, and by benches and
//! tests with `#[path = "../examples/loadgen/mod.rs"] mod loadgen;`.
//!
//! ```text
//! let cfg = LoadConfig { addr, connections: 1_000, ..LoadConfig::default() };
//! let report = loadgen::run_load(&cfg, &mut |_phase| {})?;
//! assert!(report.ok(), "{}", report.summary());
//! ```
//!
//! # How a run goes
//!
//! 1. **Connect** every connection, active and idle, at most `connect_concurrency` handshakes
//!    at a time, within `connect_timeout` for the whole phase. Then `on_phase(Connected)`.
//!    The window limits handshakes in flight; it cannot see the server's accept queue (a
//!    connect completes here when the handshake does, before the server accepts). If the server
//!    falls behind by a whole queue (4096 on Linux), the kernel drops the SYNs in flight
//!    (`nstat TcpExtListenOverflows` counts exactly the window) and would resend them only a
//!    second later. One reactor thread accepting 10,000 connections from this generator on a
//!    2-core machine fell that far behind in most runs. So, against a loopback server, a
//!    connect still pending after `connect_retry` (a handshake there takes microseconds) is
//!    abandoned and made again on a fresh socket; the report counts these retries. With TLS
//!    the problem does not arise, and c10k sets no retry: a connect completes only once the
//!    server has accepted it and finished the handshake, so the window does bound the accept
//!    queue, while a handshake that waits its turn for the server's CPU may well take longer
//!    than a retry's delay.
//! 2. **Warm up**: each active connection keeps `depth` messages of `size` bytes in flight; each
//!    echo that completes a message sends the next one. Not measured.
//! 3. `on_phase(Measuring)`, then **measure** for `duration` or until `messages` round trips.
//!    `on_phase(Done)`.
//! 4. **Drain**: no new messages; wait (at most `drain_timeout`) for the echoes still in flight.
//! 5. **Close** everything gracefully with `Reactor::shutdown` and return the report.
//!
//! # What is checked
//!
//! Byte `i` of connection `c`'s stream is a fixed function of `(c, i)` ([`byte_at`]); every
//! echoed byte is compared in order, so a lost, duplicated, reordered or altered byte is caught
//! where it happens. A wrong byte, or an EOF or reset from the server before we close, cuts the
//! connection and counts it in `corrupted` (with the first few explained in `errors`).
//! Latency is from the moment a message is queued to the completion of its echo, so it includes
//! time queued in both loops. In a closed loop it is concurrency over throughput (Little's law):
//! 10,000 connections at 60,000 round trips/s wait about 170 ms each, almost all of it behind
//! the other connections, not on the wire.
//!
//! # Source addresses
//!
//! One source IP reaches one server address from at most ~28,000 ephemeral ports. With
//! `src_ips`, connection `c` is made with `ConnectOptions::bind(src_ips[c % n]:0)`.
//! That binds port 0 before connecting, so each source address gives one port range in all,
//! whatever the destination.

// Each includer (c10k, benches, tests) uses a different part of this module.
#![allow(dead_code)]

mod progress;
mod report;
mod track;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sockloop::{ConnectOptions, Reactor};

// Not every includer uses every item, and an unused re-export in a module warns.
#[allow(unused_imports)]
pub use progress::{Progress, ProgressBars};
#[allow(unused_imports)]
pub use report::{fmt_ns, LoadReport};
#[allow(unused_imports)]
pub use track::{byte_at, fill, first_mismatch, Stage};
use track::{Client, Run, Status};

/// The longest a single wait for events lasts, so deadlines and progress are checked often.
const TICK: Duration = Duration::from_millis(50);
/// How long a loopback connect may stay pending before it is made again: far above a loopback
/// handshake (microseconds) and far below the kernel's first SYN retransmission (1 s).
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_millis(100);
/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Measured window when neither `duration` nor `messages` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(5);

/// What to run. `Default` is the C10K case: 10,000 active connections to `127.0.0.1:7878`.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The echo server.
    pub addr: SocketAddr,
    /// Connections that carry load.
    pub connections: usize,
    /// Extra connections that connect and then stay silent (the idle-scaling case).
    pub idle_connections: usize,
    /// Messages in flight per active connection (at least 1).
    pub depth: usize,
    /// Bytes per message (at least 1).
    pub size: usize,
    /// Load runs but is not measured.
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Option<Duration>,
    /// Or: end the measured window after this many round trips in total (whichever comes first;
    /// with `duration` unset, `max_measure` bounds the wait).
    pub messages: Option<u64>,
    /// Source addresses to bind client sockets to, in turn; empty lets the kernel choose.
    pub src_ips: Vec<IpAddr>,
    /// How every connection is made: with TLS (`ConnectOptions::tls`) the load is encrypted,
    /// and a connect counts as complete once its handshake is (its `on_open`). A `bind` here
    /// is overridden by `src_ips`.
    pub options: ConnectOptions,
    /// Limit for the whole connect phase; connections not open by then count as failed.
    pub connect_timeout: Duration,
    /// indicatif bars on stderr while connecting and running (hidden when not a terminal).
    pub progress: bool,
    /// Handshakes in flight at once (see "How a run goes" above).
    pub connect_concurrency: usize,
    /// A connect to a loopback address still pending after this long is abandoned and started
    /// again on a fresh socket (see "How a run goes" above); `None`, or a server on another
    /// address, leaves the retries to the kernel.
    pub connect_retry: Option<Duration>,
    /// Limit for waiting for the echoes in flight when the measured window ends; bytes not
    /// back by then count as lost.
    pub drain_timeout: Duration,
    /// Limit for the graceful close of every connection at the end.
    pub close_grace: Duration,
    /// Upper bound of a `messages`-limited window when `duration` is unset.
    pub max_measure: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 7878)),
            connections: 10_000,
            idle_connections: 0,
            depth: 1,
            size: 64,
            warmup: Duration::from_secs(1),
            duration: Some(DEFAULT_DURATION),
            messages: None,
            src_ips: Vec::new(),
            options: ConnectOptions::new(),
            connect_timeout: Duration::from_secs(30),
            progress: false,
            connect_concurrency: 256,
            connect_retry: Some(DEFAULT_CONNECT_RETRY),
            drain_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(5),
            max_measure: Duration::from_secs(60),
        }
    }
}

/// Phase boundaries reported to `run_load`'s caller, on the calling thread, while the load is
/// paused (so a caller may take its time sampling the server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Every connection is open (or has failed); the warmup starts when the callback returns.
    Connected,
    /// The warmup is over; the measured window starts when the callback returns.
    Measuring,
    /// The measured window is over; in-flight echoes are drained and everything is closed next.
    Done,
}

/// Runs the load; `on_phase` is called on the calling thread at each phase boundary (benches
/// sample the server's /proc stats there).
///
/// # Errors
///
/// `InvalidInput` for a zero `size` or `depth`; the reactor's own errors (`epoll_create`,
/// `epoll_wait`). Failed connections and bad bytes are not errors: they are in the report.
pub fn run_load(cfg: &LoadConfig, on_phase: &mut dyn FnMut(Phase)) -> io::Result<LoadReport> {
    run_load_with_progress(cfg, on_phase, &mut |_| {})
}

/// [`run_load`], also calling `on_progress` about every 100 ms (besides the bars of
/// `cfg.progress`), e.g. to forward progress from a worker process to its parent.
pub fn run_load_with_progress(
    cfg: &LoadConfig,
    on_phase: &mut dyn FnMut(Phase),
    on_progress: &mut dyn FnMut(&Progress),
) -> io::Result<LoadReport> {
    if cfg.size == 0 || cfg.depth == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message size and depth must be at least 1",
        ));
    }
    let mut bars = cfg.progress.then(ProgressBars::new);
    let mut report_progress = |p: &Progress| {
        if let Some(bars) = &mut bars {
            bars.update(p);
        }
        on_progress(p);
    };
    let mut d = Driver::new(cfg, &mut report_progress)?;

    d.connect_all()?;
    d.progress(true);
    on_phase(Phase::Connected);

    let loaded = d.run.borrow().established > 0;
    d.enter(Stage::Warmup, Some(cfg.warmup));
    d.start_load();
    if loaded {
        d.pump(Instant::now() + cfg.warmup, |_| false)?;
    }
    on_phase(Phase::Measuring);

    let window = match (cfg.duration, cfg.messages) {
        (Some(d), _) => d,
        (None, Some(_)) => cfg.max_measure,
        (None, None) => DEFAULT_DURATION,
    };
    d.enter(Stage::Measuring, cfg.duration.or(Some(window)));
    if loaded {
        d.pump(Instant::now() + window, |run| run.stage != Stage::Measuring)?;
    }
    d.run.borrow_mut().stop_measuring();
    d.progress(true);
    on_phase(Phase::Done);

    d.drain()?;
    d.close_all()?;
    d.progress(true);
    let report = d.report();
    drop(d);
    if let Some(bars) = &mut bars {
        bars.finish();
    }
    Ok(report)
}

/// The calling thread's side of a run: the reactor, the shared run state, and the stages.
struct Driver<'a> {
    cfg: &'a LoadConfig,
    reactor: Reactor,
    run: Rc<RefCell<Run>>,
    on_progress: &'a mut dyn FnMut(&Progress),
    last_progress: Instant,
    stage_start: Instant,
    stage_length: Option<Duration>,
    connect_time: Duration,
}

/// The load generator sends each batch of requests as one burst, whatever the reactor's default
/// (`Reactor::set_flush_batch`): the servers under test then see the same arrival pattern as
/// before that default existed, so figures from before and after it compare.
const FLUSH_BATCH: usize = usize::MAX;

impl<'a> Driver<'a> {
    fn new(cfg: &'a LoadConfig, on_progress: &'a mut dyn FnMut(&Progress)) -> io::Result<Self> {
        let total = cfg.connections + cfg.idle_connections;
        let run = Run::new(total, cfg.connections, cfg.size, cfg.depth, cfg.messages);
        let mut reactor = Reactor::new()?;
        reactor.set_flush_batch(FLUSH_BATCH);
        Ok(Driver {
            cfg,
            reactor,
            run: Rc::new(RefCell::new(run)),
            on_progress,
            last_progress: Instant::now(),
            stage_start: Instant::now(),
            stage_length: Some(cfg.connect_timeout),
            connect_time: Duration::ZERO,
        })
    }

    /// Runs the loop until `until`, or until `done` holds.
    fn pump(&mut self, until: Instant, done: impl Fn(&Run) -> bool) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= until || done(&self.run.borrow()) {
                return Ok(());
            }
            self.reactor.run_once(Some((until - now).min(TICK)))?;
            self.progress(false);
        }
    }

    fn enter(&mut self, stage: Stage, length: Option<Duration>) {
        if stage == Stage::Measuring {
            self.run.borrow_mut().start_measuring();
        } else {
            self.run.borrow_mut().stage = stage;
        }
        self.stage_start = Instant::now();
        self.stage_length = length;
        self.progress(true);
    }

    fn progress(&mut self, now: bool) {
        if !now && self.last_progress.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last_progress = Instant::now();
        let run = self.run.borrow();
        let p = Progress {
            stage: run.stage,
            total: run.conns.len(),
            established: run.established,
            failed: run.failed,
            round_trips: run.round_trips,
            measured: run.messages,
            limit: self.cfg.messages,
            stage_elapsed: self.stage_start.elapsed(),
            stage_length: self.stage_length,
        };
        drop(run);
        (self.on_progress)(&p);
    }

    /// Stage 1: opens every connection, a window at a time, within the connect timeout.
    fn connect_all(&mut self) -> io::Result<()> {
        let total = self.run.borrow().conns.len();
        let started = Instant::now();
        let deadline = started + self.cfg.connect_timeout;
        let window = self.cfg.connect_concurrency.max(1);
        let retry = self
            .cfg
            .connect_retry
            .filter(|_| self.cfg.addr.ip().is_loopback());
        // Connects in the order they started, with their attempt: the oldest is due first.
        let mut pending: VecDeque<(usize, u8, Instant)> = VecDeque::new();
        let mut next = 0;
        loop {
            while next < total && self.run.borrow().connecting < window {
                pending.push_back(self.start_connect(next));
                next += 1;
            }
            let now = Instant::now();
            if (next == total && self.run.borrow().connecting == 0) || now >= deadline {
                break;
            }
            let mut wait = (deadline - now).min(TICK);
            if let Some(retry) = retry {
                if let Some(due) = self.retry_stalled(&mut pending, retry, now) {
                    wait = wait.min(due);
                }
            }
            self.reactor.run_once(Some(wait))?;
            self.progress(false);
        }
        self.connect_time = started.elapsed();
        if next < total {
            let mut run = self.run.borrow_mut();
            run.failed += total - next;
            let message = format!(
                "{} connections not even attempted: the connect phase hit its {:?} limit",
                total - next,
                self.cfg.connect_timeout
            );
            run.note(message);
        }
        // Give up on connects still in progress; their closes count them as failed.
        let stuck: Vec<usize> = {
            let run = self.run.borrow();
            (0..total)
                .filter(|&c| run.conns[c].status == Status::Connecting)
                .collect()
        };
        for c in stuck {
            self.abort(c);
        }
        self.pump(Instant::now() + Duration::from_secs(1), |run| {
            run.connecting == 0
        })
    }

    /// Makes again every connect of `pending` that has been in progress for `retry` by `now`,
    /// and drops the entries of connects that ended. Returns how long until the oldest one
    /// left is due, if any is.
    fn retry_stalled(
        &mut self,
        pending: &mut VecDeque<(usize, u8, Instant)>,
        retry: Duration,
        now: Instant,
    ) -> Option<Duration> {
        while let Some(&(c, attempt, started)) = pending.front() {
            let live = {
                let run = self.run.borrow();
                let conn = &run.conns[c];
                conn.status == Status::Connecting && conn.attempt == attempt
            };
            if !live {
                pending.pop_front();
                continue;
            }
            let due = started + retry;
            if due > now {
                return Some(due - now);
            }
            pending.pop_front();
            // Abandon first: the abort's close then belongs to a dead attempt.
            let id = self.run.borrow().conns[c].id;
            self.run.borrow_mut().retry_connect(c);
            if let Some(id) = id {
                let _ = self.reactor.abort(id);
            }
            pending.push_back(self.start_connect(c));
        }
        None
    }

    /// Starts connection `c`'s connect; returns what `connect_all` tracks of it.
    fn start_connect(&mut self, c: usize) -> (usize, u8, Instant) {
        let cfg = self.cfg;
        self.run.borrow_mut().start_connect(c);
        let attempt = self.run.borrow().conns[c].attempt;
        let client = Client {
            c,
            attempt,
            run: Rc::clone(&self.run),
            connect_timeout: cfg.connect_timeout,
        };
        let options = match cfg.src_ips.len() {
            0 => cfg.options.clone(),
            n => cfg
                .options
                .clone()
                .bind(SocketAddr::new(cfg.src_ips[c % n], 0)),
        };
        let id = self.reactor.connect_with(cfg.addr, options, client);
        self.run.borrow_mut().conns[c].id = Some(id);
        (c, attempt, Instant::now())
    }

    fn abort(&mut self, c: usize) {
        let id = self.run.borrow().conns[c].id;
        if let Some(id) = id {
            let _ = self.reactor.abort(id);
        }
    }

    /// Stage 2 begins: every open active connection gets its first `depth` messages.
    fn start_load(&mut self) {
        let mut out = Vec::new();
        for c in 0..self.cfg.connections {
            out.clear();
            let id = {
                let mut run = self.run.borrow_mut();
                if !run.initial_messages(c, &mut out) {
                    continue;
                }
                run.conns[c].id
            };
            let sent = match id {
                Some(id) => self.reactor.write_to(id, &out),
                None => Ok(()),
            };
            if let Err(e) = sent {
                let message = format!("connection {c}: first write failed: {e}");
                self.run.borrow_mut().broken(c, message);
                self.abort(c);
            }
        }
    }

    /// Stage 4: waits for the echoes in flight; what does not come back is lost.
    fn drain(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.cfg.drain_timeout;
        self.stage_start = Instant::now();
        self.stage_length = Some(self.cfg.drain_timeout);
        self.pump(deadline, |run| !(0..run.active).any(|c| run.in_flight(c)))?;
        let mut run = self.run.borrow_mut();
        for c in 0..run.active {
            if run.in_flight(c) {
                let conn = run.conns[c];
                let missing = conn.sent - conn.recvd;
                run.lost_bytes += missing;
                let message = format!(
                    "connection {c}: {missing} bytes never echoed (waited {:?})",
                    self.cfg.drain_timeout
                );
                run.broken(c, message);
            }
        }
        Ok(())
    }

    /// Stage 5: closes everything gracefully; whatever is left at the deadline is reset.
    fn close_all(&mut self) -> io::Result<()> {
        self.enter(Stage::Closing, Some(self.cfg.close_grace));
        self.reactor.shutdown(self.cfg.close_grace);
        // The shutdown ends itself by the grace deadline; this bound is only a backstop.
        let deadline = Instant::now() + self.cfg.close_grace + Duration::from_secs(1);
        while self.reactor.is_shutting_down() && Instant::now() < deadline {
            self.reactor.run_once(Some(TICK))?;
            self.progress(false);
        }
        Ok(())
    }

    fn report(&self) -> LoadReport {
        let run = self.run.borrow();
        let errors = run.problems();
        LoadReport {
            requested: run.conns.len(),
            established: run.established,
            failed: run.failed,
            messages: run.messages,
            bytes: run.bytes,
            elapsed: run.measured(),
            connect_time: self.connect_time,
            connect_retries: run.connect_retries,
            latency: run.hist.clone(),
            errors,
            corrupted: run.corrupted,
            dropped: run.dropped,
            lost_bytes: run.lost_bytes,
        }
    }
}
