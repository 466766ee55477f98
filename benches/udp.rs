//! UDP echo servers side by side: sockloop (batched `recvmmsg`/`sendmmsg` on Linux) against
//! tokio's current-thread runtime with a `UdpSocket` (`recv_from` then `send_to`, the canonical
//! tokio UDP echo), under the same load generator.
//!
//! ```text
//! cargo bench -p sockloop-benches --bench udp                                  # 4 cases x 5 rounds, about 2 minutes
//! cargo bench -p sockloop-benches --bench udp -- --rounds 3 --clients 64 --sizes 64
//! cargo bench -p sockloop-benches --bench udp -- --help                       # every option
//! ```
//!
//! A case is C client sockets (1 or 64, each its own source port, connected to the server),
//! each keeping `--inflight` datagrams of S bytes (64 or 1,200) in flight: it sends the next
//! when an echo arrives. The load generator is a sockloop reactor on CPU 1 (batched too, so
//! that it can keep the server busy); each server is a fresh child process (this binary with
//! `SOCKLOOP_UDP_SERVER=<kind>`) on CPU 0, with 4 MiB socket buffers.
//!
//! One measurement: warm up, then a measured window. Server CPU time is the first field of
//! `/proc/PID/task/*/schedstat` (user + kernel, all threads) read at the window's edges, divided
//! by the datagrams the server echoed in between (it counts them and answers on its stdin). A
//! round measures each server once, back to back, in an order that rotates from round to round;
//! the table gives medians, and the ratio sockloop/tokio as the median of the per-round ratios
//! with their range. In the first round a separate, shorter pass counts the server's system
//! calls with `perf stat -e raw_syscalls:sys_enter -p PID` (its tracepoint slows every call, so
//! it is kept out of the timed pass): system calls per datagram, `epoll_wait` included.
//!
//! The machine this runs on is usually shared and noisy: compare ratios of the same round, and
//! repeat a run before trusting a small difference.

#[path = "common/mod.rs"]
mod common;
#[path = "echo/probe.rs"]
#[allow(dead_code)]
mod probe;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use sockloop::{DatagramHandler, Reactor, SocketOptions, UdpContext, UdpId};

use common::cli::{exit_code, CargoBench};
use common::out::{target_dir, write_csv_files};
use common::pin::{self, CLIENT_CPU, SERVER_CPU};
use common::process::ServerProcess;
use common::stats::{median, Ratio};

/// Set in a child's environment to make this binary a UDP echo server of that kind.
const SERVER_ENV: &str = "SOCKLOOP_UDP_SERVER";
/// The servers, in the order of the first round.
const KINDS: [&str; 2] = ["sockloop", "tokio"];
/// Socket buffers of the servers and of each client socket: room for every case's bursts.
const SERVER_BUFFER: usize = 4 << 20;
const CLIENT_BUFFER: usize = 1 << 20;
/// How often the load generator looks for clients whose window was lost.
const TICK: Duration = Duration::from_millis(10);
/// A client that heard nothing for this many ticks presumes its window lost and resends it.
const STALL_TICKS: u32 = 5;

/// UDP echo servers side by side (sockloop, tokio current-thread) under one load generator.
#[derive(Parser, Debug)]
#[command(name = "udp")]
struct Args {
    /// Rounds: every case is measured this many times on every server
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of warm-up before each measured window
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Seconds of each measured window
    #[arg(long, default_value_t = 1.5)]
    window: f64,
    /// Client socket counts
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Datagram sizes in bytes
    #[arg(long, value_delimiter = ',', default_value = "64,1200")]
    sizes: Vec<usize>,
    /// Datagrams in flight per client
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Seconds of the system-call pass (first round only); 0 skips it
    #[arg(long, default_value_t = 1.0)]
    syscall_window: f64,
    /// Do not pin the server and the load generator to separate CPUs
    #[arg(long)]
    no_pin: bool,
    /// Directory for udp.csv [default target/bench-udp]
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    cargo: CargoBench,
}

