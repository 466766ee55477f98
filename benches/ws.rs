//! Broadcast through the WebSocket chat example, beside the same room on tokio with
//! tokio-tungstenite, in one run.
//!
//! ```text
//! cargo bench --bench ws                                   # about 40 s on 2 cores
//! cargo bench --bench ws -- --rounds 3 --senders 10        # shorter
//! cargo bench --bench ws -- --members 200 --window 2       # other load shapes
//! cargo bench --bench ws -- --help                         # every option
//! ```
//!
//! Servers, each this binary re-executed with `SOCKLOOP_WS_SERVER=<kind>`, pinned to CPU 0
//! (`taskset -c 0`), printing its address (port 0) and serving until its stdin closes:
//!
//! - `sockloop`: `examples/ws_chat`'s own server, room, HTTP and stream modules (included
//!   with `#[path]`) with the example's settings (1 MiB output cap per member);
//! - `tokio`: the same room on a tokio current-thread runtime with tokio-tungstenite, a task per
//!   member fed by an unbounded channel (`ws/tokio_chat.rs`).
//!
//! The load (`ws/members.rs`) runs in this process, one thread pinned to CPU 1: M members
//! (default 50) join each server once and stay for the whole run. A step: senders 0..S each
//! send one 64-byte text message, and the step ends when every member has read every copy
//! (checked: sender, sequence number, order per sender, count); then the next step starts.
//! Lock-step keeps at most S messages queued for any member, far below the output cap.
//!
//! A measurement is a short warm-up, then steps for a time window, at one S on one server. A
//! round measures every S on both servers, back to back, in an order that alternates. Figures:
//! copies delivered per second (S × M per step); server CPU µs per copy (growth of
//! `/proc/PID/task/*/schedstat`, user + kernel, over the window, divided by the copies: the
//! server is idle at both edges of the window, since every step is complete); p50 and p99 of
//! the time from a message's send to its last member's copy being read; and how busy the server
//! and the client were during the window. The tables give medians over the rounds, and ratios
//! sockloop/tokio as the median of the per-round ratios with their range.
//!
//! One step is one round trip, so msgs/s follows latency, and the client (which reads M
//! sockets and parses S × M frames per step on one CPU) is usually busier than either server:
//! CPU per copy is the figure that compares the servers' work. The machine is shared and
//! noisy; repeat a run before trusting a small difference.
//!
//! Results: the tables on stdout, `target/bench-ws/ws.csv` (medians and ratios) and
//! `target/bench-ws/ws-rounds.csv` (every measurement).

// The example's unit tests compile here (cargo sets cfg(test) for benches) but, with no test
// harness, their `#[test]` functions are dropped and leave their imports unused.
#[allow(dead_code, unused_imports)]
#[path = "../examples/ws_chat/http.rs"]
mod http;
#[path = "ws/members.rs"]
mod members;
#[path = "ws/report.rs"]
mod report;
#[allow(dead_code, unused_imports)]
#[path = "../examples/ws_chat/room.rs"]
mod room;
#[path = "../examples/ws_chat/server.rs"]
mod server;
#[path = "../examples/ws_chat/stream.rs"]
mod stream;
#[path = "ws/tokio_chat.rs"]
mod tokio_chat;

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use sockloop::mio::unix::SourceFd;
use sockloop::mio::Interest;
use sockloop::Reactor;

use members::{Members, MESSAGE_SIZE};
use report::{Sample, SERVERS};

/// Set in a child's environment to make this binary a chat server of that kind.
const SERVER_ENV: &str = "SOCKLOOP_WS_SERVER";
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;
/// Steps of one window at most, whatever its duration (a bound if the clock misbehaves).
const MAX_STEPS: u64 = 1_000_000;

