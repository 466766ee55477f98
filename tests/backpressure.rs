//! Output the socket cannot take at once is queued in the reactor and delivered in full once the
//! peer reads; `on_drained` says when such a queue has emptied, and only then.

mod util;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;

use sockloop::{Context, Handler, Input};
use util::{assert_bytes_eq, Echo, Event, Recorder};

const FLOOD: usize = 8 << 20;

/// Writes `FLOOD` bytes on open; on any input reports how much of it is still queued; closes once
/// the queue has drained.
struct Flood {
    queued: Sender<usize>,
}

impl Handler for Flood {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.write(&util::pattern(31, FLOOD));
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
        let _ = self.queued.send(cx.queued());
    }

    fn on_drained(&mut self, cx: &mut Context<'_>) {
        cx.close();
    }
}

/// The client does not read until the reactor reports output queued for it (the socket buffers
/// are full), then reads: every byte arrives, in order, then EOF from the close in `on_drained`.
#[test]
fn slow_reader_gets_all_queued_output() {
    let (queued_tx, queued) = mpsc::channel();
    let (events_tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || {
        Recorder::new(
            Flood {
                queued: queued_tx.clone(),
            },
            events_tx.clone(),
        )
    });
    let mut c = util::client(addr);
    // Ask how much is queued: not reading has left most of the flood in the reactor.
    c.write_all(b"?").unwrap();
    let waiting = util::recv(&queued, "the queued byte count");
    assert!(
        waiting > 0 && waiting < FLOOD,
        "{waiting} of {FLOOD} bytes queued: the socket took none or all of them"
    );
    let got = util::read_to_eof(&mut c);
    assert_bytes_eq(&got, &util::pattern(31, FLOOD), "flood");
    drop(c);
    server.wait_for_connections(0);
    server.stop();
    let history: Vec<Event> = events.try_iter().collect();
    let drained = history
        .iter()
        .filter(|e| matches!(e, Event::Drained(_)))
        .count();
    assert_eq!(drained, 1, "on_drained per blocked queue: {history:?}");
    util::closes_exactly_once(&history);
}

/// Echoes, recording the largest amount of output found still queued when new input arrives.
struct MeasuredEcho {
    max_queued: Arc<AtomicUsize>,
}

impl Handler for MeasuredEcho {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.max_queued.fetch_max(cx.queued(), Ordering::Relaxed);
        cx.write(input.take_all());
    }
}

/// A client that writes a lot before reading anything: the echo piles up in the reactor (it
/// keeps reading while its output is blocked, appending to a queue that is being drained), and all
/// of it comes back in order once the client reads.
#[test]
fn echo_queue_grows_while_client_does_not_read_and_drains_in_order() {
    const TOTAL: usize = 16 << 20;
    let max_queued = Arc::new(AtomicUsize::new(0));
    let (events_tx, events) = mpsc::channel();
    let m = Arc::clone(&max_queued);
    let (addr, server) = util::serve(move || {
        Recorder::new(
            MeasuredEcho {
                max_queued: Arc::clone(&m),
            },
            events_tx.clone(),
        )
    });
    let mut c = util::client(addr);
    let data = Arc::new(util::pattern(32, TOTAL));
    let mut writer = c.try_clone().unwrap();
    let sent = Arc::clone(&data);
    let w = thread::spawn(move || {
        for chunk in sent.chunks(50_000) {
            writer.write_all(chunk).unwrap();
        }
    });
    // Writes are flushed once per iteration and one iteration reads at most 1 MiB (the read
    // budget), so only a queue above 2 MiB proves that a flush left bytes behind: the socket
    // blocked, and on_drained is owed once the queue empties.
    util::wait_until("3 MiB of echo queued in the reactor", || {
        max_queued.load(Ordering::Relaxed) >= 3 << 20
    });
    let got = util::read_exactly(&mut c, TOTAL);
    w.join().unwrap();
    assert_bytes_eq(&got, &data, "echo read after the queue built up");
    util::half_close(&c);
    util::assert_eof(&mut c);
    server.stop();
    let history: Vec<Event> = events.try_iter().collect();
    assert!(
        history.iter().any(|e| matches!(e, Event::Drained(_))),
        "on_drained never called after a blocked queue emptied: {history:?}"
    );
}

/// Replies that the socket takes at once never trigger `on_drained`.
#[test]
fn on_drained_is_not_called_when_writes_go_out_at_once() {
    let (events_tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(Echo, events_tx.clone()));
    let mut c = util::client(addr);
    for i in 0..100u32 {
        c.write_all(&i.to_be_bytes()).unwrap();
        assert_eq!(util::read_exactly(&mut c, 4), i.to_be_bytes());
    }
    util::half_close(&c);
    util::assert_eof(&mut c);
    server.wait_for_connections(0);
    server.stop();
    let history: Vec<Event> = events.try_iter().collect();
    assert!(
        !history.iter().any(|e| matches!(e, Event::Drained(_))),
        "{history:?}"
    );
}
