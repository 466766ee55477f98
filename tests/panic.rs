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

const ABORT_ENV: &str = "SOCKLOOP_PANIC_ABORT_SERVER";

/// The server of the abort test, run in a child process: `PanicPolicy::Abort`, a `Fragile`
/// handler, its address printed on stdout; it serves for at most 20 s.
#[test]
#[ignore = "runs only as the abort test's child server process"]
fn abort_policy_server_process() {
    if std::env::var_os(ABORT_ENV).is_none() {
        return;
    }
    let mut reactor = Reactor::new().unwrap();
    reactor.set_panic_policy(sockloop::PanicPolicy::Abort);
    let closes = Arc::new(Mutex::new(Vec::new()));
    let (_, addr) = reactor
        .listen(util::localhost(), move || Fragile {
            closes: Arc::clone(&closes),
        })
        .unwrap();
    println!("ADDR {addr}");
    std::io::stdout().flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        reactor.run_once(Some(Duration::from_millis(50))).unwrap();
    }
}

#[test]
fn with_the_abort_policy_a_handler_panic_aborts_the_process() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "abort_policy_server_process", "--ignored"])
        .args(["--nocapture", "--quiet"])
        .env(ABORT_ENV, "1")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server process");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let addr: std::net::SocketAddr = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("ADDR ").map(|a| a.parse().unwrap()))
        .expect("the server's address");

    let mut calm = util::client(addr);
    calm.write_all(b"hello").unwrap();
    assert_eq!(util::read_exactly(&mut calm, 5), b"hello");
    let mut fragile = util::client(addr);
    fragile.write_all(b"boom").unwrap();

    let deadline = Instant::now() + util::TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not abort within {:?}", util::TIMEOUT);
        }
        std::thread::sleep(Duration::from_millis(10)); // polling pace, bounded above
    };
    assert_eq!(status.signal(), Some(6), "SIGABRT expected, got {status:?}");
}

/// Echoes datagrams, but panics on "boom".
struct FragileUdp;

impl sockloop::DatagramHandler for FragileUdp {
    fn on_datagram(
        &mut self,
        cx: &mut sockloop::UdpContext<'_>,
        data: &[u8],
        from: std::net::SocketAddr,
    ) {
        assert!(data != b"boom", "boom requested");
        let _ = cx.send_to(data, from);
    }
}

/// A datagram handler's panic closes its own UDP socket only: another socket and a TCP
/// connection on the same reactor are served on, and the panic does not leave `run_once`.
#[test]
fn a_datagram_handler_panic_closes_only_its_socket() {
    let mut reactor = Reactor::new().unwrap();
    let (fragile, fragile_addr) = reactor
        .bind_udp("127.0.0.1:0".parse().unwrap(), FragileUdp)
        .unwrap();
    let (_, calm_addr) = reactor
        .bind_udp("127.0.0.1:0".parse().unwrap(), FragileUdp)
        .unwrap();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_nonblocking(true).unwrap();
    client.send_to(b"boom", fragile_addr).unwrap();
    util::run_until(&mut reactor, "the boom received", |r| {
        r.stats().datagrams_received == 1
    });
    let after = reactor.send_to(fragile, b"x", client.local_addr().unwrap());
    assert_eq!(
        after.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::NotFound),
        "the panicking socket is closed"
    );
    client.send_to(b"ping", calm_addr).unwrap();
    let mut buf = [0; 16];
    let mut got = None;
    util::run_until(&mut reactor, "the calm socket's echo", |_| {
        got = client.recv_from(&mut buf).ok();
        got.is_some()
    });
    let (n, from) = got.unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], calm_addr));
}
