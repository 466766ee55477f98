//! Latency under load, side by side: how long a small request waits on sockloop, on tokio's
//! current-thread runtime (a task per connection) and on a hand-written mio loop while other
//! connections keep the server busy.
//!
//! ```text
//! cargo bench -p sockloop-benches --bench latency                                    # everything, about 3.5 minutes
//! cargo bench -p sockloop-benches --bench latency -- --rounds 3 --points 0,2         # fewer rounds and points
//! cargo bench -p sockloop-benches --bench latency -- --servers sockloop,tokio --duration 2
//! cargo bench -p sockloop-benches --bench latency -- --tokio-buf 65536               # tokio reading 64 KiB
//! cargo bench -p sockloop-benches --bench latency -- --help                          # every option
//! cargo bench -p sockloop-benches --bench latency -- --servers sockloop,baseline \
//!     --baseline ../old/target/release/deps/latency-<hash>                           # A/B against another build
//! ```
//!
//! A *probe* is one connection to the server's echo port with one 32-byte message in flight: it
//! sends, waits for the whole echo, and sends the next one a millisecond (`--interval-us`) after
//! the previous send, or at once if the echo took longer. Its round trips (from just before the
//! `write` to the end of the `read` that completes the echo) give the p50, p99 and maximum. Each
//! *point* is what runs beside the probe:
//!
//! - `0`: nothing, the probe alone;
//! - `2`, `8`: that many *hot echo streams*, connections to the echo port that each write 1 MiB
//!   blobs as fast as the socket takes them from one thread while another thread reads the echo
//!   back and discards it (checking that it never reads more than was written);
//! - `blaster`: one connection that only writes 1 MiB blobs, as fast as it can, and never reads,
//!   to the server's *sink* port, where the server reads and discards (every server kind has one
//!   when `SOCKLOOP_ECHO_SINK` is set; see `echo/servers.rs`: the same 64 KiB reads in all three).
//!
//! One measurement is one server at one point: a fresh server process (this binary re-executed
//! with `SOCKLOOP_LATENCY_SERVER=<kind>`, the servers of `echo/servers.rs`) pinned to CPU 0 with
//! `taskset -c 0`; the probe connects and makes 50 unmeasured round trips; the load starts (a
//! second child process, this binary with `SOCKLOOP_LATENCY_LOAD` set, see `latency/load.rs`)
//! and runs `--warmup` seconds (0.5); then the probe measures for `--duration` seconds (3) or
//! `--probes` round trips (3,000), whichever ends first, while the load's throughput (MiB/s read
//! back by the hot streams, or written by the blaster) and the server's CPU time are read at the
//! probing's edges. A probe whose echo takes longer than `--probe-timeout` (2 s) ends the
//! probing and counts with its wait. A round measures every server once at every point, the
//! servers back to back at each point in an order that rotates with the round and the point;
//! the tables report, per point and server, the median over `--rounds` rounds (5) with the
//! range, and the median of the per-round ratios sockloop/tokio with their range.
//!
//! Placement, and why. The machine has two CPUs and is a noisy shared VM. The server gets CPU 0
//! to itself, as in the echo bench, so its figures are its own work. The probe (this process)
//! and the load share CPU 1, and the load runs under `nice -n 19` (`--load-nice`): up to 17
//! busy load threads at the probe's priority would make the probe wait its turn on CPU 1 for
//! milliseconds, and that client-side queueing would show in every server's p99 alike and hide
//! the server's. At nice 19 the load weighs about 1.5% of the probe in the scheduler, so the
//! probe runs as soon as its echo arrives, and what it measures is the server's scheduling of
//! the probe among the hot connections. The load still gets nearly all of CPU 1 (the probe is
//! mostly waiting), so the throughput it reaches is the server's doing too; the throughput
//! table is there so that a server cannot look fast for the probe by starving the load.
//!
//! A/B of two versions of the library: `--baseline PATH` (or `LATENCY_BASELINE`) names a
//! latency bench binary built from this same bench code against another version of sockloop
//! (a second worktree with the other `src/`: `cargo bench -p sockloop-benches --no-run` there,
//! then its newest `target/release/deps/latency-*` executable). The server `baseline` is that
//! binary started exactly like sockloop's (`SOCKLOOP_LATENCY_SERVER=sockloop`, CPU 0, with its
//! sink port), in the same rotation as the other servers. Every table then has a
//! sockloop/baseline column, and a last table gathers them per point for p50, p99, max and the
//! load's MiB/s: each the median of the per-round ratios, with their range
//! (`target/bench-latency/latency-ab.csv` too). Without `--baseline` nothing changes.
//!
//! Results: the tables on stdout, `target/bench-latency/latency.csv` (medians, ranges and the
//! ratio to tokio per point and server) and `target/bench-latency/latency-rounds.csv` (every
//! measurement). The project's target: sockloop's p99 no higher than tokio's at every point;
//! the run ends with that check.
//!
//! What the placement cannot take out, and how to read the points:
//!
//! - `0`: the probe alone measures the machine: its p99 moves between a fraction of a
//!   millisecond and a few milliseconds from round to round, whatever the server, so the
//!   sockloop/tokio ratio there straddles 1 by chance.
//! - `blaster`: the probe shares CPU 1 with a thread that spends nearly all its time inside
//!   1 MiB `write` calls, which on loopback also run the receiving side's TCP work. On a kernel
//!   built without preemption (`CONFIG_PREEMPT_NONE`, as on the VM this was written on) the
//!   probe, once its echo has arrived, waits for the current call to return; that adds to every
//!   server alike (`--no-pin` lowers the probe's p50 here several times). Differences between
//!   the servers show in the maximum more than in p99.
//! - Hot streams: the same effect is smaller (the load threads also block on full sockets),
//!   and the servers differ by one to two orders of magnitude. The tokio echo reads 1 KiB at a
//!   time, so its hot streams move several times fewer MiB/s than sockloop's (the throughput
//!   table); `--tokio-buf 65536` gives it 64 KiB reads like the others, to check that a p99
//!   difference is not just bytes per turn. The mio loop reads each stream until `WouldBlock`
//!   and queues whatever the socket does not take: beside hot streams it can starve the probe
//!   until `--probe-timeout` ends the point, and its memory grows (the RSS column).
//!
//! The maximum is one probe out of a few dozen to a few thousand and moves with the machine's
//! hiccups; p99 of a point with few probes (a slow server finishes fewer) is close to its
//! maximum. Compare ratios of the same round, and repeat a run before trusting a small
//! difference.

