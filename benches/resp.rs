//! The Redis-protocol example against a real `redis-server`, side by side under
//! `redis-benchmark`, in one run on one machine.
//!
//! ```text
//! cargo bench -p sockloop-benches --bench resp                                  # 0.5 to 1.5 minutes on 2 cores
//! cargo bench -p sockloop-benches --bench resp -- --rounds 3 --busy-poll 0      # shorter: one sockloop variant
//! cargo bench -p sockloop-benches --bench resp -- --help                        # every option
//! ```
//!
//! It builds `examples/resp_server` (`cargo build --release --example resp_server`) and starts
//! it twice, as it comes and with `--busy-poll 20` (see below), and `redis-server --save ''
//! --appendonly no --io-threads 1` (persistence off, one I/O thread), each pinned with
//! `taskset` to CPU 0 and kept running for the whole run. `redis-benchmark` runs on CPU 1:
//!
//! ```text
//! redis-benchmark -h 127.0.0.1 -p PORT -t <test> -n 20000 -c 50 -q            # one at a time
//! redis-benchmark -h 127.0.0.1 -p PORT -t <test> -n 150000 -c 50 -q -P 16     # pipelined
//! ```
//!
//! for each of the tests of `-t ping,set,get` (PING_INLINE, PING_MBULK, SET, GET), one
//! invocation per test so that each has its own server CPU figure. A round runs every test in
//! both modes on every server, the servers back to back for each test in an order that rotates
//! from round to round. The tables report medians over the rounds of requests per second (as
//! `redis-benchmark` measures it) and of the server's CPU time per request (its on-CPU
//! nanoseconds from `/proc/PID/task/*/schedstat`, user + kernel, all threads, over the
//! invocation, divided by the requests it answered), and the median of the per-round ratios
//! to Redis, with their range.
//!
//! Neither the client nor a server fills its CPU here: with 50 connections (and 16 requests
//! each when pipelined) in flight, requests/s follow the round-trip time, and much of that is
//! a server waking up. sockloop needs less CPU per request than Redis, so it runs out of work
//! and sleeps in `epoll_wait` more often (the third table: voluntary context switches per
//! request, 1.3 to 1.5 times Redis's without pipelining and 15 to 20 times with it), and each
//! wake-up of a halted virtual CPU costs tens of microseconds. The `--busy-poll 20` variant
//! shows what keeping the loop awake for 20 µs after the last event buys in requests/s, and
//! costs in CPU per request.
//!
//! On a shared machine, other jobs on the same cores add most of the noise (`redis-benchmark`
//! was seen running a quarter of the time during a run beside two compilers), so single rounds
//! can differ by 2x and only medians of interleaved rounds mean anything; CPU per request is the
//! steadier figure.
//!
//! Results: the tables on stdout, `target/bench-resp/resp.csv` (medians and ratios per test and
//! server) and `target/bench-resp/resp-rounds.csv` (every invocation). Skipped, with a message,
//! when `redis-server` or `redis-benchmark` is not installed (`apt-get install redis-server
//! redis-tools`).

#[path = "common/mod.rs"]
mod common;
#[path = "resp/report.rs"]
mod report;

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

use common::cli::{self, CargoBench};
use common::cpu;
use common::out::target_dir;
use common::pin::{self, CLIENT_CPU, SERVER_CPU};
use report::{Sample, REDIS};
/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Requests of the warm-up invocation each server gets before the rounds.
const WARMUP_REQUESTS: usize = 20_000;

/// The RESP example and redis-server side by side under redis-benchmark.
#[derive(Parser, Debug)]
#[command(name = "resp")]
struct Args {
    /// Rounds; every figure is a median over them.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Requests per test without pipelining (-n).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests per test with pipelining (-n).
    #[arg(long, default_value_t = 150_000)]
    pipelined_requests: usize,
    /// Concurrent connections (-c).
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Pipeline depth of the pipelined mode (-P).
    #[arg(long, default_value_t = 16)]
    pipeline: usize,
    /// The example's --busy-poll values (µs) to measure, one sockloop server each; 0: plain.
    #[arg(long, value_delimiter = ',', default_value = "0,20")]
    busy_poll: Vec<u64>,
    /// Tests (-t), one invocation each (`ping` runs both PING tests in one).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ping_inline,ping_mbulk,set,get"
    )]
    tests: Vec<String>,
    /// Do not pin the servers and redis-benchmark to separate CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Directory for the CSV files [default: target/bench-resp].
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    cargo: CargoBench,
}

