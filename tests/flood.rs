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

use util::Echo;

const FLOODERS: usize = 100;
/// What the issue allows the server to grow by while the flooders are stuck.
const MAX_GROWTH: u64 = 100 << 20;
/// Bounds the flooding phase whatever happens.
const FLOOD_DEADLINE: Duration = Duration::from_secs(20);

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

/// Writes to every flooder until none of them takes more for a few rounds in a row (all are
/// stuck), returning the bytes each sent.
fn flood_until_stuck(flooders: &mut [TcpStream]) -> Vec<usize> {
    let chunk = util::pattern(7, 64 << 10);
    let mut sent = vec![0usize; flooders.len()];
    let mut quiet_rounds = 0;
    let started = Instant::now();
    while quiet_rounds < 5 {
        assert!(
            started.elapsed() < FLOOD_DEADLINE,
            "flooders still sending after {FLOOD_DEADLINE:?}: {sent:?}"
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
        if progress {
            quiet_rounds = 0;
        } else {
            quiet_rounds += 1;
        }
        // Polling pace, not synchronisation: the exit condition is "no progress in 5 rounds".
        std::thread::sleep(Duration::from_millis(20));
    }
    sent
}

#[test]
fn clients_that_never_read_do_not_grow_the_server_and_others_are_served() {
    let (addr, server) = util::serve(|| Echo);
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
    let sent = flood_until_stuck(&mut flooders);
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

    // Everyone else is still served, promptly.
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
    assert!(
        slowest < Duration::from_millis(500),
        "a round trip beside the flooders took {slowest:?}"
    );

    drop(flooders);
    drop(probe);
    drop(fresh);
    server.wait_for_connections(0);
    server.stop();
}
