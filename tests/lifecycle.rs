//! Connection lifecycle as handlers see it: `on_close` exactly once with the right reason, graceful
//! close delivering queued output before FIN, and ids that stop working once their connection is
//! gone (`NotFound`), even when the slot is reused.

mod util;

use std::cell::RefCell;
use std::io::{ErrorKind, Write};
use std::rc::Rc;
use std::sync::mpsc::{self, Sender};

use sockloop::{CloseReason, ConnId, Context, Handler, Input};
use util::{assert_bytes_eq, Echo, Event, Reason, Recorder};

/// The client closes first (its FIN arrives while the connection is open): `on_close` reports
/// `PeerClosed`, once, with the default `on_read_closed`.
#[test]
fn on_close_reports_peer_closed_once_when_client_closes_first() {
    let (tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(Echo, tx.clone()));
    let mut c = util::client(addr);
    c.write_all(b"bye").unwrap();
    assert_eq!(util::read_exactly(&mut c, 3), b"bye");
    util::half_close(&c);
    util::assert_eof(&mut c);
    drop(c);
    server.wait_for_connections(0);
    server.stop();
    let history: Vec<Event> = events.try_iter().collect();
    let closes = util::closes_exactly_once(&history);
    assert_eq!(closes.len(), 1, "{history:?}");
    assert!(
        history.iter().any(|e| matches!(e, Event::ReadClosed(_))),
        "{history:?}"
    );
    assert_eq!(
        closes[0].1,
        Reason::PeerClosed,
        "the peer closed first; history: {history:?}"
    );
}

/// Replies `ok` to `quit` and closes; writes after `close` are discarded.
struct Quit;

impl Handler for Quit {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if input.starts_with(b"quit") {
            cx.write(b"ok");
            cx.close();
            cx.write(b"MUST NOT ARRIVE");
        }
        input.consume(input.len());
    }
}

/// The handler closes first: the client gets the reply then EOF, and `on_close` reports `Local`,
/// once.
#[test]
fn on_close_reports_local_when_handler_closes() {
    let (tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(Quit, tx.clone()));
    let mut c = util::client(addr);
    c.write_all(b"quit").unwrap();
    assert_eq!(util::read_to_eof(&mut c), b"ok");
    drop(c);
    let (_, why) = util::next_close(&events);
    assert_eq!(why, Reason::Local);
    server.wait_for_connections(0);
    server.stop();
    assert_eq!(
        util::closes_exactly_once(&events.try_iter().collect::<Vec<_>>()),
        []
    );
}

/// On `send`, queues 8 MiB and closes in the same callback.
struct SendThenClose;

impl Handler for SendThenClose {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if input.starts_with(b"send") {
            cx.write(&util::pattern(41, 8 << 20));
            cx.close();
        }
        input.consume(input.len());
    }
}

/// `close()` with far more queued than the socket holds: every byte is delivered before FIN, and
/// the peer sees a clean EOF, not a reset.
#[test]
fn close_delivers_queued_output_before_fin() {
    let (tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(SendThenClose, tx.clone()));
    let mut c = util::client(addr);
    c.write_all(b"send").unwrap();
    let got = util::read_to_eof(&mut c);
    assert_bytes_eq(
        &got,
        &util::pattern(41, 8 << 20),
        "output queued before close",
    );
    drop(c);
    let (_, why) = util::next_close(&events);
    assert_eq!(why, Reason::Local);
    server.stop();
}

/// A tiny chat room. Every member is greeted with `joined\n`; a line is relayed to every other
/// member with `write_to`. `who\n` is answered to the sender only, with the member count, and
/// `poke\n` writes to the most recently closed member's id and reports the result to the test.
#[derive(Default)]
struct Room {
    members: Vec<ConnId>,
    last_closed: Option<ConnId>,
}

enum Report {
    Joined(ConnId),
    Poked(Result<(), ErrorKind>),
    WriteToSelfInOnClose(Result<(), ErrorKind>),
}

struct Member {
    room: Rc<RefCell<Room>>,
    reports: Sender<Report>,
}

