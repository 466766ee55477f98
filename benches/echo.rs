//! Echo servers side by side: sockloop against tokio's current-thread runtime (a task per
//! connection) and a hand-written mio loop, under the same load generator.
//!
//! ```text
//! cargo bench -p sockloop-benches --bench echo                                       # everything, about 4 minutes
//! cargo bench -p sockloop-benches --bench echo -- --rounds 3 --conns 100,10000       # fewer rounds and rows
//! ECHO_WINDOW_S=5 cargo bench -p sockloop-benches --bench echo                       # options via the environment
//! cargo bench -p sockloop-benches --bench echo -- --help                             # every option
//! cargo bench -p sockloop-benches --bench echo -- --servers sockloop,baseline \
//!     --baseline ../old/target/release/deps/echo-<hash>                              # A/B against another build
//! ```
//!
//! Each case is one load shape: N connections, each with one 64-byte message in flight (the
//! client sends, waits for the whole echo, sends again), at N = 1, 100, 1,000 and 10,000; plus
//! 100 such connections beside 10,000 idle ones (connected and silent). Every case is measured
//! in several rounds; a round runs each server once, back to back, in an order that rotates from
//! round to round, and the tables report medians over the rounds (ratios: the median of the
//! per-round ratios, with their range). One measurement is:
//!
//! - A fresh server process: this binary re-executed with `SOCKLOOP_ECHO_SERVER=<kind>`, pinned
//!   to CPU 0 with `taskset -c 0`; it prints its address (port 0) and serves until its stdin
//!   closes. The benchmark itself (the load generator, `examples/loadgen`) is pinned to CPU 1.
//! - Timed pass: connect everything, warm up, then a measured window (the load generator pauses
//!   at the window's edges while the server is sampled). Messages per second and latency
//!   (p50/p99, client-side, send to end of echo) come from the load generator. Server CPU time is
//!   the first field of `/proc/PID/task/*/schedstat` (nanoseconds on CPU, user + kernel, all
//!   threads) read at the window's edges, divided by the messages the server echoed in between
//!   (each server counts its echoed bytes; see `echo/servers.rs`). Server memory per connection
//!   is the growth of its `VmRSS` from before the load to the moment every connection is
//!   established and accepted (before any traffic), divided by the connection count.
//! - System-call pass (in three of the rounds): a second, shorter run against the same server with
//!   `perf stat -e raw_syscalls:sys_enter -p PID` attached, counting (switched through perf's
//!   control FIFO) exactly over the window; system calls per message = count / messages the
//!   server echoed. It is a separate pass because an attached tracepoint slows every system
//!   call of the server, which would bias the CPU figures of the timed pass.
//!
//! A/B of two versions of the library: `--baseline PATH` (or `ECHO_BASELINE`) names an echo
//! bench binary built from this same bench code against another version of sockloop (a second
//! worktree with the other `src/`: `cargo bench -p sockloop-benches --no-run` there, then its
//! newest `target/release/deps/echo-*` executable). The server `baseline` is that binary
//! started exactly like sockloop's (`SOCKLOOP_ECHO_SERVER=sockloop`, CPU 0), and it takes its
//! turn in each round's rotation like any other server. A last table then gives, per case,
//! sockloop/baseline for server CPU per message (also with `ksoftirqd`'s share), messages per
//! second, the client's p50 and p99 and system calls per message: each the median of the
//! per-round ratios, with their range (`target/bench-echo/echo-ab.csv` too). Without
//! `--baseline` nothing changes.
//!
//! Results: two tables on stdout, `target/bench-echo/echo.csv` (medians),
//! `target/bench-echo/echo-rounds.csv` (every round), and `target/bench-echo/echo.svg` (server
//! CPU per message and throughput against connection count, one line per server).
//!
//! The machine this runs on is usually shared and noisy, and the load generator (on one CPU,
//! like the server) is often the bottleneck: a server that waits for work wakes up more often
//! per message, so its CPU per message rises when the client slows. Compare ratios of the same
//! round, and repeat a run before trusting a small difference.

