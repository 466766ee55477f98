//! Graceful shutdown (`Reactor::shutdown`, `Handle::shutdown`): listeners close at once, every
//! byte a handler queued before the shutdown is delivered, `run()` returns once everything is
//! closed; a connection whose handler ignores `on_shutdown` is cut at the deadline with
//! `CloseReason::ShutdownDeadline`, and not before it.
//!
//! "`run()` returns at once" is shown without a stopwatch: the deadline is set far beyond the
//! hang guard ([`NEVER`]), so a `run()` that returned within the guard did not wait for it.

mod util;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, Instant};

use sockloop::{Context, DatagramHandler, Handler, Input, Reactor, TimerId, UdpContext};
use util::{assert_bytes_eq, Event, Reason, Recorder};

/// A shutdown deadline that no test reaches: far beyond the hang guard of every wait
/// ([`util::TIMEOUT`]), so that returning within the guard proves the deadline played no part.
const NEVER: Duration = Duration::from_secs(3600);

/// On open, queues an 8-byte header (its number) and `size` pattern bytes; on shutdown, reports
/// how much of that is still queued in the reactor, then closes gracefully.
struct Bulk {
    n: u64,
    size: usize,
    at_shutdown: Sender<(u64, usize)>,
}

impl Handler for Bulk {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.write(&self.n.to_le_bytes());
        cx.write(&util::pattern(self.n, self.size));
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        let _ = self.at_shutdown.send((self.n, cx.queued()));
        cx.close();
    }
}

#[test]
fn graceful_shutdown_delivers_every_queued_byte_then_run_returns() {
    const CLIENTS: usize = 4;
    // Far more than a loopback socket's buffers take while the client does not read.
    const SIZE: usize = 8 << 20;

    let (events_tx, events) = mpsc::channel();
    let (queued_tx, queued) = mpsc::channel();
    let (addr, run) = util::spawn_run(move |reactor| {
        let mut n = 0;
        reactor
            .listen(util::localhost(), move || {
                n += 1;
                let bulk = Bulk {
                    n,
                    size: SIZE,
                    at_shutdown: queued_tx.clone(),
                };
                Recorder::new(bulk, events_tx.clone())
            })
            .unwrap()
            .1
    });
    let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| util::client(addr)).collect();
    for _ in 0..CLIENTS {
        util::recv_matching(&events, "on_open", |e| matches!(e, Event::Open(_)));
    }

    let handle = run.handle().clone();
    // The deadline never comes: every byte must be delivered however slow the machine is.
    thread::spawn(move || handle.shutdown(NEVER))
        .join()
        .unwrap()
        .expect("shutdown");
    let mut at_shutdown: Vec<(u64, usize)> = (0..CLIENTS)
        .map(|_| util::recv(&queued, "on_shutdown"))
        .collect();
    at_shutdown.sort_unstable();
    for &(n, left) in &at_shutdown {
        assert!(
            left > 0,
            "connection {n} had nothing queued at shutdown: the test proves nothing"
        );
    }

    // The listener closed at once: the kernel refuses new clients.
    assert!(util::on_loop(run.handle(), |r| r.is_shutting_down()));
    let refused = TcpStream::connect(addr).map(drop);
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused),
        "connect after shutdown"
    );

    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                let got = util::read_to_eof(&mut c);
                let n = u64::from_le_bytes(got[..8].try_into().unwrap());
                assert_bytes_eq(
                    &got[8..],
                    &util::pattern(n, SIZE),
                    "bytes queued before shutdown",
                );
                n
            })
        })
        .collect();
    let mut seen: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=CLIENTS as u64).collect::<Vec<_>>());

    let returned = run.wait_returned(util::TIMEOUT);
    returned.result.expect("run");
    let stats = returned.stats;
    assert_eq!(stats.accepted, CLIENTS as u64, "{stats}");
    assert_eq!(stats.open_connections, 0, "{stats}");
    assert_eq!(stats.closed.shutdown_deadline, 0, "{stats}");
    assert_eq!(
        stats.closed.local + stats.closed.peer_closed,
        CLIENTS as u64,
        "{stats}"
    );
    assert_eq!(
        stats.bytes_written,
        (CLIENTS * (SIZE + 8)) as u64,
        "{stats}"
    );

    let history: Vec<Event> = events.try_iter().collect();
    let closes = util::closes_exactly_once(&history);
    assert_eq!(closes.len(), CLIENTS);
    for (id, why) in closes {
        assert!(
            matches!(why, Reason::Local | Reason::PeerClosed),
            "{id} closed with {why:?}"
        );
    }
    let shutdowns = history
        .iter()
        .filter(|e| matches!(e, Event::Shutdown(_)))
        .count();
    assert_eq!(shutdowns, CLIENTS, "on_shutdown calls");
}

