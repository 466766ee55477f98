//! Foreign sources (`Reactor::add_source`, `remove_source`): a pipe driven by the loop delivers
//! every byte in order, and a source removed from a callback (its own or another's) hears
//! nothing more, even when its slot is reused in the same iteration.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use sockloop::mio::unix::pipe;
use sockloop::mio::Interest;
use sockloop::{Reactor, SourceId};

/// Reads `rx` until `WouldBlock` (edge-triggered: what is left behind raises no new event);
/// returns whether EOF was seen.
fn drain(rx: &mut pipe::Receiver, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match rx.read(&mut buf) {
            // Every write end is closed.
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("pipe read: {e}"),
        }
    }
}

#[test]
fn pipe_bytes_written_from_another_thread_arrive_in_order() {
    const LEN: usize = 1 << 20;
    let (mut tx, rx) = pipe::new().unwrap();
    tx.set_nonblocking(false).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let own: Rc<Cell<Option<SourceId>>> = Rc::new(Cell::new(None));
    let eof_removed = Rc::new(Cell::new(None));
    let calls = Rc::new(Cell::new(0));
    let id = {
        let (got, own, eof_removed, calls) = (
            Rc::clone(&got),
            Rc::clone(&own),
            Rc::clone(&eof_removed),
            Rc::clone(&calls),
        );
        reactor
            .add_source(rx, Interest::READABLE, move |r, rx, _readiness| {
                calls.set(calls.get() + 1);
                if drain(rx, &mut got.borrow_mut()) {
                    eof_removed.set(Some(r.remove_source(own.get().unwrap()).is_ok()));
                }
            })
            .unwrap()
    };
    own.set(Some(id));

    let writer = thread::spawn(move || {
        let data = util::pattern(11, LEN);
        let mut rng = util::Rng::new(5);
        let mut off = 0;
        while off < LEN {
            let n = (1 + rng.below(100_000) as usize).min(LEN - off);
            tx.write_all(&data[off..off + n]).expect("pipe write");
            off += n;
        }
        // Dropping the write end is the EOF.
    });
    util::run_until(&mut reactor, "EOF on the pipe", |_| {
        eof_removed.get().is_some()
    });
    writer.join().unwrap();
    util::assert_bytes_eq(
        &got.borrow(),
        &util::pattern(11, LEN),
        "bytes through the pipe",
    );
    assert_eq!(
        eof_removed.get(),
        Some(true),
        "remove_source from its own callback"
    );
    assert_eq!(
        reactor.remove_source(id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(calls.get() >= 1);
}

#[test]
fn source_removed_in_its_own_callback_gets_no_more_callbacks_and_is_closed() {
    let (mut tx, rx) = pipe::new().unwrap();
    let mut reactor = Reactor::new().unwrap();
    let own: Rc<Cell<Option<SourceId>>> = Rc::new(Cell::new(None));
    let calls = Rc::new(Cell::new(0));
    let removals = Rc::new(RefCell::new(Vec::new()));
    let id = {
        let (own, calls, removals) = (Rc::clone(&own), Rc::clone(&calls), Rc::clone(&removals));
        reactor
            .add_source(rx, Interest::READABLE, move |r, rx, _| {
                calls.set(calls.get() + 1);
                drain(rx, &mut Vec::new());
                let id = own.get().unwrap();
                let mut removals = removals.borrow_mut();
                removals.push(r.remove_source(id).map_err(|e| e.kind()));
                removals.push(r.remove_source(id).map_err(|e| e.kind()));
            })
            .unwrap()
    };
    own.set(Some(id));
    tx.write_all(b"first").unwrap();
    util::run_until(&mut reactor, "the callback", |_| calls.get() == 1);
    assert_eq!(*removals.borrow(), [Ok(()), Err(ErrorKind::NotFound)]);

    // The reactor dropped the read end once the callback returned: the pipe is broken.
    let err = tx.write(b"more").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    let done = util::flag_after(&mut reactor, Duration::from_millis(50));
    util::run_until(&mut reactor, "50 ms to pass", |_| done.get());
    assert_eq!(calls.get(), 1, "callbacks after removal");
}

/// Two pipes become readable in the same iteration; whichever callback runs first removes the
/// other and registers a fresh, empty pipe (which can take the removed one's slot). The removed
/// source's pending event must reach neither it nor the newcomer.
#[test]
fn source_removed_by_another_callback_in_the_same_iteration_gets_no_callback() {
    let mut reactor = Reactor::new().unwrap();
    let ids: Rc<RefCell<Vec<SourceId>>> = Rc::new(RefCell::new(Vec::new()));
    let ran: Rc<RefCell<Vec<&str>>> = Rc::new(RefCell::new(Vec::new()));
    // The fresh pipe's write end stays open, so it never becomes readable.
    let fresh_tx: Rc<RefCell<Option<pipe::Sender>>> = Rc::new(RefCell::new(None));
    let mut writers = Vec::new();
    for (me, other) in [(0usize, 1usize), (1, 0)] {
        let (mut tx, rx) = pipe::new().unwrap();
        tx.write_all(b"ready").unwrap();
        writers.push(tx);
        let (all_ids, ran, fresh_tx) = (Rc::clone(&ids), Rc::clone(&ran), Rc::clone(&fresh_tx));
        let id = reactor
            .add_source(rx, Interest::READABLE, move |r, rx, _| {
                ran.borrow_mut().push(["pipe 0", "pipe 1"][me]);
                drain(rx, &mut Vec::new());
                let other_id = all_ids.borrow()[other];
                if r.remove_source(other_id).is_ok() {
                    let (tx, rx) = pipe::new().unwrap();
                    *fresh_tx.borrow_mut() = Some(tx);
                    let ran = Rc::clone(&ran);
                    r.add_source(rx, Interest::READABLE, move |_, _, _| {
                        ran.borrow_mut().push("fresh pipe");
                    })
                    .unwrap();
                }
            })
            .unwrap();
        ids.borrow_mut().push(id);
    }
    util::run_until(&mut reactor, "a callback", |_| !ran.borrow().is_empty());
    let done = util::flag_after(&mut reactor, Duration::from_millis(30));
    util::run_until(&mut reactor, "30 ms to pass", |_| done.get());
    let ran = ran.borrow();
    assert_eq!(ran.len(), 1, "callbacks: {ran:?}");
    let survivor = if ran[0] == "pipe 0" { 0 } else { 1 };
    // The removed pipe's read end is closed; the survivor's is not.
    assert_eq!(
        writers[1 - survivor].write(b"x").unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
    assert_eq!(writers[survivor].write(b"x").unwrap(), 1);
}
