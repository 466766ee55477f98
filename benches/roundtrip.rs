//! Echo round trip through the reactor: a blocking client writes a message and reads it back.
//!
//! The sockloop echo server runs `run_once` on its own thread; the benchmark thread is the client.
//! One iteration is `write_all(message)` + `read_exact(echo)` on one loopback connection, so the
//! time per iteration is one full round trip: client send, epoll wake-up, read, handler, write,
//! client receive. Message sizes: 64 B (latency, dominated by system calls and wake-ups) and
//! 16 KiB (copying starts to matter).
//!
//! For scale, the same client is also measured against a blocking thread-per-connection echo
//! server from `std` (`std_thread`): the cheapest server possible for one client, since it wakes
//! straight from `recv` with no readiness step. The gap between the two is what the reactor costs.
//!
//! Idle timeouts must cost O(1) per message however many connections have one: the
//! `idle_timeout` group serves the measured client from a listener with an idle timeout, once alone
//! and once beside 10,000 open, idle connections that have the same timeout (held by a child
//! process, since 10,000 connections with both ends in one process would pass the 20,000
//! open-files limit). Compare the two medians.
//!
//! Run with `cargo bench -p sockloop-benches --bench roundtrip`; add `-- 64B` to run the small messages only.
//!
//! Expect noise from thread placement: when the client and server threads sit on different CPUs,
//! every round trip pays two cross-CPU wake-ups, which on a virtual machine can cost ten times the
//! work itself. `taskset -c 0 cargo bench -p sockloop-benches --bench roundtrip` puts both on one CPU and measures the
//! software path alone (system calls and the reactor's own work).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use sockloop::{Context, Handler, Input, ListenOptions, Reactor};

/// Message sizes, each with the label used in the benchmark id.
const SIZES: [(usize, &str); 2] = [(64, "64B"), (16 * 1024, "16KiB")];

/// How long the server's `run_once` may block before it looks at the stop flag again. Only the
/// shutdown waits for it: while the client is active, epoll returns as soon as data arrives.
const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(10);

struct Echo;

impl Handler for Echo {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }
}

/// An echo server on a background thread; dropping it stops the thread and waits for it.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Starts a sockloop reactor serving `Echo` on an ephemeral loopback port.
    fn sockloop() -> Server {
        Server::sockloop_with(ListenOptions::new())
    }

    /// As [`sockloop`](Self::sockloop), with listener options.
    fn sockloop_with(options: ListenOptions) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr_tx, addr_rx) = mpsc::channel();
        let flag = Arc::clone(&stop);
        // The reactor is created on its own thread: handlers are not `Send`, so it stays there.
        // There is no cross-thread handle yet, so the loop polls a flag between iterations.
        let thread = thread::spawn(move || -> io::Result<()> {
            let mut reactor = Reactor::new()?;
            let (_, addr) = reactor.listen_with(([127, 0, 0, 1], 0).into(), options, || Echo)?;
            let _ = addr_tx.send(addr);
            while !flag.load(Ordering::Relaxed) {
                reactor.run_once(Some(STOP_CHECK_INTERVAL))?;
            }
            Ok(())
        });
        Server::started(addr_rx, stop, thread)
    }

    /// Starts the baseline: a blocking `std` server with one thread per connection.
    fn std_thread() -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr_tx, addr_rx) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || -> io::Result<()> {
            let listener = TcpListener::bind(("127.0.0.1", 0))?;
            let _ = addr_tx.send(listener.local_addr()?);
            for stream in listener.incoming() {
                // `drop` wakes this accept with one last connection after setting the flag.
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let mut stream = stream?;
                stream.set_nodelay(true)?;
                thread::spawn(move || {
                    let mut buf = vec![0; 64 * 1024];
                    // Ends on EOF (the client was dropped) or an error, which the client then sees.
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) if stream.write_all(&buf[..n]).is_err() => break,
                            Ok(_) => {}
                        }
                    }
                });
            }
            Ok(())
        });
        Server::started(addr_rx, stop, thread)
    }

    /// Waits for the server thread to report its address, or for its startup error.
    fn started(
        addr_rx: mpsc::Receiver<SocketAddr>,
        stop: Arc<AtomicBool>,
        thread: JoinHandle<io::Result<()>>,
    ) -> Server {
        match addr_rx.recv() {
            Ok(addr) => Server {
                addr,
                stop,
                thread: Some(thread),
            },
            // The sender was dropped without sending: the thread failed before listening.
            Err(_) => panic!("echo server did not start: {:?}", thread.join()),
        }
    }

    /// Connects the benchmark's client (Nagle off, as on the server side).
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to echo server");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes a server blocked in accept (the std baseline); the reactor sees the flag anyway.
        if let Ok(s) = TcpStream::connect(self.addr) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("echo server at {} failed: {e}", self.addr),
                Err(_) => eprintln!("echo server at {} panicked", self.addr),
            }
        }
    }
}

