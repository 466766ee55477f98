//! The chunking property, shared by the proptest in `tests/chunking.rs` and the cargo-fuzz target
//! `fuzz/fuzz_targets/chunked_stream.rs` (which includes this file by path), so that CI and the
//! fuzzer check one and the same thing.
//!
//! A [`Scenario`] (derived from arbitrary bytes by [`Scenario::from_bytes`]) fixes a payload, how
//! the peer splits it into writes, how many loop iterations run between writes, how the handler
//! consumes its input on each `on_data` call (nothing, part, whole lines or frames, everything,
//! through every `Input` method and the `Read`/`BufRead` impls), whether it replies, whether it
//! closes, shuts down or aborts at some point, and how the peer ends (FIN, FIN right behind the
//! last data, reset). [`run`] plays it against a real [`Reactor`] on the calling thread, with a
//! non-blocking peer socket on loopback (TCP, or a Unix stream socket), and then checks:
//!
//! - the handler was offered exactly the bytes sent, in order, nothing lost or duplicated; what
//!   it consumed followed by what it left equals what arrived, and each call's input starts with
//!   the previous call's leftover;
//! - `on_read_closed` came only after all the data (and did come, unless the handler had closed
//!   or shut down first), and no `on_data` came after it or after a close;
//! - `on_open` and `on_close` were called exactly once, `on_close` with a reason that fits the
//!   scenario (`PeerClosed`/`Local` after a clean exchange, `Error` after a reset, `Aborted`,
//!   `InputLimit` when the handler left more than `max_input`);
//! - every reply the reactor accepted reached the peer byte-exact, followed by EOF (only a prefix
//!   when the connection was reset), and writes were refused exactly when they should be;
//! - nothing panicked (handler panics are not caught, so a failed check inside a callback fails
//!   the run) and no wait exceeded its bound.
//!
//! Everything is non-blocking and single-threaded: the peer's writes land in the kernel at once
//! (loopback), and the loop is driven with `run_once` in between, so nothing can deadlock. Every
//! loop is bounded by [`MAX_TURNS`] iterations and the [`DEADLINE`].

// The proptest and the fuzz target each use a different part of this module.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::{self, ErrorKind, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sockloop::{CloseReason, ConnId, Context, Handler, Input, ListenOptions, Reactor};

// These files live in `tests/chunking/`; the paths keep that true when the fuzz target includes
// this one from elsewhere.
#[path = "peer.rs"]
mod peer;
#[path = "scenario.rs"]
mod scenario;

pub use peer::Layer;
use peer::{Peer, SocketPath};
pub use scenario::*;

/// Most `run_once` calls one run may make (writes, spins and the wait for the close together).
pub const MAX_TURNS: usize = 60_000;
/// Wall-clock bound on one run; a healthy run takes milliseconds, so reaching it is a hang.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// The TCP peer's receive buffer with [`Reply::Bulk`] (the kernel doubles it): small enough that
/// a few bulk replies fill it.
const PEER_RCVBUF: usize = 4096;
/// How long `run_once` may wait while the peer has nothing more to send.
const POLL: Duration = Duration::from_millis(1);

/// Derives a scenario from `data` and runs it; panics if a property does not hold.
pub fn check(data: &[u8]) {
    run(&Scenario::from_bytes(data));
}

/// What a run exercised, so that a hand-written case can show it reached its edge.
#[derive(Debug)]
pub struct Outcome {
    /// `on_data` calls.
    pub calls: usize,
    /// Calls that left bytes unconsumed, offered again with the next ones.
    pub partial: usize,
    /// `on_drained` calls: output had to wait for the socket.
    pub drained: usize,
    /// `on_read_closed` was called.
    pub read_closed: bool,
    /// The close reason, as displayed.
    pub reason: String,
}

/// Something that decides how a connection must end, in the order the handler saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The handler called `close()` (in `on_data` or `on_read_closed`).
    Close,
    ShutdownWrite,
    Abort,
    /// An `on_data` call left more than `max_input` unconsumed.
    OverLimit,
    /// `on_read_closed`.
    Fin,
    /// The harness called `Reactor::close` on a connection left open after the peer's FIN.
    ReactorClose,
}

