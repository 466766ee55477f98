//! C10K: ten thousand concurrent connections to a sockloop echo server, every byte verified.
//!
//! ```text
//! cargo run --release --example c10k                        # the demo: server + 10,000 clients
//! cargo run --release --example c10k -- -c 1000 -d 4 -s 1024 --duration 10
//! cargo run --release --example c10k -- --addr 127.0.0.1:7878   # any external echo server
//! cargo run --release --example c10k -- -c 35000 --src-ips 127.0.0.2-127.0.0.40 \
//!     --procs 2 --server-procs 2                            # past one port range and one fd limit
//! cargo run --release --features tls --example c10k -- --tls            # 10,000 TLS connections
//! cargo run --release --features tls --example c10k -- --tls --churn -c 64 --duration 5
//! ```
//!
//! With no arguments it raises its open-files limit to the hard limit, starts a sockloop echo
//! server in a separate process (this binary again, with a hidden `--serve` flag), opens 10,000
//! connections from one client reactor (`examples/loadgen`), keeps one 64-byte message in
//! flight on each for a second of warmup and five measured seconds, and prints connections,
//! messages/s, MB/s, latency percentiles and the server's memory per connection. It exits
//! non-zero if any connection failed or any byte was lost, reordered or corrupted.
//!
//! Two limits decide how many connections fit, and the tool states both before trying: file
//! descriptors (one per socket, per process: `--procs` and `--server-procs` spread them over
//! processes) and ephemeral ports (one source address reaches one server address from the
//! ~28,000 ports of `ip_local_port_range`: `--src-ips` adds source addresses; all of 127/8 is
//! loopback).
//!
//! With `--procs P`, P worker processes (this binary with a hidden `--worker` flag) each run a
//! share of the connections. They report progress and results as text lines on stdout, and all
//! wait after connecting until the parent says `go`, so that their measured windows coincide and
//! the server's memory is sampled with every connection up. Latency histograms are merged
//! exactly.
//!
//! With `--tls` (cargo feature `tls`) every connection speaks TLS. The server c10k starts gets
//! a certificate for localhost from a throwaway CA made at startup (in a temporary directory,
//! removed at the end); against an external server (`--addr`), `--cacert FILE` is the CA to
//! verify it with (by default the one `echo_server --tls` writes) and `--server-name` the name.
//! Two modes:
//!
//! - **long-lived** (the default): the run above, over TLS: every connection makes its
//!   handshake in the connect phase, then carries verified echo load, and all are held open at
//!   once.
//! - **handshake-heavy** (`--churn`): `-c` slots, each connecting, making a full handshake (no
//!   session resumption), one verified round trip of `-s` bytes, a graceful close
//!   (`close_notify`), and connecting again, for `--duration` seconds or `--messages`
//!   connections in all; it reports connections per second. It works without `--tls` too, as
//!   a connect/close churn.
//!
//! The files: `main.rs` the demo, the limits and the started servers; `workers.rs` the worker
//! processes; `secure.rs` TLS or not; `churn.rs` the handshake-heavy mode; the load itself is
//! `examples/loadgen`.

mod churn;
#[path = "../loadgen/mod.rs"]
mod loadgen;
mod secure;
#[path = "../common/tls.rs"]
mod tls;
mod workers;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use loadgen::{LoadConfig, LoadReport, Phase};
use secure::Secure;
use sockloop::{ConnectOptions, Context, Handler, Input, ListenOptions, ReactorPool};

