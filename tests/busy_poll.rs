//! Busy polling: within the window after an event the loop polls with timeout zero instead of
//! sleeping; outside it (or with busy polling off) it sleeps as usual.

mod util;

use std::time::{Duration, Instant};

use sockloop::Reactor;
use util::Echo;

/// Runs iterations until one handles an event (the client's connection), then until the events
/// that follow it (the accepted socket's first readiness) are handled too.
fn until_an_event(reactor: &mut Reactor) {
    let deadline = Instant::now() + util::TIMEOUT;
    while reactor.run_once(Some(Duration::from_millis(50))).unwrap() == 0 {
        assert!(Instant::now() < deadline, "no event");
    }
    while reactor.run_once(Some(Duration::from_millis(50))).unwrap() > 0 {
        assert!(Instant::now() < deadline, "events do not stop");
    }
}

#[test]
fn within_the_window_after_an_event_the_loop_does_not_sleep() {
    let mut reactor = Reactor::new().unwrap();
    reactor.set_busy_poll(Duration::from_secs(30));
    let (_, addr) = reactor.listen(util::localhost(), || Echo).unwrap();
    let _client = util::client(addr);
    until_an_event(&mut reactor);
    // Nothing more will happen. The poll timeout is the hang guard: a sleeping loop would wait
    // all of it, a busy-polling one returns from a zero-timeout poll.
    let t = Instant::now();
    reactor.run_once(Some(util::TIMEOUT)).unwrap();
    let took = t.elapsed();
    assert!(
        took < util::TIMEOUT,
        "slept out the whole poll timeout ({took:?})"
    );
}

#[test]
fn without_busy_polling_an_idle_loop_sleeps_for_its_timeout() {
    let mut reactor = Reactor::new().unwrap();
    let (_, addr) = reactor.listen(util::localhost(), || Echo).unwrap();
    let _client = util::client(addr);
    until_an_event(&mut reactor);
    let t = Instant::now();
    reactor.run_once(Some(Duration::from_millis(200))).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "woke after {:?}",
        t.elapsed()
    );
}
