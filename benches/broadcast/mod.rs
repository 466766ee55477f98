//! The lock-step broadcast bench that `chat` and `ws` share: each of two chat servers
//! (sockloop's example, and the same room on tokio) in a child process, M members joined to
//! each from this process, and rounds of steps in which S members each send one message and
//! every copy is read before the next step starts. A bench brings its servers, its members
//! (a [`Room`]) and the words for what it sends ([`Bench`]); `benches/chat.rs` and
//! `benches/ws.rs` say what is measured and how to read it.

pub mod report;
pub mod step;
pub mod tokio_room;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser};
use sockloop::Reactor;

use crate::common::cli::{self, CargoBench};
use crate::common::pin::{self, CLIENT_CPU, SERVER_CPU};
use crate::common::process::{self, ServerProcess};
use crate::common::{cpu, out};
use report::{Sample, SERVERS};

/// Steps of one window at most, whatever its duration (a bound if the clock misbehaves).
const MAX_STEPS: u64 = 1_000_000;

/// What makes a broadcast bench its own.
pub struct Bench {
    /// `cargo bench -p sockloop-benches --bench NAME`; also names its output directory and CSV files.
    pub name: &'static str,
    /// The one line `--help` starts with.
    pub about: &'static str,
    /// Set in a child's environment to make the binary a chat server of that kind.
    pub server_env: &'static str,
    /// What is compared, for the first line of output.
    pub versus: &'static str,
    /// Bytes of what each sender sends in a step.
    pub size: usize,
    /// What a sender sends ("line", "message").
    pub sent: &'static str,
    /// A delivered copy in table headers and CSV columns ("line", "msg").
    pub unit: &'static str,
    /// The title of the throughput table.
    pub rate_title: &'static str,
    /// The fewest members the bench can run with, and the most if it has a limit.
    pub min_members: usize,
    pub max_members: Option<usize>,
    /// The sockloop server: makes `reactor` serve the chat on `addr`; the bound address.
    pub sockloop: fn(reactor: &mut Reactor, addr: SocketAddr) -> io::Result<SocketAddr>,
    /// The tokio server: serves the chat on `addr`, printing the bound address, forever.
    pub tokio: fn(addr: SocketAddr) -> io::Result<()>,
}

/// The members of one room, connected to one server: the load.
pub trait Room: Sized {
    /// Connects `count` members named m0, m1, ... to the chat at `addr`; returns once every
    /// one of them has joined.
    fn join(addr: SocketAddr, count: usize) -> Result<Self, String>;

    /// Runs one step with senders 0..`senders`; adds each message's latency (send to the last
    /// member's copy read) to `latencies`.
    fn step(&mut self, senders: usize, latencies: &mut Vec<Duration>) -> Result<(), String>;

    /// Members in the room.
    fn len(&self) -> usize;

    /// Copies the server delivers in one step of `senders`.
    fn copies_per_step(&self, senders: usize) -> usize;
}

/// The options of a broadcast bench. The help of `--senders` and `--out` and the command's
/// description are the bench's own, set in [`Args::parse_for`].
#[derive(Parser, Debug)]
struct Args {
    /// Rounds: every sender count is measured this many times on each server; medians are
    /// reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Members in the room.
    #[arg(long, default_value_t = 50)]
    members: usize,
    // How many members send one message per step.
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
    // Directory for the CSV files.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    cargo: CargoBench,
}

impl Args {
    /// Parses the command line, with `bench`'s name and words in the help.
    fn parse_for(bench: &Bench) -> Args {
        let command = Args::command()
            .name(bench.name)
            .about(bench.about)
            .mut_arg("senders", |arg| {
                arg.help(format!(
                    "Sender counts to measure: how many members send one {} per step",
                    bench.sent
                ))
            })
            .mut_arg("out", |arg| {
                arg.help(format!(
                    "Directory for the CSV files [default: target/bench-{}]",
                    bench.name
                ))
            });
        Args::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
    }
}

/// The bench's `main`: a server if the environment names one, else the benchmark.
pub fn main<R: Room>(bench: &Bench) -> ExitCode {
    if let Ok(kind) = std::env::var(bench.server_env) {
        let what = format!("{} bench server {kind}", bench.name);
        return cli::exit_code(&what, serve(bench, &kind));
    }
    let what = format!("{} bench", bench.name);
    cli::exit_code(&what, run::<R>(bench, Args::parse_for(bench)))
}