#[path = "common/mod.rs"]
mod common;
#[path = "../examples/loadgen/mod.rs"]
mod loadgen;
#[path = "echo/probe.rs"]
mod probe;
#[path = "echo/report.rs"]
mod report;
#[path = "echo/servers.rs"]
mod servers;
#[path = "echo/targets.rs"]
mod targets;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use common::cli::CargoBench;
use common::cpu;
use common::out::target_dir;
use common::pin::{self, CLIENT_CPU as LOADGEN_CPU, SERVER_CPU};
use common::process::ServerProcess;
use loadgen::{LoadConfig, Phase};
use report::{Case, Results, Row, Sample};
use servers::Kind;

/// Set in a child's environment to make this binary an echo server of that kind.
const SERVER_ENV: &str = "SOCKLOOP_ECHO_SERVER";
/// Bytes per message.
const MESSAGE_SIZE: usize = 64;
/// How long the server may take to accept every established connection before memory is read.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Echo servers side by side (sockloop, tokio current-thread, plain mio) under one load
/// generator. Every option can also be set through the environment variable named in its help.
#[derive(Parser, Debug)]
#[command(name = "echo")]
struct Args {
    /// Seconds of warm-up before each measured window [ECHO_WARMUP_S, default 0.5]
    #[arg(long)]
    warmup: Option<f64>,
    /// Seconds of each measured window [ECHO_WINDOW_S, default 1.5]
    #[arg(long)]
    window: Option<f64>,
    /// Rounds: every case is measured this many times on every server, the servers back to
    /// back in rotating order, and the medians are reported [ECHO_ROUNDS, default 5]
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds of the system-call pass's window; 0 skips that pass [ECHO_SYSCALL_WINDOW_S, default 1]
    #[arg(long)]
    syscall_window: Option<f64>,
    /// Seconds of load before the system-call pass counts [ECHO_SYSCALL_WARMUP_S, default 0.5]
    #[arg(long)]
    syscall_warmup: Option<f64>,
    /// In how many of the rounds (spread over the run) the system-call pass follows the timed
    /// pass; the median is reported [ECHO_SYSCALL_ROUNDS, default 3]
    #[arg(long)]
    syscall_rounds: Option<usize>,
    /// Active connection counts of the ping-pong rows [ECHO_CONNS, default 1,100,1000,10000]
    #[arg(long, value_delimiter = ',')]
    conns: Option<Vec<usize>>,
    /// Idle connections of the idle-scaling row; 0 skips it [ECHO_IDLE, default 10000]
    #[arg(long)]
    idle: Option<usize>,
    /// Active connections of the idle-scaling row [ECHO_IDLE_ACTIVE, default 100]
    #[arg(long)]
    idle_active: Option<usize>,
    /// Servers to compare: sockloop, tokio, mio, and baseline with --baseline [ECHO_SERVERS,
    /// default sockloop,tokio,mio, and baseline with --baseline]
    #[arg(long, value_delimiter = ',')]
    servers: Option<Vec<String>>,
    /// An echo bench binary built from this bench's code against another version of sockloop:
    /// the server `baseline` is its sockloop server, and the tables add the ratios
    /// sockloop/baseline [ECHO_BASELINE]
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Directory for echo.csv and echo.svg [ECHO_OUT, default target/bench-echo]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not pin the server and the load generator to separate CPUs
    #[arg(long)]
    no_pin: bool,
    /// Fix the sockloop server's `Reactor::set_flush_batch` (unset: the adaptive default)
    /// [ECHO_FLUSH_BATCH]
    #[arg(long)]
    flush_batch: Option<usize>,
    #[command(flatten)]
    cargo: CargoBench,
}