fn main() -> ExitCode {
    let args = Args::parse();
    for tool in ["redis-server", "redis-benchmark"] {
        if Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            println!("resp bench skipped: {tool} is not installed (apt-get install redis-server redis-tools)");
            return ExitCode::SUCCESS;
        }
    }
    cli::exit_code("resp bench", run(args))
}

fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    let target = target_dir();
    let example = build_example(&target)?;
    let pin = !args.no_pin && pin::unavailable().is_none();
    if !pin {
        println!("note: not pinning (--no-pin, one CPU, or no taskset): figures are noisier");
    }
    let scratch = std::env::temp_dir().join(format!("sockloop-bench-resp-{}", std::process::id()));
    fs::create_dir_all(&scratch).map_err(|e| format!("mkdir {}: {e}", scratch.display()))?;
    let mut servers = Vec::new();
    for &busy_poll in &args.busy_poll {
        servers.push(Server::sockloop(&example, busy_poll, pin)?);
    }
    servers.push(Server::redis(&scratch, pin)?);
    let variants: Vec<String> = servers
        .iter()
        .map(|s| s.name.clone())
        .filter(|name| name != REDIS)
        .collect();
    for server in &servers {
        benchmark(server, "ping", WARMUP_REQUESTS, &args, 1, pin)?;
    }
    println!(
        "redis-benchmark -c {} -q, -n {} (plain) / {} (-P {}); {} rounds; servers on CPU {}, client on CPU {}",
        args.clients,
        args.requests,
        args.pipelined_requests,
        args.pipeline,
        args.rounds,
        cpu_name(SERVER_CPU, pin),
        cpu_name(CLIENT_CPU, pin),
    );
    let mut samples = Vec::new();
    for round in 0..args.rounds {
        for pipeline in [1, args.pipeline] {
            let n = if pipeline == 1 {
                args.requests
            } else {
                args.pipelined_requests
            };
            for test in &args.tests {
                // The servers back to back, in an order that rotates from round to round.
                for k in 0..servers.len() {
                    let server = &servers[(k + round) % servers.len()];
                    for mut sample in benchmark(server, test, n, &args, pipeline, pin)? {
                        sample.round = round;
                        samples.push(sample);
                    }
                }
            }
        }
        eprintln!(
            "round {}/{} done at {:.0?}",
            round + 1,
            args.rounds,
            started.elapsed()
        );
    }
    let _ = fs::remove_dir_all(&scratch);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| target.join("bench-resp"));
    report::report(&samples, &variants, &out)?;
    println!("total time {:.0?}", started.elapsed());
    Ok(())
}

/// `cpu` as the headline names it: "any" when not pinning.
fn cpu_name(cpu: usize, pin: bool) -> String {
    if pin {
        cpu.to_string()
    } else {
        "any".to_string()
    }
}

/// Builds the example in release mode (`cargo bench` does not build examples) and returns its
/// path.
fn build_example(target: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "sockloop",
            "--release",
            "--example",
            "resp_server",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo to build the example: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build --release --example resp_server: {status}"
        ));
    }
    let exe = target.join("release/examples/resp_server");
    if !exe.exists() {
        return Err(format!("built, but {} is missing", exe.display()));
    }
    Ok(exe)
}

