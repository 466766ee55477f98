//! The load generator's connect phase (`examples/loadgen`), against a server whose accept queue
//! overflows: the connects whose SYNs the kernel dropped are abandoned and made again after
//! `connect_retry` (100 ms), instead of waiting the second the kernel takes to resend a SYN.
//!
//! The test proves that stalled connects are made again and that every connection is then made
//! and used; that this happens sooner than the kernel's resend is a matter of time, which the
//! test prints but does not assert (a loaded machine may delay anything by a second).

#[path = "../examples/loadgen/mod.rs"]
mod loadgen;
mod util;

use std::fs;
use std::io;
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use util::{localhost, wait_until, TIMEOUT};

/// Connections the load generator makes, all at once.
const CONNECTIONS: usize = 12;
/// The server's listen backlog: Linux queues one more than this, and drops further SYNs.
const BACKLOG: i32 = 4;

/// Connections waiting in the accept queue of the TCP listener on loopback port `port`: the
/// `rx_queue` of its LISTEN line in `/proc/net/tcp`.
fn accept_queue(port: u16) -> Option<u32> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&local.as_str()) || f.get(3) != Some(&"0A") {
            return None;
        }
        let (_, rx) = f.get(4)?.split_once(':')?;
        u32::from_str_radix(rx, 16).ok()
    })
}

#[test]
fn connects_dropped_by_a_full_accept_queue_are_made_again_long_before_the_kernel_would() {
    // The server listens with a small backlog (sockloop's own listeners take at least 1024)
    // and accepts nothing until told. Then it echoes on a thread per connection.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.bind(&localhost().into()).expect("bind");
    socket.listen(BACKLOG).expect("listen");
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr().expect("local_addr");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        if go_rx.recv_timeout(TIMEOUT).is_err() {
            return;
        }
        for _ in 0..CONNECTIONS {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            thread::spawn(move || {
                let mut reader = stream.try_clone().expect("try_clone");
                let _ = io::copy(&mut reader, &mut stream);
            });
        }
    });

    // All connects start at once: BACKLOG + 1 complete into the queue, and the kernel drops
    // the SYNs of the rest.
    let cfg = loadgen::LoadConfig {
        addr,
        connections: CONNECTIONS,
        connect_concurrency: CONNECTIONS,
        warmup: Duration::ZERO,
        duration: Some(Duration::from_millis(100)),
        ..loadgen::LoadConfig::default()
    };
    assert_eq!(cfg.connect_retry, Some(loadgen::DEFAULT_CONNECT_RETRY));
    let client = thread::spawn(move || loadgen::run_load(&cfg, &mut |_| {}));
    wait_until("the server's accept queue to fill", || {
        accept_queue(addr.port()).unwrap_or(0) > BACKLOG as u32
    });
    go_tx.send(()).expect("server thread gone");

    let report = client.join().expect("load thread").expect("run_load");
    server.join().expect("server thread");
    assert!(report.ok(), "{}", report.summary());
    assert!(
        report.connect_retries > 0,
        "no connect was made again: {}",
        report.summary()
    );
    // The kernel's own first SYN retransmission comes after 1 s; on an idle machine the
    // connect phase ends within a few retry intervals.
    eprintln!(
        "connect phase: {:?} with {} connects made again",
        report.connect_time, report.connect_retries
    );
}
