//! A closed-loop echo load generator built on sockloop's own client side.
//!
//! Every connection is an outbound [`Reactor::connect`] served by a small [`Handler`]; one
//! reactor on the calling thread drives them all (dogfooding the client half of the library).
//! It works against any echo server. Included by `examples/c10k.rs`, and by benches and tests
//! with `#[path = "../examples/loadgen/mod.rs"] mod loadgen;`.
//!
//! ```text
//! let cfg = LoadConfig { addr, connections: 1_000, ..LoadConfig::default() };
//! let report = loadgen::run_load(&cfg, &mut |_phase| {})?;
//! assert!(report.ok(), "{}", report.summary());
//! ```
//!
//! # How a run goes
//!
//! 1. **Connect** every connection, active and idle, at most `connect_concurrency` at a time
//!    (a burst larger than the server's accept queue would only be dropped and retried by the
//!    kernel a second later), within `connect_timeout` for the whole phase. Then
//!    `on_phase(Connected)`.
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
//! the client's own loop: with 10,000 connections on two cores that is most of it.
//!
//! # Source addresses
//!
//! One source IP reaches one server address from at most ~28,000 ephemeral ports. With
//! `src_ips`, sockets are bound to those addresses in turn before connecting. `Reactor::connect`
//! cannot bind, so those connections go through the foreign-source fallback in `bound.rs`
//! (same protocol code; see there for the library API it is waiting for).

// Each includer (c10k, benches, tests) uses a different part of this module.
#![allow(dead_code)]

mod bound;
mod track;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use sockloop::Reactor;

use bound::Bound;
#[allow(unused_imports)] // for tests that check bytes themselves
pub use track::{byte_at, fill, first_mismatch, Stage};
use track::{Client, Ended, Run, Status};

/// The longest a single wait for events lasts, so deadlines and progress are checked often.
const TICK: Duration = Duration::from_millis(50);
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
    /// Limit for the whole connect phase; connections not open by then count as failed.
    pub connect_timeout: Duration,
    /// indicatif bars on stderr while connecting and running (hidden when not a terminal).
    pub progress: bool,
    /// Connects in progress at once.
    pub connect_concurrency: usize,
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
            connect_timeout: Duration::from_secs(30),
            progress: false,
            connect_concurrency: 1000,
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

/// A snapshot for progress display, reported about every 100 ms.
#[derive(Clone, Debug)]
pub struct Progress {
    pub stage: Stage,
    /// Connections asked for, active and idle.
    pub total: usize,
    pub established: usize,
    pub failed: usize,
    /// Round trips completed since the warmup started.
    pub round_trips: u64,
    /// Round trips recorded in the measured window.
    pub measured: u64,
    pub limit: Option<u64>,
    pub stage_elapsed: Duration,
    /// Planned length of the stage, if it is timed.
    pub stage_length: Option<Duration>,
}

/// What a run measured and what went wrong.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Connections asked for (active + idle).
    pub requested: usize,
    pub established: usize,
    pub failed: usize,
    /// Round trips completed and verified in the measured window.
    pub messages: u64,
    /// Echoed bytes verified in the measured window (one direction).
    pub bytes: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Round-trip latency in nanoseconds, measured window only.
    pub latency: Histogram<u64>,
    /// The first few problems in words (lost/reordered/corrupted bytes, failed connects, resets).
    pub errors: Vec<String>,
    /// Connections that saw a wrong byte, or an EOF or reset with bytes in flight.
    pub corrupted: u64,
    /// Connections the server closed or reset before we closed them.
    pub dropped: usize,
    /// Bytes sent but never echoed by the end of the drain.
    pub lost_bytes: u64,
}

impl LoadReport {
    /// Every connection was established, and every echoed byte was right and came back.
    pub fn ok(&self) -> bool {
        self.established == self.requested
            && self.failed == 0
            && self.corrupted == 0
            && self.dropped == 0
            && self.lost_bytes == 0
            && self.errors.is_empty()
    }

    pub fn msgs_per_sec(&self) -> f64 {
        per_sec(self.messages as f64, self.elapsed)
    }

