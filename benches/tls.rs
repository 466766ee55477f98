//! TLS echo servers side by side: sockloop (`ListenOptions::tls`) against tokio-rustls on
//! tokio's current-thread runtime (a task per connection, `TlsAcceptor`), both on rustls 0.23
//! with the ring provider and the same `ServerConfig`, so that the difference is the reactor.
//!
//! ```text
//! cargo bench -p sockloop-benches --bench tls                                  # everything, about 4 minutes
//! cargo bench -p sockloop-benches --bench tls -- --quick                       # a smoke run, under a minute
//! cargo bench -p sockloop-benches --bench tls -- --rounds 7 --cases handshake  # one case, more rounds
//! cargo bench -p sockloop-benches --bench tls -- --help                        # every option
//! cargo bench -p sockloop-benches --bench tls -- --servers sockloop,baseline \
//!     --baseline ../old/target/release/deps/tls-<hash>                         # A/B against another build
//! ```
//!
//! Three cases, each measured in several rounds; a round runs each server once, back to back,
//! in an order that rotates from round to round, and the tables give medians over the rounds
//! with their ranges, and the median of the per-round ratios sockloop/tokio with theirs:
//!
//! - **Handshakes** (`handshake`): the client keeps 64 connections in flight (`--hs-conns`);
//!   each connects, completes a full TLS 1.3 handshake (X25519, an ECDSA P-256 signature by the
//!   server; no resumption: the server keeps no session cache and sends no tickets, the client
//!   stores none), sends 64 bytes, waits for the echo, sends its `close_notify` and FIN, and
//!   waits for the server's; a new connection takes its place. The figure is handshakes per
//!   second of server CPU: the handshakes the server completed in the window (its own count)
//!   over the CPU time it spent in it. Target: sockloop >= 1.0x tokio-rustls.
//! - **Bulk** (`bulk`): 1 and 8 long-lived connections (`--bulk-conns`), each keeping 256 KiB,
//!   and in a second set of rows 1 MiB, of plaintext in flight (`--bulk-windows`), written
//!   64 KiB at a time (`--bulk-chunk`). The figure is server CPU per GiB echoed (the server's
//!   own count of plaintext bytes). Target: sockloop <= 1.0x tokio-rustls. The 1 MiB rows are
//!   there because a deeper pipeline lets more output wait in the server: sockloop queues it
//!   (up to its high watermark), tokio-rustls's `write_all` waits instead, and the two differ
//!   most there.
//! - **Idle memory** (`idle`): 10,000 connections (`--idle`) handshaken, 200 handshakes in
//!   flight at a time (`--idle-pending`), then left idle; the server's `VmRSS` growth from
//!   before the first connection, divided by the connections, once all of them completed their
//!   handshake (the server's count) and the RSS stopped moving; then again after each sent one
//!   64-byte message and got its echo. No target: the table compares the two.
//!
//! One measurement is a fresh server process: this binary re-executed with
//! `SOCKLOOP_TLS_SERVER=<kind>`, pinned to CPU 0 with `taskset -c 0`; it prints its address
//! (port 0) and serves until its stdin closes. Server CPU time is the first field of
//! `/proc/PID/task/*/schedstat` (nanoseconds on a CPU, user and kernel, all threads), read at
//! the window's edges together with the server's counts (asked through its stdin; see
//! `tls/servers.rs`). The self-signed certificate is made once per run and given to every
//! server.
//!
//! **The client** (`tls/client.rs`) is one thread of this process on CPU 1: a mio loop driving
//! rustls client sessions directly. Not a sockloop client, so that a defect of sockloop's TLS
//! layer counts on one side of the comparison only; not a thread per connection, because on
//! one CPU the client is the bottleneck, and threads would add switches and stacks to its cost
//! per handshake. It does not verify the server's certificate (nothing changes for the server;
//! it saves the client two ECDSA verifications per handshake), reads its sockets 64 KiB at a
//! time and feeds rustls from memory. It loads both servers identically. Connections come from
//! 127.0.0.2, 127.0.0.3, ... in turn (`--sources`), the kernel choosing the port per address
//! pair at `connect` (`IP_BIND_ADDRESS_NO_PORT`), which keeps every source address within its
//! 28,232 ephemeral ports (32768-60999) to each server. The bench, and so the client, may
//! hold up to 20,000 open files (this machine's limit): `--idle` plus the client's other
//! connections must stay below it.
//!
//! **The tokio-rustls server** is the echo a user of tokio-rustls writes: accept, spawn, accept
//! the TLS session, then `read` into a buffer and `write_all` what was read, `shutdown` at the
//! end of the stream. Its buffer is a 16 KiB `Vec` allocated once the handshake is done
//! (`--tokio-buf`). Why 16 KiB, and why it is fair:
//!
//! - tokio-rustls's `poll_read` returns at most one record's plaintext per call, and a TLS
//!   record carries at most 16 KiB: with a smaller buffer each record takes several reads and
//!   is written back as several records (each its own `write` system call and AEAD seal), so
//!   the bulk case would measure the buffer, not the reactor. A larger one gains nothing.
//! - sockloop's reads go to one shared 64 KiB buffer, and an idle sockloop connection holds no
//!   buffer of its own: that is the design the memory case measures. The tokio server's buffer
//!   is a `vec![0; 16384]` per connection, and it is resident: glibc's `calloc` skips the
//!   zeroing only for memory it has just taken from the kernel, and 10,000 of these mostly come
//!   from heap it already holds, so it writes them. Measured: 25.3 KB per idle connection with
//!   the 16 KiB buffer, 10.7 KB with `--tokio-buf 1024` (tokio's README echo). Both figures
//!   belong in a comparison: the first is this server's, the second the least a task per
//!   connection with its own buffer costs.
//!
//! Results: one table per case on stdout, `target/bench-tls/tls.csv` (medians, ranges,
//! ratios) and `target/bench-tls/tls-rounds.csv` (every round). The machine is noisy: compare
//! the ratios of one run, and repeat a run before trusting a small difference.

