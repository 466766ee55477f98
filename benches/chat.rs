//! Broadcast through the line chat example (the one for `nc` users), beside the same chat on
//! tokio's current-thread runtime, in one run.
//!
//! ```text
//! cargo bench --bench chat                                 # about 40 s on 2 cores
//! cargo bench --bench chat -- --rounds 3 --senders 10      # shorter
//! cargo bench --bench chat -- --members 200 --window 2     # other load shapes
//! cargo bench --bench chat -- --help                       # every option
//! ```
//!
//! Servers, each this binary re-executed with `SOCKLOOP_CHAT_SERVER=<kind>`, pinned to CPU 0
//! (`taskset -c 0`), printing its address (port 0) and serving until its stdin closes:
//!
//! - `sockloop`: `examples/chat`'s own member and room modules (included with `#[path]`),
//!   listening with `member::listen` and the example's default settings (4 KiB lines, members
//!   over 64 KiB behind skipped, 1 MiB output cap);
//! - `tokio`: the same chat on a tokio current-thread runtime, a reading task and a writing task
//!   per member fed by an unbounded channel (`chat/tokio_chat.rs`).
//!
//! The load (`chat/members.rs`) runs in this process, one thread pinned to CPU 1: M members
//! (default 50) join each server once and stay for the whole run. A step: senders 0..S each
//! send one 64-byte line, and the step ends when every other member has read every copy
//! (checked: sender, sequence number, order per sender, count, never back to its sender); then
//! the next step starts. Lock-step keeps at most S lines queued for any member, far below the
//! 64 KiB past which the chat skips a member; a skip (its "lines were not sent" notice, or a
//! copy that never comes) fails the run.
//!
//! A measurement is a short warm-up, then steps for a time window, at one S on one server. A
//! round measures every S on both servers, back to back, in an order that alternates. Figures:
//! lines delivered per second (S × (M − 1) copies per step); server CPU µs per delivered line
//! (growth of `/proc/PID/task/*/schedstat`, user + kernel, over the window, divided by the
//! copies: the server is idle at both edges of the window, since every step is complete); p50
//! and p99 of the time from a line's send to its last member's copy being read; and how busy the
//! server and the client were during the window. The tables give medians over the rounds, and
//! ratios sockloop/tokio as the median of the per-round ratios with their range.
//!
//! One step is one round trip, so lines/s follows latency, and the client (which reads M
//! sockets and parses S × (M − 1) lines per step on one CPU) is often as busy as either server:
//! CPU per line is the figure that compares the servers' work. The machine is shared and noisy;
//! repeat a run before trusting a small difference.
//!
//! Results: the tables on stdout, `target/bench-chat/chat.csv` (medians and ratios) and
//! `target/bench-chat/chat-rounds.csv` (every measurement).

#[path = "../examples/chat/member.rs"]
mod member;
#[path = "chat/members.rs"]
mod members;
#[path = "chat/process.rs"]
mod process;
#[path = "chat/report.rs"]
mod report;
// The example's unit tests compile here (cargo sets cfg(test) for benches) but, with no test
// harness, their `#[test]` functions are dropped and leave their imports unused.
#[allow(dead_code, unused_imports)]
#[path = "../examples/chat/room.rs"]
mod room;
#[path = "chat/tokio_chat.rs"]
mod tokio_chat;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use sockloop::mio::unix::SourceFd;
use sockloop::mio::Interest;
use sockloop::Reactor;

use members::{Members, LINE_SIZE};
use process::{own_cpu_ns, Server, CLIENT_CPU, SERVER_CPU, SERVER_ENV};
use report::{Sample, SERVERS};

/// Steps of one window at most, whatever its duration (a bound if the clock misbehaves).
const MAX_STEPS: u64 = 1_000_000;

/// The line chat example against the same chat on tokio: broadcast in lock-step.
#[derive(Parser, Debug)]
#[command(name = "chat")]
struct Args {
    /// Rounds: every sender count is measured this many times on each server; medians are
    /// reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Members in the room.
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// Sender counts to measure: how many members send one line per step.
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
    /// Directory for the CSV files [default: target/bench-chat].
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
                eprintln!("chat bench server {kind}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `kind` on 127.0.0.1:0 until stdin closes; the first stdout line is the address.
fn serve(kind: &str) -> io::Result<()> {
    let addr: SocketAddr = "127.0.0.1:0".parse().map_err(io::Error::other)?;
    match kind {
        "sockloop" => {
            let mut reactor = Reactor::new()?;
            let bound = member::listen(&mut reactor, addr, room::Config::default())?;
            // Standard input in the loop: end-of-file (the benchmark is done, or died) stops it.
            static STDIN: i32 = 0;
            reactor.add_source(SourceFd(&STDIN), Interest::READABLE, |reactor, _, _| {
                reactor.stop()
            })?;
            println!("{bound}");
            reactor.run()
        }
        "tokio" => {
            process::exit_when_stdin_closes();
            tokio_chat::serve(addr, |bound| println!("{bound}"))
        }
        _ => Err(io::Error::other("unknown kind (sockloop or tokio)")),
    }
}

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
    let copies = (steps * (senders * (room.len() - 1)) as u64) as f64;
    Ok(Sample {
        round,
        server: server.name,
        senders,
        members: room.len(),
        steps,
        seconds,
        lines_per_s: copies / seconds,
        cpu_us_per_line: cpu / 1e3 / copies,
        server_busy: cpu / 1e9 / seconds,
        client_busy: client / 1e9 / seconds,
        p50_us: percentile(50) as f64 / 1e3,
        p99_us: percentile(99) as f64 / 1e3,
    })
}

fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    if args.members < 2 || args.senders.is_empty() || args.window <= 0.0 || args.warmup < 0.0 {
        return Err("need 2 members or more, a sender count, and a window > 0".to_string());
    }
    if let Some(&s) = args.senders.iter().find(|&&s| s == 0 || s > args.members) {
        return Err(format!("{s} senders: must be 1 to {}", args.members));
    }
    // Sender numbers travel as three digits.
    if args.members > 1000 {
        return Err("at most 1000 members".to_string());
    }
    let pin = process::pin_client(!args.no_pin);
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
        "chat bench: sockloop chat vs tokio current-thread; {} members, {LINE_SIZE}-byte lines in lock-step, \
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
        "command: cargo bench --bench chat -- --rounds {rounds} --members {} --senders {} --window {} --warmup {}",
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
        .unwrap_or_else(|| target_dir().join("bench-chat"));
    report::report(&samples, &out)?;
    println!("total time {:.0?}", started.elapsed());
    Ok(())
}

/// `target/` of this build: the benchmark runs as `target/<profile>/deps/chat-<hash>`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}