/// `s` makes it ignore `on_shutdown`, `p` keeps the default (close); either is acknowledged.
struct Mode {
    stubborn: bool,
}

impl Handler for Mode {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.stubborn = input.starts_with(b"s");
        input.consume(input.len());
        cx.write(b"k");
    }

    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        if !self.stubborn {
            cx.close();
        }
    }
}

#[test]
fn connection_that_ignores_shutdown_is_closed_at_the_deadline() {
    const GRACE: Duration = Duration::from_millis(300);
    let (tx, events) = mpsc::channel();
    let (addr, run) = util::spawn_run(move |reactor| {
        reactor
            .listen(util::localhost(), move || {
                Recorder::new(Mode { stubborn: false }, tx.clone())
            })
            .unwrap()
            .1
    });
    let mut stubborn = util::client(addr);
    stubborn.write_all(b"s").unwrap();
    assert_eq!(util::read_exactly(&mut stubborn, 1), b"k");
    let mut polite = util::client(addr);
    polite.write_all(b"p").unwrap();
    assert_eq!(util::read_exactly(&mut polite, 1), b"k");

    let started = Instant::now();
    run.handle().shutdown(GRACE).unwrap();
    util::assert_eof(&mut polite);
    drop(polite);
    let (_, err) = util::read_until_error(&mut stubborn);
    let cut_after = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert!(cut_after >= GRACE, "cut after {cut_after:?}");

    // The deadline is the only thing that could end the stubborn connection; `run()` returns
    // no earlier than it (how much later is the machine's business: the wait is a hang guard).
    let returned = run.wait_returned(GRACE + util::TIMEOUT);
    returned.result.expect("run");
    let ran_for = returned.at.duration_since(started);
    assert!(ran_for >= GRACE, "run() returned after {ran_for:?}");
    let stats = returned.stats;
    assert_eq!(stats.closed.shutdown_deadline, 1, "{stats}");
    assert_eq!(stats.closed.local + stats.closed.peer_closed, 1, "{stats}");
    assert_eq!(stats.closed.total(), 2, "{stats}");

    let history: Vec<Event> = events.try_iter().collect();
    let mut reasons: Vec<Reason> = util::closes_exactly_once(&history)
        .into_iter()
        .map(|(_, why)| why)
        .collect();
    reasons.retain(|why| *why != Reason::ShutdownDeadline);
    assert_eq!(reasons.len(), 1, "one ShutdownDeadline close: {history:?}");
    assert!(
        matches!(reasons[0], Reason::Local | Reason::PeerClosed),
        "{history:?}"
    );
}

/// With nothing open, `run()` returns as soon as the shutdown is seen: well within the hang
/// guard, although the deadline is an hour away.
#[test]
fn handle_shutdown_with_nothing_open_returns_at_once() {
    let ((), run) = util::spawn_run(|_| ());
    run.handle().shutdown(NEVER).unwrap();
    let returned = run.wait_returned(util::TIMEOUT);
    returned.result.expect("run");
    assert_eq!(returned.stats.closed.total(), 0, "{}", returned.stats);
}

