//! Fairness: a client blasting data at the reactor cannot starve a ping-pong client on the same
//! reactor. The read budget (1 MiB per event) sends the blaster to the back of the still-ready
//! queue, so the ping-pong client waits at most about one budget's worth of work.
//!
//! This file holds a single test: it measures latency, which tests running beside it in the
//! same process would disturb. The blaster is a child process at the lowest CPU priority: on
//! two cores, a blasting thread beside the reactor and the pinger would otherwise add the
//! scheduler's time slices (several ms) to the round trips, which measures the machine, not the
//! reactor. At low priority it still sends as fast as the reactor reads.

mod util;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockloop::{Context, Handler, Input};
use util::Echo;

/// What the issue allows a blaster to add to a ping-pong round trip: "a few milliseconds".
const BOUND: Duration = Duration::from_millis(5);
const ROUND_TRIPS: usize = 500;
const BLAST_ENV: &str = "SOCKLOOP_BLAST_ADDR";

/// The blaster, run in a child process: writes 1 MiB chunks to the address in `BLAST_ENV` until
/// the connection fails (the parent is done and killed us) or 30 s pass.
#[test]
#[ignore = "runs only as the fairness test's child blaster process"]
fn blaster_process() {
    let Some(addr) = std::env::var_os(BLAST_ENV) else {
        return;
    };
    let addr = addr.to_str().unwrap().parse().unwrap();
    let mut blaster = util::client(addr);
    let chunk = vec![b'b'; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if blaster.write_all(&chunk).is_err() {
            break;
        }
    }
}

/// Reads and drops everything.
struct Sink;

impl Handler for Sink {
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }
}

/// Round-trip times of `n` 64-byte pings, sorted.
fn ping_pong(c: &mut std::net::TcpStream, n: usize) -> Vec<Duration> {
    let msg = [b'p'; 64];
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            c.write_all(&msg).unwrap();
            assert_eq!(util::read_exactly(c, 64), msg);
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[test]
fn a_blasting_client_does_not_raise_a_ping_pong_clients_latency_beyond_a_few_ms() {
    let ((echo, sink, handle), server) = util::spawn_reactor(|reactor| {
        let echo = reactor.listen(util::localhost(), || Echo).unwrap().1;
        let sink = reactor.listen(util::localhost(), || Sink).unwrap().1;
        (echo, sink, reactor.handle().unwrap())
    });
    let mut pinger = util::client(echo);
    let alone = ping_pong(&mut pinger, ROUND_TRIPS);

    let mut blaster = Command::new("nice")
        .args(["-n", "19"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "blaster_process", "--ignored", "--quiet"])
        .env(BLAST_ENV, sink.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the blaster process");
    // Let the blast get going: the reactor must be reading the blaster when the pings start.
    let read_before = util::stats(&handle).bytes_read;
    util::wait_until("the blaster to be read", || {
        util::stats(&handle).bytes_read > read_before + (64 << 20)
    });
    let beside = ping_pong(&mut pinger, ROUND_TRIPS);
    let sent = util::stats(&handle).bytes_read - read_before;
    let _ = blaster.kill();
    let _ = blaster.wait();

    let (p50_alone, p99_alone) = (percentile(&alone, 0.5), percentile(&alone, 0.99));
    let (p50, p99) = (percentile(&beside, 0.5), percentile(&beside, 0.99));
    eprintln!(
        "ping-pong alone p50 {p50_alone:?} p99 {p99_alone:?}; beside a blaster ({} MiB sent) \
         p50 {p50:?} p99 {p99:?} max {:?}",
        sent >> 20,
        beside[beside.len() - 1]
    );
    assert!(
        p99 < p99_alone + BOUND,
        "p99 {p99:?} beside the blaster, {p99_alone:?} alone"
    );
    drop(pinger);
    server.stop();
}