#[path = "tls/client.rs"]
mod client;
#[path = "common/mod.rs"]
mod common;
#[path = "tls/config.rs"]
mod config;
#[path = "tls/report.rs"]
mod report;
#[path = "tls/servers.rs"]
mod servers;

use std::fs;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use client::{Client, Role};
use common::cli::CargoBench;
use common::cpu;
use common::out::target_dir;
use common::pin::{self, CLIENT_CPU, SERVER_CPU};
use common::process::ServerProcess;
use report::{Metric, Results, Row, Target};
use servers::Kind;

/// Set in a child's environment to make this binary a TLS echo server of that kind.
const SERVER_ENV: &str = "SOCKLOOP_TLS_SERVER";

/// How long a setup phase (connecting, handshaking, settling) may take before the measurement
/// fails.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

/// TLS echo servers side by side (sockloop, tokio-rustls): full handshakes per CPU-second,
/// CPU per GiB echoed, memory per idle connection.
#[derive(Parser, Debug)]
#[command(name = "tls")]
struct Args {
    /// Rounds: every case is measured this many times on every server, back to back in
    /// rotating order [default 5; 3 with --quick]
    #[arg(long)]
    rounds: Option<usize>,
    /// A smoke run of under a minute: 3 rounds, 0.2 s warm-up, 1 s windows, 2,000 idle
    /// connections (each still overridden by its own option)
    #[arg(long)]
    quick: bool,
    /// Cases to run: handshake, bulk, idle
    #[arg(long, value_delimiter = ',', default_value = "handshake,bulk,idle")]
    cases: Vec<String>,
    /// Seconds of load before each measured window [default 0.5; 0.2 with --quick]
    #[arg(long)]
    warmup: Option<f64>,
    /// Seconds of each measured window (handshake and bulk cases) [default 3; 1 with --quick]
    #[arg(long)]
    window: Option<f64>,
    /// Handshake case: connections in flight
    #[arg(long, default_value_t = 64)]
    hs_conns: usize,
    /// Bulk case: connection counts, one row each
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    bulk_conns: Vec<usize>,
    /// Bulk case: plaintext bytes each connection keeps in flight, one row per value and
    /// connection count
    #[arg(long, value_delimiter = ',', default_value = "262144,1048576")]
    bulk_windows: Vec<usize>,
    /// Bulk case: plaintext bytes per client write
    #[arg(long, default_value_t = 64 * 1024)]
    bulk_chunk: usize,
    /// Idle case: connections [default 10000; 2000 with --quick]
    #[arg(long)]
    idle: Option<usize>,
    /// Idle case: handshakes in flight while connecting
    #[arg(long, default_value_t = 200)]
    idle_pending: usize,
    /// Source addresses of the client: 127.0.0.2 and the next ones
    #[arg(long, default_value_t = 8)]
    sources: usize,
    /// The tokio server's read buffer in bytes
    #[arg(long, default_value_t = servers::DEFAULT_TOKIO_BUF)]
    tokio_buf: usize,
    /// Servers to compare: sockloop, tokio, and baseline with --baseline
    #[arg(long, value_delimiter = ',')]
    servers: Option<Vec<String>>,
    /// A tls bench binary built from this bench's code against another version of sockloop:
    /// the server `baseline` is its sockloop server, and the tables add sockloop/baseline
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Directory for the CSV files [default: target/bench-tls]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not pin the servers and the client to separate CPUs
    #[arg(long)]
    no_pin: bool,
    #[command(flatten)]
    cargo: CargoBench,
}