/// The resolved settings of a run.
struct Settings {
    warmup: Duration,
    window: Duration,
    rounds: usize,
    syscall_window: Duration,
    syscall_warmup: Duration,
    /// Rounds (0-based) that include the system-call pass.
    syscall_rounds: Vec<usize>,
    cases: Vec<Case>,
    kinds: Vec<Kind>,
    /// The binary whose sockloop server is the `baseline` kind (`--baseline`).
    baseline: Option<PathBuf>,
    out: PathBuf,
    pin: bool,
    count_syscalls: bool,
    /// `ksoftirqd/<server CPU>`, when pinned: its time per message is reported beside the
    /// server's (see `common::cpu::ksoftirqd`).
    ksoftirqd: Option<u32>,
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn env_list(name: &str) -> Option<Vec<String>> {
    let v = std::env::var(name).ok()?;
    Some(v.split(',').map(|s| s.trim().to_string()).collect())
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// `n` of the rounds `0..rounds`, evenly spread (all of them if `n >= rounds`).
fn spread(n: usize, rounds: usize) -> Vec<usize> {
    let n = n.min(rounds);
    (0..n).map(|k| (2 * k + 1) * rounds / (2 * n)).collect()
}

impl Settings {
    fn resolve(args: Args) -> Result<Settings, String> {
        let warmup = args.warmup.or_else(|| env_parse("ECHO_WARMUP_S"));
        let window = args.window.or_else(|| env_parse("ECHO_WINDOW_S"));
        let rounds = args
            .rounds
            .or_else(|| env_parse("ECHO_ROUNDS"))
            .unwrap_or(5);
        let syscall_rounds = args
            .syscall_rounds
            .or_else(|| env_parse("ECHO_SYSCALL_ROUNDS"));
        let syscall_warmup = args
            .syscall_warmup
            .or_else(|| env_parse("ECHO_SYSCALL_WARMUP_S"));
        let syscall_window = args
            .syscall_window
            .or_else(|| env_parse("ECHO_SYSCALL_WINDOW_S"));
        let conns = args
            .conns
            .or_else(|| {
                env_list("ECHO_CONNS").map(|v| v.iter().filter_map(|s| s.parse().ok()).collect())
            })
            .unwrap_or_else(|| vec![1, 100, 1_000, 10_000]);
        let idle = args
            .idle
            .or_else(|| env_parse("ECHO_IDLE"))
            .unwrap_or(10_000);
        let idle_active = args
            .idle_active
            .or_else(|| env_parse("ECHO_IDLE_ACTIVE"))
            .unwrap_or(100);
        let baseline = servers::baseline_exe(args.baseline, "ECHO_BASELINE")?;
        let names = args.servers.or_else(|| env_list("ECHO_SERVERS"));
        let kinds = servers::kinds(names, baseline.as_deref())?;
        let mut cases: Vec<Case> = conns
            .into_iter()
            .filter(|&n| n > 0)
            .map(|n| Case {
                name: "pingpong",
                active: n,
                idle: 0,
            })
            .collect();
        if idle > 0 && idle_active > 0 {
            cases.push(Case {
                name: "idle",
                active: idle_active,
                idle,
            });
        }
        let out = args
            .out
            .or_else(|| std::env::var_os("ECHO_OUT").map(PathBuf::from))
            .unwrap_or_else(|| target_dir().join("bench-echo"));
        Ok(Settings {
            warmup: seconds(warmup.unwrap_or(0.5)),
            window: seconds(window.unwrap_or(1.5)).max(Duration::from_millis(100)),
            rounds: rounds.max(1),
            syscall_window: seconds(syscall_window.unwrap_or(1.0)),
            syscall_warmup: seconds(syscall_warmup.unwrap_or(0.5)),
            syscall_rounds: spread(syscall_rounds.unwrap_or(3), rounds.max(1)),
            cases,
            kinds,
            baseline,
            out,
            pin: !args.no_pin,
            count_syscalls: true,
            ksoftirqd: None,
        })
    }
}

/// Starts a fresh server of `kind`, pinned to the server CPU if the settings pin.
fn spawn_server(kind: Kind, set: &Settings) -> io::Result<ServerProcess> {
    let cpu = set.pin.then_some(SERVER_CPU);
    let mut server = servers::spawn(kind, SERVER_ENV, set.baseline.as_deref(), cpu)?;
    // Closing up to 10,000 connections may take longer than the usual second.
    server.exit_grace = Duration::from_secs(3);
    Ok(server)
}

/// Bytes `server` has echoed so far (asked through its stdin, answered on its stdout; see
/// `echo/servers.rs`).
fn echoed(server: &mut ServerProcess) -> io::Result<u64> {
    let line = server.ask("count")?;
    line.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("bad echoed-bytes answer {line:?}")))
}