    /// Echoed payload, one direction, in 10^6 bytes per second.
    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 / 1e6, self.elapsed)
    }

    /// Latency at quantile `q` (0..=1), in nanoseconds.
    pub fn latency_at(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }

    /// A few human-readable lines: connections, rates, latency, verification.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "connections: {} established, {} failed (of {})",
            self.established, self.failed, self.requested
        );
        let _ = writeln!(
            s,
            "throughput:  {} round trips in {:.2} s = {:.0} msg/s, {:.2} MB/s echoed",
            self.messages,
            self.elapsed.as_secs_f64(),
            self.msgs_per_sec(),
            self.mb_per_sec()
        );
        let _ = writeln!(
            s,
            "latency:     p50 {}  p99 {}  p99.9 {}  max {}",
            fmt_ns(self.latency_at(0.5)),
            fmt_ns(self.latency_at(0.99)),
            fmt_ns(self.latency_at(0.999)),
            fmt_ns(self.latency.max())
        );
        if self.corrupted == 0 && self.dropped == 0 && self.lost_bytes == 0 {
            let _ = writeln!(s, "verified:    every echoed byte, in order");
        } else {
            let _ = writeln!(
                s,
                "FAILED:      {} connections corrupted, {} dropped by the server, {} bytes lost",
                self.corrupted, self.dropped, self.lost_bytes
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "  problem: {e}");
        }
        s
    }

    /// Adds another process's report (for runs split over several client processes). The
    /// histograms merge exactly; the window is the longest of the two.
    pub fn merge(&mut self, other: &LoadReport) {
        self.requested += other.requested;
        self.established += other.established;
        self.failed += other.failed;
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.elapsed = self.elapsed.max(other.elapsed);
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds");
        self.errors.extend(other.errors.iter().cloned());
        self.corrupted += other.corrupted;
        self.dropped += other.dropped;
        self.lost_bytes += other.lost_bytes;
    }

    /// The report as text lines, for a parent process to read back with
    /// [`from_lines`](Self::from_lines). The histogram is written as `value:count` pairs, one
    /// per recorded bucket, which rebuilds it exactly.
    pub fn to_lines(&self) -> String {
        let mut s = format!(
            "report {} {} {} {} {} {} {} {} {}\nlatency",
            self.requested,
            self.established,
            self.failed,
            self.messages,
            self.bytes,
            self.elapsed.as_nanos(),
            self.corrupted,
            self.dropped,
            self.lost_bytes
        );
        for v in self.latency.iter_recorded() {
            let _ = write!(s, " {}:{}", v.value_iterated_to(), v.count_at_value());
        }
        for e in &self.errors {
            let _ = write!(s, "\nerror {}", e.replace('\n', " "));
        }
        s.push_str("\nend\n");
        s
    }

    /// Parses what [`to_lines`](Self::to_lines) wrote (other lines are ignored).
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<LoadReport, String> {
        let mut report = LoadReport::empty();
        let mut seen = false;
        for line in lines {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "report" => {
                    let n: Vec<u128> = rest
                        .split_whitespace()
                        .map(|x| {
                            x.parse()
                                .map_err(|e| format!("bad report line {line:?}: {e}"))
                        })
                        .collect::<Result<_, _>>()?;
                    if n.len() != 9 {
                        return Err(format!("bad report line {line:?}"));
                    }
                    report.requested = n[0] as usize;
                    report.established = n[1] as usize;
                    report.failed = n[2] as usize;
                    report.messages = n[3] as u64;
                    report.bytes = n[4] as u64;
                    report.elapsed = Duration::from_nanos(n[5] as u64);
                    report.corrupted = n[6] as u64;
                    report.dropped = n[7] as usize;
                    report.lost_bytes = n[8] as u64;
                    seen = true;
                }
                "latency" => {
                    for pair in rest.split_whitespace() {
                        let parsed = pair
                            .split_once(':')
                            .and_then(|(v, c)| Some((v.parse().ok()?, c.parse().ok()?)));
                        let (value, count) =
                            parsed.ok_or_else(|| format!("bad latency pair {pair:?}"))?;
                        report.latency.saturating_record_n(value, count);
                    }
                }
                "error" => report.errors.push(rest.to_string()),
                _ => {}
            }
        }
        if seen {
            Ok(report)
        } else {
            Err("no report line".to_string())
        }
    }

    /// A report of nothing, to merge others into.
    pub fn empty() -> LoadReport {
        LoadReport {
            requested: 0,
            established: 0,
            failed: 0,
            messages: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            latency: Run::new(0, 0, 1, 1, None).hist,
            errors: Vec::new(),
            corrupted: 0,
            dropped: 0,
            lost_bytes: 0,
        }
    }
}

