//! `Reactor::set_flush_batch`: how many connections may hold queued replies during one batch
//! of events before they are written out.
//!
//! Each server handler echoes and then looks at how much every other connection still has
//! queued. When two requests arrive in one batch, the first connection's reply is still queued
//! while the second is served if the batch may hold two, and already written if it may hold one.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sockloop::{ConnId, Context, Handler, Input, Reactor};

/// What the handlers share: the open connections, and every queue length seen of another one.
#[derive(Default)]
struct Seen {
    conns: Vec<ConnId>,
    others_queued: Vec<usize>,
}

struct Echo(Rc<RefCell<Seen>>);

impl Handler for Echo {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.0.borrow_mut().conns.push(cx.id());
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
        let mut seen = self.0.borrow_mut();
        let others: Vec<ConnId> = seen
            .conns
            .iter()
            .copied()
            .filter(|&c| c != cx.id())
            .collect();
        for other in others {
            if let Ok(queued) = cx.queued_conn(other) {
                seen.others_queued.push(queued);
            }
        }
    }
}

/// Runs the reactor until `done` holds, failing after a deadline.
fn run_until(reactor: &mut Reactor, what: &str, mut done: impl FnMut(&mut Reactor) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(reactor) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        reactor
            .run_once(Some(Duration::from_millis(10)))
            .expect("run_once");
    }
}

/// Sends one request on each of two connections so that both arrive before the reactor polls
/// (loopback delivers during `write`), serves them, and returns the queue lengths seen.
fn serve_two_at_once(batch: usize) -> Vec<usize> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut reactor = Reactor::new().expect("reactor");
    reactor.set_flush_batch(batch);
    let factory_seen = seen.clone();
    let (_, addr): (_, SocketAddr) = reactor
        .listen(([127, 0, 0, 1], 0).into(), move || {
            Echo(factory_seen.clone())
        })
        .expect("listen");
    let mut a = TcpStream::connect(addr).expect("connect a");
    let mut b = TcpStream::connect(addr).expect("connect b");
    run_until(&mut reactor, "both accepts", |_| {
        seen.borrow().conns.len() == 2
    });

    a.write_all(b"ping-a").expect("write a");
    b.write_all(b"ping-b").expect("write b");
    run_until(&mut reactor, "both requests", |_| {
        seen.borrow().others_queued.len() == 2
    });
    // Whatever the batch, both replies arrive whole.
    for (stream, want) in [(&mut a, b"ping-a"), (&mut b, b"ping-b")] {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = [0u8; 6];
        stream.read_exact(&mut got).expect("echo");
        assert_eq!(&got, want);
    }
    let queued = seen.borrow().others_queued.clone();
    queued
}

#[test]
fn a_batch_of_one_writes_each_reply_before_the_next_request_is_served() {
    // The second handler to run sees the first connection's reply already written.
    assert_eq!(serve_two_at_once(1), vec![0, 0]);
}

#[test]
fn a_larger_batch_holds_replies_until_it_is_full() {
    // The second handler sees the first reply (6 bytes) still queued: it leaves with its own.
    let queued = serve_two_at_once(2);
    assert_eq!(queued[0], 0, "nothing was queued before the first request");
    assert_eq!(queued[1], 6, "the first reply waits for the batch");
}

#[test]
fn zero_is_taken_as_one() {
    assert_eq!(serve_two_at_once(0), vec![0, 0]);
}
