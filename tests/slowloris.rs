//! Slowloris: many connections that send a byte and go silent. The first-bytes timeout closes
//! every one of them, none before its deadline, and fresh clients are served meanwhile.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sockloop::{Context, Handler, Input, ListenOptions};

const LORIS: usize = 1_000;
const FRESH: usize = 50;
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

/// A silent client and when it began to connect: the server accepted it, and started its
/// first-bytes deadline, after that.
struct Loris {
    stream: TcpStream,
    begun: Instant,
}

impl Loris {
    /// Whether the server has closed it; panics if it did so before its deadline could have
    /// passed (checked when the close is seen, which is after it happened).
    #[track_caller]
    fn closed(&mut self) -> bool {
        if !closed_by_server(&mut self.stream) {
            return false;
        }
        let seen_after = self.begun.elapsed();
        assert!(
            seen_after >= FIRST_BYTES,
            "a silent client was closed {seen_after:?} after it began to connect, before its \
             {FIRST_BYTES:?} deadline"
        );
        true
    }
}

/// The silent clients hold their connections while fresh clients come and go: every fresh one
/// is answered in full, and none of the silent ones is closed before its deadline. Then each
/// silent one is closed by the first-bytes timeout, which `stats()` counts; the hang guard
/// ([`util::TIMEOUT`]) is the only bound on how late.
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

    let mut loris: Vec<Loris> = (0..LORIS)
        .map(|_| {
            let begun = Instant::now();
            let mut stream = util::client(addr);
            stream.write_all(b"G").unwrap();
            stream.set_nonblocking(true).unwrap();
            Loris { stream, begun }
        })
        .collect();
    util::wait_until("every silent client accepted", || {
        server.connections() == LORIS
    });

    // Fresh clients are served while the silent ones hold their connections.
    let mut slowest = Duration::ZERO;
    for i in 0..FRESH {
        let mut c = util::client(addr);
        let line = format!("hello {i}\n");
        let t = Instant::now();
        c.write_all(line.as_bytes()).unwrap();
        assert_eq!(util::read_exactly(&mut c, line.len()), line.as_bytes());
        slowest = slowest.max(t.elapsed());
    }
    let mut open_after_fresh = 0;
    for l in &mut loris {
        open_after_fresh += usize::from(!l.closed());
    }
    eprintln!(
        "slowest fresh client beside {LORIS} silent ones: {slowest:?}; {open_after_fresh} silent \
         ones still open after the fresh ones were served"
    );

    // Every silent one is closed, none before its deadline (checked by `Loris::closed`).
    let deadline = Instant::now() + util::TIMEOUT;
    let mut open: Vec<&mut Loris> = loris.iter_mut().collect();
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} silent clients still open after {:?} more",
            open.len(),
            util::TIMEOUT
        );
        open.retain_mut(|l| !l.closed());
        // Polling pace; the loop ends on the condition or the hang guard above.
        std::thread::sleep(Duration::from_millis(10));
    }
    server.wait_for_connections(0);
    let stats = util::stats(&handle);
    assert_eq!(stats.closed.first_bytes_timeout, LORIS as u64, "{stats}");
    assert_eq!(stats.closed.total(), (LORIS + FRESH) as u64, "{stats}");
    assert_eq!(stats.accepted, (LORIS + FRESH) as u64, "{stats}");
    server.stop();
}
