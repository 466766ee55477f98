//! However the peer splits its writes and whatever order the loop sees events in, a handler is
//! offered exactly the bytes sent, once each, in order; its replies arrive byte-exact; and its
//! connection closes once, for a reason that fits. The property lives in `chunking/harness.rs`,
//! shared with the cargo-fuzz target `fuzz/fuzz_targets/chunked_stream.rs`; here proptest runs
//! it on a bounded number of generated scenarios (`PROPTEST_CASES`, default [`CASES`]), next to
//! hand-written cases for the edges that matter most.

#[path = "chunking/harness.rs"]
mod harness;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use sockloop::{CloseReason, Context, Handler, Input, ListenOptions, Reactor};

use harness::{
    Consume, Local, LocalAction, Payload, PeerEnd, ReadClosed, Reply, Scenario, Style, Transport,
};

/// Generated scenarios per run when `PROPTEST_CASES` is not set: each takes a few milliseconds,
/// so the whole property stays well under a second or two in CI.
const CASES: u32 = 64;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // Failures are turned into the named regression tests below instead of files that CI
        // would write into the source tree.
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The fuzz target's property, on proptest's bytes (printed, minimised, on failure; pass
    /// them to `harness::check` to reproduce).
    #[test]
    fn any_chunking_and_event_order_delivers_every_byte_once(data in vec(any::<u8>(), 0..160)) {
        harness::check(&data);
    }
}

fn text(len: usize) -> Payload {
    Payload::Generated {
        style: Style::Lines,
        seed: 1,
        len,
    }
}

#[test]
fn one_byte_writes_are_reassembled_into_lines() {
    let out = harness::run(&Scenario {
        chunks: vec![1],
        spins: vec![1],
        consume: vec![Consume::Lines],
        reply: Reply::Echo,
        peer_reads_early: true,
        ..Scenario::new(text(700))
    });
    assert!(
        out.partial > 0,
        "no line was ever split across calls: {out:?}"
    );
}

#[test]
fn everything_in_one_write_is_delivered_once() {
    harness::run(&Scenario {
        reply: Reply::Tagged,
        ..Scenario::new(text(5000))
    });
}

#[test]
fn leftovers_are_offered_again_before_new_bytes() {
    let out = harness::run(&Scenario {
        chunks: vec![1000],
        spins: vec![1],
        consume: vec![Consume::Advance(7), Consume::Nothing, Consume::TakeAll],
        reply: Reply::Tagged,
        ..Scenario::new(text(3000))
    });
    assert!(out.partial > 0, "nothing was left over: {out:?}");
}

#[test]
fn frames_split_across_writes_are_taken_whole() {
    let frames = Payload::Generated {
        style: Style::Frames,
        seed: 9,
        len: 4000,
    };
    let out = harness::run(&Scenario {
        chunks: vec![3, 50, 1, 700],
        spins: vec![1, 0, 2],
        consume: vec![Consume::Frames],
        reply: Reply::Tagged,
        ..Scenario::new(frames)
    });
    assert!(
        out.partial > 0,
        "no frame was ever split across calls: {out:?}"
    );
}

#[test]
fn read_and_bufread_consume_exactly_what_they_return() {
    harness::run(&Scenario {
        chunks: vec![13, 400],
        spins: vec![1],
        consume: vec![
            Consume::Read(10),
            Consume::FillBuf(33),
            Consume::ReadExact(100),
            Consume::ReadToEnd,
        ],
        reply: Reply::Echo,
        ..Scenario::new(text(2500))
    });
}

/// Data and FIN in one TCP segment: the FIN is seen, and only after the last byte.
#[test]
fn fin_in_the_segment_of_the_last_data_comes_after_it() {
    let out = harness::run(&Scenario {
        chunks: vec![100],
        spins: vec![1],
        end: PeerEnd::HalfCloseWithLastWrite,
        read_closed: ReadClosed::TrailerThenClose,
        consume: vec![Consume::TakePrefix(30)],
        ..Scenario::new(text(1000))
    });
    assert!(out.read_closed, "{out:?}");
}

#[test]
fn reset_after_the_data_closes_with_an_error() {
    let out = harness::run(&Scenario {
        chunks: vec![64],
        spins: vec![1],
        end: PeerEnd::Reset,
        reply: Reply::Echo,
        ..Scenario::new(text(512))
    });
    assert!(out.reason.starts_with("error"), "{out:?}");
}

#[test]
fn close_mid_stream_sends_the_replies_queued_before_it() {
    harness::run(&Scenario {
        chunks: vec![10],
        spins: vec![1],
        reply: Reply::Tagged,
        greeting: true,
        local: Some(Local {
            at_call: 2,
            action: LocalAction::Close,
        }),
        ..Scenario::new(text(200))
    });
}

