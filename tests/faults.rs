//! Faults stay local: a client that resets, or a connection the handler aborts, ends only that
//! connection, with the right reason on both sides.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use sockloop::{Context, Handler, Input};
use util::{assert_bytes_eq, Echo, Event, Reason, Recorder};

/// Resetting clients, mid-stream with output queued for them, come and go while a good client
/// runs a long verified exchange; the good client and a later one are unaffected, and every reset
/// reaches its handler as an error.
#[test]
fn client_reset_mid_stream_does_not_disturb_other_clients() {
    const RESETTERS: usize = 20;
    let (tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(Echo, tx.clone()));

    let start = Arc::new(Barrier::new(2));
    let good = {
        let start = Arc::clone(&start);
        thread::spawn(move || {
            let mut c = util::client(addr);
            let data = Arc::new(util::pattern(11, 8 << 20));
            start.wait();
            let got = util::echo_concurrently(&mut c, Arc::clone(&data));
            assert_bytes_eq(&got, &data, "good client's echo");
            util::half_close(&c);
            util::assert_eof(&mut c);
        })
    };

    // More than loopback's socket buffers hold (about 4 MiB), so when a resetter leaves, echo
    // output is still queued for it in the reactor.
    let burst = util::pattern(1000, 6 << 20);
    start.wait();
    for _ in 0..RESETTERS {
        let mut bad = util::client(addr);
        bad.write_all(&burst).unwrap();
        // Mid-stream: some of the echo has come back, most has not.
        util::read_exactly(&mut bad, 64 * 1024);
        util::reset(bad);
    }
    good.join().expect("good client failed");

    // A client arriving after all that is served normally too.
    let mut late = util::client(addr);
    late.write_all(b"after the storm").unwrap();
    assert_eq!(util::read_exactly(&mut late, 15), b"after the storm");
    util::half_close(&late);
    util::assert_eof(&mut late);
    drop(late);

    server.wait_for_connections(0);
    server.stop();
    let history: Vec<Event> = events.try_iter().collect();
    let closes = util::closes_exactly_once(&history);
    assert_eq!(closes.len(), RESETTERS + 2);
    let errors: Vec<_> = closes
        .iter()
        .filter_map(|(_, why)| match why {
            Reason::Error(kind) => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), RESETTERS, "close reasons: {closes:?}");
    for kind in errors {
        assert!(
            matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "a reset reported as {kind:?}"
        );
    }
}

/// A reset of an idle connection (nothing queued either way) is still noticed and reported.
#[test]
fn idle_client_reset_is_reported_as_error() {
    let (tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(Echo, tx.clone()));
    let mut c = util::client(addr);
    c.write_all(b"x").unwrap();
    util::read_exactly(&mut c, 1);
    util::reset(c);
    let (_, why) = util::next_close(&events);
    assert_eq!(why, Reason::Error(ErrorKind::ConnectionReset));
    server.wait_for_connections(0);
    server.stop();
}

/// On `"abort"` queues 4 MiB and aborts in the same callback. On `"stream"` starts an endless
/// stream (more whenever the queue drains), and aborts on the next input.
struct Aborter {
    streaming: bool,
}

/// One piece of the endless stream.
const PIECE: usize = 1 << 20;

impl Handler for Aborter {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if self.streaming {
            cx.abort();
        } else if input.starts_with(b"abort") {
            cx.write(&vec![b'x'; 4 << 20]);
            cx.abort();
        } else if input.starts_with(b"stream") {
            cx.write(&util::pattern(8, PIECE));
            self.streaming = true;
        }
        input.consume(input.len());
    }

    fn on_drained(&mut self, cx: &mut Context<'_>) {
        cx.write(&util::pattern(8, PIECE));
    }
}

/// Output queued before `abort` is discarded, not sent: the peer reads nothing but a reset.
#[test]
fn abort_discards_queued_output_and_resets_peer() {
    let (tx, events) = mpsc::channel();
    let (addr, server) =
        util::serve(move || Recorder::new(Aborter { streaming: false }, tx.clone()));
    let mut c = util::client(addr);
    c.write_all(b"abort").unwrap();
    let (read, err) = util::read_until_error(&mut c);
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_eq!(read, 0, "bytes queued before abort were sent");
    let (_, why) = util::next_close(&events);
    assert_eq!(why, Reason::Aborted);
    server.stop();
    util::closes_exactly_once(&events.try_iter().collect::<Vec<_>>());
}

/// Aborting in the middle of an endless stream: the peer sees a reset, never a clean EOF that
/// would pass a truncated stream off as complete.
#[test]
fn abort_mid_stream_is_a_reset_not_an_eof() {
    let (tx, events) = mpsc::channel();
    let (addr, server) =
        util::serve(move || Recorder::new(Aborter { streaming: false }, tx.clone()));
    let mut c = util::client(addr);
    c.write_all(b"stream").unwrap();
    let first = util::read_exactly(&mut c, 64 * 1024);
    assert_bytes_eq(&first, &util::pattern(8, 64 * 1024), "start of the stream");
    c.write_all(b"enough").unwrap();
    let (_, err) = util::read_until_error(&mut c);
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let (_, why) = util::next_close(&events);
    assert_eq!(why, Reason::Aborted);
    server.stop();
}

/// Aborting connection after connection leaves the reactor serving: each new client is accepted
/// and gets its own reset, and no aborted connection lingers in the slab.
#[test]
fn reactor_serves_new_clients_after_aborting_one() {
    let (addr, server) = util::serve(|| Aborter { streaming: false });
    for _ in 0..10 {
        let mut c = util::client(addr);
        c.write_all(b"abort").unwrap();
        let mut buf = [0u8; 16];
        let err = c.read(&mut buf).expect_err("read after abort succeeded");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    }
    server.wait_for_connections(0);
    server.stop();
}

/// Keeps the connection after the peer's FIN (to send later, say), instead of closing.
struct KeepAfterFin;

impl Handler for KeepAfterFin {
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_read_closed(&mut self, _cx: &mut Context<'_>) {}
}

/// A peer that half-closes and later resets: the reset must end the connection (`on_close` with
/// an error) even though the handler, having nothing to send, never writes to it again. Otherwise
/// the connection and its handler live forever.
#[test]
fn reset_after_half_close_is_noticed_without_writing() {
    let (tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(KeepAfterFin, tx.clone()));
    let c = util::client(addr);
    util::half_close(&c);
    loop {
        if let Event::ReadClosed(_) = util::recv(&events, "on_read_closed") {
            break;
        }
    }
    util::reset(c);
    // The reset arrives at once on loopback; the wait is only the hang guard.
    let why = loop {
        match util::recv(
            &events,
            "on_close after the peer reset a half-closed connection",
        ) {
            Event::Close(_, why) => break why,
            _ => continue,
        }
    };
    // Linux reports a reset in CLOSE_WAIT as EPIPE rather than ECONNRESET.
    assert!(
        matches!(
            why,
            Reason::Error(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
        ),
        "{why:?}"
    );
    server.wait_for_connections(0);
    server.stop();
}