impl Args {
    fn pick<T>(&self, given: Option<T>, normal: T, quick: T) -> T {
        given.unwrap_or(if self.quick { quick } else { normal })
    }

    fn rounds(&self) -> usize {
        self.pick(self.rounds, 5, 3).max(1)
    }

    fn warmup(&self) -> f64 {
        self.pick(self.warmup, 0.5, 0.2).max(0.0)
    }

    fn window(&self) -> f64 {
        self.pick(self.window, 3.0, 1.0).max(0.1)
    }

    fn idle(&self) -> usize {
        self.pick(self.idle, 10_000, 2_000).max(1)
    }
}

/// `bytes` as "256 KiB", "1 MiB", or bytes.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// One load shape.
#[derive(Clone, Copy, Debug)]
enum Case {
    Handshake,
    /// Connections, and plaintext bytes in flight on each.
    Bulk(usize, usize),
    Idle,
}

impl Case {
    fn title(self, args: &Args) -> String {
        match self {
            Case::Handshake => format!(
                "Full TLS 1.3 handshakes, {} connections in flight",
                args.hs_conns
            ),
            Case::Bulk(1, w) => format!("Bulk echo, 1 connection, {} in flight", size(w)),
            Case::Bulk(n, w) => format!("Bulk echo, {n} connections, {} in flight each", size(w)),
            Case::Idle => format!(
                "Memory per idle TLS connection, {} connections",
                args.idle()
            ),
        }
    }

    fn metrics(self) -> Vec<Metric> {
        let m = |name, key, digits, target| Metric {
            name,
            key,
            digits,
            target,
        };
        match self {
            Case::Handshake => vec![
                m(
                    "handshakes per server CPU-second",
                    "handshakes_per_cpu_s",
                    0,
                    Some(Target::AtLeast(1.0)),
                ),
                m(
                    "server CPU µs per handshake",
                    "cpu_us_per_handshake",
                    1,
                    None,
                ),
                m("handshakes/s", "handshakes_per_s", 0, None),
                m("server CPU (cores)", "server_cpu", 2, None),
                m("client CPU (cores)", "client_cpu", 2, None),
            ],
            Case::Bulk(..) => vec![
                m(
                    "server CPU ms per GiB echoed",
                    "cpu_ms_per_gib",
                    0,
                    Some(Target::AtMost(1.0)),
                ),
                m("MiB/s echoed", "mib_per_s", 0, None),
                m("server CPU (cores)", "server_cpu", 2, None),
                m("client CPU (cores)", "client_cpu", 2, None),
            ],
            Case::Idle => vec![
                m(
                    "RSS bytes per connection, after the handshake",
                    "rss_per_conn_handshaken",
                    0,
                    None,
                ),
                m(
                    "RSS bytes per connection, after one echo",
                    "rss_per_conn_echoed",
                    0,
                    None,
                ),
            ],
        }
    }

    fn csv_name(self) -> String {
        match self {
            Case::Handshake => "handshake".to_string(),
            Case::Bulk(n, w) => format!("bulk-{n}x{}k", w / 1024),
            Case::Idle => "idle".to_string(),
        }
    }
}

/// What every measurement needs.
struct Bench {
    args: Args,
    kinds: Vec<Kind>,
    baseline: Option<PathBuf>,
    pin: bool,
    client_config: std::sync::Arc<sockloop::rustls::ClientConfig>,
}