fn load_config(addr: SocketAddr, case: &Case, warmup: Duration, window: Duration) -> LoadConfig {
    LoadConfig {
        addr,
        connections: case.active,
        idle_connections: case.idle,
        depth: 1,
        size: MESSAGE_SIZE,
        warmup,
        duration: Some(window),
        messages: None,
        progress: false,
        ..LoadConfig::default()
    }
}

/// Server-side readings at a window edge.
#[derive(Clone, Copy)]
struct Edge {
    cpu_ns: u64,
    echoed: u64,
    /// CPU time of the server CPU's `ksoftirqd`, if it is watched and could be read.
    softirq_ns: Option<u64>,
}

impl Edge {
    fn read(server: &mut ServerProcess, ksoftirqd: Option<u32>) -> io::Result<Edge> {
        Ok(Edge {
            cpu_ns: server.cpu_ns()?,
            echoed: echoed(server)?,
            softirq_ns: ksoftirqd.and_then(|pid| cpu::pid_ns(pid).ok()),
        })
    }
}

/// Runs one case against a fresh server: the timed pass, then (if asked) the system-call pass.
fn measure(kind: Kind, case: &Case, set: &Settings, syscalls: bool) -> io::Result<Sample> {
    let mut server = spawn_server(kind, set)?;
    let pid = server.pid();

    // Timed pass.
    let cfg = load_config(server.addr, case, set.warmup, set.window);
    let rss_before = probe::rss_bytes(pid)?;
    let fds_before = probe::fd_count(pid)?;
    let (mut rss_connected, mut start, mut end) = (None, None, None);
    let report = loadgen::run_load(&cfg, &mut |phase: Phase| match phase {
        Phase::Connected => {
            rss_connected = Some(probe::settled_rss(
                pid,
                fds_before + case.active + case.idle,
                SETTLE_TIMEOUT,
            ))
        }
        Phase::Measuring => start = Some(Edge::read(&mut server, set.ksoftirqd)),
        Phase::Done => end = Some(Edge::read(&mut server, set.ksoftirqd)),
    })?;
    let missing = || io::Error::other("the load generator skipped a phase");
    let rss_connected = rss_connected.ok_or_else(missing)??;
    let (start, end) = (start.ok_or_else(missing)??, end.ok_or_else(missing)??);
    let cpu = end.cpu_ns - start.cpu_ns;
    let server_messages = (end.echoed - start.echoed) / MESSAGE_SIZE as u64;
    if report.messages == 0 || server_messages == 0 {
        return Err(io::Error::other(format!(
            "no message completed in the window (established {}, failed {})",
            report.established, report.failed
        )));
    }
    let conns = report.established.max(1) as f64;
    let latency = &report.latency;
    let mut sample = Sample {
        msgs_per_sec: report.msgs_per_sec(),
        p50_us: latency.value_at_quantile(0.50) as f64 / 1e3,
        p99_us: latency.value_at_quantile(0.99) as f64 / 1e3,
        cpu_us_per_msg: cpu as f64 / 1e3 / server_messages as f64,
        server_cpu: cpu as f64 / report.elapsed.as_nanos().max(1) as f64,
        softirq_us_per_msg: start
            .softirq_ns
            .zip(end.softirq_ns)
            .map(|(a, b)| b.saturating_sub(a) as f64 / 1e3 / server_messages as f64),
        syscalls_per_msg: None,
        msgs_per_wait: None,
        rss_per_conn: rss_connected.saturating_sub(rss_before) as f64 / conns,
        messages: report.messages,
        server_messages,
        window_s: report.elapsed.as_secs_f64(),
        established: report.established,
        load_ok: report.ok(),
        issues: format!(
            "failed {}, corrupted {}, dropped {}, lost bytes {}, errors {:?}",
            report.failed, report.corrupted, report.dropped, report.lost_bytes, report.errors
        ),
    };

    // System-call pass.
    if syscalls {
        match count_syscalls(&mut server, case, set) {
            Ok((per_msg, per_wait)) => {
                sample.syscalls_per_msg = Some(per_msg);
                sample.msgs_per_wait = per_wait;
            }
            Err(e) => eprintln!(
                "  {} {}: system calls not counted: {e}",
                kind.name(),
                case.active
            ),
        }
    }
    Ok(sample)
}

