//! Throughput through the TCP proxy example, beside the same transfer straight to the echo
//! server and through a tokio proxy, in one run.
//!
//! ```text
//! cargo bench -p sockloop-benches --bench proxy                          # 9 rounds of 128 MiB each way; ~20 s
//! cargo bench -p sockloop-benches --bench proxy -- --rounds 9 --mib 256
//! ```
//!
//! Upstream is a sockloop echo server. One transfer is one fresh connection on which a writer
//! thread sends N MiB while a reader thread reads the echo back and checks it; its figure is
//! N MiB divided by the wall time from connect to the last byte (MiB/s each way). Paths:
//!
//! - `direct`: to the echo server itself;
//! - `sockloop`: through `examples/tcp_proxy` (included with `#[path]`), on a reactor thread;
//! - `tokio`: through a proxy on tokio's current-thread runtime, a task per client running
//!   `tokio::io::copy_bidirectional_with_sizes` with 64 KiB buffers (sockloop reads 64 KiB too).
//!
//! Each round runs the three back to back, in an order that rotates from round to round; the
//! table gives medians over the rounds, and the ratios are medians of the per-round ratios with
//! their range. Proxy CPU is the proxy thread's time on CPU (`/proc/self/task/TID/schedstat`,
//! user + kernel) during the transfer, per GiB moved each way.
//!
//! Everything runs in this one process on a shared 2-core machine: the client's two threads,
//! the echo server and the proxy compete for the cores, so the ratios say more than the
//! absolute figures, and a small difference needs a repeat before it means anything.

#[path = "common/mod.rs"]
mod common;
#[path = "../examples/tcp_proxy/proxy.rs"]
mod proxy;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sockloop::{Context, Handler, Input, Reactor};

use common::cpu;
use common::stats::{range, Ratio};

const BLOCK: usize = 64 << 10;

/// A server thread: where it listens and its kernel thread id (for its CPU time).
struct Served {
    addr: SocketAddr,
    tid: u32,
}

/// Time thread `tid` of this process has spent on CPU.
fn thread_cpu(tid: u32) -> Duration {
    Duration::from_nanos(cpu::thread_ns(tid).expect("schedstat run time"))
}

struct Echo;

impl Handler for Echo {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }
}

/// Runs a sockloop reactor on a thread of its own; `setup` binds its listener.
fn sockloop_thread(setup: impl FnOnce(&mut Reactor) -> SocketAddr + Send + 'static) -> Served {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reactor = Reactor::new().expect("reactor");
        let addr = setup(&mut reactor);
        tx.send(Served {
            addr,
            tid: cpu::current_tid().expect("tid"),
        })
        .expect("bench gone");
        reactor.run().expect("run");
    });
    rx.recv().expect("server thread failed")
}

fn tokio_proxy(upstream: SocketAddr) -> Served {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tx.send(Served {
                addr,
                tid: cpu::current_tid().expect("tid"),
            })
            .expect("bench gone");
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    let mut up = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let _ = up.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional_with_sizes(
                        &mut client,
                        &mut up,
                        BLOCK,
                        BLOCK,
                    )
                    .await;
                });
            }
        });
    });
    rx.recv().expect("tokio thread failed")
}

/// Sends `bytes` on a fresh connection to `addr` while reading the echo back and checking it;
/// returns the wall time from connect to the last byte.
fn transfer(addr: SocketAddr, bytes: usize) -> Duration {
    let block: Vec<u8> = (0..BLOCK).map(|i| (i * 7 + i / 251) as u8).collect();
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sent = block.clone();
    let sender = thread::spawn(move || {
        let mut left = bytes;
        while left > 0 {
            let n = left.min(BLOCK);
            writer.write_all(&sent[..n]).expect("write");
            left -= n;
        }
        writer
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
    });
    let mut buf = vec![0; BLOCK];
    let mut got = 0;
    while got < bytes {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "EOF after {got} of {bytes} bytes");
        // The echo is the block repeated: compare against it at the same offset.
        let mut at = 0;
        while at < n {
            let off = (got + at) % BLOCK;
            let len = (n - at).min(BLOCK - off);
            assert!(
                buf[at..at + len] == block[off..off + len],
                "corrupt echo near byte {got}"
            );
            at += len;
        }
        got += n;
    }
    let took = started.elapsed();
    sender.join().expect("writer");
    took
}

/// The middle value; for an even count, the upper of the two middle ones. (`common::stats::median`
/// takes their mean instead; this one is kept as it was, so that no figure of this bench changes
/// meaning.)
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `--rounds N` and `--mib N` from the command line (cargo's own `--bench` is ignored).
fn option(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

fn main() {
    let rounds = option("--rounds", 9).max(1);
    let bytes = option("--mib", 128).max(1) << 20;
    let echo = sockloop_thread(|reactor| reactor.listen(localhost(), || Echo).unwrap().1);
    let upstream = echo.addr;
    let sockloop =
        sockloop_thread(move |reactor| proxy::listen(reactor, localhost(), upstream).unwrap());
    let tokio = tokio_proxy(upstream);
    let paths = [
        ("direct", &echo),
        ("sockloop", &sockloop),
        ("tokio", &tokio),
    ];
    for (_, served) in &paths {
        transfer(served.addr, 16 << 20); // warm-up: connections, buffers, page cache
    }

    // rates[path][round] in MiB/s each way; cpu[path][round] in ms per GiB (proxies only).
    let mut rates = vec![Vec::new(); paths.len()];
    let mut cpu = vec![Vec::new(); paths.len()];
    let started = Instant::now();
    for round in 0..rounds {
        for k in 0..paths.len() {
            let p = (round + k) % paths.len();
            let (_, served) = paths[p];
            let cpu_before = thread_cpu(served.tid);
            let took = transfer(served.addr, bytes);
            let cpu_used = thread_cpu(served.tid) - cpu_before;
            let mib = (bytes >> 20) as f64;
            rates[p].push(mib / took.as_secs_f64());
            cpu[p].push(cpu_used.as_secs_f64() * 1e3 / (mib / 1024.0));
        }
    }

    println!(
        "proxy throughput: {} MiB each way per transfer, {rounds} rounds, {:.1?} \
         (`cargo bench -p sockloop-benches --bench proxy -- --rounds {rounds} --mib {}`)",
        bytes >> 20,
        started.elapsed(),
        bytes >> 20
    );
    println!("| path | MiB/s each way, median [range] | proxy thread CPU ms per GiB, median |");
    println!("|---|---|---|");
    for (p, (name, _)) in paths.iter().enumerate() {
        let (lo, hi) = range(&rates[p]);
        let rate = median(&mut rates[p].clone());
        let cpu_cell = if p == 0 {
            "—".to_string()
        } else {
            format!("{:.0}", median(&mut cpu[p].clone()))
        };
        println!("| {name} | {rate:.0} [{lo:.0}–{hi:.0}] | {cpu_cell} |");
    }
    let ratio = |a: &[f64], b: &[f64]| -> Ratio {
        let mut r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        let (min, max) = range(&r);
        Ratio {
            median: median(&mut r),
            min,
            max,
        }
    };
    for (what, ratio) in [
        ("throughput sockloop/direct", ratio(&rates[1], &rates[0])),
        ("throughput sockloop/tokio", ratio(&rates[1], &rates[2])),
        ("proxy CPU per GiB sockloop/tokio", ratio(&cpu[1], &cpu[2])),
    ] {
        println!("{what}: {ratio}");
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}
