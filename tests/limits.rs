//! Input bound: a handler that leaves more than `max_input` unconsumed bytes (a message it can
//! never complete) gets its connection reset with `InputLimit`; memory does not grow without end
//! and other connections are served.

mod util;

use std::io::Write;
use std::sync::{Arc, Mutex};

use sockloop::{CloseReason, Context, Handler, Input, ListenOptions};

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