/// A server process, pinned to the server CPU; killed when dropped.
struct Server {
    name: String,
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn sockloop(example: &Path, busy_poll: u64, pin: bool) -> Result<Server, String> {
        let mut child = pin::command(example, pin.then_some(SERVER_CPU))
            .args(["--listen", "127.0.0.1:0"])
            .args(["--busy-poll", &busy_poll.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", example.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the example's stdout is not piped")?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let addr = read.ok().and_then(|_| {
            line.trim()
                .strip_prefix("resp server listening on ")
                .and_then(|a| a.parse().ok())
        });
        let server = Server {
            name: match busy_poll {
                0 => "sockloop".to_string(),
                us => format!("sockloop --busy-poll {us}"),
            },
            child,
            addr: addr.unwrap_or_else(|| ([127, 0, 0, 1], 0).into()),
        };
        if addr.is_none() {
            return Err(format!(
                "the example did not report its address (got {line:?})"
            ));
        }
        Ok(server)
    }

    fn redis(dir: &Path, pin: bool) -> Result<Server, String> {
        // A free port, released just before redis-server binds it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let child = pin::command("redis-server", pin.then_some(SERVER_CPU))
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--io-threads", "1"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        let server = Server {
            name: REDIS.to_string(),
            child,
            addr: ([127, 0, 0, 1], port).into(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(server.addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server did not listen on {} in time",
                    server.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// What the server has used so far, all threads: nanoseconds on a CPU (user and kernel)
    /// and voluntary context switches (each one a sleep, mostly in `epoll_wait`).
    fn usage(&self) -> io::Result<Usage> {
        let mut total = Usage::default();
        for dir in cpu::tasks(self.child.id())? {
            // A thread that exited between the listing and the reads no longer counts.
            let (Ok(sched), Ok(status)) = (
                fs::read_to_string(dir.join("schedstat")),
                fs::read_to_string(dir.join("status")),
            ) else {
                continue;
            };
            total.cpu_ns += cpu::schedstat_ns(&sched)?;
            total.sleeps += status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| io::Error::other("no voluntary_ctxt_switches in status"))?;
        }
        Ok(total)
    }
}

/// A server's resource use, as read from `/proc`.
#[derive(Default)]
struct Usage {
    cpu_ns: u64,
    sleeps: u64,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `redis-benchmark -t test` invocation against `server`; one sample per result line.
fn benchmark(
    server: &Server,
    test: &str,
    n: usize,
    args: &Args,
    pipeline: usize,
    pin: bool,
) -> Result<Vec<Sample>, String> {
    let mut cmd = pin::command("redis-benchmark", pin.then_some(CLIENT_CPU));
    cmd.args(["-h", &server.addr.ip().to_string()])
        .args(["-p", &server.addr.port().to_string()])
        .args([
            "-t",
            test,
            "-n",
            &n.to_string(),
            "-c",
            &args.clients.to_string(),
            "-q",
        ]);
    if pipeline > 1 {
        cmd.args(["-P", &pipeline.to_string()]);
    }
    let usage = || server.usage().map_err(|e| format!("{}: {e}", server.name));
    let before = usage()?;
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run redis-benchmark: {e}"))?;
    let after = usage()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "redis-benchmark against {} failed ({}): {text}{}",
            server.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // -q prints progress lines ended by CR and one final line per test ended by LF.
    let mut samples: Vec<Sample> = text
        .split(['\r', '\n'])
        .filter_map(parse_line)
        .map(|(test, rps, p50_ms)| Sample {
            round: 0,
            server: server.name.clone(),
            pipeline,
            test,
            rps,
            p50_ms,
            cpu_us_per_req: 0.0,
            sleeps_per_kreq: 0.0,
        })
        .collect();
    if samples.is_empty() {
        return Err(format!("no result in redis-benchmark's output: {text:?}"));
    }
    let requests = (n * samples.len()) as f64;
    for s in &mut samples {
        s.cpu_us_per_req = (after.cpu_ns - before.cpu_ns) as f64 / 1e3 / requests;
        s.sleeps_per_kreq = (after.sleeps - before.sleeps) as f64 * 1e3 / requests;
    }
    Ok(samples)
}

/// `SET: 123456.79 requests per second, p50=0.199 msec` → ("SET", 123456.79, 0.199).
fn parse_line(line: &str) -> Option<(String, f64, f64)> {
    let (test, rest) = line.trim().split_once(": ")?;
    let rps = rest
        .strip_suffix(" msec")?
        .split_once(" requests per second, p50=")?;
    Some((test.to_string(), rps.0.parse().ok()?, rps.1.parse().ok()?))
}