/// What the handler saw and did, for the checks after the run.
struct Log {
    id: Option<ConnId>,
    opens: usize,
    calls: usize,
    /// The new bytes of each `on_data` call, concatenated: the stream as delivered.
    received: Vec<u8>,
    consumed: Vec<u8>,
    /// What the latest call left unconsumed.
    leftover: Vec<u8>,
    /// Output the reactor accepted, in order: what the peer must read.
    replies: Vec<u8>,
    /// Whether the reactor should still accept output (no close, shutdown or abort yet).
    write_open: bool,
    /// Set by a close, an abort or the input bound: no `on_data` may follow.
    reading_stopped: bool,
    /// `received.len()` when `on_read_closed` was called.
    read_closed_at: Option<usize>,
    steps: Vec<Step>,
    /// Calls that left bytes unconsumed.
    partial: usize,
    /// `on_drained` calls (output had to wait for the socket).
    drained: usize,
    closes: Vec<CloseReason>,
}

/// The handler under test: consumes, replies and closes as its scenario says, checking the
/// `Input` API's own promises as it goes.
struct Probe {
    s: Rc<Scenario>,
    limit: usize,
    log: Rc<RefCell<Log>>,
}

impl Probe {
    /// Queues `bytes`; `via_io` uses `io::Write`, whose result must say whether it was accepted.
    fn reply(&self, cx: &mut Context<'_>, log: &mut Log, bytes: &[u8], via_io: bool) {
        if via_io {
            let accepted = cx.write_all(bytes).is_ok();
            assert_eq!(
                accepted, log.write_open,
                "io::Write accepted output: {accepted}"
            );
        } else {
            cx.write(bytes);
        }
        if log.write_open {
            log.replies.extend_from_slice(bytes);
        }
    }
}

impl Handler for Probe {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let mut log = self.log.borrow_mut();
        log.opens += 1;
        log.id = Some(cx.id());
        if self.s.greeting {
            self.reply(cx, &mut log, b"HELLO\n", false);
        }
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let mut log = self.log.borrow_mut();
        assert!(
            log.opens == 1 && log.closes.is_empty(),
            "on_data outside open..close"
        );
        assert!(
            !log.reading_stopped,
            "on_data after a close, abort or the input bound"
        );
        assert!(log.read_closed_at.is_none(), "on_data after on_read_closed");
        let offered = input.as_slice();
        // The leftover comes first; new bytes may follow (none when reading resumed after the
        // output watermark held it, and the kept input is offered again as it is).
        assert!(
            offered.len() >= log.leftover.len() && offered.starts_with(&log.leftover),
            "call {} was offered {} bytes, not the {}-byte leftover followed by any new bytes",
            log.calls,
            offered.len(),
            log.leftover.len()
        );
        let fresh = &offered[log.leftover.len()..];
        log.received.extend_from_slice(fresh);
        let call = log.calls;
        log.calls += 1;
        let op = match self.s.consume.len() {
            0 => Consume::TakeAll,
            n => self.s.consume[call % n],
        };
        let handed = op.apply(input);
        let used = offered.len() - input.len();
        assert_eq!(
            handed,
            &offered[..used],
            "{op:?} handed other bytes than it consumed"
        );
        assert_eq!(
            input.as_slice(),
            &offered[used..],
            "{op:?} left a non-suffix"
        );
        assert_eq!(input.consumed(), used, "Input::consumed after {op:?}");
        log.consumed.extend_from_slice(&handed);
        log.leftover = input.to_vec();
        log.partial += usize::from(!input.is_empty());
        match self.s.reply {
            Reply::None => {}
            Reply::Echo if handed.is_empty() => {}
            Reply::Echo => self.reply(cx, &mut log, &handed, false),
            Reply::Tagged | Reply::Bulk => {
                let mut msg = format!("<{call}:{}>", handed.len()).into_bytes();
                msg.extend_from_slice(&handed);
                if self.s.reply == Reply::Bulk && call < BULK_CALLS {
                    msg.extend((0..BULK_REPLY).map(|i| (i * 7 + call) as u8));
                }
                self.reply(cx, &mut log, &msg, true);
            }
        }
        if let Some(local) = self.s.local.filter(|l| l.at_call == call) {
            log.write_open = false;
            match local.action {
                LocalAction::Close => {
                    cx.close();
                    log.reading_stopped = true;
                    log.steps.push(Step::Close);
                }
                LocalAction::ShutdownWrite => {
                    cx.shutdown_write();
                    log.steps.push(Step::ShutdownWrite);
                }
                LocalAction::Abort => {
                    cx.abort();
                    log.reading_stopped = true;
                    log.steps.push(Step::Abort);
                }
            }
        }
        // The bound applies only to a connection that still reads for its handler: one this
        // call closed or aborted is exempt (its leftover is moot).
        if log.leftover.len() > self.limit && !log.reading_stopped {
            log.reading_stopped = true;
            log.steps.push(Step::OverLimit);
        }
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        let mut log = self.log.borrow_mut();
        assert!(
            log.opens == 1 && log.closes.is_empty(),
            "on_read_closed outside open..close"
        );
        assert!(log.read_closed_at.is_none(), "on_read_closed twice");
        assert!(
            !log.reading_stopped,
            "on_read_closed after a close, abort or the input bound"
        );
        log.read_closed_at = Some(log.received.len());
        log.steps.push(Step::Fin);
        match self.s.read_closed {
            ReadClosed::Close => cx.close(),
            ReadClosed::TrailerThenClose => {
                let trailer = format!("END {}\n", log.received.len());
                self.reply(cx, &mut log, trailer.as_bytes(), true);
                cx.close();
            }
            ReadClosed::ShutdownWrite => cx.shutdown_write(),
            ReadClosed::LeaveOpen => return,
        }
        log.write_open = false;
    }

    fn on_drained(&mut self, _cx: &mut Context<'_>) {
        let mut log = self.log.borrow_mut();
        assert!(
            log.opens == 1 && log.closes.is_empty(),
            "on_drained outside open..close"
        );
        log.drained += 1;
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let mut log = self.log.borrow_mut();
        assert!(
            io::Write::write(cx, b"late").is_err(),
            "on_close could still queue output for its own connection"
        );
        log.closes.push(reason);
    }
}

