//! `Reactor::set_flush_batch` and the default it replaces: how many connections may hold
//! queued replies during one batch of events before they are written out.
//!
//! Each server handler echoes and then looks at how much every other connection still has
//! queued. When requests arrive in one batch, an earlier connection's reply is still queued
//! while a later one is served if the batch may hold both, and already written if not.

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

/// Sends one request on each of `n` connections so that all arrive before the reactor polls
/// (loopback delivers during `write`), serves them, and returns the queue lengths seen. `batch`
/// is given to `set_flush_batch` (`None`: the default).
fn serve_at_once(n: usize, batch: Option<usize>) -> Vec<usize> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut reactor = Reactor::new().expect("reactor");
    if let Some(batch) = batch {
        reactor.set_flush_batch(batch);
    }
    let factory_seen = seen.clone();
    let (_, addr): (_, SocketAddr) = reactor
        .listen(([127, 0, 0, 1], 0).into(), move || {
            Echo(factory_seen.clone())
        })
        .expect("listen");
    let mut clients: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    run_until(&mut reactor, "every accept", |_| {
        seen.borrow().conns.len() == n
    });

    for (i, client) in clients.iter_mut().enumerate() {
        client
            .write_all(format!("ping-{i:04}").as_bytes())
            .expect("write");
    }
    // Each handler records the queue of every other connection.
    run_until(&mut reactor, "every request", |_| {
        seen.borrow().others_queued.len() == n * (n - 1)
    });
    // Whatever the batch, every reply arrives whole.
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = [0u8; 9];
        client.read_exact(&mut got).expect("echo");
        assert_eq!(got, *format!("ping-{i:04}").as_bytes());
    }
    let queued = seen.borrow().others_queued.clone();
    queued
}

/// Two requests served in one batch: what the second handler saw of the first reply.
fn serve_two_at_once(batch: Option<usize>) -> Vec<usize> {
    serve_at_once(2, batch)
}

#[test]
fn a_batch_of_one_writes_each_reply_before_the_next_request_is_served() {
    // The second handler to run sees the first connection's reply already written.
    assert_eq!(serve_two_at_once(Some(1)), vec![0, 0]);
}

#[test]
fn a_larger_batch_holds_replies_until_it_is_full() {
    // The second handler sees the first reply (9 bytes) still queued: it leaves with its own.
    let queued = serve_two_at_once(Some(2));
    assert_eq!(queued[0], 0, "nothing was queued before the first request");
    assert_eq!(queued[1], 9, "the first reply waits for the batch");
}

#[test]
fn zero_is_taken_as_one() {
    assert_eq!(serve_two_at_once(Some(0)), vec![0, 0]);
}

#[test]
fn by_default_a_small_poll_writes_each_reply_at_once() {
    assert_eq!(serve_two_at_once(None), vec![0, 0]);
}

#[test]
fn by_default_a_large_poll_sends_replies_in_bursts() {
    // 80 requests in one poll (more than 64): replies wait for bursts of 32 connections, so
    // some handler sees another's reply still queued, and none sees more than 31 of them.
    let n = 80;
    let queued = serve_at_once(n, None);
    let waiting: Vec<usize> = queued
        .chunks(n - 1)
        .map(|seen| seen.iter().filter(|&&q| q > 0).count())
        .collect();
    assert!(
        waiting.iter().any(|&w| w > 0),
        "no reply was ever held: {waiting:?}"
    );
    assert!(
        waiting.iter().all(|&w| w < 32),
        "a burst held 32 or more replies: {waiting:?}"
    );
}

/// Forwards what the first connection sends to the second (`write_to`) and echoes it to the
/// first as well, as a chat room echoes a line to its sender; the third echoes, and records
/// how much the first two still have queued when it is served.
struct Relay(Rc<RefCell<Seen>>);

impl Handler for Relay {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.0.borrow_mut().conns.push(cx.id());
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let data = input.take_all().to_vec();
        let mut seen = self.0.borrow_mut();
        let me = seen.conns.iter().position(|&c| c == cx.id());
        match me {
            Some(0) => {
                cx.write_to(seen.conns[1], &data).expect("write_to");
                cx.write(&data);
            }
            Some(2) => {
                cx.write(&data);
                for other in [seen.conns[0], seen.conns[1]] {
                    let queued = cx.queued_conn(other).expect("other");
                    seen.others_queued.push(queued);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn by_default_output_to_other_connections_waits_for_the_end_of_the_iteration() {
    // After a small poll only a reply (output for the served connection alone) is written
    // through. A relayed message, and the sender's own copy of it, are still queued when the
    // next connection of the same poll is served, so that several senders reach one member
    // in one write.
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut reactor = Reactor::new().expect("reactor");
    let factory_seen = seen.clone();
    let (_, addr): (_, SocketAddr) = reactor
        .listen(([127, 0, 0, 1], 0).into(), move || {
            Relay(factory_seen.clone())
        })
        .expect("listen");
    let mut clients = Vec::new();
    for n in 1..=3 {
        clients.push(TcpStream::connect(addr).expect("connect"));
        run_until(&mut reactor, "the accept", |_| {
            seen.borrow().conns.len() == n
        });
    }
    // A fresh connection is reported writable once; take those events now, so that the next
    // poll lists the two requests in the order they arrive (loopback delivers during `write`).
    let deadline = Instant::now() + Duration::from_secs(10);
    while reactor.run_once(Some(Duration::ZERO)).expect("run_once") > 0 {
        assert!(Instant::now() < deadline, "events keep coming");
    }
    clients[0].write_all(b"relayed").expect("write");
    clients[2].write_all(b"echoed").expect("write");
    run_until(&mut reactor, "the echo", |_| {
        !seen.borrow().others_queued.is_empty()
    });
    assert_eq!(
        seen.borrow().others_queued,
        vec![7, 7],
        "the sender's copy and the relayed bytes wait"
    );
    for (client, want) in [(0, &b"relayed"[..]), (1, b"relayed"), (2, b"echoed")] {
        let stream = &mut clients[client];
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = vec![0u8; want.len()];
        stream.read_exact(&mut got).expect("read");
        assert_eq!(got, want);
    }
}
