//! The bookkeeping every connection shares: the byte pattern, in-order verification of the
//! echo, round-trip latency, and what counts as a failure; and the handler that feeds it.
//!
//! All connections of one run share one [`Run`] behind an `Rc<RefCell<_>>`: the reactor is
//! single-threaded, and a callback never calls another connection's callback, so a borrow is
//! never contended. Per connection the run keeps one [`Conn`] (32 bytes) plus one send timestamp
//! per message in flight; the handler itself is an index and a pointer.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sockloop::{CloseReason, ConnId, Context, Handler, Input};

/// Problems kept word for word; later ones are only counted (the first few explain the rest).
const MAX_ERRORS: usize = 10;
/// Latencies above an hour are recorded as an hour; the histogram keeps 3 significant digits.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Where a run is. Connections send only while warming up or measuring, and record only while
/// measuring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Opening every connection, active and idle; nothing is sent yet.
    Connecting,
    /// Load runs, not measured.
    Warmup,
    /// Load runs and round trips are recorded.
    Measuring,
    /// No new messages; waiting for the echoes still in flight.
    Draining,
    /// Closing every connection; closes from now on are expected.
    Closing,
}

/// One connection's place in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Unstarted,
    Connecting,
    Open,
    /// The connect failed or timed out (counted in `failed`).
    Failed,
    /// Counted as a failure while open (wrong byte, early EOF, reset); its close is expected.
    Broken,
    Closed,
}

/// What the run knows of one connection: 32 bytes, whether it is active or idle.
#[derive(Clone, Copy)]
pub(super) struct Conn {
    /// Set once the connect starts (the driver writes the first messages with `write_to`).
    pub(super) id: Option<ConnId>,
    /// Bytes of the pattern queued for sending so far (the next message starts here).
    pub(super) sent: u64,
    /// Bytes of the echo verified so far.
    pub(super) recvd: u64,
    pub(super) status: Status,
    /// Which connect attempt is the live one: the driver may abandon a stalled connect and
    /// start a fresh one (see `LoadConfig::connect_retry`), and the abandoned attempt's
    /// callbacks must not count. Wrapping is harmless: an abandoned attempt is aborted at once,
    /// so its last callback comes long before 256 more attempts.
    pub(super) attempt: u8,
}

/// How a connection ended, as far as the run cares.
pub(super) enum Ended {
    ConnectFailed(String),
    Error(String),
    /// Any orderly end: closed by us or by the peer, aborted by us.
    Clean,
}

impl From<CloseReason> for Ended {
    fn from(reason: CloseReason) -> Ended {
        match reason {
            CloseReason::ConnectFailed(e) => Ended::ConnectFailed(e.to_string()),
            CloseReason::Error(e) => Ended::Error(e.to_string()),
            // The others that are errors: with TLS, a handshake that failed (a certificate that
            // does not verify) or timed out, and a peer that ended without close_notify.
            reason if reason.is_error() => Ended::Error(reason.to_string()),
            _ => Ended::Clean,
        }
    }
}

/// An empty latency histogram: 1 ns to an hour, 3 significant digits (every report uses these
/// bounds, so they merge exactly).
pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid bounds")
}

/// The state of one run, shared by all its connections.
pub(super) struct Run {
    base: Instant,
    size: u64,
    depth: usize,
    /// Connections `0..active` carry load; the rest stay silent.
    pub(super) active: usize,
    pub(super) stage: Stage,
    /// Stop measuring after this many round trips.
    limit: Option<u64>,
    pub(super) conns: Vec<Conn>,
    /// When each message in flight was sent (ns since `base`): slot `c * depth + k % depth` for
    /// message `k` of connection `c`. Echoes come back in order, so a slot is free again by the
    /// time message `k + depth` is sent.
    sent_at: Vec<u64>,
    pub(super) connecting: usize,
    /// Stalled connects abandoned and started again.
    pub(super) connect_retries: u64,
    pub(super) established: usize,
    pub(super) failed: usize,
    pub(super) dropped: usize,
    pub(super) corrupted: u64,
    pub(super) lost_bytes: u64,
    /// Round trips completed in any stage (for progress display).
    pub(super) round_trips: u64,
    pub(super) messages: u64,
    pub(super) bytes: u64,
    pub(super) hist: Histogram<u64>,
    pub(super) measure_start: Option<Instant>,
    pub(super) measure_end: Option<Instant>,
    /// Problems by kind: the first message of each kind, and how many more were like it.
    errors: Vec<(String, String, u64)>,
    /// Problems of kinds beyond the first `MAX_ERRORS`.
    errors_untold: u64,
    /// Reused output buffer for the messages a callback sends.
    pub(super) scratch: Vec<u8>,
}

