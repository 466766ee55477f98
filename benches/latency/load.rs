//! The load beside the probe: hot echo streams or blasters, in a child process of the bench (this
//! binary re-executed with [`LOAD_ENV`] set), which the bench starts at low priority.
//!
//! A *hot echo stream* is one connection to the echo port with two threads: one writes 1 MiB
//! blobs as fast as the socket takes them, the other reads the echo back into a 64 KiB buffer
//! and discards it. The reader checks the byte count as it goes: a stream can never have read
//! back more than its writer has offered. A *blaster* is one connection to the sink port whose
//! only thread writes 1 MiB blobs as fast as it can and never reads.
//!
//! The child connects everything, prints `ready`, and then answers every line on its stdin with
//! `<bytes read back> <bytes written> <errors>`, totals over all its connections. It exits when
//! its stdin closes (the bench is done with it, or died) or, at the latest, when its lifetime is
//! over, so a load never outlives its point.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Set in a child's environment to make this binary a load process; the value is its spec
/// (see [`Spec`]).
pub const LOAD_ENV: &str = "SOCKLOOP_LATENCY_LOAD";
/// Bytes per write of a hot stream or a blaster.
pub const BLOB: usize = 1 << 20;
/// The hot streams' read buffer.
const READ_BUF: usize = 64 * 1024;
/// How long a blocked write or read waits before it looks again whether the process is ending
/// (it never is, in practice: the process exits around its threads).
const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// What a load process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Hot echo streams to the echo port.
    Echo,
    /// Blasters to the sink port.
    Blast,
}

/// A load process's whole configuration, passed in [`LOAD_ENV`] as
/// `<echo|blast> <address> <connections> <lifetime in seconds>`.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub mode: Mode,
    pub addr: SocketAddr,
    pub conns: usize,
    pub lifetime: Duration,
}

impl Spec {
    fn encode(&self) -> String {
        let mode = match self.mode {
            Mode::Echo => "echo",
            Mode::Blast => "blast",
        };
        format!(
            "{mode} {} {} {}",
            self.addr,
            self.conns,
            self.lifetime.as_secs_f64()
        )
    }

    fn decode(text: &str) -> Option<Spec> {
        let mut fields = text.split_whitespace();
        let mode = match fields.next()? {
            "echo" => Mode::Echo,
            "blast" => Mode::Blast,
            _ => return None,
        };
        Some(Spec {
            mode,
            addr: fields.next()?.parse().ok()?,
            conns: fields.next()?.parse().ok()?,
            lifetime: Duration::from_secs_f64(fields.next()?.parse().ok()?),
        })
    }
}

/// Totals over all of a load process's connections.
#[derive(Default)]
struct Counters {
    /// Bytes the hot streams read back.
    echoed: AtomicU64,
    /// Bytes written (whole blobs).
    sent: AtomicU64,
    /// Connections that failed or were closed by the server, and byte-count violations.
    errors: AtomicU64,
}

