//! The HTTP example's server against a tokio one under wrk, side by side in one run.
//!
//! ```text
//! cargo bench -p sockloop-benches --bench http                                 # about 70 s; a table on stdout
//! cargo bench -p sockloop-benches --bench http -- --rounds 3 --duration 2      # shorter
//! cargo bench -p sockloop-benches --bench http -- --conns 100,1000 --depth 1   # other load shapes
//! cargo bench -p sockloop-benches --bench http -- --help                       # every option
//! ```
//!
//! Both servers run the same protocol code, the example's sans-I/O session
//! (`examples/http_server/session.rs`: httparse, the same responses written with `write!`), so
//! the comparison is of what lies underneath: the sockloop reactor with the example's handler
//! and listener options, against a tokio current-thread runtime with a task per connection
//! (read into a per-connection buffer, feed the session, one `write_all` of the responses). The
//! sockloop side also arms its first-bytes timeout per connection and stamps its idle timeout
//! per read; the tokio side has no timeouts (its `time` feature is not enabled here).
//!
//! Each server is this binary re-executed with `SOCKLOOP_HTTP_SERVER=sockloop|tokio`, pinned to
//! CPU 0 (`taskset -c 0`); it prints its address and serves until its stdin closes. wrk runs
//! pinned to CPU 1, one thread. A case is a connection count and a pipelining depth (depth 1:
//! wrk's ordinary keep-alive load, one request in flight per connection; depth N: a Lua script
//! sends N requests per write, as `wrk`'s `pipeline.lua` does). Every case is measured in
//! several rounds, each running both servers back to back in an order that alternates from
//! round to round; the table gives medians over the rounds, and ratios as the median of the
//! per-round ratios with their range. Server CPU per request is the growth of
//! `/proc/PID/task/*/schedstat` (nanoseconds on CPU) over the wrk run divided by the requests
//! wrk completed.
//!
//! Without wrk on the PATH the benchmark says so and exits successfully
//! (`apt-get install wrk` installs it).

#[path = "common/mod.rs"]
mod common;
#[path = "../examples/http_server/handler.rs"]
mod handler;
/// The one item of `examples/common/proxy.rs` the handler uses (the rest needs a feature this
/// crate does not have): how a connection's peer is logged.
mod proxy {
    pub fn peer(cx: &sockloop::Context<'_>) -> String {
        match cx.peer_addr() {
            Ok(peer) => peer.to_string(),
            Err(e) => format!("(peer address unknown: {e})"),
        }
    }
}
#[path = "../examples/http_server/request.rs"]
mod request;
#[path = "../examples/http_server/response.rs"]
mod response;
#[path = "../examples/http_server/session.rs"]
mod session;

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Parser;

use common::cli::{self, CargoBench};
use common::out::target_dir;
use common::pin::{self, CLIENT_CPU as WRK_CPU, SERVER_CPU};
use common::process::{self, ServerProcess};
use common::stats::{median, Ratio};
use handler::{Config, HttpConn};
use request::Limits;
use session::{Next, Session};

/// Set in a child's environment to make this binary a server of that kind.
const SERVER_ENV: &str = "SOCKLOOP_HTTP_SERVER";
/// Warm-up run of each server before the first round.
const WARMUP: Duration = Duration::from_secs(1);
/// The example's defaults.
const CONFIG: Config = Config {
    limits: Limits {
        max_head: 8 << 10,
        max_body: 1 << 20,
    },
    header_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(60),
    lingering_time: Duration::from_secs(30),
};
const KINDS: [&str; 2] = ["sockloop", "tokio"];

/// sockloop's HTTP example against a tokio server under wrk.
#[derive(Parser, Debug)]
#[command(name = "http")]
struct Args {
    /// Rounds: each case runs this many times on each server; medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of each wrk run.
    #[arg(long, default_value_t = 3)]
    duration: u64,
    /// Connection counts (wrk -c).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    conns: Vec<usize>,
    /// Pipelining depths: requests per write on each connection (1: none).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    depth: Vec<usize>,
    /// Do not pin the servers and wrk to separate CPUs.
    #[arg(long)]
    no_pin: bool,
    #[command(flatten)]
    cargo: CargoBench,
}