/// Plays a scenario: the reactor and the peer take turns on this thread.
struct Driver<'s> {
    s: &'s Scenario,
    reactor: Reactor,
    log: Rc<RefCell<Log>>,
    peer: Peer,
    _path: Option<SocketPath>,
    writes: usize,
    turns: usize,
    started: Instant,
}

/// `ListenOptions`' documented default `max_input`.
const DEFAULT_MAX_INPUT: usize = 1 << 20;

/// A protocol between the handler and the peer's socket (TLS in `tests/tls_chunking.rs`): the
/// listener's side of it, and a fresh peer's side for each run. The scenario's chunking, spins
/// and ends then apply to the plaintext.
pub trait Wrap {
    /// The listener's options, with the protocol added.
    fn listen_options(&self, options: ListenOptions) -> ListenOptions;
    /// The peer's side, for one connection.
    fn layer(&self) -> Box<dyn Layer>;
}

/// Runs `s` and panics, with the scenario and what was observed, if a property fails.
pub fn run(s: &Scenario) -> Outcome {
    run_with(s, None)
}

/// Runs `s` over TCP under `wrap`'s protocol, as [`run`] does: the peer completes the
/// protocol's opening (and the handler hears `on_open`) before it sends.
pub fn run_wrapped(s: &Scenario, wrap: &dyn Wrap) -> Outcome {
    let s = Scenario {
        transport: Transport::Tcp,
        ..s.clone()
    };
    run_with(&s, Some(wrap))
}

fn run_with(s: &Scenario, wrap: Option<&dyn Wrap>) -> Outcome {
    let payload = s.payload.bytes();
    let mut d = Driver::start(s, wrap);
    d.send(&payload);
    d.end();
    d.finish();
    d.verify(&payload);
    let log = d.log.borrow();
    Outcome {
        calls: log.calls,
        partial: log.partial,
        drained: log.drained,
        read_closed: log.read_closed_at.is_some(),
        reason: log.closes[0].to_string(),
    }
}

