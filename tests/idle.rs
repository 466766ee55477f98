//! Idle timeouts (`ListenOptions::idle_timeout`): a connection that reads and writes nothing for
//! the timeout is closed with `CloseReason::IdleTimeout` (the client sees EOF), no earlier than the
//! timeout and not much later; reads and writes both count as activity.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sockloop::{Context, Handler, Input, ListenOptions, TimerId};
use util::{Echo, Event, Reason, Recorder};

const IDLE: Duration = Duration::from_millis(200);
/// How late an idle close may come: generous for a loaded machine, far below "never".
const SLACK: Duration = Duration::from_secs(1);
/// The activity check uses the loop's millisecond clock, stamped when an iteration starts; a
/// close may therefore come up to a millisecond before `IDLE` has passed since the activity.
const CLOCK_GRAIN: Duration = Duration::from_millis(1);

/// Reads one byte: `None` on EOF, panics on anything else (a reset is not an idle close).
fn read_byte_or_eof(c: &mut TcpStream) -> Option<u8> {
    let mut b = [0u8; 1];
    loop {
        match c.read(&mut b) {
            Ok(0) => return None,
            Ok(_) => return Some(b[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("expected data or EOF, got {e}"),
        }
    }
}

#[test]
fn idle_client_is_closed_with_idle_timeout_while_an_active_one_is_spared() {
    let (tx, events) = mpsc::channel();
    let ((addr, handle), server) = util::spawn_reactor(move |reactor| {
        let options = ListenOptions::new().idle_timeout(IDLE);
        let (_, addr) = reactor
            .listen_with(util::localhost(), options, move || {
                Recorder::new(Echo, tx.clone())
            })
            .unwrap();
        (addr, reactor.handle().unwrap())
    });

    // Connects and then says nothing.
    let idle = thread::spawn(move || {
        let start = Instant::now();
        let mut c = util::client(addr);
        util::assert_eof(&mut c);
        start.elapsed()
    });

    // Sends a ping every ~50 ms for 1.2 s (the pauses are the behaviour under test) and reads
    // each echo; then falls silent and waits for the idle close.
    let active = thread::spawn(move || {
        let mut c = util::client(addr);
        let start = Instant::now();
        let mut last_send = Instant::now();
        let mut longest_gap = Duration::ZERO;
        while start.elapsed() < Duration::from_millis(1200) {
            longest_gap = longest_gap.max(last_send.elapsed());
            last_send = Instant::now();
            c.write_all(b"ping").unwrap();
            for &want in b"ping" {
                match read_byte_or_eof(&mut c) {
                    Some(got) => assert_eq!(got, want),
                    None => {
                        // The pause says whether the client itself stalled for IDLE (a
                        // machine too busy for this test) or the reactor closed it wrongly.
                        let gap = longest_gap.max(last_send.elapsed());
                        panic!(
                            "active client closed after {:?} (longest pause {gap:?})",
                            start.elapsed()
                        );
                    }
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        let silent_since = last_send;
        util::assert_eof(&mut c);
        (silent_since.elapsed(), longest_gap)
    });

    let idle_after = idle.join().expect("idle client");
    let (active_after, longest_gap) = active.join().expect("active client");
    assert!(
        longest_gap < IDLE,
        "the active client paused {longest_gap:?}: the machine is too busy for this test"
    );
    assert!(idle_after >= IDLE, "idle close after {idle_after:?}");
    assert!(idle_after < IDLE + SLACK, "idle close after {idle_after:?}");
    assert!(
        active_after + CLOCK_GRAIN >= IDLE,
        "closed {active_after:?} after the last activity"
    );
    assert!(
        active_after < IDLE + SLACK,
        "closed {active_after:?} after the last activity"
    );

    server.wait_for_connections(0);
    let stats = util::stats(&handle);
    assert_eq!(stats.closed.idle_timeout, 2, "{stats}");
    assert_eq!(stats.closed.total(), 2, "{stats}");
    server.stop();
    let reasons: Vec<Reason> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::Close(_, why) => Some(why),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [Reason::IdleTimeout, Reason::IdleTimeout]);
}

/// Writes one byte every 50 ms, `left` times, then nothing.
struct Ticker {
    left: usize,
}

impl Handler for Ticker {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.set_timer(Duration::from_millis(50));
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
        cx.write(b"t");
        self.left -= 1;
        if self.left > 0 {
            cx.set_timer(Duration::from_millis(50));
        }
    }
}

/// The client only reads: the server's own writes keep the connection alive for a second, far
/// beyond the timeout, and once they stop the connection is closed as idle.
#[test]
fn writes_alone_count_as_activity() {
    const TICKS: usize = 20;
    let (tx, events) = mpsc::channel();
    let (addr, server) = util::spawn_reactor(move |reactor| {
        let options = ListenOptions::new().idle_timeout(IDLE);
        reactor
            .listen_with(util::localhost(), options, move || {
                Recorder::new(Ticker { left: TICKS }, tx.clone())
            })
            .unwrap()
            .1
    });
    let start = Instant::now();
    let mut c = util::client(addr);
    let mut got = 0;
    while let Some(b) = read_byte_or_eof(&mut c) {
        assert_eq!(b, b't');
        got += 1;
    }
    assert_eq!(got, TICKS, "bytes before the idle close");
    assert!(
        start.elapsed() >= Duration::from_millis(50) * TICKS as u32 + IDLE,
        "closed after {:?}",
        start.elapsed()
    );
    let (_, why) = util::next_close(&events);
    assert_eq!(why, Reason::IdleTimeout);
    server.stop();
}

/// A listener without an idle timeout leaves a silent connection alone (here: for five times the
/// timeout the other tests use), and one with a timeout does not affect the other's connections.
#[test]
fn listener_without_idle_timeout_keeps_silent_connections() {
    let ((plain, timed), server) = util::spawn_reactor(|reactor| {
        let (_, plain) = reactor.listen(util::localhost(), || Echo).unwrap();
        let options = ListenOptions::new().idle_timeout(IDLE);
        let (_, timed) = reactor
            .listen_with(util::localhost(), options, || Echo)
            .unwrap();
        (plain, timed)
    });
    let mut kept = util::client(plain);
    let mut dropped = util::client(timed);
    util::assert_eof(&mut dropped);
    // Silence on purpose: four more timeouts pass while `kept` says nothing.
    thread::sleep(IDLE * 4);
    kept.write_all(b"still here").unwrap();
    assert_eq!(util::read_exactly(&mut kept, 10), b"still here");
    server.stop();
}

/// Answers `quit` with `bye` and closes gracefully.
struct Quit;

impl Handler for Quit {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if input.starts_with(b"quit") {
            cx.write(b"bye");
            cx.close();
        }
        input.consume(input.len());
    }
}

/// The handler closed, everything including its FIN was delivered, and only the peer's FIN is
/// awaited when the idle check comes due: that close was the handler's (`Local`), as at a
/// shutdown deadline (8dc1bbd), not an idle connection's.
#[test]
fn idle_check_on_a_connection_the_handler_already_closed_reports_local() {
    let (tx, events) = mpsc::channel();
    let (addr, server) = util::spawn_reactor(move |reactor| {
        let options = ListenOptions::new().idle_timeout(IDLE);
        reactor
            .listen_with(util::localhost(), options, move || {
                Recorder::new(Quit, tx.clone())
            })
            .unwrap()
            .1
    });
    let mut c = util::client(addr);
    c.write_all(b"quit").unwrap();
    // The reply and the server's FIN arrive; the client keeps its side open (sends no FIN).
    assert_eq!(util::read_to_eof(&mut c), b"bye");
    let (_, why) = util::next_close(&events);
    drop(c);
    server.stop();
    assert_eq!(why, Reason::Local);
}