impl Bench {
    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.args.warmup())
    }

    fn window(&self) -> Duration {
        Duration::from_secs_f64(self.args.window())
    }

    fn spawn(&self, kind: Kind) -> io::Result<ServerProcess> {
        let cpu = self.pin.then_some(SERVER_CPU);
        servers::spawn(kind, SERVER_ENV, self.baseline.as_deref(), cpu)
    }

    fn client(&self, server: &ServerProcess, chunk: usize) -> io::Result<Client> {
        Client::new(
            server.addr,
            self.client_config.clone(),
            config::server_name(),
            self.args.sources,
            chunk,
        )
    }

    fn measure(&self, case: Case, kind: Kind) -> io::Result<Vec<f64>> {
        match case {
            Case::Handshake => self.handshakes(kind),
            Case::Bulk(n, w) => self.bulk(kind, n, w),
            Case::Idle => self.idle(kind),
        }
    }

    /// Handshakes per server CPU-second, CPU µs per handshake, handshakes/s, server CPU.
    fn handshakes(&self, kind: Kind) -> io::Result<Vec<f64>> {
        let mut server = self.spawn(kind)?;
        let mut client = self.client(&server, client::MESSAGE)?;
        client.cycling = true;
        for _ in 0..self.args.hs_conns.max(1) {
            client.open(Role::Cycle);
        }
        client.run_until(Instant::now() + self.warmup())?;
        let start = Edge::read(&mut server, "handshakes")?;
        let failed = client.stats.failed;
        client.run_until(start.at + self.window())?;
        let end = Edge::read(&mut server, "handshakes")?;
        check_failures(&client, failed)?;
        let span = end.since(&start);
        if span.count == 0 {
            return Err(io::Error::other("no handshake completed in the window"));
        }
        let count = span.count as f64;
        Ok(vec![
            count / span.cpu_s,
            span.cpu_s * 1e6 / count,
            count / span.wall_s,
            span.cpu_s / span.wall_s,
            span.client_s / span.wall_s,
        ])
    }

    /// Server CPU ms per GiB echoed, MiB/s, server CPU.
    fn bulk(&self, kind: Kind, conns: usize, window: usize) -> io::Result<Vec<f64>> {
        let mut server = self.spawn(kind)?;
        let chunk = self.args.bulk_chunk.max(1);
        let mut client = self.client(&server, chunk)?;
        let window = window.max(chunk);
        for _ in 0..conns.max(1) {
            client.open(Role::Stream { window });
        }
        client.run_until(Instant::now() + self.warmup())?;
        let start = Edge::read(&mut server, "count")?;
        let failed = client.stats.failed;
        client.run_until(start.at + self.window())?;
        let end = Edge::read(&mut server, "count")?;
        check_failures(&client, failed)?;
        let span = end.since(&start);
        if span.count == 0 {
            return Err(io::Error::other(format!(
                "stalled: the server echoed nothing in the window, {} bytes before it",
                start.count
            )));
        }
        let gib = span.count as f64 / (1u64 << 30) as f64;
        Ok(vec![
            span.cpu_s * 1e3 / gib,
            span.count as f64 / (1u64 << 20) as f64 / span.wall_s,
            span.cpu_s / span.wall_s,
            span.client_s / span.wall_s,
        ])
    }

    /// RSS growth per connection after the handshakes, and after one echo on each.
    fn idle(&self, kind: Kind) -> io::Result<Vec<f64>> {
        let mut server = self.spawn(kind)?;
        let pid = server.pid();
        let n = self.args.idle();
        let mut client = self.client(&server, client::MESSAGE)?;
        let rss_before = rss_bytes(pid)?;
        let deadline = Instant::now() + PHASE_TIMEOUT;
        let mut opened = 0;
        while opened < n {
            let settled = (client.stats.handshakes + client.stats.failed) as usize;
            while opened < n && opened - settled < self.args.idle_pending.max(1) {
                client.open(Role::Idle);
                opened += 1;
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other("timed out opening the idle connections"));
            }
            client.turn(Duration::from_millis(10))?;
        }
        client.run_until_true(deadline, "the idle handshakes", |c| {
            (c.stats.handshakes + c.stats.failed) as usize >= n
        })?;
        check_failures(&client, 0)?;
        let handshaken = wait_count(&mut server, &mut client, "handshakes", n as u64)?;
        let rss_handshaken = settled_rss(pid)?;
        client.echo_idle()?;
        client.run_until_true(deadline, "the idle echoes", |c| {
            c.stats.echoes as usize >= n
        })?;
        wait_count(
            &mut server,
            &mut client,
            "count",
            (n * client::MESSAGE) as u64,
        )?;
        let rss_echoed = settled_rss(pid)?;
        check_failures(&client, 0)?;
        let per_conn = |rss: u64| rss.saturating_sub(rss_before) as f64 / handshaken as f64;
        Ok(vec![per_conn(rss_handshaken), per_conn(rss_echoed)])
    }
}