/// Serves `kind` on 127.0.0.1:0 until stdin closes; the first stdout line is the address.
fn serve(bench: &Bench, kind: &str) -> io::Result<()> {
    let addr: SocketAddr = "127.0.0.1:0".parse().map_err(io::Error::other)?;
    match kind {
        "sockloop" => process::serve_sockloop(|reactor| (bench.sockloop)(reactor, addr)),
        "tokio" => {
            process::exit_when_stdin_closes();
            (bench.tokio)(addr)
        }
        _ => Err(io::Error::other("unknown kind (sockloop or tokio)")),
    }
}

/// One warm-up and one measured window of `senders` on `server`.
fn measure<R: Room>(
    server: &ServerProcess,
    room: &mut R,
    senders: usize,
    args: &Args,
    round: usize,
) -> Result<Sample, String> {
    let server_cpu = || server.cpu_ns().map_err(|e| format!("server CPU time: {e}"));
    let client_cpu = || cpu::this_thread_ns().map_err(|e| e.to_string());
    let mut latencies = Vec::new();
    let warm_up = Instant::now();
    while warm_up.elapsed().as_secs_f64() < args.warmup {
        room.step(senders, &mut latencies)?;
    }
    latencies.clear();
    let window = Duration::from_secs_f64(args.window);
    let cpu_before = server_cpu()?;
    let client_before = client_cpu()?;
    let started = Instant::now();
    let mut steps = 0;
    while started.elapsed() < window && steps < MAX_STEPS {
        room.step(senders, &mut latencies)?;
        steps += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = (server_cpu()? - cpu_before) as f64;
    let client = (client_cpu()? - client_before) as f64;
    latencies.sort_unstable();
    let percentile =
        |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)].as_nanos();
    let copies_per_step = room.copies_per_step(senders);
    let copies = (steps * copies_per_step as u64) as f64;
    Ok(Sample {
        round,
        server: server.kind,
        senders,
        members: room.len(),
        copies_per_step,
        steps,
        seconds,
        copies_per_s: copies / seconds,
        cpu_us_per_copy: cpu / 1e3 / copies,
        server_busy: cpu / 1e9 / seconds,
        client_busy: client / 1e9 / seconds,
        p50_us: percentile(50) as f64 / 1e3,
        p99_us: percentile(99) as f64 / 1e3,
    })
}

fn run<R: Room>(bench: &Bench, args: Args) -> Result<(), String> {
    let started = Instant::now();
    let name = bench.name;
    if args.members < bench.min_members
        || args.senders.is_empty()
        || args.window <= 0.0
        || args.warmup < 0.0
    {
        let members = match bench.min_members {
            0 | 1 => "members > 0".to_string(),
            n => format!("{n} members or more"),
        };
        return Err(format!("need {members}, a sender count, and a window > 0"));
    }
    if let Some(&s) = args.senders.iter().find(|&&s| s == 0 || s > args.members) {
        return Err(format!("{s} senders: must be 1 to {}", args.members));
    }
    if let Some(max) = bench.max_members.filter(|&max| args.members > max) {
        return Err(format!("at most {max} members"));
    }
    let pin = !args.no_pin && pin::unavailable().is_none() && pin::pin_self(CLIENT_CPU).is_ok();
    let rounds = args.rounds.max(1);
    let mut servers = Vec::new();
    let mut rooms = Vec::new();
    for kind in SERVERS {
        let server = ServerProcess::spawn(bench.server_env, kind, pin.then_some(SERVER_CPU))
            .map_err(|e| e.to_string())?;
        let room = R::join(server.addr, args.members)
            .map_err(|e| format!("{kind}: joining the room: {e}"))?;
        servers.push(server);
        rooms.push(room);
    }
    println!(
        "{name} bench: {}; {} members, {}-byte {}s in lock-step, \
         {rounds} rounds of {}s (+{}s warm-up); {}",
        bench.versus,
        args.members,
        bench.size,
        bench.sent,
        args.window,
        args.warmup,
        if pin {
            format!("servers on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}")
        } else {
            "not pinned: figures are noisier".to_string()
        }
    );
    println!(
        "command: cargo bench -p sockloop-benches --bench {name} -- --rounds {rounds} --members {} --senders {} --window {} --warmup {}",
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
                    .map_err(|e| format!("{} with {senders} senders: {e}", servers[k].kind))?;
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
        .unwrap_or_else(|| out::target_dir().join(format!("bench-{name}")));
    report::report(bench, &samples, &out)?;
    println!("total time {:.0?}", started.elapsed());
    Ok(())
}
