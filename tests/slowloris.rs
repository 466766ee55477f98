//! Slowloris: many connections that send a byte and go silent. The first-bytes timeout closes
//! every one of them by its deadline, and fresh clients are served promptly meanwhile.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sockloop::{Context, Handler, Input, ListenOptions};

const LORIS: usize = 1_000;
const FIRST_BYTES: Duration = Duration::from_millis(1_500);

/// Echoes whole lines; a partial line waits, unconsumed, for its newline.
struct LineEcho;

impl Handler for LineEcho {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            let line = input.take_prefix(end + 1);
            cx.write(line);
        }
    }
}

/// True once `c` has been closed by the server (EOF or reset); false while it is open.
fn closed_by_server(c: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("a silent client was sent {n} bytes"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) => panic!("unexpected read error: {e}"),
    }
}

#[test]
fn silent_connections_are_closed_by_the_first_bytes_deadline_and_do_not_delay_others() {
    // 1,000 client ends and 1,000 server ends live in this process.
    rlimit::increase_nofile_limit(4 * LORIS as u64).expect("raise the open-files limit");
    let options = ListenOptions::new().first_bytes_timeout(FIRST_BYTES);
    let ((addr, handle), server) = util::spawn_reactor(move |reactor| {
        let (_, addr) = reactor
            .listen_with(util::localhost(), options, || LineEcho)
            .unwrap();
        (addr, reactor.handle().unwrap())
    });

    let started = Instant::now();
    let mut loris: Vec<TcpStream> = (0..LORIS)
        .map(|_| {
            let mut c = util::client(addr);
            c.write_all(b"G").unwrap();
            c.set_nonblocking(true).unwrap();
            c
        })
        .collect();
    let opened = started.elapsed();
    util::wait_until("every silent client accepted", || {
        server.connections() == LORIS
    });

    // Fresh clients are served at once while the silent ones hold their connections.
    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        let mut c = util::client(addr);
        let line = format!("hello {i}\n");
        let t = Instant::now();
        c.write_all(line.as_bytes()).unwrap();
        assert_eq!(util::read_exactly(&mut c, line.len()), line.as_bytes());
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(100),
        "a fresh client waited {slowest:?} beside {LORIS} silent ones"
    );
    assert!(
        started.elapsed() < FIRST_BYTES,
        "the test was too slow to observe the silent clients open ({:?})",
        started.elapsed()
    );
    assert!(
        loris.iter_mut().all(|c| !closed_by_server(c)),
        "a silent client was closed before its deadline"
    );

    // By the deadline (plus the timer's and the loop's slack) every one of them is closed.
    let deadline = started + opened + FIRST_BYTES + Duration::from_millis(1_000);
    let mut open: Vec<&mut TcpStream> = loris.iter_mut().collect();
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} silent clients still open {:?} after they connected",
            open.len(),
            started.elapsed()
        );
        open.retain_mut(|c| !closed_by_server(c));
        // Polling pace; the loop ends on the condition or the deadline above.
        std::thread::sleep(Duration::from_millis(10));
    }
    server.wait_for_connections(0);
    let stats = util::stats(&handle);
    assert_eq!(stats.closed.first_bytes_timeout, LORIS as u64, "{stats}");
    server.stop();
}
