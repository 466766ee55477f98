//! Half-close in both directions: the peer's FIN does not cut off output still queued for it,
//! and `shutdown_write` sends FIN only after queued output while reading goes on.

mod util;

use std::io::Write;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;

use sockloop::{Context, Handler, Input, ListenOptions};
use util::{assert_bytes_eq, Echo, Event, Reason, Recorder};

/// Output watermarks high enough that the reactor reads everything these tests send while its
/// output is stuck, so a client can write it all before reading (with the default marks the
/// reactor would stop reading, and a client that never reads would block in `write_all`).
fn buffer_everything() -> ListenOptions {
    ListenOptions::new()
        .output_watermarks(32 << 20, 32 << 20)
        .max_output(64 << 20)
}

/// The client sends 4 MiB without reading, then FIN: all of it comes back, then EOF.
#[test]
fn half_close_flushes_tail() {
    let (addr, server) = util::serve_with(buffer_everything(), || Echo);
    let mut c = util::client(addr);
    let data = util::pattern(4, 4 << 20);
    // The reactor reads everything it is sent even while its output is stuck, so this completes
    // although nobody reads yet.
    c.write_all(&data).unwrap();
    util::half_close(&c);
    let got = util::read_to_eof(&mut c);
    assert_bytes_eq(&got, &data, "echo after half-close");
    drop(c);
    server.wait_for_connections(0);
    server.stop();
}

/// Echoes, and reports how much output is still queued in the reactor when the peer's FIN arrives.
struct TailEcho(Sender<usize>);

impl Handler for TailEcho {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        let _ = self.0.send(cx.queued());
        cx.close();
    }
}

/// As above, but with more than loopback's socket buffers hold (about 4 MiB here): when the FIN
/// arrives, megabytes of echo are still queued in the reactor itself, and they must all be sent
/// before the reactor's FIN.
#[test]
fn half_close_flushes_tail_queued_in_the_reactor() {
    let (queued_tx, queued) = mpsc::channel();
    let (addr, server) = util::serve_with(buffer_everything(), move || TailEcho(queued_tx.clone()));
    let mut c = util::client(addr);
    let data = util::pattern(40, 16 << 20);
    c.write_all(&data).unwrap();
    util::half_close(&c);
    let tail = util::recv(&queued, "on_read_closed");
    assert!(
        tail > 0,
        "nothing queued in the reactor at FIN: the test did not exercise the tail"
    );
    let got = util::read_to_eof(&mut c);
    assert_bytes_eq(&got, &data, "echo after half-close");
    server.stop();
}

#[test]
fn half_close_while_reading_concurrently_flushes_tail() {
    let (addr, server) = util::serve(|| Echo);
    let mut c = util::client(addr);
    let data = Arc::new(util::pattern(44, 4 << 20));
    let mut writer = c.try_clone().unwrap();
    let sent = Arc::clone(&data);
    let w = thread::spawn(move || {
        for chunk in sent.chunks(100_003) {
            writer.write_all(chunk).unwrap();
        }
        util::half_close(&writer);
    });
    let got = util::read_to_eof(&mut c);
    w.join().unwrap();
    assert_bytes_eq(&got, &data, "echo after half-close");
    server.stop();
}

/// Echoes, and after the peer's FIN sends a trailer with the byte count before closing: a
/// connection whose read side is closed can still write.
struct CountThenClose {
    seen: usize,
}

impl Handler for CountThenClose {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.seen += input.len();
        cx.write(input.take_all());
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        cx.write(format!("\ntotal={}\n", self.seen).as_bytes());
        cx.close();
    }
}

#[test]
fn handler_writes_after_peer_half_close() {
    let (addr, server) = util::serve(|| CountThenClose { seen: 0 });
    let mut c = util::client(addr);
    let data = util::pattern(5, 1 << 20);
    c.write_all(&data).unwrap();
    util::half_close(&c);
    let got = util::read_to_eof(&mut c);
    let mut want = data.clone();
    want.extend_from_slice(format!("\ntotal={}\n", data.len()).as_bytes());
    assert_bytes_eq(&got, &want, "echo plus trailer");
    server.stop();
}

/// Sends `greeting` on open and shuts down its write side at once; reports what it reads after.
struct GreetThenShutdown {
    greeting: Arc<Vec<u8>>,
    got: Sender<Vec<u8>>,
}

impl Handler for GreetThenShutdown {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.write(&self.greeting);
        cx.shutdown_write();
        // Output after shutdown_write is discarded, never sent after the FIN.
        cx.write(b"MUST NOT ARRIVE");
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        let _ = self.got.send(input.take_all().to_vec());
    }
}

/// `shutdown_write` with output queued: the peer gets every byte, then EOF; the connection keeps
/// reading; and when the peer closes too, `on_close` says `PeerClosed`, once.
#[test]
fn shutdown_write_sends_fin_after_queued_output_and_keeps_reading() {
    let greeting = Arc::new(util::pattern(6, 8 << 20));
    let (events_tx, events) = mpsc::channel();
    let (data_tx, data) = mpsc::channel();
    let g = Arc::clone(&greeting);
    let (addr, server) = util::serve(move || {
        Recorder::new(
            GreetThenShutdown {
                greeting: Arc::clone(&g),
                got: data_tx.clone(),
            },
            events_tx.clone(),
        )
    });
    let mut c = util::client(addr);
    // 8 MiB cannot fit in the socket buffers: the FIN must wait behind queued output.
    let got = util::read_to_eof(&mut c);
    assert_bytes_eq(&got, &greeting, "output before FIN");

    // The reactor's read side is still open.
    c.write_all(b"still listening?").unwrap();
    let mut received = Vec::new();
    while received.len() < 16 {
        received.extend(util::recv(&data, "bytes sent after the reactor's FIN"));
    }
    assert_eq!(received, b"still listening?");

    drop(c);
    let (_, why) = util::next_close(&events);
    assert_eq!(why, Reason::PeerClosed);
    server.stop();
    let history: Vec<Event> = events.try_iter().collect();
    assert!(
        !history.iter().any(|e| matches!(e, Event::Close(..))),
        "a second on_close: {history:?}"
    );
}