impl Handler for Member {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.room.borrow_mut().members.push(cx.id());
        let _ = self.reports.send(Report::Joined(cx.id()));
        cx.write(b"joined\n");
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            let line = input.take_prefix(end + 1);
            match line {
                b"who\n" => {
                    let n = self.room.borrow().members.len();
                    cx.write(format!("{n} here\n").as_bytes());
                }
                b"poke\n" => {
                    let target = self.room.borrow().last_closed.expect("nobody left yet");
                    let result = cx.write_to(target, b"poked\n").map_err(|e| e.kind());
                    let _ = self.reports.send(Report::Poked(result));
                }
                _ => {
                    let me = cx.id();
                    let others: Vec<ConnId> = self.room.borrow().members.clone();
                    for id in others.into_iter().filter(|&id| id != me) {
                        cx.write_to(id, line).expect("write to a member");
                    }
                }
            }
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, _reason: CloseReason) {
        let id = cx.id();
        let mut room = self.room.borrow_mut();
        room.members.retain(|&m| m != id);
        room.last_closed = Some(id);
        drop(room);
        let result = cx.write_to(id, b"too late\n").map_err(|e| e.kind());
        let _ = self.reports.send(Report::WriteToSelfInOnClose(result));
    }
}

fn serve_room() -> (
    std::net::SocketAddr,
    util::ReactorThread,
    mpsc::Receiver<Report>,
) {
    let (tx, reports) = mpsc::channel();
    let (addr, server) = util::spawn_reactor(move |reactor| {
        let room = Rc::new(RefCell::new(Room::default()));
        reactor
            .listen(util::localhost(), move || Member {
                room: Rc::clone(&room),
                reports: tx.clone(),
            })
            .unwrap()
            .1
    });
    (addr, server, reports)
}

fn join(
    addr: std::net::SocketAddr,
    reports: &mpsc::Receiver<Report>,
) -> (std::net::TcpStream, ConnId) {
    let mut c = util::client(addr);
    assert_eq!(util::read_exactly(&mut c, 7), b"joined\n");
    match util::recv(reports, "a join") {
        Report::Joined(id) => (c, id),
        _ => panic!("expected a join report"),
    }
}

#[test]
fn write_to_relays_to_other_connections_by_id() {
    let (addr, server, reports) = serve_room();
    let (mut a, _) = join(addr, &reports);
    let (mut b, _) = join(addr, &reports);
    let (mut c, _) = join(addr, &reports);

    a.write_all(b"hello from a\n").unwrap();
    assert_eq!(util::read_exactly(&mut b, 13), b"hello from a\n");
    assert_eq!(util::read_exactly(&mut c, 13), b"hello from a\n");
    b.write_all(b"hi a\n").unwrap();
    assert_eq!(util::read_exactly(&mut c, 5), b"hi a\n");
    // The sender never gets its own line back: the next thing `a` reads is the relayed `hi a`,
    // then the answer to its own question.
    assert_eq!(util::read_exactly(&mut a, 5), b"hi a\n");
    a.write_all(b"who\n").unwrap();
    assert_eq!(util::read_exactly(&mut a, 7), b"3 here\n");
    server.stop();
}

/// Writing to an id whose connection is gone fails with `NotFound`, inside that connection's
/// own `on_close` and later from another connection.
#[test]
fn write_to_closed_connection_is_not_found() {
    let (addr, server, reports) = serve_room();
    let (mut a, _) = join(addr, &reports);
    let (b, _) = join(addr, &reports);
    drop(b);
    match util::recv(&reports, "b's on_close") {
        Report::WriteToSelfInOnClose(result) => assert_eq!(result, Err(ErrorKind::NotFound)),
        _ => panic!("expected b's on_close"),
    }
    a.write_all(b"poke\n").unwrap();
    match util::recv(&reports, "the poke") {
        Report::Poked(result) => assert_eq!(result, Err(ErrorKind::NotFound)),
        _ => panic!("expected the poke result"),
    }
    a.write_all(b"who\n").unwrap();
    assert_eq!(util::read_exactly(&mut a, 7), b"1 here\n");
    server.stop();
}

