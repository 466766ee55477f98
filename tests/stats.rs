//! `Reactor::stats()` after known workloads: connections accepted and closed (by reason), bytes
//! read and written, timers fired, iterations.

mod util;

use std::cell::Cell;
use std::io::Write;
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sockloop::{Context, Handler, Input, Reactor, TimerId};
use util::Echo;

#[test]
fn stats_count_a_known_echo_workload() {
    const CLIENTS: usize = 10;
    const LEN: usize = 10_000;
    let ((addr, handle), server) = util::spawn_reactor(|reactor| {
        let (_, addr) = reactor.listen(util::localhost(), || Echo).unwrap();
        (addr, reactor.handle().unwrap())
    });
    let before = util::stats(&handle);
    assert_eq!(before.accepted, 0);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            thread::spawn(move || {
                let mut c = util::client(addr);
                let data = Arc::new(util::pattern(k as u64, LEN));
                let got = util::echo_concurrently(&mut c, Arc::clone(&data));
                util::assert_bytes_eq(&got, &data, "echo");
                util::half_close(&c);
                util::assert_eof(&mut c);
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.wait_for_connections(0);
    let stats = util::stats(&handle);
    server.stop();

    let total = (CLIENTS * LEN) as u64;
    assert_eq!(stats.accepted, CLIENTS as u64, "{stats}");
    assert_eq!(stats.connected, 0, "{stats}");
    assert_eq!(stats.open_connections, 0, "{stats}");
    assert_eq!(stats.bytes_read, total, "{stats}");
    assert_eq!(stats.bytes_written, total, "{stats}");
    assert_eq!(stats.closed.peer_closed, CLIENTS as u64, "{stats}");
    assert_eq!(stats.closed.total(), CLIENTS as u64, "{stats}");
    assert_eq!(stats.accept_errors, 0, "{stats}");
    assert!(stats.iterations > before.iterations, "{stats}");
    assert!(stats.events > 0, "{stats}");
    assert!(stats.events_per_iteration() > 0.0, "{stats}");
}

/// `quit` closes gracefully (after `ok`), `abort` aborts, anything else is echoed.
struct Commands;

impl Handler for Commands {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if input.starts_with(b"quit") {
            cx.write(b"ok");
            cx.close();
        } else if input.starts_with(b"abort") {
            cx.abort();
        } else {
            cx.write(input.as_slice());
        }
        input.consume(input.len());
    }
}

#[test]
fn closes_are_counted_by_reason() {
    // A port nobody listens on (bound once to find it, then released).
    let closed_port = std::net::TcpListener::bind(util::localhost())
        .unwrap()
        .local_addr()
        .unwrap();
    let ((addr, handle), server) = util::spawn_reactor(move |reactor| {
        let (_, addr) = reactor.listen(util::localhost(), || Commands).unwrap();
        reactor.connect(closed_port, Commands);
        (addr, reactor.handle().unwrap())
    });

    // Peer closed: the client's FIN comes first.
    let mut peer = util::client(addr);
    util::half_close(&peer);
    util::assert_eof(&mut peer);
    // Local: the handler closes.
    let mut local = util::client(addr);
    local.write_all(b"quit").unwrap();
    assert_eq!(util::read_to_eof(&mut local), b"ok");
    // Aborted: the handler resets.
    let mut aborted = util::client(addr);
    aborted.write_all(b"abort").unwrap();
    let (_, err) = util::read_until_error(&mut aborted);
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    // Error: the client resets an open connection.
    let mut error = util::client(addr);
    error.write_all(b"hello").unwrap();
    assert_eq!(util::read_exactly(&mut error, 5), b"hello");
    util::reset(error);

    drop((peer, local, aborted));
    server.wait_for_connections(0);
    let stats = util::stats(&handle);
    server.stop();
    let c = stats.closed;
    assert_eq!(
        (c.peer_closed, c.local, c.aborted, c.error, c.connect_failed),
        (1, 1, 1, 1, 1),
        "{stats}"
    );
    assert_eq!((c.idle_timeout, c.shutdown_deadline), (0, 0), "{stats}");
    assert_eq!(c.total(), 5, "{stats}");
    assert_eq!(stats.accepted, 4, "{stats}");
    assert_eq!(stats.open_connections, 0, "{stats}");
}

/// Arms two timers on open.
struct TwoTimers {
    fired: Rc<Cell<u64>>,
}

impl Handler for TwoTimers {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.set_timer(Duration::from_millis(1));
        cx.set_timer(Duration::from_millis(2));
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_timer(&mut self, _cx: &mut Context<'_>, _timer: TimerId) {
        self.fired.set(self.fired.get() + 1);
    }
}

/// Loop and connection timers that fire are counted; cancelled ones are not. (No connection
/// closes here: a close arms the library's own linger check, which would count when it fires.)
#[test]
fn timers_fired_counts_the_timers_that_fired() {
    let mut reactor = Reactor::new().unwrap();
    let fired = Rc::new(Cell::new(0u64));
    let bump = |fired: &Rc<Cell<u64>>| {
        let fired = Rc::clone(fired);
        move |_: &mut Reactor| fired.set(fired.get() + 1)
    };
    reactor.add_timer(Duration::from_millis(1), bump(&fired));
    reactor.add_timer(Duration::from_millis(3), bump(&fired));
    let cancelled = reactor.add_timer(Duration::from_millis(2), bump(&fired));
    assert!(reactor.cancel_timer(cancelled));
    let ticks = Rc::new(Cell::new(0));
    let own = Rc::new(Cell::new(None));
    let id = {
        let (ticks, own, fired) = (Rc::clone(&ticks), Rc::clone(&own), Rc::clone(&fired));
        reactor.add_repeating_timer(Duration::from_millis(2), move |r| {
            fired.set(fired.get() + 1);
            ticks.set(ticks.get() + 1);
            if ticks.get() == 4 {
                r.cancel_timer(own.get().unwrap());
            }
        })
    };
    own.set(Some(id));
    let (_, addr) = {
        let fired = Rc::clone(&fired);
        reactor
            .listen(util::localhost(), move || TwoTimers {
                fired: Rc::clone(&fired),
            })
            .unwrap()
    };
    let _client = TcpStream::connect(addr).unwrap();

    // 2 one-shots + 4 ticks + 2 connection timers.
    util::run_until(&mut reactor, "eight timers", |_| fired.get() >= 8);
    let done = Rc::new(Cell::new(false));
    let seen = Rc::clone(&done);
    reactor.add_timer(Duration::from_millis(20), move |_| seen.set(true));
    util::run_until(&mut reactor, "the last timer", |_| done.get());
    let stats = reactor.stats();
    assert_eq!(fired.get(), 8, "callbacks");
    assert_eq!(stats.timers_fired, 9, "8 plus the last one: {stats}");
    assert!(stats.iterations > 0);
}