#[path = "common/mod.rs"]
mod common;
#[path = "latency/load.rs"]
mod load;
#[path = "latency/probe.rs"]
mod probe;
#[path = "latency/report.rs"]
mod report;
#[path = "echo/servers.rs"]
mod servers;

use std::io;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

use common::cli::{self, CargoBench};
use common::out::target_dir;
use common::pin::{self, CLIENT_CPU, SERVER_CPU};
use load::{LoadProcess, Mode, Spec, Totals, LOAD_ENV};
use probe::{Pace, Probe};
use report::{Point, Results, Sample};
use servers::Kind;

/// Set in a child's environment to make this binary a server of that kind.
const SERVER_ENV: &str = "SOCKLOOP_LATENCY_SERVER";
/// Unmeasured round trips before the load starts.
const WARM_PROBES: usize = 50;
/// How long a load process outlives its point's planned end at most (it is normally ended long
/// before, when the bench closes its stdin).
const LOAD_SPARE_LIFE: Duration = Duration::from_secs(30);
const MIB: f64 = (1 << 20) as f64;

/// A probe's round trips beside hot echo streams and a blaster, on sockloop, tokio
/// (current-thread) and a plain mio loop, side by side.
#[derive(Parser, Debug)]
#[command(name = "latency")]
struct Args {
    /// Rounds: each measures every server once at every point; the tables show medians over them
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of load before the probe measures, at points with load
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Seconds the probe measures, per point and server (less if --probes are done sooner)
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Most probes per point and server
    #[arg(long, default_value_t = 3000)]
    probes: usize,
    /// Microseconds from one probe's send to the next's (a slower echo starts the next at once);
    /// 0: back to back
    #[arg(long, default_value_t = 1000)]
    interval_us: u64,
    /// Seconds a probe waits for its echo; one that waits this long ends the point's probing
    #[arg(long, default_value_t = 2.0)]
    probe_timeout: f64,
    /// Points: numbers of hot echo streams beside the probe (0: the probe alone), and `blaster`
    #[arg(long, value_delimiter = ',', default_value = "0,2,8,blaster")]
    points: Vec<String>,
    /// Servers to compare: sockloop, tokio, mio, and baseline with --baseline [default:
    /// sockloop,tokio,mio, and baseline with --baseline]
    #[arg(long, value_delimiter = ',')]
    servers: Option<Vec<String>>,
    /// A latency bench binary built from this bench's code against another version of
    /// sockloop: the server `baseline` is its sockloop server, and the tables add the ratios
    /// sockloop/baseline [env: LATENCY_BASELINE]
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Niceness of the load process (hot streams, blaster); 0 runs it at the probe's priority
    #[arg(long, default_value_t = 19)]
    load_nice: i32,
    /// The tokio echo's read buffer in bytes [default: 1024, the canonical server's, as in the
    /// echo bench]; 65536 reads 64 KiB at a time like sockloop and the mio loop
    #[arg(long)]
    tokio_buf: Option<usize>,
    /// Do not pin the servers to CPU 0 and the probe and load to CPU 1
    #[arg(long)]
    no_pin: bool,
    /// Directory for the CSV files [default: target/bench-latency]
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    cargo: CargoBench,
}