/// Entry point of a load child: runs `spec` until stdin closes or its lifetime is over.
pub fn serve(spec: &str) -> ExitCode {
    let Some(spec) = Spec::decode(spec) else {
        eprintln!("latency load: bad spec {spec:?}");
        return ExitCode::FAILURE;
    };
    let lifetime = spec.lifetime;
    std::thread::spawn(move || {
        std::thread::sleep(lifetime);
        eprintln!("latency load: lifetime over, exiting");
        std::process::exit(0);
    });
    let counters = Arc::new(Counters::default());
    // Connect everything first, so that `ready` means every connection is open.
    let mut streams = Vec::with_capacity(spec.conns);
    for _ in 0..spec.conns {
        match connect(spec.addr) {
            Ok(stream) => streams.push(stream),
            Err(e) => {
                println!("error: connect {}: {e}", spec.addr);
                return ExitCode::FAILURE;
            }
        }
    }
    for stream in streams {
        if let Err(e) = start(spec.mode, stream, &counters) {
            println!("error: start a connection: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("ready");
    let _ = io::stdout().flush();
    for line in io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        let answer = format!(
            "{} {} {}",
            counters.echoed.load(Ordering::Relaxed),
            counters.sent.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed)
        );
        let mut out = io::stdout().lock();
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    // Exit around the load threads, which never end on their own.
    std::process::exit(0);
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// Starts the threads of one connection.
fn start(mode: Mode, stream: TcpStream, counters: &Arc<Counters>) -> io::Result<()> {
    // Bytes this connection's writer has begun to write: the most its reader may read back.
    let offered = Arc::new(AtomicU64::new(0));
    if mode == Mode::Echo {
        let reader = stream.try_clone()?;
        let (counters, offered) = (Arc::clone(counters), Arc::clone(&offered));
        std::thread::spawn(move || read_back(reader, &counters, &offered));
    }
    let counters = Arc::clone(counters);
    std::thread::spawn(move || write_blobs(stream, &counters, &offered));
    Ok(())
}

/// A writer: 1 MiB blobs, back to back, until the connection fails.
fn write_blobs(mut stream: TcpStream, counters: &Counters, offered: &AtomicU64) {
    let blob = vec![0x5a_u8; BLOB];
    loop {
        offered.fetch_add(BLOB as u64, Ordering::Relaxed);
        let mut rest = &blob[..];
        while !rest.is_empty() {
            match stream.write(rest) {
                Ok(0) => return fail(counters, "write: connection closed"),
                Ok(n) => rest = &rest[n..],
                // A full second without progress: the server is slow or stuck; keep trying
                // (the process's lifetime bounds this).
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return fail(counters, &format!("write: {e}")),
            }
        }
        counters.sent.fetch_add(BLOB as u64, Ordering::Relaxed);
    }
}

/// A hot stream's reader: reads the echo back and discards it, checking the count.
fn read_back(mut stream: TcpStream, counters: &Counters, offered: &AtomicU64) {
    let mut buf = vec![0u8; READ_BUF];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return fail(counters, "read: the server closed the connection"),
            Ok(n) => {
                total += n as u64;
                counters.echoed.fetch_add(n as u64, Ordering::Relaxed);
                if total > offered.load(Ordering::Relaxed) {
                    return fail(counters, "read back more bytes than were written");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return fail(counters, &format!("read: {e}")),
        }
    }
}

fn fail(counters: &Counters, what: &str) {
    counters.errors.fetch_add(1, Ordering::Relaxed);
    eprintln!("latency load: {what}");
}

/// The totals a load process reports.
#[derive(Clone, Copy, Debug)]
pub struct Totals {
    pub echoed: u64,
    pub sent: u64,
    pub errors: u64,
}

/// The bench's side of a load process; dropping it closes the child's stdin (which ends it)
/// and reaps it.
pub struct LoadProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl LoadProcess {
    /// Starts this binary as a load process for `spec`, under `nice -n NICE` if `nice` is not
    /// 0 and `taskset -c CPU` if `cpu` is given, and waits until it says it is ready.
    pub fn spawn(spec: Spec, nice: i32, cpu: Option<usize>) -> io::Result<LoadProcess> {
        let exe = std::env::current_exe()?;
        let mut args: Vec<String> = Vec::new();
        if nice != 0 {
            args.extend(["nice".into(), "-n".into(), nice.to_string()]);
        }
        if let Some(cpu) = cpu {
            args.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
        }
        let mut cmd = match args.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        let mut child = cmd
            .env(LOAD_ENV, spec.encode())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::other(format!("start the load process: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the load process's stdio is not piped"));
        };
        let mut load = LoadProcess {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        };
        // Bounded: the child prints `ready` or an error, or exits (end of file) by its lifetime.
        let mut line = String::new();
        load.stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err(io::Error::other(format!(
                "the load process did not start: {:?}",
                line.trim()
            )));
        }
        Ok(load)
    }

    /// The child's totals so far.
    pub fn totals(&mut self) -> io::Result<Totals> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("stdin is closed"))?;
        writeln!(stdin, "totals")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        match fields[..] {
            [echoed, sent, errors] => Ok(Totals {
                echoed,
                sent,
                errors,
            }),
            _ => Err(io::Error::other(format!(
                "the load process answered {line:?}"
            ))),
        }
    }
}

impl Drop for LoadProcess {
    fn drop(&mut self) {
        // End of stdin makes the child exit at once; kill it if it has not within a second.
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