/// The same through `Reactor::shutdown` called between runs: "`run` returns once every
/// connection and UDP socket is closed" — here nothing is open to begin with. The reactor runs
/// on a thread of its own so that a `run()` that waited for the hour-long deadline fails the
/// test at the hang guard instead of hanging it.
#[test]
fn reactor_shutdown_before_run_with_nothing_open_returns_at_once() {
    let (tx, rx) = mpsc::channel();
    let runner = thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        reactor.shutdown(NEVER);
        let result = reactor.run();
        let _ = tx.send(result.map(|()| reactor.stats()));
    });
    let stats = util::recv(&rx, "run() to return").expect("run");
    runner.join().unwrap();
    assert_eq!(stats.closed.total(), 0, "{stats}");
}

struct UdpSink;

impl DatagramHandler for UdpSink {
    fn on_datagram(&mut self, _cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {}
}

/// UDP sockets are closed by a shutdown too (their send queue is empty), so `run()` returns,
/// within the hang guard and so long before the hour-long deadline.
#[test]
fn shutdown_closes_udp_sockets_and_returns() {
    let (addr, run) = util::spawn_run(|reactor| {
        reactor
            .bind_udp(util::localhost(), UdpSink)
            .expect("bind_udp")
            .1
    });
    let client = UdpSocket::bind(util::localhost()).unwrap();
    client.send_to(b"hello", addr).unwrap();
    util::wait_until("the datagram to arrive", || {
        util::stats(run.handle()).datagrams_received == 1
    });
    run.handle().shutdown(NEVER).unwrap();
    let returned = run.wait_returned(util::TIMEOUT);
    returned.result.expect("run");
}

/// On shutdown, arms a zero-delay timer whose `on_timer` aborts the connection.
struct AbortsSoonAfterShutdown;

impl Handler for AbortsSoonAfterShutdown {
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        cx.set_timer(Duration::ZERO);
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
        cx.abort();
    }
}

/// The handler aborts its connection itself before the shutdown deadline, but the deadline's
/// timer comes due in the same timer pass (the loop was busy past both). The close reason must
/// be the handler's `Aborted`: `ShutdownDeadline` means "still open when the deadline passed".
/// (A regression test: before 8dc1bbd the deadline overwrote the reason of connections that had
/// closed in the same pass.)
#[test]
fn connection_aborted_just_before_the_deadline_is_not_reported_as_shutdown_deadline() {
    let (tx, events) = mpsc::channel();
    let (addr, run) = util::spawn_run(move |reactor| {
        reactor
            .listen(util::localhost(), move || {
                Recorder::new(AbortsSoonAfterShutdown, tx.clone())
            })
            .unwrap()
            .1
    });
    let _client = util::client(addr);
    assert!(matches!(util::recv(&events, "on_open"), Event::Open(_)));
    run.handle()
        .post(|r| {
            r.shutdown(Duration::from_millis(20));
            // A slow job: the loop is busy past the deadline (that is the behaviour under test).
            thread::sleep(Duration::from_millis(60));
        })
        .unwrap();
    let returned = run.wait_returned(util::TIMEOUT);
    let (_, why) = util::next_close(&events);
    assert_eq!(why, Reason::Aborted, "stats: {}", returned.stats);
}

/// Logs its callbacks; ignores `on_shutdown` (stays open).
struct Logger {
    log: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
}