/// Descriptors a process keeps for itself (epoll, stdio, pipes, listeners, ...).
const FD_MARGIN: u64 = 100;
/// How long a server gets to finish its connections once told to stop.
const SERVER_GRACE: Duration = Duration::from_secs(5);
/// The hang guard of `--churn`: it fails if no connection finishes for this long.
const CHURN_STALL_LIMIT: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(
    about = "C10K: many concurrent echo connections, every byte verified",
    after_help = "With no --addr, a sockloop echo server is started in a separate process."
)]
struct Args {
    /// Target an external echo server instead of starting one.
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<SocketAddr>,
    /// Active connections (each keeps --depth messages in flight).
    #[arg(short = 'c', long, default_value_t = 10_000)]
    connections: usize,
    /// Extra connections that connect and then stay silent.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Messages in flight per active connection.
    #[arg(short, long, default_value_t = 1)]
    depth: usize,
    /// Bytes per message.
    #[arg(short, long, default_value_t = 64)]
    size: usize,
    /// Measured window in seconds (default 5, or unlimited up to 60 s with --messages).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<f64>,
    /// End the measured window after this many round trips in total.
    #[arg(long, value_name = "N")]
    messages: Option<u64>,
    /// Seconds of load before measuring.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_secs)]
    warmup: f64,
    /// Limit for the whole connect phase, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_secs)]
    connect_timeout: f64,
    /// Connects in progress at once (per client process).
    #[arg(long, value_name = "N", default_value_t = 256)]
    connect_concurrency: usize,
    /// A connect to a loopback server still pending after this many seconds is made again on
    /// a fresh socket (its SYN was dropped: the server's accept queue was full, and the kernel
    /// would resend it only after 1 s); 0 leaves retries to the kernel.
    #[arg(long, value_name = "SECS", default_value_t = 0.1, value_parser = parse_secs)]
    connect_retry: f64,
    /// Source addresses for client sockets: ranges and comma lists, e.g. 127.0.0.2-127.0.0.40.
    #[arg(long, value_name = "IPS", value_parser = parse_ips)]
    src_ips: Option<IpList>,
    /// Client processes to split the connections over.
    #[arg(long, default_value_t = 1)]
    procs: usize,
    /// Server processes to start (sharing the port with SO_REUSEPORT).
    #[arg(long, default_value_t = 1)]
    server_procs: usize,
    /// Reactor threads per server process (ReactorPool, SO_REUSEPORT).
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// Handshake-heavy mode: each of -c slots connects, makes one round trip of -s bytes,
    /// closes and connects again, for --duration seconds or --messages connections in all.
    #[arg(long)]
    churn: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    tls: tls::ClientArgs,
    /// Internal: the served certificate chain (with --serve and --tls).
    #[arg(long, hide = true, value_name = "FILE", requires = "tls")]
    cert: Option<PathBuf>,
    /// Internal: the served key (with --serve and --tls).
    #[arg(long, hide = true, value_name = "FILE", requires = "tls")]
    key: Option<PathBuf>,
    /// Internal: run an echo server on ADDR, print "listening ADDR", serve until stdin closes.
    #[arg(long, hide = true, value_name = "ADDR")]
    serve: Option<SocketAddr>,
    /// Internal: bind the served port with SO_REUSEPORT.
    #[arg(long, hide = true)]
    reuse_port: bool,
    /// Internal: run as client worker process number N, talking to the parent on stdio.
    #[arg(long, hide = true, value_name = "N")]
    worker: Option<usize>,
}

/// Seconds: a finite, non-negative number (a `Duration` can hold nothing else).
fn parse_secs(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..1e9).contains(&secs) => Ok(secs),
        Ok(_) => Err("expected a number of seconds from 0 up".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Source addresses from `--src-ips`.
#[derive(Clone, Debug)]
struct IpList(Vec<IpAddr>);

/// Parses `a.b.c.d-a.b.c.e` ranges (IPv4) and single addresses, separated by commas.
fn parse_ips(text: &str) -> Result<IpList, String> {
    let mut ips = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((first, last)) = part.split_once('-') else {
            ips.push(part.parse().map_err(|e| format!("{part:?}: {e}"))?);
            continue;
        };
        let parse = |s: &str| {
            s.trim()
                .parse::<Ipv4Addr>()
                .map_err(|e| format!("{s:?}: {e}"))
        };
        let (first, last) = (u32::from(parse(first)?), u32::from(parse(last)?));
        if last < first || last - first >= 65_536 {
            return Err(format!("{part:?}: not a range of at most 65,536 addresses"));
        }
        ips.extend((first..=last).map(|ip| IpAddr::V4(ip.into())));
    }
    if ips.is_empty() {
        return Err("no addresses".to_string());
    }
    Ok(IpList(ips))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if let Some(addr) = args.serve {
        serve(&args, addr).map(|()| true)
    } else if let Some(index) = args.worker {
        workers::worker(&args, index).map(|()| true)
    } else {
        demo(&args)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("c10k: {message}");
            ExitCode::from(2)
        }
    }
}

