//! c10k's worker processes (`--procs`): the parent starts them, feeds them `go`, and merges
//! their progress and reports; a worker runs its share of the load and reports on stdout.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sockloop::ConnectOptions;

use crate::loadgen::{self, LoadConfig, LoadReport, Phase, Progress, ProgressBars, Stage};
use crate::{load_config, self_exe, tls, Args, Secure};

/// What a worker's stdout says, line by line.
enum FromWorker {
    Line(usize, String),
    Gone(usize),
}

/// One client worker process and what it has said.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    progress: Option<Progress>,
    connected: bool,
    report: Vec<String>,
    gone: bool,
}

/// Runs `--procs` workers in lockstep: all connect, then (after `on_connected`) all load.
pub(crate) fn run_workers(
    args: &Args,
    addr: SocketAddr,
    secure: &Secure,
    on_connected: &mut dyn FnMut(),
) -> Result<LoadReport, String> {
    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::new();
    for index in 0..args.procs {
        let mut child = worker_command(args, addr, index, secure)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start worker {index}: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(FromWorker::Line(index, line));
            }
            let _ = tx.send(FromWorker::Gone(index));
        });
        let stdin = child.stdin.take();
        workers.push(Worker {
            child,
            stdin,
            progress: None,
            connected: false,
            report: Vec::new(),
            gone: false,
        });
    }
    drop(tx);

    // Every stage of every worker is bounded; this only catches a worker that hangs.
    let cfg = load_config(args, addr, 0, 1, &secure.options);
    let window = cfg.duration.unwrap_or(cfg.max_measure);
    let limit = cfg.connect_timeout + cfg.warmup + window + cfg.drain_timeout + cfg.close_grace;
    let deadline = Instant::now() + limit + Duration::from_secs(30);
    let mut bars = (!args.quiet).then(ProgressBars::new);
    let mut go_sent = false;
    let mut since = (Stage::Connecting, Instant::now());
    while workers.iter().any(|w| !w.gone) && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(FromWorker::Line(i, line)) => take_line(&mut workers[i], line, &cfg),
            Ok(FromWorker::Gone(i)) => workers[i].gone = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if !go_sent && workers.iter().all(|w| w.connected || w.gone) {
            on_connected();
            for w in &mut workers {
                if let Some(stdin) = &mut w.stdin {
                    let _ = stdin.write_all(b"go\n").and_then(|()| stdin.flush());
                }
            }
            go_sent = true;
        }
        if let (Some(bars), Some(p)) = (&mut bars, total_progress(&workers, &mut since)) {
            bars.update(&p);
        }
    }
    if let Some(bars) = &mut bars {
        bars.finish();
    }

    let mut total = LoadReport::empty();
    for (i, mut w) in workers.into_iter().enumerate() {
        drop(w.stdin.take());
        if !w.gone {
            let _ = w.child.kill();
        }
        let _ = w.child.wait();
        let lines = w.report.iter().map(String::as_str);
        match LoadReport::from_lines(lines) {
            Ok(report) => total.merge(&report),
            Err(e) => {
                // A worker without a report lost all its connections.
                let share = load_config(args, addr, i, args.procs, &secure.options);
                let n = share.connections + share.idle_connections;
                total.requested += n;
                total.failed += n;
                total
                    .errors
                    .push(format!("worker {i} ended without a report ({e})"));
            }
        }
    }
    Ok(total)
}

fn worker_command(
    args: &Args,
    addr: SocketAddr,
    index: usize,
    secure: &Secure,
) -> Result<Command, String> {
    let share = load_config(args, addr, index, args.procs, &secure.options);
    let mut cmd = Command::new(self_exe()?);
    cmd.arg("--worker").arg(index.to_string());
    cmd.arg("--addr").arg(addr.to_string());
    cmd.arg("-c").arg(share.connections.to_string());
    cmd.arg("--idle").arg(share.idle_connections.to_string());
    cmd.arg("-d").arg(args.depth.to_string());
    cmd.arg("-s").arg(args.size.to_string());
    cmd.arg("--warmup").arg(args.warmup.to_string());
    cmd.arg("--connect-concurrency")
        .arg(args.connect_concurrency.to_string());
    cmd.arg("--connect-timeout")
        .arg(args.connect_timeout.to_string());
    cmd.arg("--connect-retry")
        .arg(args.connect_retry.to_string());
    if let Some(d) = args.duration {
        cmd.arg("--duration").arg(d.to_string());
    }
    if let Some(m) = share.messages {
        cmd.arg("--messages").arg(m.to_string());
    }
    if !share.src_ips.is_empty() {
        let ips: Vec<String> = share.src_ips.iter().map(IpAddr::to_string).collect();
        cmd.arg("--src-ips").arg(ips.join(","));
    }
    cmd.args(&secure.worker_args);
    Ok(cmd)
}