impl<'s> Driver<'s> {
    fn start(s: &'s Scenario, wrap: Option<&dyn Wrap>) -> Driver<'s> {
        let mut reactor = Reactor::new().expect("Reactor::new");
        // A failed check inside a callback must fail the run, not just close the connection.
        reactor.set_panic_policy(sockloop::PanicPolicy::Unwind);
        let mut options = match s.max_input {
            Some(n) => ListenOptions::new().max_input(n),
            None => ListenOptions::new(),
        };
        if let Some(wrap) = wrap {
            options = wrap.listen_options(options);
        }
        let log = Rc::new(RefCell::new(Log {
            id: None,
            opens: 0,
            calls: 0,
            received: Vec::new(),
            consumed: Vec::new(),
            leftover: Vec::new(),
            replies: Vec::new(),
            write_open: true,
            reading_stopped: false,
            read_closed_at: None,
            steps: Vec::new(),
            partial: 0,
            drained: 0,
            closes: Vec::new(),
        }));
        let (plan, limit, shared) = (
            Rc::new(s.clone()),
            s.max_input.map_or(DEFAULT_MAX_INPUT, |n| n.max(1)),
            log.clone(),
        );
        let factory = move || Probe {
            s: Rc::clone(&plan),
            limit,
            log: Rc::clone(&shared),
        };
        let (peer, path) = match s.transport {
            Transport::Tcp => {
                let local = "127.0.0.1:0".parse().unwrap();
                let (_, addr) = reactor
                    .listen_with(local, options, factory)
                    .expect("listen");
                // Bulk replies are meant to fill the window and wait in the reactor.
                let rcvbuf = (s.reply == Reply::Bulk).then_some(PEER_RCVBUF);
                match wrap {
                    Some(wrap) => (Peer::layered(addr, rcvbuf, wrap.layer()), None),
                    None => (Peer::tcp(addr, rcvbuf), None),
                }
            }
            Transport::Unix => {
                let path = SocketPath::new();
                let listening = reactor.listen_unix_with(&path.0, options, factory);
                listening.expect("listen_unix");
                (Peer::unix(&path.0), Some(path))
            }
        };
        let mut d = Driver {
            s,
            reactor,
            log,
            peer,
            _path: path,
            writes: 0,
            turns: 0,
            started: Instant::now(),
        };
        if wrap.is_some() {
            d.open();
        }
        d
    }

    /// Runs the loop until the peer's layer has completed its opening and the handler has
    /// heard `on_open`, so that the scenario's writes reach the handler as they are split
    /// (rather than all at once, when the opening completes).
    fn open(&mut self) {
        loop {
            self.peer.read_available();
            let opened = self.log.borrow().opens > 0;
            if opened && self.peer.is_ready() {
                return;
            }
            if self.peer.is_done() {
                self.fail("the peer's stream ended during the opening".to_string());
            }
            self.turn(POLL);
        }
    }

    /// One loop iteration, within the run's bounds.
    fn turn(&mut self, timeout: Duration) {
        self.turns += 1;
        if self.turns > MAX_TURNS || self.started.elapsed() > DEADLINE {
            let elapsed = self.started.elapsed();
            self.fail(format!(
                "no end after {} iterations, {elapsed:?}",
                self.turns
            ));
        }
        self.reactor.run_once(Some(timeout)).expect("run_once");
    }

    /// The peer sends the payload in the scenario's chunks, with its spins between writes.
    fn send(&mut self, payload: &[u8]) {
        let mut off = 0;
        while off < payload.len() && self.peer.errors.is_empty() {
            let n = self.s.chunk(self.writes).min(payload.len() - off);
            let fin_with_last =
                off + n == payload.len() && self.s.end == PeerEnd::HalfCloseWithLastWrite;
            if fin_with_last {
                self.peer.cork();
            }
            self.write_all(&payload[off..off + n]);
            off += n;
            self.writes += 1;
            if fin_with_last {
                return;
            }
            for _ in 0..self.s.spin(self.writes - 1) {
                self.turn(Duration::ZERO);
            }
            if self.s.peer_reads_early {
                self.peer.read_available();
            }
        }
    }

    /// Writes all of `bytes`, letting the loop run while the socket is full; stops on an error.
    fn write_all(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.peer.write(bytes) {
                Ok(0) => return, // the socket is gone
                Ok(n) => bytes = &bytes[n..],
                // Full: the reactor must read (and the peer take replies) before more fits.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.turn(POLL);
                    self.peer.read_available();
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return, // recorded by the peer
            }
        }
    }

    /// The peer ends as the scenario says.
    fn end(&mut self) {
        match self.s.end {
            PeerEnd::HalfClose | PeerEnd::HalfCloseWithLastWrite => self.peer.shutdown_write(),
            PeerEnd::Reset => self.peer.reset(),
            PeerEnd::HalfCloseThenReset => {
                self.peer.shutdown_write();
                for _ in 0..self.s.spin(self.writes) {
                    self.turn(Duration::ZERO);
                }
                self.peer.reset();
            }
        }
    }

    /// Runs the loop until the connection has closed and the peer has seen the end of it.
    fn finish(&mut self) {
        loop {
            self.peer.read_available();
            let closed = !self.log.borrow().closes.is_empty();
            if closed && self.peer.is_done() {
                break;
            }
            if !closed {
                self.close_if_left_open();
            }
            self.turn(POLL);
        }
        // A few more iterations: nothing may happen to a connection after its close.
        for _ in 0..3 {
            self.turn(Duration::ZERO);
        }
    }