impl Run {
    pub(super) fn new(
        total: usize,
        active: usize,
        size: usize,
        depth: usize,
        limit: Option<u64>,
    ) -> Run {
        let conn = Conn {
            id: None,
            sent: 0,
            recvd: 0,
            status: Status::Unstarted,
            attempt: 0,
        };
        Run {
            base: Instant::now(),
            size: size as u64,
            depth,
            active,
            stage: Stage::Connecting,
            limit,
            conns: vec![conn; total],
            sent_at: vec![0; active * depth],
            connecting: 0,
            connect_retries: 0,
            established: 0,
            failed: 0,
            dropped: 0,
            corrupted: 0,
            lost_bytes: 0,
            round_trips: 0,
            messages: 0,
            bytes: 0,
            hist: new_histogram(),
            measure_start: None,
            measure_end: None,
            errors: Vec::new(),
            errors_untold: 0,
            scratch: Vec::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Records a problem. Problems that differ only in their numbers (connection, byte
    /// position, count) are one kind, told once with a count, so that 10,000 refused connects
    /// make one line.
    pub(super) fn note(&mut self, message: String) {
        let kind: String = message.chars().filter(|c| !c.is_ascii_digit()).collect();
        if let Some(seen) = self.errors.iter_mut().find(|(k, ..)| *k == kind) {
            seen.2 += 1;
        } else if self.errors.len() < MAX_ERRORS {
            self.errors.push((kind, message, 0));
        } else {
            self.errors_untold += 1;
        }
    }

    /// The problems in words, for the report.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut told: Vec<String> = self
            .errors
            .iter()
            .map(|(_, first, more)| match more {
                0 => first.clone(),
                n => format!("{first} (and {n} more like it)"),
            })
            .collect();
        if self.errors_untold > 0 {
            told.push(format!(
                "... and {} problems of other kinds",
                self.errors_untold
            ));
        }
        told
    }

    fn sending(&self) -> bool {
        matches!(self.stage, Stage::Warmup | Stage::Measuring)
    }

    pub(super) fn start_measuring(&mut self) {
        self.stage = Stage::Measuring;
        self.measure_start = Some(Instant::now());
    }

    /// Ends the measured window (at its deadline, or when the message limit is reached).
    pub(super) fn stop_measuring(&mut self) {
        if self.stage <= Stage::Measuring {
            self.stage = Stage::Draining;
            self.measure_end = Some(Instant::now());
        }
    }

    pub(super) fn measured(&self) -> Duration {
        match (self.measure_start, self.measure_end) {
            (Some(start), Some(end)) => end - start,
            (Some(start), None) => start.elapsed(),
            _ => Duration::ZERO,
        }
    }

    pub(super) fn start_connect(&mut self, c: usize) {
        self.conns[c].status = Status::Connecting;
        self.connecting += 1;
    }

    /// Abandons connection `c`'s connect, which is in progress, so that the driver can start
    /// it again; the old attempt's callbacks are ignored from now on.
    pub(super) fn retry_connect(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        debug_assert_eq!(conn.status, Status::Connecting);
        conn.status = Status::Unstarted;
        conn.attempt = conn.attempt.wrapping_add(1);
        self.connecting -= 1;
        self.connect_retries += 1;
    }

    pub(super) fn opened(&mut self, c: usize) {
        if self.conns[c].status == Status::Connecting {
            self.conns[c].status = Status::Open;
            self.connecting -= 1;
            self.established += 1;
        }
    }

    /// Appends `count` new messages of connection `c` to `out`, stamping their send time.
    pub(super) fn push_messages(&mut self, c: usize, count: u64, out: &mut Vec<u8>) {
        let now = self.now_ns();
        for _ in 0..count {
            let conn = &mut self.conns[c];
            let k = conn.sent / self.size;
            self.sent_at[c * self.depth + (k % self.depth as u64) as usize] = now;
            let start = out.len();
            out.resize(start + self.size as usize, 0);
            fill(c as u64, conn.sent, &mut out[start..]);
            conn.sent += self.size;
        }
    }

    /// The first `depth` messages of every open active connection, once the warmup starts.
    pub(super) fn initial_messages(&mut self, c: usize, out: &mut Vec<u8>) -> bool {
        if c >= self.active || self.conns[c].status != Status::Open {
            return false;
        }
        self.push_messages(c, self.depth as u64, out);
        true
    }

    /// Verifies echoed bytes in order; records each completed round trip and appends its
    /// replacement message to `out`. `Err` means the connection must be cut: the caller marks
    /// it with [`broken`](Self::broken).
    pub(super) fn received(
        &mut self,
        c: usize,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let now = self.now_ns();
        let conn = self.conns[c];
        let outstanding = conn.sent - conn.recvd;
        let fits = &data[..data.len().min(outstanding as usize)];
        if let Some(i) = first_mismatch(c as u64, conn.recvd, fits) {
            let at = conn.recvd + i as u64;
            return Err(format!(
                "connection {c}: echoed byte {at} is {:#04x}, expected {:#04x} \
                 (bytes lost, reordered or corrupted)",
                fits[i],
                byte_at(c as u64, at)
            ));
        }
        if data.len() as u64 > outstanding {
            return Err(format!(
                "connection {c}: {} bytes echoed when only {outstanding} were outstanding",
                data.len()
            ));
        }
        let recvd = conn.recvd + data.len() as u64;
        self.conns[c].recvd = recvd;
        let (first, last) = (conn.recvd / self.size, recvd / self.size);
        self.round_trips += last - first;
        if self.stage == Stage::Measuring {
            self.bytes += data.len() as u64;
            for k in first..last {
                let sent = self.sent_at[c * self.depth + (k % self.depth as u64) as usize];
                self.hist.saturating_record(now.saturating_sub(sent));
                self.messages += 1;
                if Some(self.messages) == self.limit {
                    self.stop_measuring();
                    break;
                }
            }
        }
        if self.sending() {
            self.push_messages(c, last - first, out);
        }
        Ok(())
    }

    /// Counts a connection cut for a wrong byte.
    pub(super) fn broken(&mut self, c: usize, message: String) {
        self.conns[c].status = Status::Broken;
        self.corrupted += 1;
        self.note(message);
    }

    /// Whether connection `c` still waits for echoes of bytes it sent.
    pub(super) fn in_flight(&self, c: usize) -> bool {
        let conn = &self.conns[c];
        conn.status == Status::Open && conn.sent != conn.recvd
    }

    /// A connection the peer ended before we closed it is a failure; one that had bytes in
    /// flight (or was carrying load) lost them.
    fn lost_early(&mut self, c: usize, what: &str) {
        let conn = self.conns[c];
        self.dropped += 1;
        let loaded = c < self.active && self.sending();
        if conn.sent != conn.recvd || loaded {
            self.corrupted += 1;
        }
        let kind = if c < self.active { "active" } else { "idle" };
        self.note(format!(
            "{kind} connection {c}: {what} with {} of {} bytes echoed ({:?})",
            conn.recvd, conn.sent, self.stage
        ));
    }

    /// The peer sent FIN. An echo server does that only after ours, in the closing stage.
    pub(super) fn peer_eof(&mut self, c: usize) {
        if self.stage < Stage::Closing && self.conns[c].status == Status::Open {
            self.lost_early(c, "the server closed it");
            self.conns[c].status = Status::Broken;
        }
    }

    /// The connection is gone; sort out what that means.
    pub(super) fn closed(&mut self, c: usize, ended: Ended, connect_timeout: Duration) {
        match self.conns[c].status {
            Status::Connecting => {
                self.connecting -= 1;
                self.failed += 1;
                self.conns[c].status = Status::Failed;
                self.note(match ended {
                    Ended::ConnectFailed(e) | Ended::Error(e) => {
                        format!("connection {c}: connect failed: {e}")
                    }
                    Ended::Clean => format!(
                        "connection {c}: connect did not complete within {connect_timeout:?}"
                    ),
                });
            }
            Status::Open => {
                if self.stage < Stage::Closing {
                    let what = match &ended {
                        Ended::Error(e) => format!("error ({e})"),
                        _ => "closed".to_string(),
                    };
                    self.lost_early(c, &what);
                }
                self.conns[c].status = Status::Closed;
            }
            Status::Broken => self.conns[c].status = Status::Closed,
            Status::Unstarted | Status::Failed | Status::Closed => {}
        }
    }
}

/// The handler of one load connection made with `Reactor::connect`.
pub(super) struct Client {
    pub(super) c: usize,
    /// The connect attempt this handler belongs to (`Conn::attempt` when it was made).
    pub(super) attempt: u8,
    pub(super) run: Rc<RefCell<Run>>,
    /// Only for the wording of a timed-out connect.
    pub(super) connect_timeout: Duration,
}

impl Client {
    /// Whether this handler's attempt is still the connection's live one.
    fn live(&self) -> bool {
        self.run.borrow().conns[self.c].attempt == self.attempt
    }
}

impl Handler for Client {
    fn on_open(&mut self, _cx: &mut Context<'_>) {
        if self.live() {
            self.run.borrow_mut().opened(self.c);
        }
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let data = input.take_all();
        let mut run = self.run.borrow_mut();
        let mut out = std::mem::take(&mut run.scratch);
        out.clear();
        match run.received(self.c, data, &mut out) {
            // All replacement messages leave in one write after this callback.
            Ok(()) if !out.is_empty() => cx.write(&out),
            Ok(()) => {}
            Err(message) => {
                run.broken(self.c, message);
                cx.abort();
            }
        }
        run.scratch = out;
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        self.run.borrow_mut().peer_eof(self.c);
        cx.close();
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        // An abandoned attempt's close (its abort) is expected and counts for nothing.
        if !self.live() {
            return;
        }
        let timeout = self.connect_timeout;
        self.run.borrow_mut().closed(self.c, reason.into(), timeout);
    }
}

/// Eight pattern bytes at once: splitmix64 of (connection, word index). Every 8-byte word of
/// every connection differs, so a lost, duplicated or reordered span of any length shows up,
/// and one multiply chain per 8 bytes keeps verification far cheaper than the syscalls.
fn word(conn: u64, index: u64) -> u64 {
    let mut z = index
        .wrapping_add(conn.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Byte `pos` of connection `conn`'s stream.
pub fn byte_at(conn: u64, pos: u64) -> u8 {
    word(conn, pos / 8).to_le_bytes()[(pos % 8) as usize]
}

/// Calls `f(offset in span, expected bytes)` for the pattern of `conn` from `pos` on, one
/// (partial) word at a time, until `len` bytes are covered or `f` returns false.
fn for_words(conn: u64, pos: u64, len: usize, mut f: impl FnMut(usize, &[u8]) -> bool) {
    let mut done = 0;
    while done < len {
        let at = pos + done as u64;
        let bytes = word(conn, at / 8).to_le_bytes();
        let skip = (at % 8) as usize;
        let n = (8 - skip).min(len - done);
        if !f(done, &bytes[skip..skip + n]) {
            return;
        }
        done += n;
    }
}

/// Writes the pattern of `conn` from stream position `pos` into `out`.
pub fn fill(conn: u64, pos: u64, out: &mut [u8]) {
    for_words(conn, pos, out.len(), |at, want| {
        out[at..at + want.len()].copy_from_slice(want);
        true
    });
}

/// Index of the first byte of `data` that differs from the pattern of `conn` at `pos`.
pub fn first_mismatch(conn: u64, pos: u64, data: &[u8]) -> Option<usize> {
    let mut found = None;
    for_words(conn, pos, data.len(), |at, want| {
        let got = &data[at..at + want.len()];
        if got == want {
            return true;
        }
        found = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .map(|i| at + i);
        false
    });
    found
}