/// A server's CPU time and one of its counts, and the client's CPU time (this thread), read at
/// a window's edge.
struct Edge {
    at: Instant,
    cpu_ns: u64,
    client_ns: u64,
    count: u64,
}

/// What happened between two edges.
struct Span {
    count: u64,
    cpu_s: f64,
    client_s: f64,
    wall_s: f64,
}

impl Edge {
    fn read(server: &mut ServerProcess, question: &str) -> io::Result<Edge> {
        let at = Instant::now();
        Ok(Edge {
            at,
            cpu_ns: server.cpu_ns()?,
            client_ns: cpu::this_thread_ns()?,
            count: ask(server, question)?,
        })
    }

    /// From `start` to this edge.
    fn since(&self, start: &Edge) -> Span {
        let seconds = |a: u64, b: u64| a.saturating_sub(b) as f64 / 1e9;
        Span {
            count: self.count.saturating_sub(start.count),
            cpu_s: seconds(self.cpu_ns, start.cpu_ns),
            client_s: seconds(self.client_ns, start.client_ns),
            wall_s: self.at.duration_since(start.at).as_secs_f64(),
        }
    }
}

/// The server's answer to `question` (`handshakes`, or `count`: plaintext bytes echoed).
fn ask(server: &mut ServerProcess, question: &str) -> io::Result<u64> {
    let line = server.ask(question)?;
    line.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("bad answer {line:?} to {question:?}")))
}

/// Serves the client until the server's count `question` reaches `target`; returns it.
fn wait_count(
    server: &mut ServerProcess,
    client: &mut Client,
    question: &str,
    target: u64,
) -> io::Result<u64> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let count = ask(server, question)?;
        if count >= target {
            return Ok(count);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!(
                "the server's {question} stayed at {count}, expected {target}"
            )));
        }
        client.turn(Duration::from_millis(10))?;
    }
}

/// A measurement with failed connections (beyond `before`) is not a measurement of the load
/// it was meant to be.
fn check_failures(client: &Client, before: u64) -> io::Result<()> {
    let failed = client.stats.failed - before;
    if failed == 0 {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{failed} connection(s) failed, first: {:?}",
        client.stats.errors
    )))
}

/// Resident set size in bytes (`VmRSS` of `/proc/PID/status`).
fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}

/// The RSS once it stopped moving (two readings 50 ms apart agree), or after 5 s.
fn settled_rss(pid: u32) -> io::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = rss_bytes(pid)?;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = rss_bytes(pid)?;
        if now == last || Instant::now() >= deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// The servers to run, from `--servers` (default sockloop, tokio, and baseline with a
/// baseline binary).
fn kinds(args: &Args) -> Result<Vec<Kind>, String> {
    let names = args.servers.clone().unwrap_or_else(|| {
        let mut names = vec!["sockloop".to_string(), "tokio".to_string()];
        if args.baseline.is_some() {
            names.push("baseline".to_string());
        }
        names
    });
    let mut kinds = Vec::new();
    for name in &names {
        let kind = Kind::parse(name.trim())
            .ok_or_else(|| format!("unknown server {name:?} (sockloop, tokio, baseline)"))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.contains(&Kind::Baseline) && args.baseline.is_none() {
        return Err("server baseline needs --baseline PATH".to_string());
    }
    Ok(kinds)
}

fn cases(args: &Args) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for name in &args.cases {
        match name.trim() {
            "handshake" => cases.push(Case::Handshake),
            "bulk" => {
                for &w in args.bulk_windows.iter().filter(|&&w| w > 0) {
                    for &n in args.bulk_conns.iter().filter(|&&n| n > 0) {
                        cases.push(Case::Bulk(n, w));
                    }
                }
            }
            "idle" => cases.push(Case::Idle),
            other => return Err(format!("unknown case {other:?} (handshake, bulk, idle)")),
        }
    }
    Ok(cases)
}