/// The resolved settings of a run.
struct Settings {
    rounds: usize,
    warmup: Duration,
    pace: Pace,
    points: Vec<Point>,
    kinds: Vec<Kind>,
    /// The binary whose sockloop server is the `baseline` kind (`--baseline`).
    baseline: Option<PathBuf>,
    load_nice: i32,
    pin: bool,
    out: PathBuf,
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() { s.max(0.0) } else { 0.0 })
}

impl Settings {
    fn resolve(args: Args) -> Result<Settings, String> {
        let mut points = Vec::new();
        for text in &args.points {
            let point = Point::parse(text).ok_or_else(|| {
                format!("unknown point {text:?} (a number of streams, or blaster)")
            })?;
            if !points.contains(&point) {
                points.push(point);
            }
        }
        let baseline = servers::baseline_exe(args.baseline, "LATENCY_BASELINE")?;
        let kinds = servers::kinds(args.servers, baseline.as_deref())?;
        if points.is_empty() || kinds.is_empty() {
            return Err("nothing to measure (no point or no server)".to_string());
        }
        Ok(Settings {
            rounds: args.rounds.max(1),
            warmup: seconds(args.warmup),
            pace: Pace {
                probes: args.probes.max(1),
                duration: seconds(args.duration).max(Duration::from_millis(100)),
                interval: Duration::from_micros(args.interval_us),
                timeout: seconds(args.probe_timeout).max(Duration::from_millis(10)),
            },
            points,
            kinds,
            baseline,
            load_nice: args.load_nice,
            pin: !args.no_pin,
            out: args
                .out
                .unwrap_or_else(|| target_dir().join("bench-latency")),
        })
    }

    /// How long a load process may live: its point's planned length and then some.
    fn load_lifetime(&self) -> Duration {
        self.warmup + self.pace.duration + self.pace.timeout + LOAD_SPARE_LIFE
    }
}

/// The server's resident memory in MiB (`VmRSS` of `/proc/PID/status`).
fn rss_mib(pid: u32) -> io::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}