/// A second run with perf counting the server's system calls over the window only: returns
/// system calls per message and, if counted, messages per `epoll_wait`.
fn count_syscalls(
    server: &mut ServerProcess,
    case: &Case,
    set: &Settings,
) -> io::Result<(f64, Option<f64>)> {
    let mut counter = probe::SyscallCounter::attach(server.pid())?;
    let cfg = load_config(server.addr, case, set.syscall_warmup, set.syscall_window);
    let mut failure = None;
    let (mut start, mut end) = (0, 0);
    loadgen::run_load(&cfg, &mut |phase: Phase| {
        let result = match phase {
            Phase::Connected => Ok(()),
            Phase::Measuring => counter
                .enable()
                .and_then(|()| echoed(server))
                .map(|n| start = n),
            Phase::Done => counter
                .disable()
                .and_then(|()| echoed(server))
                .map(|n| end = n),
        };
        if let Err(e) = result {
            failure.get_or_insert(e);
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let counts = counter.finish()?;
    let messages = (end - start) / MESSAGE_SIZE as u64;
    if messages == 0 {
        return Err(io::Error::other("no message echoed in the window"));
    }
    let per_wait = counts
        .waits
        .filter(|&w| w > 0)
        .map(|w| messages as f64 / w as f64);
    Ok((counts.all as f64 / messages as f64, per_wait))
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

/// Pins this process to the load generator's CPU if it can; says what it did.
fn place(set: &mut Settings) {
    if !set.pin {
        println!("placement: not pinned (--no-pin)");
        return;
    }
    let why_not =
        pin::unavailable().or_else(|| pin::pin_self(LOADGEN_CPU).err().map(|e| e.to_string()));
    match why_not {
        None => println!(
            "placement: servers on CPU {SERVER_CPU} (taskset -c {SERVER_CPU}), load generator on CPU {LOADGEN_CPU}"
        ),
        Some(reason) => {
            println!("placement: NOT pinned ({reason}); server and load generator share CPUs");
            set.pin = false;
        }
    }
}

fn main() -> ExitCode {
    if let Ok(kind) = std::env::var(SERVER_ENV) {
        return servers::serve(&kind);
    }
    let args = Args::parse();
    if let Some(n) = args.flush_batch {
        // Read by the sockloop server child (`echo/servers.rs`), which inherits our environment.
        std::env::set_var(servers::FLUSH_BATCH_ENV, n.to_string());
    }
    let mut set = match Settings::resolve(args) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => println!("open-files limit: {limit} (servers inherit it)"),
        Err(e) => println!("open-files limit not raised: {e}"),
    }
    place(&mut set);
    if set.pin {
        match cpu::ksoftirqd(SERVER_CPU) {
            Ok(Some(pid)) => {
                set.ksoftirqd = Some(pid);
                println!("deferred softirq work: ksoftirqd/{SERVER_CPU} (pid {pid}), read over each measured window");
            }
            Ok(None) => println!("deferred softirq work: not read (no ksoftirqd/{SERVER_CPU})"),
            Err(e) => println!("deferred softirq work: not read ({e})"),
        }
    }
    if set.syscall_window.is_zero() || set.syscall_rounds.is_empty() {
        set.count_syscalls = false;
        println!("system calls: not counted (--syscall-window 0 or --syscall-rounds 0)");
    } else if probe::perf_can_count_syscalls() {
        let rounds: Vec<String> = set
            .syscall_rounds
            .iter()
            .map(|r| (r + 1).to_string())
            .collect();
        println!(
            "system calls: perf stat -e raw_syscalls:sys_enter -e syscalls:sys_enter_epoll_wait -p <server>, in a separate {:.1} s pass after the timed pass of round(s) {}",
            set.syscall_window.as_secs_f64(),
            rounds.join(", ")
        );
    } else {
        set.count_syscalls = false;
        println!("system calls: NOT counted (`perf stat -e raw_syscalls:sys_enter` does not work here; apt-get install linux-perf)");
    }
    println!(
        "windows: {} round(s) of {:.1} s warm-up + {:.1} s measured, per case and server; {} B messages, 1 in flight per connection",
        set.rounds,
        set.warmup.as_secs_f64(),
        set.window.as_secs_f64(),
        MESSAGE_SIZE
    );

    if let Some(exe) = &set.baseline {
        let this =
            std::env::current_exe().map_or_else(|e| e.to_string(), |p| p.display().to_string());
        println!(
            "A/B: sockloop is this build ({this}), baseline is the sockloop server of {}",
            exe.display()
        );
    }

    let started = Instant::now();
    let mut rows = Vec::new();
    for case in &set.cases {
        let n = set.kinds.len();
        let mut rounds: Vec<Vec<Option<Sample>>> = vec![Vec::new(); n];
        for round in 0..set.rounds {
            // Rotate the order so that no server is always first after a case change.
            for i in (0..n).map(|i| (i + round) % n) {
                let kind = set.kinds[i];
                let t = Instant::now();
                let syscalls = set.count_syscalls && set.syscall_rounds.contains(&round);
                let result = measure(kind, case, &set, syscalls);
                match &result {
                    Ok(x) => eprintln!(
                        "  [{}] {:9} {:>5} active + {:>5} idle: {:>7.0} msgs/s, {:.3} µs CPU/msg, srv {:3.0}%, {} syscalls/msg ({:.1} s)",
                        round + 1,
                        kind.name(),
                        case.active,
                        case.idle,
                        x.msgs_per_sec,
                        x.cpu_us_per_msg,
                        x.server_cpu * 100.0,
                        fmt_opt(x.syscalls_per_msg),
                        t.elapsed().as_secs_f64()
                    ),
                    Err(e) => eprintln!(
                        "  [{}] {:9} {:>5} active + {:>5} idle: FAILED: {e}",
                        round + 1,
                        kind.name(),
                        case.active,
                        case.idle
                    ),
                }
                rounds[i].push(result.ok());
            }
        }
        rows.push(Row::new(case.clone(), rounds));
    }
    let results = Results {
        kinds: set.kinds.clone(),
        rows,
    };

    print!("{}", report::render(&results, set.rounds));
    if set.kinds.contains(&Kind::Sockloop) {
        print!("{}", targets::check(&results));
    }
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
    if let Err(e) = std::fs::create_dir_all(&set.out) {
        eprintln!("echo: cannot create {}: {e}", set.out.display());
        return ExitCode::FAILURE;
    }
    match report::write_csv(&results, &set.out) {
        Ok(()) => println!(
            "wrote {} and echo-rounds.csv",
            set.out.join("echo.csv").display()
        ),
        Err(e) => eprintln!("echo: cannot write CSV into {}: {e}", set.out.display()),
    }
    match report::write_ab_csv(&results, &set.out) {
        Ok(true) => println!("wrote {}", set.out.join("echo-ab.csv").display()),
        Ok(false) => {}
        Err(e) => eprintln!("echo: cannot write echo-ab.csv: {e}"),
    }
    let svg = set.out.join("echo.svg");
    match report::write_svg(&results, &svg) {
        Ok(()) => println!("wrote {}", svg.display()),
        Err(e) => eprintln!("echo: cannot write {}: {e}", svg.display()),
    }
    ExitCode::SUCCESS
}