/// The load as configured on the command line, for `share` of `of` client processes, connecting
/// with `options`.
fn load_config(
    args: &Args,
    addr: SocketAddr,
    share: usize,
    of: usize,
    options: &ConnectOptions,
) -> LoadConfig {
    let split = |n: usize| n / of + usize::from(share < n % of);
    let secs = Duration::from_secs_f64;
    LoadConfig {
        addr,
        connections: split(args.connections),
        idle_connections: split(args.idle),
        depth: args.depth,
        size: args.size,
        warmup: secs(args.warmup),
        duration: match (args.duration, args.messages) {
            (Some(d), _) => Some(secs(d)),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(5)),
        },
        messages: args.messages.map(|m| split(m as usize) as u64),
        src_ips: args.src_ips.clone().map(|l| l.0).unwrap_or_default(),
        options: options.clone(),
        connect_timeout: secs(args.connect_timeout),
        connect_concurrency: args.connect_concurrency,
        // With TLS a connect completes only after the server accepted it and made the
        // handshake, so the window bounds the accept queue, and a handshake waiting for the
        // server's CPU is not a lost SYN (see loadgen's "How a run goes").
        connect_retry: (args.connect_retry > 0.0 && !args.tls.tls)
            .then(|| secs(args.connect_retry)),
        progress: !args.quiet && of == 1,
        ..LoadConfig::default()
    }
}

/// The whole demo: check the limits, start the server, run the clients, report.
fn demo(args: &Args) -> Result<bool, String> {
    let started = Instant::now();
    if args.procs == 0 || args.server_procs == 0 || args.server_threads == 0 {
        return Err("--procs, --server-procs and --server-threads must be at least 1".into());
    }
    if args.addr.is_some() && (args.server_procs > 1 || args.server_threads > 1) {
        return Err(
            "--server-procs and --server-threads shape the server c10k starts; \
                    with --addr none is started"
                .into(),
        );
    }
    if args.churn && (args.procs > 1 || args.idle > 0) {
        return Err("--churn runs in one client process, without --idle connections".into());
    }
    if args.addr.is_none() && args.tls.cacert.is_some() {
        return Err(
            "--cacert is for an external server (--addr): the server c10k starts \
                    has a certificate from a CA c10k makes"
                .into(),
        );
    }
    // Every socket is a descriptor; the soft limit may be raised up to the hard one.
    let fds = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("cannot raise the open-files limit: {e}"))?;
    check_limits(args, fds)?;
    let secure = Secure::new(args)?;

    let mut servers = Vec::new();
    let addr = match args.addr {
        Some(addr) => addr,
        None => start_servers(args, &secure, &mut servers)?,
    };
    if args.churn {
        let result = run_churn(args, addr, &secure);
        let stopped = stop_servers(servers);
        let report = result?;
        stopped?;
        println!(
            "c10k --churn: {} slots to {addr}{}; {} B per connection",
            args.connections,
            if args.tls.tls {
                " over TLS (full handshakes)"
            } else {
                ""
            },
            args.size
        );
        print!("{}", report.summary());
        println!("wall time:   {:.1} s", started.elapsed().as_secs_f64());
        if !report.ok() {
            println!("c10k: FAILED (see the problems above)");
        }
        return Ok(report.ok());
    }
    let result = run_clients(args, addr, &servers, &secure);
    let stopped = stop_servers(servers);
    let (report, rss) = result?;
    stopped?;

    print_summary(args, addr, &report, rss, started.elapsed());
    Ok(report.ok())
}

/// The handshake-heavy mode, in this process.
fn run_churn(args: &Args, addr: SocketAddr, secure: &Secure) -> Result<churn::ChurnReport, String> {
    let cfg = churn::ChurnConfig {
        addr,
        options: secure.options.clone(),
        slots: args.connections,
        size: args.size,
        duration: match (args.duration, args.messages) {
            (Some(d), _) => Some(Duration::from_secs_f64(d)),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(5)),
        },
        total: args.messages,
        src_ips: args.src_ips.clone().map(|l| l.0).unwrap_or_default(),
        stall_limit: CHURN_STALL_LIMIT,
    };
    churn::run_churn(&cfg).map_err(|e| format!("churn failed: {e}"))
}

