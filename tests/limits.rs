//! Input bound: a handler that leaves more than `max_input` unconsumed bytes (a message it can
//! never complete) gets its connection reset with `InputLimit`; memory does not grow without end
//! and other connections are served. Output cap: a handler that keeps writing to a peer that
//! does not read, ignoring writability, gets its connection reset with `OutputLimit`.

mod util;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockloop::{CloseReason, Context, Handler, Input, ListenOptions, TimerId};

const LIMIT: usize = 64 * 1024;

/// Answers whole lines with their length; waits (consuming nothing) for the newline otherwise.
struct Lines {
    closes: Arc<Mutex<Vec<String>>>,
}

impl Handler for Lines {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            let line = input.take_prefix(end + 1);
            cx.write(format!("{}\n", line.len() - 1).as_bytes());
        }
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        self.closes.lock().unwrap().push(reason.to_string());
    }
}

#[test]
fn unconsumed_input_over_the_limit_resets_only_that_connection() {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&closes);
    let (addr, server) = util::spawn_reactor(move |reactor| {
        let options = ListenOptions::new().max_input(LIMIT);
        let factory = move || Lines {
            closes: Arc::clone(&seen),
        };
        reactor
            .listen_with(util::localhost(), options, factory)
            .unwrap()
            .1
    });

    // Just under the limit: held, then completed and answered.
    let mut patient = util::client(addr);
    patient.write_all(&vec![b'a'; LIMIT - 1]).unwrap();
    patient.write_all(b"\n").unwrap();
    assert_eq!(
        util::read_exactly(&mut patient, 6),
        format!("{}\n", LIMIT - 1).as_bytes()
    );

    // Over the limit without a newline: reset. The write may fail too once the reset arrives.
    let mut flood = util::client(addr);
    let _ = flood.write_all(&vec![b'x'; LIMIT * 4]);
    let (_, err) = util::read_until_error(&mut flood);
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    util::wait_until("on_close with InputLimit", || {
        closes
            .lock()
            .unwrap()
            .iter()
            .any(|r| r == "input limit exceeded")
    });

    patient.write_all(b"still here\n").unwrap();
    assert_eq!(util::read_exactly(&mut patient, 3), b"10\n");
    assert_eq!(
        closes.lock().unwrap().len(),
        1,
        "only the flooding connection closed"
    );
    server.stop();
}

/// Streams 64 KiB every millisecond from the moment it opens; `polite` ones pause while the
/// connection is not writable, the others write regardless.
struct Streamer {
    polite: bool,
    writable: bool,
    closes: Arc<Mutex<Vec<String>>>,
}

impl Streamer {
    fn pump(&mut self, cx: &mut Context<'_>) {
        if self.writable || !self.polite {
            cx.write(&[b's'; 64 << 10]);
        }
        cx.set_timer(Duration::from_millis(1));
    }
}

impl Handler for Streamer {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.pump(cx);
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
        self.pump(cx);
    }

    fn on_writability(&mut self, _cx: &mut Context<'_>, writable: bool) {
        self.writable = writable;
        if !writable {
            self.closes.lock().unwrap().push("paused".into());
        }
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        self.closes.lock().unwrap().push(reason.to_string());
    }
}

#[test]
fn output_over_the_cap_resets_a_writer_that_ignores_writability() {
    const CAP: usize = 2 << 20;
    let closes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&closes);
    let ((rude, polite), server) = util::spawn_reactor(move |reactor| {
        let options = ListenOptions::new().max_output(CAP);
        let mut listen = |polite: bool| {
            let seen = Arc::clone(&seen);
            let factory = move || Streamer {
                polite,
                writable: true,
                closes: Arc::clone(&seen),
            };
            reactor
                .listen_with(util::localhost(), options.clone(), factory)
                .unwrap()
                .1
        };
        (listen(false), listen(true))
    });
    // Neither client reads: the kernel buffers fill, then the reactor's queues.
    let rude_client = util::client(rude);
    let polite_client = util::client(polite);
    util::wait_until("both paused and the rude one closed", || {
        let events = closes.lock().unwrap();
        events.iter().any(|r| r == "output limit exceeded")
            && events.iter().filter(|e| *e == "paused").count() == 2
    });
    // Both were told they are not writable; only the one that wrote on was closed.
    let events = closes.lock().unwrap().clone();
    assert_eq!(
        events.iter().filter(|e| *e == "paused").count(),
        2,
        "{events:?}"
    );
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(server.connections(), 1);
    drop((rude_client, polite_client));
    server.wait_for_connections(0);
    server.stop();
}
