//! Idle timeouts (`ListenOptions::idle_timeout`): a connection that reads and writes nothing for
//! the timeout is closed with `CloseReason::IdleTimeout` (the client sees EOF), never earlier than
//! the timeout after its last activity; reads and writes both count as activity.
//!
//! How late a close comes is the machine's business, not the library's: these tests bound it
//! only by the hang guard ([`util::TIMEOUT`]) and check the reason through `stats()`.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sockloop::{Context, Handler, Input, ListenOptions, TimerId};
use util::{Echo, Event, Reason, Recorder};

const IDLE: Duration = Duration::from_millis(200);
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

/// Whether a failed write or read means the server closed the connection: EOF before the whole
/// echo, or the reset a closed socket answers bytes with.
fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
    )
}

/// How the active client's connection ended.
struct ActiveEnd {
    /// When the last ping whose echo came back whole was sent: the server's last activity on the
    /// connection was no earlier than this.
    last_echoed: Instant,
    /// When the client saw the close.
    closed: Instant,
    /// Whether the close came while the client was still pinging (it paused for `IDLE` itself,
    /// which only a very busy machine makes it do).
    while_pinging: bool,
    /// Pings echoed in all.
    echoed: usize,
}

/// Connects, sends `ping` every ~50 ms for 1.2 s, reading each echo, then falls silent until
/// the close.
fn ping_then_fall_silent(addr: SocketAddr) -> ActiveEnd {
    // Taken before the connect: the server accepts (its first activity) after this.
    let start = Instant::now();
    let mut c = util::client(addr);
    let mut last_echoed = start;
    let mut echoed = 0;
    // The pauses are the behaviour under test: activity every 50 ms, a quarter of the timeout.
    while start.elapsed() < Duration::from_millis(1200) {
        let sent = Instant::now();
        // A write or read that fails means the server closed us while this thread was paused
        // for longer than the timeout: the closing side answers bytes sent after its FIN with
        // a reset. The reason is checked through the server's stats by the caller.
        let echo = c.write_all(b"ping").and_then(|()| {
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).map(|()| buf)
        });
        match echo {
            Ok(buf) => {
                assert_eq!(&buf, b"ping");
                last_echoed = sent;
                echoed += 1;
            }
            Err(e) if is_closed(&e) => {
                return ActiveEnd {
                    last_echoed,
                    closed: Instant::now(),
                    while_pinging: true,
                    echoed,
                }
            }
            Err(e) => panic!("ping {}: {e}", echoed + 1),
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_byte_or_eof(&mut c), None, "a byte after the last echo");
    ActiveEnd {
        last_echoed,
        closed: Instant::now(),
        while_pinging: false,
        echoed,
    }
}

/// An idle client is closed with `IdleTimeout`, no earlier than `IDLE` after it connected. A
/// client that pings every 50 ms is never closed less than `IDLE` after its latest ping (a
/// library that ignored activity would cut it about `IDLE` after it connected, a few ms after a
/// ping), and once it falls silent it is closed as idle too. The close of the active client is
/// checked against its own last echoed ping, so a test thread descheduled for longer than the
/// timeout (a legitimate idle close) cannot fail the test; it is only reported.
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
    let active = thread::spawn(move || ping_then_fall_silent(addr));

    let idle_after = idle.join().expect("idle client");
    let end = active.join().expect("active client");
    let quiet = end.closed.duration_since(end.last_echoed);
    eprintln!(
        "idle client closed after {idle_after:?}; active client closed {quiet:?} after its last \
         echoed ping ({} pings echoed{})",
        end.echoed,
        if end.while_pinging {
            ", closed while pinging: the test thread paused for the timeout"
        } else {
            ""
        }
    );
    assert!(idle_after >= IDLE, "idle close after {idle_after:?}");
    assert!(
        quiet + CLOCK_GRAIN >= IDLE,
        "the active client was closed {quiet:?} after its last echoed ping ({} echoed)",
        end.echoed
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
/// beyond the timeout (every byte arrives before the close, and the close comes no earlier than
/// `IDLE` after the last one was due), and once they stop the connection is closed as idle.
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
    // Each tick is armed 50 ms after the previous one fired, and the close comes `IDLE` after
    // the last (by the loop's millisecond clock).
    assert!(
        start.elapsed() + CLOCK_GRAIN >= Duration::from_millis(50) * TICKS as u32 + IDLE,
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
