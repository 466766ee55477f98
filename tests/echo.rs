//! Echo traffic: bytes come back complete, in order, for one client, a huge payload, and many
//! concurrent clients.

mod util;

use std::io::Write;
use std::sync::{Arc, Barrier};
use std::thread;

use util::{assert_bytes_eq, Echo, Rng};

#[test]
fn single_round_trip() {
    let (addr, server) = util::serve(|| Echo);
    let mut c = util::client(addr);
    c.write_all(b"hello, reactor").unwrap();
    assert_eq!(util::read_exactly(&mut c, 14), b"hello, reactor");
    util::half_close(&c);
    util::assert_eof(&mut c);
    server.stop();
}

#[test]
fn sixteen_mib_echo_is_byte_exact_while_writing_and_reading_concurrently() {
    let (addr, server) = util::serve(|| Echo);
    let mut c = util::client(addr);
    let data = Arc::new(util::pattern(0x16, 16 << 20));
    let got = util::echo_concurrently(&mut c, Arc::clone(&data));
    assert_bytes_eq(&got, &data, "16 MiB echo");
    util::half_close(&c);
    util::assert_eof(&mut c);
    drop(c);
    server.wait_for_connections(0);
    server.stop();
}

/// 500 connections are open at once (the reactor is seen holding all of them), each exchanges
/// messages of random sizes, and each gets back exactly its own bytes in order.
#[test]
fn five_hundred_concurrent_clients_each_get_their_own_bytes_in_order() {
    const THREADS: usize = 10;
    const PER_THREAD: usize = 50;
    const ROUNDS: usize = 3;
    const MAX_MESSAGE: u64 = 32 * 1024;

    let (addr, server) = util::serve(|| Echo);
    // Every client thread connects all of its clients, then waits here with the test thread until
    // the reactor holds all 500: the exchanges below run with every connection open.
    let all_connected = Arc::new(Barrier::new(THREADS + 1));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (all_connected, start) = (Arc::clone(&all_connected), Arc::clone(&start));
            thread::spawn(move || {
                let mut conns: Vec<_> = (0..PER_THREAD).map(|_| util::client(addr)).collect();
                all_connected.wait();
                start.wait();
                // One generator per connection, so its stream is reproducible on its own.
                let mut rngs: Vec<_> = (0..PER_THREAD)
                    .map(|i| Rng::new((t * PER_THREAD + i) as u64))
                    .collect();
                let mut total = 0;
                for round in 0..ROUNDS {
                    // Write one message on every connection before reading any reply, so the
                    // reactor has many connections with data in flight at once.
                    let sent: Vec<Vec<u8>> = conns
                        .iter_mut()
                        .zip(&mut rngs)
                        .map(|(c, rng)| {
                            let mut msg = vec![0; 1 + rng.below(MAX_MESSAGE) as usize];
                            rng.fill(&mut msg);
                            c.write_all(&msg).unwrap();
                            msg
                        })
                        .collect();
                    for (i, (c, msg)) in conns.iter_mut().zip(&sent).enumerate() {
                        let got = util::read_exactly(c, msg.len());
                        let what = format!("client {} round {round}", t * PER_THREAD + i);
                        assert_bytes_eq(&got, msg, &what);
                        total += msg.len();
                    }
                }
                for c in &mut conns {
                    util::half_close(c);
                    util::assert_eof(c);
                }
                total
            })
        })
        .collect();

    all_connected.wait();
    server.wait_for_connections(THREADS * PER_THREAD);
    start.wait();
    let total: usize = workers
        .into_iter()
        .map(|w| w.join().expect("client thread panicked"))
        .sum();
    assert!(total > 0);
    // Every connection was released: nothing leaked in the slab.
    server.wait_for_connections(0);
    server.stop();
}