/// States what the open-files limit and the port range allow, and refuses what cannot work.
fn check_limits(args: &Args, fds: u64) -> Result<(), String> {
    let total = args.connections + args.idle;
    let per_proc = fds.saturating_sub(FD_MARGIN) as usize;
    let per_client = total.div_ceil(args.procs);
    let (low, high) = port_range();
    let ports = (high - low + 1) as usize;
    let sources = args.src_ips.as_ref().map_or(1, |l| l.0.len());
    let per_source = total.div_ceil(sources);
    println!(
        "c10k: {total} connections from {} client process(es): {per_client} each; \
         the open-files limit ({fds}) allows about {per_proc} per process; \
         ports {low}-{high} allow {ports} per source address, {sources} source address(es) \
         → {per_source} each",
        args.procs
    );
    let mut problems = Vec::new();
    if per_client > per_proc {
        problems.push(format!(
            "{per_client} connections per client process exceed the open-files limit \
             (about {per_proc} per process): use --procs {} or more",
            total.div_ceil(per_proc)
        ));
    }
    if args.addr.is_none() {
        // SO_REUSEPORT spreads connections by hash, so allow a few percent of imbalance.
        let per_server = total.div_ceil(args.server_procs) * 103 / 100;
        if per_server > per_proc {
            problems.push(format!(
                "about {per_server} connections per server process exceed the open-files \
                 limit (about {per_proc} per process): use --server-procs {} or more",
                (total * 103 / 100).div_ceil(per_proc)
            ));
        }
    }
    if per_source > ports {
        problems.push(format!(
            "{per_source} connections per source address exceed the {ports} ephemeral ports: \
             use --src-ips with at least {} addresses, e.g. --src-ips 127.0.0.2-127.0.0.{}",
            total.div_ceil(ports),
            1 + total.div_ceil(ports)
        ));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n      ")),
    }
}

/// The kernel's ephemeral port range (the default if it cannot be read).
fn port_range() -> (u32, u32) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range");
    let parsed = text.ok().and_then(|t| {
        let mut it = t.split_whitespace().map(|n| n.parse().ok());
        Some((it.next()??, it.next()??))
    });
    parsed.unwrap_or((32768, 60999))
}

/// A server process, stopped by closing its stdin.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Starts `--server-procs` server processes on one port; returns its address.
fn start_servers(
    args: &Args,
    secure: &Secure,
    servers: &mut Vec<Server>,
) -> Result<SocketAddr, String> {
    let reuse = args.server_procs > 1 || args.server_threads > 1;
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 0));
    for _ in 0..args.server_procs {
        let mut cmd = Command::new(self_exe()?);
        cmd.arg("--serve")
            .arg(addr.to_string())
            .arg("--server-threads")
            .arg(args.server_threads.to_string());
        if reuse {
            cmd.arg("--reuse-port");
        }
        cmd.args(&secure.server_args);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let stdin = child.stdin.take();
        servers.push(Server { child, stdin });
        addr = line
            .strip_prefix("listening ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| format!("the server did not start (it said {line:?})"))?;
    }
    Ok(addr)
}

fn stop_servers(servers: Vec<Server>) -> Result<(), String> {
    for mut server in servers {
        drop(server.stdin.take()); // EOF: shut down gracefully
        let deadline = Instant::now() + SERVER_GRACE + Duration::from_secs(2);
        loop {
            match server.child.try_wait() {
                Ok(Some(status)) if status.success() => break,
                Ok(Some(status)) => return Err(format!("the server exited with {status}")),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = server.child.kill();
                    let _ = server.child.wait();
                    return Err("the server did not stop in time; killed".into());
                }
            }
        }
    }
    Ok(())
}

fn self_exe() -> Result<std::path::PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))
}

/// Resident memory of a process, in bytes (`VmRSS` of /proc/PID/status).
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Total resident memory of the started servers (`None` for an external server).
fn servers_rss(servers: &[Server]) -> Option<u64> {
    if servers.is_empty() {
        return None;
    }
    servers.iter().map(|s| rss(s.child.id())).sum()
}

/// Open descriptors of the started servers (each accepted connection holds one).
fn servers_fds(servers: &[Server]) -> usize {
    let count = |s: &Server| {
        std::fs::read_dir(format!("/proc/{}/fd", s.child.id())).map_or(0, |d| d.count())
    };
    servers.iter().map(count).sum()
}