/// The slab reuses a freed slot for the next connection; the old id must not reach the new
/// owner of the slot (ids carry a generation).
#[test]
fn stale_id_does_not_reach_the_connection_that_reuses_its_slot() {
    let (addr, server, reports) = serve_room();
    let (mut a, _) = join(addr, &reports);
    let (b, b_id) = join(addr, &reports);
    drop(b);
    assert!(matches!(
        util::recv(&reports, "b's on_close"),
        Report::WriteToSelfInOnClose(_)
    ));
    let (mut c, c_id) = join(addr, &reports);
    assert_ne!(b_id, c_id);
    // The ids print as `conn#<slot>.<generation>`: check the slot really was reused, or this test
    // would prove nothing.
    let slot = |id: ConnId| id.to_string().split('.').next().unwrap().to_owned();
    assert_eq!(
        slot(b_id),
        slot(c_id),
        "slot not reused: {b_id} then {c_id}"
    );

    a.write_all(b"poke\n").unwrap();
    match util::recv(&reports, "the poke") {
        Report::Poked(result) => assert_eq!(result, Err(ErrorKind::NotFound)),
        _ => panic!("expected the poke result"),
    }
    // If the poke had reached `c`, `poked` would come before the answer.
    c.write_all(b"who\n").unwrap();
    assert_eq!(util::read_exactly(&mut c, 7), b"2 here\n");
    server.stop();
}

/// Reports the addresses a context gives, while open and inside `on_close`.
struct Addresses(Sender<(String, std::io::Result<std::net::SocketAddr>)>);

impl Handler for Addresses {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = self.0.send(("peer".into(), cx.peer_addr()));
        let _ = self.0.send(("local".into(), cx.local_addr()));
        // Nagle on and off again: both must be accepted on a live connection.
        cx.set_nodelay(false).unwrap();
        cx.set_nodelay(true).unwrap();
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_close(&mut self, cx: &mut Context<'_>, _reason: CloseReason) {
        let _ = self.0.send(("peer in on_close".into(), cx.peer_addr()));
    }
}

#[test]
fn context_reports_addresses_while_open_and_not_found_after_close() {
    let (tx, rx) = mpsc::channel();
    let (addr, server) = util::serve(move || Addresses(tx.clone()));
    let c = util::client(addr);
    let (what, peer) = util::recv(&rx, "peer_addr");
    assert_eq!(what, "peer");
    assert_eq!(peer.unwrap(), c.local_addr().unwrap());
    let (what, local) = util::recv(&rx, "local_addr");
    assert_eq!(what, "local");
    assert_eq!(local.unwrap(), addr);
    drop(c);
    let (what, after) = util::recv(&rx, "peer_addr in on_close");
    assert_eq!(what, "peer in on_close");
    assert_eq!(after.unwrap_err().kind(), ErrorKind::NotFound);
    server.stop();
}

/// Shuts down its write side on open, and closes when told to.
struct ShutThenClose;

impl Handler for ShutThenClose {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.write(b"bye");
        cx.shutdown_write();
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if input.starts_with(b"close") {
            cx.close();
        }
        input.consume(input.len());
    }
}

/// `close()` after `shutdown_write`, with a peer that never sends its FIN: like any graceful close
/// it waits only a bounded time (the reactor's 5 s linger) for the peer, then releases the
/// connection. Without that, a silent peer would hold the connection, discarding its input, forever.
#[test]
fn close_after_shutdown_write_gives_up_on_a_silent_peer() {
    let (tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(ShutThenClose, tx.clone()));
    let mut c = util::client(addr);
    assert_eq!(util::read_to_eof(&mut c), b"bye");
    c.write_all(b"close").unwrap();
    // `c` stays open and silent: no FIN. The close comes after the 5 s linger; the wait is only
    // the hang guard.
    let (_, why) = loop {
        match util::recv(&events, "on_close after the linger time") {
            Event::Close(id, why) => break (id, why),
            _ => continue,
        }
    };
    assert_eq!(why, Reason::Local);
    drop(c);
    server.stop();
}

/// Reports its connection's `TCP_NODELAY` on open, then again after turning it off.
struct Nagle(Sender<(bool, bool)>);

impl Handler for Nagle {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let first = cx.nodelay().unwrap();
        cx.set_nodelay(false).unwrap();
        let _ = self.0.send((first, cx.nodelay().unwrap()));
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }
}

#[test]
fn accepted_connections_start_with_the_listeners_nodelay_setting() {
    // On Linux the listener carries the option and accepted sockets inherit it: both settings
    // must still arrive on every connection.
    for nodelay in [true, false] {
        let (tx, rx) = mpsc::channel();
        let options = sockloop::ListenOptions::new().nodelay(nodelay);
        let (addr, server) = util::serve_with(options, move || Nagle(tx.clone()));
        let _c = util::client(addr);
        let _d = util::client(addr);
        for _ in 0..2 {
            assert_eq!(util::recv(&rx, "TCP_NODELAY"), (nodelay, false));
        }
        server.stop();
    }
}