/// Interprets one line of a worker's stdout.
fn take_line(w: &mut Worker, line: String, cfg: &LoadConfig) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["progress", stage, numbers @ ..] if numbers.len() == 5 => {
            let n: Vec<u64> = numbers.iter().map(|x| x.parse().unwrap_or(0)).collect();
            let stage = stage_from_name(stage);
            w.progress = Some(Progress {
                stage,
                total: n[0] as usize,
                established: n[1] as usize,
                failed: n[2] as usize,
                round_trips: n[3],
                measured: n[4],
                limit: cfg.messages,
                stage_elapsed: Duration::ZERO,
                stage_length: match stage {
                    Stage::Connecting => Some(cfg.connect_timeout),
                    Stage::Warmup => Some(cfg.warmup),
                    Stage::Measuring => Some(cfg.duration.unwrap_or(cfg.max_measure)),
                    Stage::Draining => Some(cfg.drain_timeout),
                    Stage::Closing => Some(cfg.close_grace),
                },
            });
        }
        ["connected"] => w.connected = true,
        _ if line.starts_with("report ") || !w.report.is_empty() => w.report.push(line),
        _ => {}
    }
}

/// The workers' progress summed, in the stage of the slowest one; `since` is when the parent
/// saw that stage begin.
fn total_progress(workers: &[Worker], since: &mut (Stage, Instant)) -> Option<Progress> {
    let all: Vec<&Progress> = workers.iter().filter_map(|w| w.progress.as_ref()).collect();
    let mut total = (*all.first()?).clone();
    total.stage = all.iter().map(|p| p.stage).min()?;
    if total.stage != since.0 {
        *since = (total.stage, Instant::now());
    }
    total.stage_elapsed = since.1.elapsed();
    total.total = all.iter().map(|p| p.total).sum();
    total.established = all.iter().map(|p| p.established).sum();
    total.failed = all.iter().map(|p| p.failed).sum();
    total.round_trips = all.iter().map(|p| p.round_trips).sum();
    total.measured = all.iter().map(|p| p.measured).sum();
    Some(total)
}

fn stage_from_name(name: &str) -> Stage {
    match name {
        "Warmup" => Stage::Warmup,
        "Measuring" => Stage::Measuring,
        "Draining" => Stage::Draining,
        "Closing" => Stage::Closing,
        _ => Stage::Connecting,
    }
}

/// A client worker: runs its share, says `connected` and waits for `go`, reports on stdout.
pub(crate) fn worker(args: &Args, index: usize) -> Result<(), String> {
    let addr = args.addr.ok_or("a worker needs --addr")?;
    rlimit::increase_nofile_limit(u64::MAX).map_err(|e| format!("worker {index}: {e}"))?;
    let options = match tls::client(&args.tls, "c10k", &[])? {
        Some(tls) => tls.connect_options(ConnectOptions::new()),
        None => ConnectOptions::new(),
    };
    let cfg = LoadConfig {
        progress: false,
        ..load_config(args, addr, 0, 1, &options)
    };
    let mut on_phase = |phase| {
        if phase == Phase::Connected {
            println!("connected");
            let _ = io::stdout().flush();
            // The parent answers once every worker is connected; EOF means it gave up.
            let mut go = String::new();
            if io::stdin().read_line(&mut go).map_or(true, |n| n == 0) {
                std::process::exit(3);
            }
        }
    };
    let mut on_progress = |p: &Progress| {
        println!(
            "progress {:?} {} {} {} {} {}",
            p.stage, p.total, p.established, p.failed, p.round_trips, p.measured
        );
    };
    let report = loadgen::run_load_with_progress(&cfg, &mut on_phase, &mut on_progress)
        .map_err(|e| format!("worker {index}: load failed: {e}"))?;
    print!("{}", report.to_lines());
    io::stdout().flush().map_err(|e| e.to_string())
}