    /// With `ReadClosed::LeaveOpen` the connection stays after the peer's FIN until the
    /// harness closes it through the reactor.
    fn close_if_left_open(&mut self) {
        let id = {
            let mut log = self.log.borrow_mut();
            let due = self.s.read_closed == ReadClosed::LeaveOpen
                && log.read_closed_at.is_some()
                && !log.steps.contains(&Step::ReactorClose);
            if !due {
                return;
            }
            log.steps.push(Step::ReactorClose);
            log.id.expect("on_open came before on_read_closed")
        };
        let closing = self.reactor.close(id);
        closing.expect("Reactor::close of a connection left open");
    }

    fn fail(&self, what: String) -> ! {
        let log = self.log.borrow();
        let peer = &self.peer;
        panic!(
            "{what}\nscenario: {:#?}\nobserved: {} on_data calls, received {} bytes, consumed {}, \
             leftover {}, steps {:?}, on_read_closed at {:?}, {} on_drained, closes {:?}; peer read \
             {} of {} reply bytes, eof {}, read error {:?}, errors {:?}",
            self.s,
            log.calls,
            log.received.len(),
            log.consumed.len(),
            log.leftover.len(),
            log.steps,
            log.read_closed_at,
            log.drained,
            log.closes,
            peer.got.len(),
            log.replies.len(),
            peer.eof,
            peer.read_error,
            peer.errors,
        );
    }

    /// The properties listed in the module docs.
    fn verify(&self, payload: &[u8]) {
        let log = self.log.borrow();
        let check = |ok: bool, what: &str| {
            if !ok {
                self.fail(what.to_string());
            }
        };
        check(log.opens == 1, "on_open was not called exactly once");
        check(
            log.closes.len() == 1,
            "on_close was not called exactly once",
        );
        check(
            self.reactor.connection_count() == 0,
            "connection not released",
        );

        // Input: a prefix of what was sent, in order, each byte once.
        check(
            payload.starts_with(&log.received),
            "received is no prefix of the payload",
        );
        let handled = [&log.consumed[..], &log.leftover[..]].concat();
        check(
            handled == log.received,
            "consumed + leftover is not what was received",
        );
        if let Some(at) = log.read_closed_at {
            check(at == payload.len(), "on_read_closed before all the data");
        }

        // How it ended. Only one call can close: an overflow of the input bound (by a call that
        // did not itself close) decides; else an abort; else how the peer ended.
        let reset = self.peer.is_gone();
        let fatal = [Step::OverLimit, Step::Abort]
            .into_iter()
            .find(|s| log.steps.contains(s));
        let before_fin = || log.steps.iter().take_while(|s| **s != Step::Fin);
        let closed_early = before_fin().any(|s| *s == Step::Close);
        let reason = &log.closes[0];
        let fits = match fatal {
            Some(Step::Abort) => matches!(reason, CloseReason::Aborted),
            Some(_) => matches!(reason, CloseReason::InputLimit),
            // A TCP reset with no FIN before it can only be an error.
            None if reset && self.s.transport == Transport::Tcp && self.s.end == PeerEnd::Reset => {
                matches!(reason, CloseReason::Error(_))
            }
            // Otherwise the close may have completed before the reset arrived.
            None if reset => matches!(
                reason,
                CloseReason::Error(_) | CloseReason::PeerClosed | CloseReason::Local
            ),
            None if closed_early => matches!(reason, CloseReason::PeerClosed | CloseReason::Local),
            None => matches!(reason, CloseReason::PeerClosed),
        };
        check(
            fits,
            &format!("close reason {reason:?} does not fit the scenario"),
        );

        if fatal.is_some() || reset {
            let got = &self.peer.got;
            check(
                log.replies.starts_with(got),
                "the peer read bytes never written",
            );
            return;
        }
        // A clean exchange delivers everything, both ways, and the peer writes without error.
        if !closed_early {
            check(log.received == payload, "a clean exchange lost bytes");
            // After `shutdown_write` the peer's FIN may simply complete the close
            // (`PeerClosed`) without `on_read_closed`; otherwise the handler must hear of it.
            let shut = before_fin().any(|s| *s == Step::ShutdownWrite);
            check(
                shut || log.read_closed_at.is_some(),
                "FIN never reached on_read_closed",
            );
        }
        check(
            self.peer.errors.is_empty(),
            "the peer failed to send in a clean exchange",
        );
        check(
            self.peer.got == log.replies,
            "the peer did not read exactly the replies",
        );
        check(
            self.peer.eof && self.peer.read_error.is_none(),
            "the peer saw no clean EOF",
        );
    }
}
