//! A panic inside a handler closes that connection only; the reactor serves everyone else. With
//! `PanicPolicy::Unwind` the panic is the embedding program's to handle.

mod util;

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockloop::{CloseReason, Context, Handler, Input, Reactor};

/// Echoes, but panics when asked to ("boom" in the input).
struct Fragile {
    closes: Arc<Mutex<Vec<String>>>,
}

impl Handler for Fragile {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if input.windows(4).any(|w| w == b"boom") {
            panic!("boom requested");
        }
        cx.write(input.take_all());
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        self.closes.lock().unwrap().push(reason.to_string());
    }
}

#[test]
fn handler_panic_resets_only_its_connection_and_the_loop_serves_on() {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&closes);
    let (addr, server) = util::serve(move || Fragile {
        closes: Arc::clone(&seen),
    });

    let mut calm = util::client(addr);
    calm.write_all(b"hello").unwrap();
    assert_eq!(util::read_exactly(&mut calm, 5), b"hello");

    let mut fragile = util::client(addr);
    fragile.write_all(b"boom").unwrap();
    let (_, err) = util::read_until_error(&mut fragile);
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionReset,
        "the panicking connection is reset"
    );

    util::wait_until("on_close of the panicking connection", || {
        closes
            .lock()
            .unwrap()
            .iter()
            .any(|r| r == "handler panicked: boom requested")
    });
    calm.write_all(b"still served").unwrap();
    assert_eq!(util::read_exactly(&mut calm, 12), b"still served");
    let mut fresh = util::client(addr);
    fresh.write_all(b"new").unwrap();
    assert_eq!(util::read_exactly(&mut fresh, 3), b"new");
    assert_eq!(
        closes.lock().unwrap().len(),
        1,
        "only the panicking connection closed"
    );
    server.stop(); // re-raises any panic that escaped the reactor thread: none may have
}

#[test]
fn with_the_unwind_policy_the_panic_unwinds_out_of_run_once() {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let mut reactor = Reactor::new().unwrap();
    reactor.set_panic_policy(sockloop::PanicPolicy::Unwind);
    let seen = Arc::clone(&closes);
    let (_, addr) = reactor
        .listen(util::localhost(), move || Fragile {
            closes: Arc::clone(&seen),
        })
        .unwrap();
    let mut client = util::client(addr);
    client.write_all(b"boom").unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        while Instant::now() < deadline {
            reactor.run_once(Some(Duration::from_millis(50))).unwrap();
        }
    }));
    let payload = outcome.expect_err("the handler's panic must reach the caller of run_once");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom requested"));
}
