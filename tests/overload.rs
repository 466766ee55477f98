//! Running out of file descriptors: accepting pauses without spinning, and the clients queued in
//! the backlog meanwhile are served once descriptors are free again.
//!
//! This file holds a single test because it exhausts the descriptors of its whole process (each
//! test file is its own process), which would break any test running beside it.

mod util;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use util::Echo;

/// `EMFILE` on Linux.
const EMFILE: i32 = 24;
/// Give up (and skip) if the descriptor limit is too high to exhaust quickly.
const MAX_HOG: usize = 200_000;

#[test]
fn accept_pauses_on_emfile_without_spinning_and_resumes() {
    const CLIENTS: usize = 8;
    let (addr, server) = util::serve(|| Echo);
    // The client sockets exist before descriptors run out; connecting them needs no new one.
    let sockets: Vec<Socket> = (0..CLIENTS)
        .map(|_| Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap())
        .collect();

    let mut hog = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) if e.raw_os_error() == Some(EMFILE) => break,
            Err(e) => panic!("open /dev/null: {e}"),
        }
        if hog.len() >= MAX_HOG {
            eprintln!("skipped: the descriptor limit is above {MAX_HOG}");
            return;
        }
    }

    // Out of descriptors, the reactor cannot accept these: they wait in the backlog.
    let mut clients: Vec<TcpStream> = sockets
        .into_iter()
        .map(|s| {
            s.connect(&addr.into()).unwrap();
            TcpStream::from(s)
        })
        .collect();
    for c in &mut clients {
        c.write_all(b"ping").unwrap();
    }
    // Observe the paused listener for a while: no echo may come (nothing was accepted, and
    // nothing can be without a descriptor), and the loop must idle on its backoff timer, not
    // spin on the failing accept.
    let window = Duration::from_millis(300);
    clients[0].set_read_timeout(Some(window)).unwrap();
    let started = Instant::now();
    let before = server.iterations();
    let mut buf = [0u8; 4];
    let early = clients[0].read(&mut buf);
    let spins = server.iterations() - before;
    let waited = started.elapsed();
    let accepted_while_exhausted = server.connections();

    drop(hog);

    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a client was served with no descriptors left: {early:?}"
    );
    assert_eq!(accepted_while_exhausted, 0);
    // The loop's poll slices plus the accept retries of a backoff doubling from 10 ms (fewer
    // than 12 in 20 s, wherever in the sequence the window falls) and a few stray events; a
    // loop retrying the failing accept at once would run thousands of iterations.
    server.assert_did_not_spin(spins, waited, 20);
    eprintln!("{spins} loop iterations in {waited:?} while accept kept failing");

    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(util::TIMEOUT)).unwrap();
        assert_eq!(util::read_exactly(c, 4), b"ping", "client {i}");
        util::half_close(c);
        util::assert_eof(c);
    }
    server.wait_for_connections(0);
    server.stop();
}