impl Handler for Logger {
    fn on_open(&mut self, _cx: &mut Context<'_>) {
        self.log.borrow_mut().push("open".into());
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_shutdown(&mut self, _cx: &mut Context<'_>) {
        self.log.borrow_mut().push("shutdown".into());
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: sockloop::CloseReason) {
        self.log.borrow_mut().push(format!("close: {reason}"));
    }
}

/// An outbound connection still connecting when the shutdown starts is not open yet: its
/// handler must not be asked to finish (`on_shutdown`) before it was ever opened (`on_open`).
#[test]
fn connection_still_connecting_at_shutdown_gets_no_on_shutdown_before_on_open() {
    // The kernel completes the handshake for this listener; nobody needs to accept.
    let listener = std::net::TcpListener::bind(util::localhost()).unwrap();
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut reactor = Reactor::new().unwrap();
    reactor.connect(
        listener.local_addr().unwrap(),
        Logger {
            log: std::rc::Rc::clone(&log),
        },
    );
    // No iteration has run: the connect is still in progress.
    reactor.shutdown(Duration::from_millis(200));
    reactor.run().unwrap();
    let log = log.borrow();
    let pos = |what: &str| log.iter().position(|e| e == what);
    if let Some(shutdown) = pos("shutdown") {
        let open = pos("open");
        assert!(
            open.is_some_and(|open| open < shutdown),
            "on_shutdown before on_open: {log:?}"
        );
    }
    assert!(
        log.last().is_some_and(|e| e.starts_with("close")),
        "{log:?}"
    );
}

/// A second `shutdown` can bring the deadline forward but never push it back: either way the
/// stubborn connection is cut at the short deadline, no earlier, and `run()` returns within the
/// hang guard, long before the hour-long one.
#[test]
fn calling_shutdown_again_can_only_shorten_the_deadline() {
    const SHORT: Duration = Duration::from_millis(200);
    const LONG: Duration = NEVER;
    for (first, second) in [(LONG, SHORT), (SHORT, LONG)] {
        let (addr, run) = util::spawn_run(|reactor| {
            reactor
                .listen(util::localhost(), || Mode { stubborn: false })
                .unwrap()
                .1
        });
        let mut stubborn = util::client(addr);
        stubborn.write_all(b"s").unwrap();
        assert_eq!(util::read_exactly(&mut stubborn, 1), b"k");
        let started = Instant::now();
        run.handle().shutdown(first).unwrap();
        run.handle().shutdown(second).unwrap();
        let returned = run.wait_returned(util::TIMEOUT);
        let ran_for = returned.at.duration_since(started);
        assert!(
            ran_for >= SHORT,
            "shutdown({first:?}) then shutdown({second:?}): run() returned after {ran_for:?}"
        );
        assert_eq!(returned.stats.closed.shutdown_deadline, 1);
    }
}

/// Answers one line with `pong`, then closes; a shutdown lets an unanswered request finish.
struct OneAnswer {
    answered: bool,
}

impl Handler for OneAnswer {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if let Some(end) = input.iter().position(|&b| b == b'\n') {
            input.consume(end + 1);
            cx.write(b"pong\n");
            self.answered = true;
            cx.close();
        }
    }

    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        if self.answered {
            cx.close();
        }
        // Otherwise its request is answered first (it may be on its way still).
    }
}

/// Connections the kernel had queued when the shutdown began (their handshake done, their
/// request sent, not accepted yet) are accepted and served, not reset by the listener's close:
/// behind a balancer in TCP mode, a reset one is a request lost.
#[test]
fn connections_queued_in_the_backlog_at_shutdown_are_served_not_reset() {
    let mut reactor = Reactor::new().unwrap();
    let (_, addr) = reactor
        .listen(util::localhost(), || OneAnswer { answered: false })
        .unwrap();
    // The loop has not run: these wait in the accept queue, with their requests.
    let mut clients: Vec<TcpStream> = (0..5).map(|_| util::client(addr)).collect();
    for client in &mut clients {
        client.write_all(b"ping\n").unwrap();
    }
    let readers = thread::spawn(move || {
        clients
            .iter_mut()
            .map(util::read_to_eof)
            .collect::<Vec<_>>()
    });
    reactor.shutdown(NEVER);
    reactor.run().unwrap();
    for answer in readers.join().unwrap() {
        assert_eq!(answer, b"pong\n");
    }
    assert_eq!(reactor.stats().accepted, 5);
}