/// Waits (at most 2 s) until the servers hold `expected` more descriptors than `baseline`: a
/// client's connect completes with the handshake, before the server has accepted, so memory
/// sampled at once could miss the last few thousand connections.
fn wait_accepted(servers: &[Server], baseline: usize, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while servers_fds(servers) < baseline + expected && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

/// Server memory before connecting and with every connection up.
type RssPair = Option<(u64, u64)>;

/// Runs the clients in this process, or in `--procs` workers, and samples the server's memory
/// before connecting and once every connection is up (and accepted).
fn run_clients(
    args: &Args,
    addr: SocketAddr,
    servers: &[Server],
    secure: &Secure,
) -> Result<(LoadReport, RssPair), String> {
    let before = servers_rss(servers);
    let baseline = servers_fds(servers);
    let expected = args.connections + args.idle;
    let mut after = None;
    let mut sample = || {
        if !servers.is_empty() {
            wait_accepted(servers, baseline, expected);
            after = servers_rss(servers);
        }
    };
    let report = if args.procs == 1 {
        let cfg = load_config(args, addr, 0, 1, &secure.options);
        let mut on_phase = |phase| {
            if phase == Phase::Connected {
                sample();
            }
        };
        loadgen::run_load(&cfg, &mut on_phase).map_err(|e| format!("load failed: {e}"))?
    } else {
        workers::run_workers(args, addr, secure, &mut sample)?
    };
    Ok((report, before.zip(after)))
}

fn print_summary(args: &Args, addr: SocketAddr, report: &LoadReport, rss: RssPair, wall: Duration) {
    let server = match args.addr {
        Some(_) => "external echo server".to_string(),
        None => format!(
            "sockloop echo server, {} process(es) x {} reactor thread(s)",
            args.server_procs, args.server_threads
        ),
    };
    println!(
        "c10k: {} active + {} idle {}connections to {addr} ({server}); {} B messages, \
         depth {}, {} client process(es)",
        args.connections,
        args.idle,
        if args.tls.tls { "TLS " } else { "" },
        args.size,
        args.depth,
        args.procs
    );
    print!("{}", report.summary());
    if let Some((before, after)) = rss {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let per_conn = after.saturating_sub(before) as f64 / report.established.max(1) as f64;
        println!(
            "server RSS:  {:.1} MiB idle, {:.1} MiB with {} connections = {per_conn:.0} B per \
             connection (user space; kernel socket buffers are not in RSS)",
            mib(before),
            mib(after),
            report.established
        );
    }
    println!("wall time:   {:.1} s", wall.as_secs_f64());
    if !report.ok() {
        println!("c10k: FAILED (see the problems above)");
    }
}

/// The echo protocol of the started server.
struct Echo;

impl Handler for Echo {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }
}

/// The hidden `--serve` mode: `--server-threads` reactors on `addr`, serving TLS with `--cert`
/// and `--key` if `--tls` is given, until stdin closes (the parent closes it to stop us, and so
/// does the parent's death).
fn serve(args: &Args, addr: SocketAddr) -> Result<(), String> {
    let threads = args.server_threads;
    let reuse = args.reuse_port || threads > 1;
    let tls = tls::ServerArgs {
        tls: args.tls.tls,
        cert: args.cert.clone(),
        key: args.key.clone(),
    };
    if tls.tls && (tls.cert.is_none() || tls.key.is_none()) {
        return Err("--serve --tls needs --cert and --key".into());
    }
    let options = match tls::server(&tls, "c10k", &[])? {
        Some(tls) => tls.listen_options(ListenOptions::new()),
        None => ListenOptions::new(),
    };
    // The first reactor binds (perhaps port 0); the others reuse the port it got.
    let shared = Arc::new(Mutex::new(addr));
    let (pool, bound) = ReactorPool::spawn(threads.max(1), move |_, reactor| {
        let mut addr = shared.lock().unwrap_or_else(|e| e.into_inner());
        let options = options.clone().reuse_port(reuse);
        let (_, bound) = reactor.listen_with(*addr, options, || Echo)?;
        *addr = bound;
        Ok(bound)
    })
    .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
    println!("listening {}", bound[0]);
    io::stdout().flush().map_err(|e| e.to_string())?;
    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    pool.shutdown(SERVER_GRACE)
        .map_err(|e| format!("shutdown: {e}"))?;
    pool.join().map(drop).map_err(|e| format!("server: {e}"))
}