/// The WebSocket chat example against a tokio-tungstenite room: broadcast in lock-step.
#[derive(Parser, Debug)]
#[command(name = "ws")]
struct Args {
    /// Rounds: every sender count is measured this many times on each server; medians are
    /// reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Members in the room.
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// Sender counts to measure: how many members send one message per step.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    senders: Vec<usize>,
    /// Seconds of each measured window.
    #[arg(long, default_value_t = 1.0)]
    window: f64,
    /// Seconds of warm-up before each window.
    #[arg(long, default_value_t = 0.2)]
    warmup: f64,
    /// Do not pin the servers and the client to separate CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Directory for the CSV files [default: target/bench-ws].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Benchmark filters passed by `cargo bench`; ignored.
    #[arg(hide = true)]
    filters: Vec<String>,
}

fn main() -> ExitCode {
    if let Ok(kind) = std::env::var(SERVER_ENV) {
        return match serve(&kind) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ws bench server {kind}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The servers (child processes)
// ---------------------------------------------------------------------------------------------

/// Serves `kind` on 127.0.0.1:0 until stdin closes; the first stdout line is the address.
fn serve(kind: &str) -> io::Result<()> {
    let addr: SocketAddr = "127.0.0.1:0".parse().map_err(io::Error::other)?;
    match kind {
        "sockloop" => {
            let mut reactor = Reactor::new()?;
            let (bound, _room) = server::serve(&mut reactor, addr, server::DEFAULT_MAX_OUTPUT)?;
            // Standard input in the loop: end-of-file (the benchmark is done, or died) stops it.
            static STDIN: i32 = 0;
            reactor.add_source(SourceFd(&STDIN), Interest::READABLE, |reactor, _, _| {
                reactor.stop()
            })?;
            println!("{bound}");
            reactor.run()
        }
        "tokio" => {
            exit_when_stdin_closes();
            tokio_chat::serve(addr, |bound| println!("{bound}"))
        }
        _ => Err(io::Error::other("unknown kind (sockloop or tokio)")),
    }
}

/// Ends the process once stdin reaches end-of-file (a thread: tokio's stdin needs `io-std`).
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

/// A server child process; dropping it closes its stdin (which ends it) and reaps it.
struct Server {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl Server {
    fn spawn(name: &'static str, pin: bool) -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let mut cmd = if pin {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &SERVER_CPU.to_string()]).arg(exe);
            cmd
        } else {
            Command::new(exe)
        };
        let mut child = cmd
            .env(SERVER_ENV, name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start the {name} server: {e}"))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            // An error leaves `line` empty, reported below.
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        match line.trim().parse() {
            Ok(addr) => Ok(Server {
                name,
                child,
                stdin,
                addr,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the {name} server printed {line:?}, not its address"
                ))
            }
        }
    }

    /// Nanoseconds the server has spent on a CPU, all threads (`/proc/PID/task/*/schedstat`).
    fn cpu_ns(&self) -> Result<u64, String> {
        let dir = format!("/proc/{}/task", self.child.id());
        let tasks = fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
        let mut total = 0;
        for task in tasks.flatten() {
            // A thread that exited between the listing and the read no longer counts.
            if let Ok(text) = fs::read_to_string(task.path().join("schedstat")) {
                total += first_number(&text)?;
            }
        }
        Ok(total)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // End of stdin asks the server to exit; one that has not within a second is killed.
        drop(self.stdin.take());
        for _ in 0..100 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn first_number(schedstat: &str) -> Result<u64, String> {
    schedstat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("unexpected schedstat {schedstat:?}"))
}

/// Nanoseconds this thread (the whole client) has spent on a CPU.
fn own_cpu_ns() -> Result<u64, String> {
    let text = fs::read_to_string("/proc/thread-self/schedstat")
        .map_err(|e| format!("/proc/thread-self/schedstat: {e}"))?;
    first_number(&text)
}

/// Pins every thread of this process to `cpu`.
fn pin_self(cpu: usize) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-a", "-c", "-p", &cpu.to_string()])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset exited with {status}"))
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------

/// One warm-up and one measured window of `senders` on `server`.
fn measure(
    server: &Server,
    room: &mut Members,
    senders: usize,
    args: &Args,
    round: usize,
) -> Result<Sample, String> {
    let mut latencies = Vec::new();
    let warm_up = Instant::now();
    while warm_up.elapsed().as_secs_f64() < args.warmup {
        room.step(senders, &mut latencies)?;
    }
    latencies.clear();
    let window = Duration::from_secs_f64(args.window);
    let cpu_before = server.cpu_ns()?;
    let client_before = own_cpu_ns()?;
    let started = Instant::now();
    let mut steps = 0;
    while started.elapsed() < window && steps < MAX_STEPS {
        room.step(senders, &mut latencies)?;
        steps += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = (server.cpu_ns()? - cpu_before) as f64;
    let client = (own_cpu_ns()? - client_before) as f64;
    latencies.sort_unstable();
    let percentile =
        |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)].as_nanos();
    let copies = (steps * (senders * room.len()) as u64) as f64;
    Ok(Sample {
        round,
        server: server.name,
        senders,
        members: room.len(),
        steps,
        seconds,
        msgs_per_s: copies / seconds,
        cpu_us_per_msg: cpu / 1e3 / copies,
        server_busy: cpu / 1e9 / seconds,
        client_busy: client / 1e9 / seconds,
        p50_us: percentile(50) as f64 / 1e3,
        p99_us: percentile(99) as f64 / 1e3,
    })
}

fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    if args.members == 0 || args.senders.is_empty() || args.window <= 0.0 || args.warmup < 0.0 {
        return Err("need members > 0, a sender count, and a window > 0".to_string());
    }
    if let Some(&s) = args.senders.iter().find(|&&s| s == 0 || s > args.members) {
        return Err(format!("{s} senders: must be 1 to {}", args.members));
    }
    let taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = !args.no_pin && taskset && cpus >= 2 && pin_self(CLIENT_CPU).is_ok();
    let rounds = args.rounds.max(1);
    let mut servers = Vec::new();
    let mut rooms = Vec::new();
    for name in SERVERS {
        let server = Server::spawn(name, pin)?;
        let room = Members::join(server.addr, args.members)
            .map_err(|e| format!("{name}: joining the room: {e}"))?;
        servers.push(server);
        rooms.push(room);
    }
    println!(
        "ws bench: sockloop ws_chat vs tokio-tungstenite current-thread; {} members, {MESSAGE_SIZE}-byte messages in lock-step, \
         {rounds} rounds of {}s (+{}s warm-up); {}",
        args.members,
        args.window,
        args.warmup,
        if pin {
            format!("servers on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}")
        } else {
            "not pinned: figures are noisier".to_string()
        }
    );
    println!(
        "command: cargo bench --bench ws -- --rounds {rounds} --members {} --senders {} --window {} --warmup {}",
        args.members,
        args.senders
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.window,
        args.warmup,
    );

    let mut samples = Vec::new();
    for round in 0..rounds {
        for (case, &senders) in args.senders.iter().enumerate() {
            // Alternate which server goes first, so a drift in the machine's load does not
            // always favour the same one.
            let order = if (round + case) % 2 == 0 {
                [0, 1]
            } else {
                [1, 0]
            };
            for k in order {
                let sample = measure(&servers[k], &mut rooms[k], senders, &args, round)
                    .map_err(|e| format!("{} with {senders} senders: {e}", servers[k].name))?;
                samples.push(sample);
            }
        }
        eprintln!(
            "round {}/{rounds} done at {:.0?}",
            round + 1,
            started.elapsed()
        );
    }
    // The members leave before the servers stop (dropping a server ends it).
    drop(rooms);
    drop(servers);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| target_dir().join("bench-ws"));
    report::report(&samples, &out)?;
    println!("total time {:.0?}", started.elapsed());
    Ok(())
}

/// `target/` of this build: the benchmark runs as `target/<profile>/deps/ws-<hash>`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}