/// Measures write + read-back of `size` bytes on one connection to `server`.
fn bench_server(c: &mut Criterion, name: &str, server: &Server) {
    bench_sizes(c, "echo_roundtrip", name, server, &SIZES);
}

fn bench_sizes(
    c: &mut Criterion,
    group: &str,
    name: &str,
    server: &Server,
    sizes: &[(usize, &str)],
) {
    let mut group = c.benchmark_group(group);
    for &(size, label) in sizes {
        let mut client = server.connect();
        let message: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut echo = vec![0; size];

        // Check the server really echoes before timing it.
        client.write_all(&message).expect("send");
        client.read_exact(&mut echo).expect("receive echo");
        assert_eq!(echo, message, "{name} echoed something else");

        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new(name, label), |b| {
            b.iter(|| {
                client.write_all(&message).expect("send");
                client.read_exact(&mut echo).expect("receive echo");
            })
        });
    }
    group.finish();
}

fn roundtrip(c: &mut Criterion) {
    // Each server is dropped (its thread stopped and joined) before the next one starts.
    bench_server(c, "sockloop", &Server::sockloop());
    bench_server(c, "std_thread", &Server::std_thread());
}

/// Environment variable that turns this binary into the idle-connection holder:
/// `ADDR,COUNT`. The holder connects COUNT sockets, prints `ready`, and keeps them open until its
/// standard input closes (the parent dropping it), so it never outlives the benchmark.
const HOLD_ENV: &str = "SOCKLOOP_BENCH_HOLD";
const IDLE_CONNECTIONS: usize = 10_000;
/// Far longer than the benchmark: the idle connections must stay open (and checked) throughout.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

fn hold_connections(spec: &str) -> io::Result<()> {
    let (addr, count) = spec
        .split_once(',')
        .ok_or_else(|| io::Error::other("bad spec"))?;
    let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
    let count: usize = count.parse().map_err(io::Error::other)?;
    let held: Vec<TcpStream> = (0..count)
        .map(|_| TcpStream::connect(addr))
        .collect::<io::Result<_>>()?;
    println!("ready {}", held.len());
    io::stdout().flush()?;
    // Blocks until the parent closes our stdin (or exits).
    io::copy(&mut io::stdin(), &mut io::sink())?;
    Ok(())
}

/// A child process holding `count` idle connections to `addr`, killed when dropped.
struct Holder(Child);

impl Holder {
    fn start(addr: SocketAddr, count: usize) -> io::Result<Holder> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(HOLD_ENV, format!("{addr},{count}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let holder = Holder(child);
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("ready") => Ok(holder),
            other => Err(io::Error::other(format!(
                "holder did not get ready: {other:?}"
            ))),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn idle_timeout(c: &mut Criterion) {
    let with_timeout = || ListenOptions::new().idle_timeout(IDLE_TIMEOUT);
    let small = [(64, "64B")];
    bench_sizes(
        c,
        "idle_timeout",
        "alone",
        &Server::sockloop_with(with_timeout()),
        &small,
    );
    let server = Server::sockloop_with(with_timeout());
    match Holder::start(server.addr, IDLE_CONNECTIONS) {
        Ok(_holder) => bench_sizes(c, "idle_timeout", "beside_10k_idle", &server, &small),
        Err(e) => eprintln!("idle_timeout/beside_10k_idle skipped: {e}"),
    }
}

criterion_group! {
    name = benches;
    // Short runs keep `cargo bench` usable in CI; round trips are microseconds, so 3 s still
    // gives criterion hundreds of thousands of iterations per case.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = roundtrip, idle_timeout
}

fn main() {
    if let Ok(spec) = std::env::var(HOLD_ENV) {
        if let Err(e) = hold_connections(&spec) {
            eprintln!("connection holder: {e}");
            std::process::exit(1);
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