/// One server at one point: the sample's figures (round, point and order are the caller's).
fn measure(kind: Kind, point: Point, set: &Settings) -> io::Result<Sample> {
    let started = Instant::now();
    let cpu = set.pin.then_some(SERVER_CPU);
    let mut server = servers::spawn(kind, SERVER_ENV, set.baseline.as_deref(), cpu)?;
    let mut probe = Probe::connect(server.addr, set.pace.timeout)?;
    probe.warm(WARM_PROBES)?;
    let spec = match point {
        Point::Hot(0) => None,
        Point::Hot(n) => Some(Spec {
            mode: Mode::Echo,
            addr: server.addr,
            conns: n,
            lifetime: set.load_lifetime(),
        }),
        Point::Blaster => {
            let answer = server.ask("sink")?;
            let addr = answer.trim().parse().map_err(|_| {
                io::Error::other(format!("the server has no sink port (said {answer:?})"))
            })?;
            Some(Spec {
                mode: Mode::Blast,
                addr,
                conns: 1,
                lifetime: set.load_lifetime(),
            })
        }
    };
    // Declared after the server, so dropped (ended) before it.
    let mut load = match spec {
        Some(spec) => Some(LoadProcess::spawn(
            spec,
            set.load_nice,
            set.pin.then_some(CLIENT_CPU),
        )?),
        None => None,
    };
    if load.is_some() {
        std::thread::sleep(set.warmup);
    }
    let before = load.as_mut().map(LoadProcess::totals).transpose()?;
    let cpu_before = server.cpu_ns()?;
    let t0 = Instant::now();
    let probed = probe.run(&set.pace)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_after = server.cpu_ns()?;
    let after = load.as_mut().map(LoadProcess::totals).transpose()?;
    let server_rss_mib = rss_mib(server.pid())?;
    drop(load);
    drop(server);
    let load_mib_s = before.zip(after).map(|(b, a): (Totals, Totals)| {
        let bytes = match point {
            Point::Blaster => a.sent - b.sent,
            Point::Hot(_) => a.echoed - b.echoed,
        };
        bytes as f64 / MIB / elapsed
    });
    Ok(Sample {
        round: 0,
        point: 0,
        kind,
        order: 0,
        probes: probed.rtts_ns.len(),
        p50_us: probed.quantile_us(0.50),
        p99_us: probed.quantile_us(0.99),
        max_us: probed.quantile_us(1.0),
        load_mib_s,
        server_cpu: cpu_after.saturating_sub(cpu_before) as f64 / 1e9 / elapsed,
        server_rss_mib,
        timed_out: probed.timed_out,
        load_errors: after.map_or(0, |a| a.errors),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Pins this process (the probe) to CPU 1 if pinning is on and possible; says what it did.
fn place(set: &mut Settings) {
    if set.pin {
        let why_not =
            pin::unavailable().or_else(|| pin::pin_self(CLIENT_CPU).err().map(|e| e.to_string()));
        if let Some(reason) = why_not {
            println!("placement: NOT pinned ({reason}); servers, probe and load share CPUs");
            set.pin = false;
        }
    }
    if set.load_nice != 0 && !have_nice() {
        println!("note: `nice` not found; the load runs at the probe's priority");
        set.load_nice = 0;
    }
    let load = if set.load_nice == 0 {
        "at normal priority".to_string()
    } else {
        format!("under nice -n {}", set.load_nice)
    };
    if set.pin {
        println!(
            "placement: servers on CPU {SERVER_CPU} (taskset -c {SERVER_CPU}); probe on CPU {CLIENT_CPU} at normal priority; load on CPU {CLIENT_CPU} {load}"
        );
    } else {
        println!("placement: not pinned; load {load}");
    }
}

fn have_nice() -> bool {
    Command::new("nice")
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(mut set: Settings) -> Result<(), String> {
    place(&mut set);
    let pace = &set.pace;
    println!(
        "{} round(s); per point and server: {:.1} s warm-up (with load), then {} B probes every {} µs for {:.1} s or {} probes; load writes {} KiB blobs",
        set.rounds,
        set.warmup.as_secs_f64(),
        probe::MESSAGE,
        pace.interval.as_micros(),
        pace.duration.as_secs_f64(),
        pace.probes,
        load::BLOB / 1024,
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
    let mut samples = Vec::new();
    let n = set.kinds.len();
    for round in 0..set.rounds {
        for (p, &point) in set.points.iter().enumerate() {
            // Rotate with the round and the point, so that no server is always first.
            for order in 0..n {
                let kind = set.kinds[(order + round + p) % n];
                match measure(kind, point, &set) {
                    Ok(mut s) => {
                        eprintln!(
                            "  [{}] {:>7} {:8}: p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms  {:>5} probes  load {:>5} MiB/s  srv CPU {:3.0}%  ({:.1} s)",
                            round + 1,
                            point.to_string(),
                            kind.name(),
                            s.p50_us / 1e3,
                            s.p99_us / 1e3,
                            s.max_us / 1e3,
                            s.probes,
                            s.load_mib_s.map_or_else(|| "-".to_string(), |x| format!("{x:.0}")),
                            s.server_cpu * 100.0,
                            s.seconds,
                        );
                        (s.round, s.point, s.order) = (round, p, order);
                        samples.push(s);
                    }
                    Err(e) => eprintln!(
                        "  [{}] {:>7} {:8}: FAILED: {e}",
                        round + 1,
                        point.to_string(),
                        kind.name()
                    ),
                }
            }
        }
        eprintln!(
            "round {}/{} done at {:.0} s",
            round + 1,
            set.rounds,
            started.elapsed().as_secs_f64()
        );
    }
    let results = Results {
        kinds: set.kinds.clone(),
        points: set.points.clone(),
        samples,
    };
    print!("{}", report::render(&results, set.rounds));
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
    report::write_csv(&results, &set.out)
}

fn main() -> ExitCode {
    if let Ok(kind) = std::env::var(SERVER_ENV) {
        return servers::serve(&kind);
    }
    if let Ok(spec) = std::env::var(LOAD_ENV) {
        return load::serve(&spec);
    }
    let args = Args::parse();
    // Every server child inherits these: it opens its sink port (the blaster's target), and
    // the tokio one reads into the buffer asked for.
    std::env::set_var(servers::SINK_ENV, "1");
    if let Some(n) = args.tokio_buf {
        std::env::set_var(servers::TOKIO_BUF_ENV, n.to_string());
        println!("tokio echo: {n}-byte reads (--tokio-buf)");
    }
    cli::exit_code("latency bench", Settings::resolve(args).and_then(run))
}
