//! `stop()` ends `run()`: from inside a callback, and (as documented) before `run` is called.

mod util;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;

use sockloop::{Context, Handler, Input, Reactor};

/// Echoes, and stops the reactor when a line `stop\n` arrives (after echoing it).
struct StopOnCommand;

impl Handler for StopOnCommand {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let stop = input.ends_with(b"stop\n");
        cx.write(input.take_all());
        if stop {
            cx.stop();
        }
    }
}

/// What the reactor thread reports: its address, then one message per `run()` that returned.
enum Report {
    Listening(SocketAddr),
    RunReturned(std::io::Result<()>),
}

#[test]
fn stop_from_a_callback_ends_run_and_run_can_resume() {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let (_, addr) = reactor.listen(util::localhost(), || StopOnCommand).unwrap();
        tx.send(Report::Listening(addr)).unwrap();
        // Twice: after a stop, the next run serves again until the next stop.
        for _ in 0..2 {
            let result = reactor.run();
            tx.send(Report::RunReturned(result)).unwrap();
        }
    });
    let Report::Listening(addr) = util::recv(&rx, "the listener") else {
        panic!("expected the address first");
    };
    let mut c = util::client(addr);

    c.write_all(b"ping\n").unwrap();
    assert_eq!(util::read_exactly(&mut c, 5), b"ping\n");
    c.write_all(b"stop\n").unwrap();
    assert_eq!(util::read_exactly(&mut c, 5), b"stop\n");
    match util::recv(&rx, "run() to return after stop()") {
        Report::RunReturned(result) => result.expect("run failed"),
        Report::Listening(_) => unreachable!(),
    }

    // The same connection is served by the second run.
    c.write_all(b"again\n").unwrap();
    assert_eq!(util::read_exactly(&mut c, 6), b"again\n");
    c.write_all(b"stop\n").unwrap();
    match util::recv(&rx, "the second run() to return") {
        Report::RunReturned(result) => result.expect("run failed"),
        Report::Listening(_) => unreachable!(),
    }
    thread.join().unwrap();
}

/// `Reactor::stop` outside `run`: "the next `run` returns at once (without waiting for events)".
/// Only that one: the `run` after it serves until stopped again.
#[test]
fn stop_before_run_makes_only_the_next_run_return() {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        let (_, addr) = reactor.listen(util::localhost(), || StopOnCommand).unwrap();
        tx.send(Report::Listening(addr)).unwrap();
        reactor.stop();
        for _ in 0..2 {
            let result = reactor.run();
            tx.send(Report::RunReturned(result)).unwrap();
        }
    });
    let Report::Listening(addr) = util::recv(&rx, "the listener") else {
        panic!("expected the address first");
    };
    match util::recv(&rx, "run() after stop() to return at once") {
        Report::RunReturned(result) => result.expect("run failed"),
        Report::Listening(_) => unreachable!(),
    }
    // The stop was used up: the second run is serving, so this echo comes back.
    let mut c = util::client(addr);
    c.write_all(b"ping\n").unwrap();
    assert_eq!(util::read_exactly(&mut c, 5), b"ping\n");
    assert!(rx.try_recv().is_err(), "the second run() returned unasked");
    c.write_all(b"stop\n").unwrap();
    match util::recv(&rx, "the second run() to return") {
        Report::RunReturned(result) => result.expect("run failed"),
        Report::Listening(_) => unreachable!(),
    }
    thread.join().unwrap();
}