fn main() -> ExitCode {
    if let Ok(kind) = std::env::var(SERVER_ENV) {
        return exit_code("udp server", serve(&kind));
    }
    exit_code("udp bench", run(Args::parse()))
}

// ---------------------------------------------------------------------------------------------
// The servers (child processes)
// ---------------------------------------------------------------------------------------------

/// Datagrams echoed so far; one writer (the serving thread), read by the control thread.
static ECHOED: AtomicU64 = AtomicU64::new(0);

fn count_echoed() {
    ECHOED.store(ECHOED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// The same socket for both servers: 127.0.0.1, port 0, 4 MiB buffers.
fn server_socket() -> io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let s = socket2::SockRef::from(&socket);
    s.set_recv_buffer_size(SERVER_BUFFER)?;
    s.set_send_buffer_size(SERVER_BUFFER)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Prints the address, then answers every line of stdin with the echoed count; exits at EOF.
fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{addr}")?;
    out.flush()?;
    std::thread::spawn(|| {
        let stdin = io::stdin();
        for line in stdin.lock().lines() {
            if line.is_err() {
                break;
            }
            let mut out = io::stdout().lock();
            if writeln!(out, "{}", ECHOED.load(Ordering::Relaxed)).is_err() || out.flush().is_err()
            {
                break;
            }
        }
        std::process::exit(0);
    });
    Ok(())
}

/// sockloop's echo: each datagram sent back to its source (gathered per turn, `sendmmsg`).
struct Echo;

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
        if cx.send_to(data, from).is_ok() {
            count_echoed();
        }
    }
}