#[test]
fn shutdown_write_mid_stream_keeps_reading_to_the_end() {
    harness::run(&Scenario {
        chunks: vec![10],
        spins: vec![1],
        reply: Reply::Tagged,
        local: Some(Local {
            at_call: 1,
            action: LocalAction::ShutdownWrite,
        }),
        ..Scenario::new(text(300))
    });
}

/// Megabyte replies wait in the reactor for a slow peer; the FIN and the close wait behind them.
#[test]
fn bulk_replies_wait_for_the_socket_and_all_arrive_before_the_fin() {
    let out = harness::run(&Scenario {
        chunks: vec![100],
        spins: vec![1],
        reply: Reply::Bulk,
        ..Scenario::new(text(400))
    });
    assert!(out.drained > 0, "output never had to wait: {out:?}");
}

#[test]
fn unconsumed_input_over_max_input_resets_with_input_limit() {
    let out = harness::run(&Scenario {
        chunks: vec![500],
        spins: vec![1],
        consume: vec![Consume::Nothing],
        max_input: Some(1024),
        ..Scenario::new(text(3000))
    });
    assert_eq!(out.reason, "input limit exceeded");
}

#[test]
fn unix_stream_with_peer_fin_left_open_is_closed_by_the_reactor() {
    harness::run(&Scenario {
        transport: Transport::Unix,
        chunks: vec![7, 90],
        spins: vec![0, 1],
        consume: vec![Consume::Lines, Consume::TakePrefix(5)],
        reply: Reply::Echo,
        read_closed: ReadClosed::LeaveOpen,
        ..Scenario::new(text(1500))
    });
}

/// Refuses any message longer than `LIMIT` the way a server naturally does: without consuming
/// it, it queues a final reply and closes (gracefully, or with an abort).
struct Refuse {
    abort: bool,
    reason: Rc<RefCell<Option<CloseReason>>>,
}

/// `max_input` of the listener in the reproducers below.
const LIMIT: usize = 1024;

impl Handler for Refuse {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        // Below the bound the partial message is simply kept; above it, refuse.
        if input.len() > LIMIT {
            cx.write(b"413 too large\n");
            if self.abort {
                cx.abort();
            } else {
                cx.close();
            }
        }
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        *self.reason.borrow_mut() = Some(reason);
    }
}

/// Sends `2 * LIMIT` bytes and FIN to a `Refuse` handler; returns what the peer read (until EOF
/// or a reset) and the close reason.
fn refuse_oversized(abort: bool) -> (Vec<u8>, CloseReason) {
    let reason = Rc::new(RefCell::new(None));
    let mut reactor = Reactor::new().unwrap();
    let options = ListenOptions::new().max_input(LIMIT);
    let shared = Rc::clone(&reason);
    let factory = move || Refuse {
        abort,
        reason: Rc::clone(&shared),
    };
    let local = "127.0.0.1:0".parse().unwrap();
    let (_, addr) = reactor.listen_with(local, options, factory).unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.write_all(&[b'x'; 2 * LIMIT]).unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    peer.set_nonblocking(true).unwrap();
    let (mut got, mut done, mut buf) = (Vec::new(), false, [0u8; 256]);
    let deadline = Instant::now() + harness::DEADLINE;
    while !done || reason.borrow().is_none() {
        assert!(
            Instant::now() < deadline,
            "no close within {:?}",
            harness::DEADLINE
        );
        reactor.run_once(Some(Duration::from_millis(1))).unwrap();
        loop {
            match peer.read(&mut buf) {
                Ok(0) => done = true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => done = true,
            }
            if done {
                break;
            }
        }
    }
    let reason = reason.borrow_mut().take().unwrap();
    (got, reason)
}

/// Found by the chunking property: the input bound used to be checked on what the call that
/// closed left unconsumed, so refusing an oversized message with a reply and `close()` reset the
/// connection (`InputLimit`) and discarded the reply. A closing connection's leftover is moot.
#[test]
fn close_with_an_oversized_leftover_still_sends_the_final_reply() {
    let (got, reason) = refuse_oversized(false);
    assert!(
        matches!(reason, CloseReason::Local | CloseReason::PeerClosed),
        "closed with {reason:?}"
    );
    assert_eq!(got, b"413 too large\n");
}

/// Likewise an explicit `abort()` in the call that overflowed is reported as `Aborted`, not
/// `InputLimit`.
#[test]
fn abort_with_an_oversized_leftover_is_reported_as_aborted() {
    let (_, reason) = refuse_oversized(true);
    assert!(
        matches!(reason, CloseReason::Aborted),
        "closed with {reason:?}"
    );
}