fn per_sec(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Nanoseconds in the unit that reads best: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub fn fmt_ns(ns: u64) -> String {
    let ns = ns as f64;
    match ns {
        n if n < 1e3 => format!("{n:.0} ns"),
        n if n < 1e6 => format!("{:.1} µs", n / 1e3),
        n if n < 1e9 => format!("{:.2} ms", n / 1e6),
        n => format!("{:.2} s", n / 1e9),
    }
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
    /// The foreign-source connections (only with `src_ips`); weak, so that a connection
    /// removed by its own callback closes its socket at once.
    bound: Vec<Option<Weak<RefCell<Bound>>>>,
    /// Read buffer of the foreign-source connections.
    rbuf: Rc<RefCell<Vec<u8>>>,
    on_progress: &'a mut dyn FnMut(&Progress),
    last_progress: Instant,
    stage_start: Instant,
    stage_length: Option<Duration>,
}

impl<'a> Driver<'a> {
    fn new(cfg: &'a LoadConfig, on_progress: &'a mut dyn FnMut(&Progress)) -> io::Result<Self> {
        let total = cfg.connections + cfg.idle_connections;
        let run = Run::new(total, cfg.connections, cfg.size, cfg.depth, cfg.messages);
        let bound = if cfg.src_ips.is_empty() {
            Vec::new()
        } else {
            vec![None; total]
        };
        Ok(Driver {
            cfg,
            reactor: Reactor::new()?,
            run: Rc::new(RefCell::new(run)),
            bound,
            rbuf: Rc::new(RefCell::new(vec![0; 64 * 1024])),
            on_progress,
            last_progress: Instant::now(),
            stage_start: Instant::now(),
            stage_length: Some(cfg.connect_timeout),
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
        let deadline = Instant::now() + self.cfg.connect_timeout;
        let window = self.cfg.connect_concurrency.max(1);
        let mut next = 0;
        loop {
            while next < total && self.run.borrow().connecting < window {
                self.start_connect(next);
                next += 1;
            }
            let now = Instant::now();
            if (next == total && self.run.borrow().connecting == 0) || now >= deadline {
                break;
            }
            self.reactor.run_once(Some((deadline - now).min(TICK)))?;
            self.progress(false);
        }
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

    fn start_connect(&mut self, c: usize) {
        let cfg = self.cfg;
        self.run.borrow_mut().start_connect(c);
        if cfg.src_ips.is_empty() {
            let client = Client {
                c,
                run: Rc::clone(&self.run),
                connect_timeout: cfg.connect_timeout,
            };
            let id = self.reactor.connect(cfg.addr, client);
            self.run.borrow_mut().conns[c].id = Some(id);
            return;
        }
        let src = cfg.src_ips[c % cfg.src_ips.len()];
        let (run, rbuf) = (&self.run, &self.rbuf);
        let timeout = cfg.connect_timeout;
        match bound::connect_from(&mut self.reactor, run, rbuf, c, src, cfg.addr, timeout) {
            Ok(b) => self.bound[c] = Some(Rc::downgrade(&b)),
            Err(e) => {
                let ended = Ended::ConnectFailed(format!("from {src}: {e}"));
                self.run.borrow_mut().closed(c, ended, timeout);
            }
        }
    }

    fn bound_conn(&self, c: usize) -> Option<Rc<RefCell<Bound>>> {
        self.bound.get(c)?.as_ref()?.upgrade()
    }

    fn abort(&mut self, c: usize) {
        let id = self.run.borrow().conns[c].id;
        if let Some(id) = id {
            let _ = self.reactor.abort(id);
        } else if let Some(b) = self.bound_conn(c) {
            let timeout = self.cfg.connect_timeout;
            bound::remove(&b, &mut self.reactor, &mut self.run.borrow_mut(), timeout);
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
            let sent = match (id, self.bound_conn(c)) {
                (Some(id), _) => self.reactor.write_to(id, &out),
                (None, Some(b)) => b.borrow_mut().send(&out),
                (None, None) => Ok(()),
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

    /// Stage 5: closes everything gracefully; whatever is left at the deadline is dropped.
    fn close_all(&mut self) -> io::Result<()> {
        self.enter(Stage::Closing, Some(self.cfg.close_grace));
        for c in 0..self.bound.len() {
            if let Some(b) = self.bound_conn(c) {
                b.borrow_mut().finish();
            }
        }
        self.reactor.shutdown(self.cfg.close_grace);
        let deadline = Instant::now() + self.cfg.close_grace + Duration::from_secs(1);
        loop {
            let open = self.reactor.is_shutting_down() || self.run.borrow().bound_live > 0;
            let now = Instant::now();
            if !open || now >= deadline {
                break;
            }
            self.reactor.run_once(Some((deadline - now).min(TICK)))?;
            self.progress(false);
        }
        for c in 0..self.bound.len() {
            if let Some(b) = self.bound_conn(c) {
                let timeout = self.cfg.connect_timeout;
                bound::remove(&b, &mut self.reactor, &mut self.run.borrow_mut(), timeout);
            }
        }
        Ok(())
    }

    fn report(&self) -> LoadReport {
        let run = self.run.borrow();
        let mut errors = run.errors.clone();
        if run.errors_untold > 0 {
            errors.push(format!("... and {} more problems", run.errors_untold));
        }
        LoadReport {
            requested: run.conns.len(),
            established: run.established,
            failed: run.failed,
            messages: run.messages,
            bytes: run.bytes,
            elapsed: run.measured(),
            latency: run.hist.clone(),
            errors,
            corrupted: run.corrupted,
            dropped: run.dropped,
            lost_bytes: run.lost_bytes,
        }
    }
}

/// indicatif bars for [`Progress`] snapshots: a bar while connecting, one while warming up and
/// measuring, a spinner while draining and closing. Drawn on stderr, hidden when it is not a
/// terminal.
pub struct ProgressBars {
    bar: Option<ProgressBar>,
    stage: Option<Stage>,
    last: (Instant, u64),
}

impl Default for ProgressBars {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressBars {
    pub fn new() -> Self {
        ProgressBars {
            bar: None,
            stage: None,
            last: (Instant::now(), 0),
        }
    }

    pub fn update(&mut self, p: &Progress) {
        if self.stage != Some(p.stage) {
            self.start(p);
        }
        let Some(bar) = &self.bar else { return };
        match p.stage {
            Stage::Connecting => {
                bar.set_position((p.established + p.failed) as u64);
                if p.failed > 0 {
                    bar.set_message(format!("{} failed", p.failed));
                }
            }
            Stage::Warmup | Stage::Measuring => {
                match (p.stage, p.limit) {
                    (Stage::Measuring, Some(_)) => bar.set_position(p.measured),
                    _ => bar.set_position(p.stage_elapsed.as_millis() as u64),
                }
                let (at, before) = self.last;
                let rate = per_sec(p.round_trips.saturating_sub(before) as f64, at.elapsed());
                self.last = (Instant::now(), p.round_trips);
                bar.set_message(format!("{} round trips, {rate:.0}/s", p.round_trips));
            }
            Stage::Draining | Stage::Closing => bar.tick(),
        }
    }

    fn start(&mut self, p: &Progress) {
        self.finish();
        self.stage = Some(p.stage);
        let (len, template, prefix) = match (p.stage, p.limit, p.stage_length) {
            (Stage::Connecting, ..) => (
                p.total as u64,
                "{prefix:>10} [{bar:40}] {pos}/{len} {per_sec:>10} {msg}",
                "connecting",
            ),
            (Stage::Measuring, Some(limit), _) => (
                limit,
                "{prefix:>10} [{bar:40}] {elapsed:>4} {msg}",
                "measuring",
            ),
            (Stage::Warmup | Stage::Measuring, _, Some(len)) => (
                len.as_millis() as u64,
                "{prefix:>10} [{bar:40}] {elapsed:>4} {msg}",
                if p.stage == Stage::Warmup {
                    "warmup"
                } else {
                    "measuring"
                },
            ),
            (Stage::Draining, ..) => (0, "{prefix:>10} {spinner} {elapsed}", "draining"),
            _ => (0, "{prefix:>10} {spinner} {elapsed}", "closing"),
        };
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(prefix);
        self.last = (Instant::now(), p.round_trips);
        self.bar = Some(bar);
    }

    /// Leaves the current bar as it stands.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            if bar.length() == Some(0) {
                bar.finish_and_clear();
            } else {
                bar.finish();
            }
        }
    }
}
