//! Clients that send forever and never read cannot grow the server: past the high watermark
//! the reactor stops reading them, their data waits in the kernel (where TCP flow control stops
//! them), and other clients are served as usual.
//!
//! This file holds a single test because it measures the resident memory of its whole process
//! (each test file is its own process), which a test running beside it would disturb.

mod util;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sockloop::Handle;
use util::Echo;

const FLOODERS: usize = 100;
/// What the issue allows the server to grow by while the flooders are stuck.
const MAX_GROWTH: u64 = 100 << 20;
/// Rounds in a row in which no flooder could write a byte and the server neither read nor wrote
/// one, each round at least one full loop iteration: then everyone is stuck.
const STUCK_ROUNDS: usize = 3;

/// Resident memory of this process, from `/proc/self/statm` (pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm has a resident field");
    pages * 4096
}

/// Writes to every flooder until they are all stuck, returning the bytes each sent.
///
/// "Stuck" is decided by counts, not by a quiet spell of some milliseconds (a descheduled
/// reactor thread is quiet too): a round in which no flooder took a byte, followed by a
/// `stats()` round trip through the loop (which therefore ran an iteration since the previous
/// one) that shows the server read and wrote nothing either. Nothing the flooders sent is left
/// for an unpaused connection to read then, so every connection is paused over its watermark.
fn flood_until_stuck(flooders: &mut [TcpStream], handle: &Handle) -> Vec<usize> {
    let chunk = util::pattern(7, 64 << 10);
    let mut sent = vec![0usize; flooders.len()];
    let mut stuck_rounds = 0;
    let mut last_counts = None;
    let mut last_progress = Instant::now();
    while stuck_rounds < STUCK_ROUNDS {
        assert!(
            last_progress.elapsed() < util::TIMEOUT,
            "no progress and not stuck for {:?}: {sent:?}",
            util::TIMEOUT
        );
        let mut progress = false;
        for (c, total) in flooders.iter_mut().zip(&mut sent) {
            loop {
                match c.write(&chunk) {
                    Ok(n) => {
                        *total += n;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("flooder write failed: {e}"),
                }
            }
        }
        let stats = util::stats(handle);
        let counts = Some((stats.bytes_read, stats.bytes_written));
        if progress || counts != last_counts {
            stuck_rounds = 0;
            last_progress = Instant::now();
        } else {
            stuck_rounds += 1;
        }
        last_counts = counts;
        // Polling pace, not synchronisation: the exit condition is the counts above.
        std::thread::sleep(Duration::from_millis(20));
    }
    sent
}

#[test]
fn clients_that_never_read_do_not_grow_the_server_and_others_are_served() {
    let ((addr, handle), server) = util::spawn_reactor(|reactor| {
        let (_, addr) = reactor.listen(util::localhost(), || Echo).unwrap();
        (addr, reactor.handle().unwrap())
    });
    let mut probe = util::client(addr);
    probe.write_all(b"warm-up").unwrap();
    assert_eq!(util::read_exactly(&mut probe, 7), b"warm-up");
    let before = rss_bytes();

    let mut flooders: Vec<TcpStream> = (0..FLOODERS)
        .map(|_| {
            let c = util::client(addr);
            c.set_nonblocking(true).unwrap();
            c
        })
        .collect();
    // Every flooder is accepted first, so that what holds their bytes back is the reactor's
    // watermark, not a backlog the reactor has not reached yet.
    server.wait_for_connections(FLOODERS + 1);
    let sent = flood_until_stuck(&mut flooders, &handle);
    let growth = rss_bytes().saturating_sub(before);
    let total: usize = sent.iter().sum();
    eprintln!(
        "{FLOODERS} flooders stuck after sending {} MiB in all ({} .. {} KiB each); \
         process RSS grew {} KiB",
        total >> 20,
        sent.iter().min().unwrap() >> 10,
        sent.iter().max().unwrap() >> 10,
        growth >> 10
    );
    assert!(
        growth < MAX_GROWTH,
        "RSS grew {growth} bytes with {FLOODERS} clients that never read"
    );
    assert_eq!(server.connections(), FLOODERS + 1);
    let stuck = util::stats(&handle);

    // Everyone else is still served beside the stuck flooders: the probe gets every one of its
    // echoes, and a fresh client is accepted and echoed. (How long a round trip takes is the
    // machine's business; it is printed, not asserted.)
    let mut slowest = Duration::ZERO;
    for i in 0..100u32 {
        let started = Instant::now();
        probe.write_all(&i.to_be_bytes()).unwrap();
        assert_eq!(util::read_exactly(&mut probe, 4), i.to_be_bytes());
        slowest = slowest.max(started.elapsed());
    }
    let mut fresh = util::client(addr);
    fresh.write_all(b"hello").unwrap();
    assert_eq!(util::read_exactly(&mut fresh, 5), b"hello");
    eprintln!("slowest probe round trip beside the flooders: {slowest:?}");
    // Serving them took exactly their bytes, and nobody was closed meanwhile: the flooders are
    // held back, not dropped.
    let served = util::stats(&handle);
    assert_eq!(served.bytes_read - stuck.bytes_read, 400 + 5, "{served}");
    assert_eq!(
        served.bytes_written - stuck.bytes_written,
        400 + 5,
        "{served}"
    );
    assert_eq!(served.closed.total(), 0, "{served}");
    assert_eq!(served.open_connections, FLOODERS as u64 + 2, "{served}");

    drop(flooders);
    drop(probe);
    drop(fresh);
    server.wait_for_connections(0);
    server.stop();
}