fn serve(kind: &str) -> io::Result<()> {
    let socket = server_socket()?;
    let addr = socket.local_addr()?;
    match kind {
        "sockloop" => {
            let mut reactor = Reactor::new()?;
            reactor.add_udp_socket(socket, Echo)?;
            announce(addr)?;
            reactor.run()
        }
        "tokio" => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            runtime.block_on(async move {
                let socket = tokio::net::UdpSocket::from_std(socket)?;
                announce(addr)?;
                let mut buf = vec![0u8; 65_536];
                loop {
                    let (n, from) = socket.recv_from(&mut buf).await?;
                    if socket.send_to(&buf[..n], from).await.is_ok() {
                        count_echoed();
                    }
                }
            })
        }
        other => Err(io::Error::other(format!("unknown server kind {other:?}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------------------------

/// What the client sockets share.
struct LoadState {
    payload: Vec<u8>,
    inflight: usize,
    echoed: u64,
    bad: u64,
    stalls: u64,
    /// Per client: echoes so far, echoes at the last tick, ticks without an echo.
    progress: Vec<(u64, u64, u32)>,
}

/// One client socket: checks each echo and sends the next.
struct LoadClient {
    index: usize,
    state: Rc<RefCell<LoadState>>,
}

impl DatagramHandler for LoadClient {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], _from: SocketAddr) {
        let mut s = self.state.borrow_mut();
        if data != s.payload.as_slice() {
            s.bad += 1;
            return;
        }
        s.echoed += 1;
        s.progress[self.index].0 += 1;
        let _ = cx.send(&s.payload);
    }
}

/// The load: client sockets on a reactor of their own, driven by `run_for`.
struct Load {
    reactor: Reactor,
    state: Rc<RefCell<LoadState>>,
}

impl Load {
    fn start(server: SocketAddr, clients: usize, size: usize, inflight: usize) -> io::Result<Load> {
        let payload: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let state = Rc::new(RefCell::new(LoadState {
            payload,
            inflight,
            echoed: 0,
            bad: 0,
            stalls: 0,
            progress: vec![(0, 0, 0); clients],
        }));
        let mut reactor = Reactor::new()?;
        let options = SocketOptions::new()
            .recv_buffer_size(CLIENT_BUFFER)
            .send_buffer_size(CLIENT_BUFFER);
        let mut ids: Vec<UdpId> = Vec::with_capacity(clients);
        for index in 0..clients {
            let client = LoadClient {
                index,
                state: Rc::clone(&state),
            };
            ids.push(reactor.connect_udp_with(server, options.clone(), client)?.0);
        }
        let send_window = |reactor: &mut Reactor, id: UdpId, state: &Rc<RefCell<LoadState>>| {
            let (payload, n) = {
                let s = state.borrow();
                (s.payload.clone(), s.inflight)
            };
            for _ in 0..n {
                let _ = reactor.send(id, &payload);
            }
        };
        for &id in &ids {
            send_window(&mut reactor, id, &state);
        }
        // A lost datagram would shrink a client's window for good: resend a window to a
        // client that heard nothing for a while.
        let watch = Rc::clone(&state);
        reactor.add_repeating_timer(TICK, move |reactor| {
            let mut stalled = Vec::new();
            {
                let mut s = watch.borrow_mut();
                for (k, p) in s.progress.iter_mut().enumerate() {
                    if p.0 == p.1 {
                        p.2 += 1;
                        if p.2 >= STALL_TICKS {
                            p.2 = 0;
                            stalled.push(ids[k]);
                        }
                    } else {
                        (p.1, p.2) = (p.0, 0);
                    }
                }
                s.stalls += stalled.len() as u64;
            }
            for id in stalled {
                send_window(reactor, id, &watch);
            }
        });
        Ok(Load { reactor, state })
    }

    fn run_for(&mut self, time: Duration) -> io::Result<()> {
        let end = Instant::now() + time;
        while Instant::now() < end {
            self.reactor.run_once(Some(Duration::from_millis(5)))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

/// One server's figures in one round of one case.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    cpu_ns_per_datagram: f64,
    datagrams_per_s: f64,
    syscalls_per_datagram: Option<f64>,
    stalls: u64,
    bad: u64,
}

/// The server's echoed count, asked through its stdin.
fn echoed(server: &mut ServerProcess) -> io::Result<u64> {
    let line = server.ask("count")?;
    line.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("the server answered {line:?}")))
}

fn measure(
    kind: &'static str,
    (clients, size): (usize, usize),
    args: &Args,
    pin: bool,
    count_syscalls: bool,
) -> io::Result<Sample> {
    let mut server = ServerProcess::spawn(SERVER_ENV, kind, pin.then_some(SERVER_CPU))?;
    let mut load = Load::start(server.addr, clients, size, args.inflight)?;
    load.run_for(Duration::from_secs_f64(args.warmup))?;
    let (cpu0, n0, t0) = (server.cpu_ns()?, echoed(&mut server)?, Instant::now());
    load.run_for(Duration::from_secs_f64(args.window))?;
    let (cpu1, n1, elapsed) = (server.cpu_ns()?, echoed(&mut server)?, t0.elapsed());
    let n = (n1 - n0).max(1) as f64;
    let mut sample = Sample {
        cpu_ns_per_datagram: (cpu1 - cpu0) as f64 / n,
        datagrams_per_s: n / elapsed.as_secs_f64(),
        ..Sample::default()
    };
    if count_syscalls {
        let mut perf = probe::SyscallCounter::attach(server.pid())?;
        load.run_for(Duration::from_millis(200))?;
        let n0 = echoed(&mut server)?;
        perf.enable()?;
        load.run_for(Duration::from_secs_f64(args.syscall_window))?;
        perf.disable()?;
        let n1 = echoed(&mut server)?;
        let counts = perf.finish()?;
        sample.syscalls_per_datagram = Some(counts.all as f64 / (n1 - n0).max(1) as f64);
    }
    let s = load.state.borrow();
    (sample.stalls, sample.bad) = (s.stalls, s.bad);
    Ok(sample)
}

fn run(args: Args) -> Result<(), String> {
    let pin = !args.no_pin && pin::unavailable().is_none();
    if pin {
        pin::pin_self(CLIENT_CPU).map_err(|e| format!("pin the load generator: {e}"))?;
    } else if !args.no_pin {
        println!("not pinned: {}", pin::unavailable().unwrap_or_default());
    }
    let perf = args.syscall_window > 0.0 && probe::perf_can_count_syscalls();
    if args.syscall_window > 0.0 && !perf {
        println!(
            "system calls: NOT counted (`perf stat -e raw_syscalls:sys_enter` does not work here)"
        );
    }
    let cases: Vec<(usize, usize)> = args
        .clients
        .iter()
        .flat_map(|&c| args.sizes.iter().map(move |&s| (c, s)))
        .collect();
    println!(
        "udp echo: {} rounds, {:.1} s warmup + {:.1} s window, {} in flight per client, server on CPU {SERVER_CPU}, load on CPU {CLIENT_CPU}{}",
        args.rounds,
        args.warmup,
        args.window,
        args.inflight,
        if pin { "" } else { " (not pinned)" }
    );
    // samples[case][kind][round]
    let mut samples = vec![vec![Vec::new(); KINDS.len()]; cases.len()];
    for round in 0..args.rounds {
        for (c, &case) in cases.iter().enumerate() {
            for k in 0..KINDS.len() {
                let kind = (k + round) % KINDS.len();
                let sample = measure(KINDS[kind], case, &args, pin, perf && round == 0)
                    .map_err(|e| format!("{} {case:?}: {e}", KINDS[kind]))?;
                println!(
                    "  round {} {:>3} clients {:>5} B {:>8}: {:>7.3} µs/datagram {:>9.0} datagrams/s{} stalls {} bad {}",
                    round + 1,
                    case.0,
                    case.1,
                    KINDS[kind],
                    sample.cpu_ns_per_datagram / 1000.0,
                    sample.datagrams_per_s,
                    sample
                        .syscalls_per_datagram
                        .map(|s| format!(" {s:.3} syscalls/datagram"))
                        .unwrap_or_default(),
                    sample.stalls,
                    sample.bad
                );
                if sample.bad > 0 {
                    return Err(format!("{}: {} bad echoes", KINDS[kind], sample.bad));
                }
                samples[c][kind].push(sample);
            }
        }
    }
    report(&args, &cases, &samples)
}

/// The table (markdown) and CSV.
fn report(
    args: &Args,
    cases: &[(usize, usize)],
    samples: &[Vec<Vec<Sample>>],
) -> Result<(), String> {
    let med =
        |v: &[Sample], f: fn(&Sample) -> f64| median(v.iter().map(f).collect()).unwrap_or(f64::NAN);
    let sys = |v: &[Sample]| {
        v.iter()
            .find_map(|s| s.syscalls_per_datagram)
            .map_or("–".to_string(), |s| format!("{s:.3}"))
    };
    println!("\n| clients | size | server CPU µs/datagram sockloop / tokio | sockloop/tokio | datagrams/s sockloop / tokio | syscalls/datagram sockloop / tokio |");
    println!("|---|---|---|---|---|---|");
    let mut csv = String::from("clients,size,server,cpu_ns_per_datagram,datagrams_per_s,syscalls_per_datagram,ratio_median,ratio_min,ratio_max\n");
    for (c, &(clients, size)) in cases.iter().enumerate() {
        let (s, t) = (&samples[c][0], &samples[c][1]);
        let ratio = Ratio::of(
            s.iter()
                .zip(t)
                .map(|(a, b)| a.cpu_ns_per_datagram / b.cpu_ns_per_datagram)
                .collect(),
        );
        let cpu = |v| med(v, |x| x.cpu_ns_per_datagram) / 1000.0;
        let rate = |v| med(v, |x| x.datagrams_per_s);
        println!(
            "| {clients} | {size} B | {:.3} / {:.3} | {ratio} | {:.0} / {:.0} | {} / {} |",
            cpu(s),
            cpu(t),
            rate(s),
            rate(t),
            sys(s),
            sys(t)
        );
        for (k, v) in [s, t].into_iter().enumerate() {
            let _ = writeln!(
                csv,
                "{clients},{size},{},{:.1},{:.0},{},{:.4},{:.4},{:.4}",
                KINDS[k],
                med(v, |x| x.cpu_ns_per_datagram),
                rate(v),
                sys(v),
                ratio.median,
                ratio.min,
                ratio.max
            );
        }
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| target_dir().join("bench-udp"));
    write_csv_files(&out, [("udp.csv".to_string(), csv)])
}