fn main() -> ExitCode {
    if let Ok(kind) = std::env::var(SERVER_ENV) {
        return cli::exit_code(&format!("http bench server {kind}"), serve(&kind));
    }
    let args = Args::parse();
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("http bench: skipped: wrk is not installed (apt-get install -y wrk)");
        return ExitCode::SUCCESS;
    }
    cli::exit_code("http bench", run(&args))
}

// ---------------------------------------------------------------------------------------------
// The servers (child processes)
// ---------------------------------------------------------------------------------------------

/// Serves `kind` on 127.0.0.1:0 until stdin closes; the first stdout line is the address.
fn serve(kind: &str) -> io::Result<()> {
    let addr: SocketAddr = "127.0.0.1:0".parse().map_err(io::Error::other)?;
    match kind {
        "sockloop" => process::serve_sockloop(|reactor| {
            let (_, bound) =
                reactor.listen_with(addr, CONFIG.listen_options(), || HttpConn::new(&CONFIG))?;
            Ok(bound)
        }),
        "tokio" => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                println!("{}", listener.local_addr()?);
                process::exit_when_stdin_closes();
                loop {
                    let (stream, _) = listener.accept().await?;
                    stream.set_nodelay(true)?;
                    tokio::spawn(tokio_conn(stream, CONFIG.limits));
                }
            })
        }
        _ => Err(io::Error::other("unknown kind (sockloop or tokio)")),
    }
}

/// One tokio connection: the same session as the sockloop handler, fed from the socket.
async fn tokio_conn(mut stream: tokio::net::TcpStream, limits: Limits) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut session = Session::new(limits);
    let mut buf = vec![0u8; 16 << 10];
    let mut held: Vec<u8> = Vec::new(); // a partial head, kept for the next read
    let mut out: Vec<u8> = Vec::with_capacity(4 << 10);
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let from_held = !held.is_empty();
        if from_held {
            held.extend_from_slice(&buf[..n]);
        }
        let input = if from_held { &held[..] } else { &buf[..n] };
        let Ok(progress) = session.feed(input, &mut out) else {
            return;
        };
        if from_held {
            held.drain(..progress.consumed);
        } else {
            held.extend_from_slice(&buf[progress.consumed..n]);
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if matches!(progress.next, Next::Close(_)) || held.len() > limits.max_head {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------

/// What one wrk run measured.
#[derive(Clone, Copy, Debug)]
struct Sample {
    requests_per_s: f64,
    /// Server CPU nanoseconds per request.
    cpu_ns_per_request: f64,
    /// wrk's 99th-percentile latency; `None` when it printed 0 (see `measure`).
    p99_ms: Option<f64>,
}

/// Runs wrk against `server` for `duration` and reads its report.
fn measure(
    server: &ServerProcess,
    conns: usize,
    script: Option<&PathBuf>,
    duration: Duration,
    pin: bool,
) -> Result<Sample, String> {
    let mut cmd = pin::command("wrk", pin.then_some(WRK_CPU));
    cmd.args(["-t1", "--latency", "--timeout", "5s"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)));
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    cmd.arg(format!("http://{}/", server.addr));
    let before = server
        .cpu_ns()
        .map_err(|e| format!("server CPU time: {e}"))?;
    let output = cmd.output().map_err(|e| format!("cannot run wrk: {e}"))?;
    let cpu = server
        .cpu_ns()
        .map_err(|e| format!("server CPU time: {e}"))?
        - before;
    let report = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // Any error or non-2xx answer means the servers are not doing the same work.
    if let Some(line) = report
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
    {
        return Err(format!("wrk reported {:?}:\n{report}", line.trim()));
    }
    let field = |prefix: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or_else(|| format!("no {prefix:?} in wrk's report:\n{report}"))
    };
    let requests_per_s: f64 = field("Requests/sec:")?
        .parse()
        .map_err(|e| format!("Requests/sec: {e}"))?;
    let total: f64 = report
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no request count in wrk's report:\n{report}"))?;
    let p99_ms = latency_ms(field("99%")?).ok_or_else(|| format!("bad p99 in:\n{report}"))?;
    // wrk 4.1 sometimes prints a 99th percentile of 0.00us for pipelined runs (its histogram,
    // which times a whole pipelined batch, loses the samples); such a figure is no measurement.
    let p99_ms = Some(p99_ms).filter(|&ms| ms > 0.0);
    Ok(Sample {
        requests_per_s,
        cpu_ns_per_request: cpu as f64 / total.max(1.0),
        p99_ms,
    })
}