/// Pins this process (the client) to its CPU if it can; says what it did. Returns whether
/// the servers are to be pinned too.
fn place(no_pin: bool) -> bool {
    if no_pin {
        println!("placement: not pinned (--no-pin)");
        return false;
    }
    let why_not =
        pin::unavailable().or_else(|| pin::pin_self(CLIENT_CPU).err().map(|e| e.to_string()));
    match why_not {
        None => {
            println!("placement: servers on CPU {SERVER_CPU} (taskset -c {SERVER_CPU}), client on CPU {CLIENT_CPU}");
            true
        }
        Some(reason) => {
            println!("placement: NOT pinned ({reason}); servers and client share CPUs");
            false
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let kinds = kinds(&args)?;
    let cases = cases(&args)?;
    let baseline = match &args.baseline {
        Some(path) => Some(
            path.canonicalize()
                .map_err(|e| format!("baseline {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let limit = rlimit::increase_nofile_limit(u64::MAX).map_err(|e| e.to_string())?;
    println!("open-files limit: {limit} per process (the servers inherit it)");
    let needed = args.idle().max(args.hs_conns) as u64 + 64;
    if cases.iter().any(|c| matches!(c, Case::Idle)) && needed > limit {
        return Err(format!(
            "--idle {} needs {needed} open files in the client, above the limit {limit}",
            args.idle()
        ));
    }
    config::make_identity()?;
    std::env::set_var(servers::TOKIO_BUF_ENV, args.tokio_buf.to_string());
    let pin = place(args.no_pin);
    println!(
        "rounds: {}; windows: {:.1} s warm-up + {:.1} s measured; tokio-rustls read buffer {} B; client sources 127.0.0.2 and {} more",
        args.rounds(),
        args.warmup(),
        args.window(),
        args.tokio_buf,
        args.sources.saturating_sub(1)
    );
    if let Some(exe) = &baseline {
        println!("A/B: baseline is the sockloop server of {}", exe.display());
    }
    let bench = Bench {
        client_config: config::client_config()?,
        args,
        kinds,
        baseline,
        pin,
    };

    let started = Instant::now();
    let rounds = bench.args.rounds();
    let mut rows = Vec::new();
    for &case in &cases {
        let n = bench.kinds.len();
        let mut samples: Vec<Vec<Option<Vec<f64>>>> = vec![Vec::new(); n];
        for round in 0..rounds {
            // Rotate the order so that no server always goes first.
            for i in (0..n).map(|i| (i + round) % n) {
                let kind = bench.kinds[i];
                let t = Instant::now();
                let result = bench.measure(case, kind);
                let metrics = case.metrics();
                match &result {
                    Ok(values) => {
                        let shown: Vec<String> = metrics
                            .iter()
                            .zip(values)
                            .map(|(m, v)| format!("{} {v:.*}", m.key, m.digits))
                            .collect();
                        eprintln!(
                            "  [{}] {:8} {}: {} ({:.1} s)",
                            round + 1,
                            kind.name(),
                            case.csv_name(),
                            shown.join(", "),
                            t.elapsed().as_secs_f64()
                        );
                    }
                    Err(e) => eprintln!(
                        "  [{}] {:8} {}: FAILED: {e}",
                        round + 1,
                        kind.name(),
                        case.csv_name()
                    ),
                }
                samples[i].push(result.ok());
            }
        }
        rows.push(Row {
            case: case.title(&bench.args),
            key: case.csv_name(),
            metrics: case.metrics(),
            samples,
        });
    }
    let results = Results {
        kinds: bench.kinds.clone(),
        rows,
    };
    print!("{}", report::render(&results, rounds));
    print!("{}", report::targets(&results));
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
    let out = bench
        .args
        .out
        .clone()
        .unwrap_or_else(|| target_dir().join("bench-tls"));
    report::write_csv(&results, &out)
}

fn main() -> ExitCode {
    if let Ok(kind) = std::env::var(SERVER_ENV) {
        return servers::serve(&kind);
    }
    common::cli::exit_code("tls", run(Args::parse()))
}