/// A wrk latency ("850.00us", "2.08ms", "1.02s") in milliseconds.
fn latency_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * scale)
}

/// The Lua script that makes wrk pipeline `depth` requests per write (wrk's `pipeline.lua`).
fn pipeline_script(depth: usize) -> io::Result<PathBuf> {
    let dir = target_dir().join("bench-http");
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("pipeline{depth}.lua"));
    let script = format!(
        "-- {depth} requests per write, as a pipelining client sends them\n\
         init = function(args)\n\
         \x20  local r = {{}}\n\
         \x20  for i = 1, {depth} do r[i] = wrk.format(nil, \"/\") end\n\
         \x20  req = table.concat(r)\n\
         end\n\
         request = function() return req end\n"
    );
    fs::write(&path, script)?;
    Ok(path)
}

fn run(args: &Args) -> Result<(), String> {
    let pin = !args.no_pin && pin::unavailable().is_none();
    let rounds = args.rounds.max(1);
    let duration = Duration::from_secs(args.duration.max(1));
    println!(
        "http bench: sockloop http_server vs tokio current-thread, wrk -t1, {rounds} rounds of {duration:?}; {}",
        if pin {
            format!("servers on CPU {SERVER_CPU}, wrk on CPU {WRK_CPU}")
        } else {
            "not pinned".to_string()
        }
    );
    let mut servers = Vec::new();
    for kind in KINDS {
        let server = ServerProcess::spawn(SERVER_ENV, kind, pin.then_some(SERVER_CPU))
            .map_err(|e| e.to_string())?;
        measure(&server, 100, None, WARMUP, pin).map_err(|e| format!("{kind} warm-up: {e}"))?;
        servers.push(server);
    }

    println!();
    println!("| connections | depth | sockloop req/s | tokio req/s | req/s sockloop/tokio | sockloop CPU µs/req | tokio CPU µs/req | CPU sockloop/tokio | p99 ms sockloop / tokio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &conns in &args.conns {
        for &depth in &args.depth {
            let script = match depth {
                0 | 1 => None,
                d => Some(pipeline_script(d).map_err(|e| format!("write the wrk script: {e}"))?),
            };
            // samples[kind][round]
            let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); KINDS.len()];
            for round in 0..rounds {
                // Alternate which server goes first, so a drift in the machine's load over a
                // round does not always favour the same one.
                let order: Vec<usize> = if round % 2 == 0 {
                    vec![0, 1]
                } else {
                    vec![1, 0]
                };
                for k in order {
                    let sample = measure(&servers[k], conns, script.as_ref(), duration, pin)
                        .map_err(|e| format!("{} c{conns} depth {depth}: {e}", KINDS[k]))?;
                    samples[k].push(sample);
                }
            }
            // Every round measured both servers, so none of these is empty.
            let med = |k: usize, f: fn(&Sample) -> f64| {
                median(samples[k].iter().map(f).collect()).unwrap_or(f64::NAN)
            };
            let ratios = |f: fn(&Sample) -> f64| {
                Ratio::of(
                    (0..rounds)
                        .map(|i| f(&samples[0][i]) / f(&samples[1][i]))
                        .collect(),
                )
            };
            let rps = |s: &Sample| s.requests_per_s;
            let cpu = |s: &Sample| s.cpu_ns_per_request;
            // The median of the p99s wrk did measure, or a dash.
            let p99 = |k: usize| {
                let got: Vec<f64> = samples[k].iter().filter_map(|s| s.p99_ms).collect();
                median(got).map_or_else(|| "—".to_string(), |m| format!("{m:.1}"))
            };
            println!(
                "| {conns} | {depth} | {:.0} | {:.0} | {} | {:.2} | {:.2} | {} | {} / {} |",
                med(0, rps),
                med(1, rps),
                ratios(rps),
                med(0, cpu) / 1e3,
                med(1, cpu) / 1e3,
                ratios(cpu),
                p99(0),
                p99(1),
            );
        }
    }
    println!();
    println!(
        "Medians over {rounds} rounds; ratios are sockloop/tokio per round, median [min–max]."
    );
    println!(
        "req/s above 1 and CPU per request below 1 favour sockloop. wrk shares the machine: when"
    );
    println!("it saturates its CPU first, req/s tie and server CPU per request is the figure that differs.");
    Ok(())
}
