//! A sockloop server in a child process, for tests that watch it from outside: its descriptors,
//! memory and CPU time (under `/proc`), or its behaviour under process limits of its own.
//!
//! The test binary re-executes itself to run one `#[ignore]`d test, selected by an environment
//! variable, as the server (the pattern of `tests/c10k.rs`). The server prints `ADDR <address>`
//! and serves until its standard input closes, so it cannot outlive the test even if the test
//! panics or is killed; dropping [`ServerProcess`] also kills it. Lines written to its standard
//! input are commands: `hold` makes the loop thread busy until `release` (see [`Stall`]), and
//! `stats` makes the loop print its `stats()` now (see [`ServerProcess::stats_now`]).
//!
//! Pulled in with `#[path = "util/child.rs"] mod child;`; each test binary uses a subset.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sockloop::mio::net::TcpStream;
use sockloop::{Handle, Reactor};

/// How long the server may take to start and report its address, or to stop once asked.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The errno of "connect in progress".
const EINPROGRESS: i32 = libc::EINPROGRESS;

// ---------------------------------------------------------------------------------------------
// The child side
// ---------------------------------------------------------------------------------------------

/// Serves the listener that `setup` binds until standard input closes, obeying the commands
/// written to it meanwhile; prints `ADDR <addr>` once serving and `STATS <stats>` at the end.
pub fn serve_until_stdin_closes(setup: impl FnOnce(&mut Reactor) -> SocketAddr) {
    let mut reactor = Reactor::new().expect("Reactor::new");
    let addr = setup(&mut reactor);
    let handle = reactor.handle().expect("Reactor::handle");
    // A thread owns no descriptor, unlike a pipe or signalfd in the loop: the emfile test counts
    // every one of them.
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || obey_stdin(&handle))
        .expect("spawn the stdin thread");
    println!("ADDR {addr}");
    reactor.run().expect("run");
    println!("STATS {}", reactor.stats());
}

/// Reads commands until EOF (the parent closed the pipe, or died), then stops the loop.
fn obey_stdin(handle: &Handle) {
    // Set while the loop is held: sending on it (or dropping it) lets the loop go on.
    let mut hold: Option<Sender<()>> = None;
    for line in io::stdin().lock().lines().map_while(Result::ok) {
        match line.trim() {
            "hold" => {
                let (release, held) = mpsc::channel::<()>();
                hold = Some(release);
                handle
                    .post(move |_| {
                        println!("HELD");
                        // Deliberately blocks the loop thread: a handler doing slow work.
                        // Meanwhile the kernel completes handshakes and queues data, FINs and
                        // resets for connections the server has not accepted yet.
                        let _ = held.recv();
                    })
                    .expect("post a hold");
            }
            "release" => drop(hold.take()),
            "stats" => handle
                .post(|reactor| println!("NOW {}", reactor.stats()))
                .expect("post a stats request"),
            other => panic!("unknown command {other:?}"),
        }
    }
    drop(hold);
    let _ = handle.stop();
}

// ---------------------------------------------------------------------------------------------
// The parent side
// ---------------------------------------------------------------------------------------------

/// The child server process; killed when dropped.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines of the child's standard output, stamped when this process received them.
    lines: Receiver<(Instant, String)>,
    pub addr: SocketAddr,
}

/// A hold of the server's loop ([`ServerProcess::hold`]), acknowledged at `acked` (the loop was
/// held by then) and, once released, `released` (the loop was held until at least then): a
/// connection begun after `acked` whose client finished its part before `released` did so
/// before the server could accept it. No clock decides that, only the order of events.
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    pub acked: Instant,
    pub released: Option<Instant>,
}

impl Stall {
    /// Whether something started at `begun` and done at `done` happened entirely inside the
    /// hold (while it lasts, anything done so far did).
    pub fn covers(&self, begun: Instant, done: Instant) -> bool {
        begun >= self.acked && self.released.is_none_or(|released| done < released)
    }
}

impl ServerProcess {
    /// Runs the ignored test `test` of this binary with `env` set, and waits for its address.
    pub fn start(test: &str, env: &str) -> ServerProcess {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(env, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the server process");
        let stdout = child.stdout.take().expect("child stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut server = ServerProcess {
            child,
            stdin,
            lines,
            addr: ([0, 0, 0, 0], 0).into(),
        };
        let (_, addr) = server
            .wait_line("ADDR ", START_TIMEOUT)
            .expect("the server process did not report its address");
        server.addr = addr.trim().parse().expect("server address");
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line containing `tag`, with what follows the tag, within `timeout` (libtest may
    /// print "test name ... " on the same line first). Other lines are skipped.
    pub fn wait_line(&self, tag: &str, timeout: Duration) -> Option<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    if let Some((_, rest)) = line.split_once(tag) {
                        return Some((at, rest.to_string()));
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("server stdin already closed");
        writeln!(stdin, "{command}").expect("write to the server's stdin");
        stdin.flush().expect("flush the server's stdin");
    }

    /// Makes the server's loop stay busy until [`release`](Self::release); returns once the
    /// loop is held (see [`Stall`]).
    pub fn hold(&mut self) -> Stall {
        self.command("hold");
        let (acked, _) = self
            .wait_line("HELD", START_TIMEOUT)
            .expect("the server's loop did not report the hold");
        Stall {
            acked,
            released: None,
        }
    }

    /// Lets a held loop go on, recording in `stall` an instant until which it was held.
    pub fn release(&mut self, stall: &mut Stall) {
        stall.released = Some(Instant::now());
        self.command("release");
    }

    /// The server's `stats()` now, as its `Display` line (read it with [`stat`]), with the instant
    /// this process received it (the snapshot was taken before that).
    pub fn stats_now(&mut self) -> (Instant, String) {
        self.command("stats");
        self.wait_line("NOW ", START_TIMEOUT)
            .expect("the server did not report its stats")
    }

    /// Open descriptors of the server process (entries of `/proc/PID/fd`).
    pub fn fds(&self) -> usize {
        self.fd_numbers().len()
    }

    /// Open descriptors numbered below `limit`. `RLIMIT_NOFILE` bounds descriptor numbers, not
    /// their count, and the server may have inherited stray descriptors with high numbers from
    /// whatever started the tests, so this is how many of its `limit` slots are taken.
    pub fn fds_below(&self, limit: u64) -> usize {
        self.fd_numbers().iter().filter(|&&fd| fd < limit).count()
    }

    fn fd_numbers(&self) -> Vec<u64> {
        let dir = format!("/proc/{}/fd", self.pid());
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {dir}: {e}"))
            .map(|entry| {
                let name = entry.expect("fd entry").file_name();
                name.to_str()
                    .and_then(|n| n.parse().ok())
                    .expect("fd number")
            })
            .collect()
    }

    /// Resident memory of the server process in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {path}"))
    }

    /// CPU time the server process has used so far, all threads: the first field (ns on CPU)
    /// of every `/proc/PID/task/*/schedstat`, finer than the clock ticks of `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Duration {
        let dir = format!("/proc/{}/task", self.pid());
        let mut ns = 0u64;
        for task in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {dir}: {e}")) {
            let path = task.expect("task entry").path().join("schedstat");
            // A thread that just exited has no schedstat any more; its time is lost either way.
            if let Ok(text) = std::fs::read_to_string(&path) {
                let first = text.split_whitespace().next().unwrap_or("0");
                ns += first.parse::<u64>().expect("schedstat run time");
            }
        }
        Duration::from_nanos(ns)
    }

    /// Polls `fds()` until it equals `want`; returns how long that took, or the last count seen
    /// if `within` passed first.
    pub fn wait_for_fds(&self, want: usize, within: Duration) -> Result<Duration, usize> {
        let started = Instant::now();
        loop {
            let now = self.fds();
            if now == want {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= within {
                return Err(now);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Closes the server's standard input, waits for it to report its stats and exit
    /// successfully, and returns the stats line.
    pub fn finish(mut self) -> String {
        drop(self.stdin.take());
        let (_, stats) = self
            .wait_line("STATS ", START_TIMEOUT)
            .expect("the server did not report its stats after its stdin closed");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                assert!(status.success(), "server process failed: {status}");
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "server process did not exit within {START_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `key` in a `Stats` display line ("accepted 5", "accept errors 3", ...).
pub fn stat(line: &str, key: &str) -> u64 {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {line:?}"));
    line[at + key.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

/// Source address `n` of a block of loopback addresses starting at `first` (127.0.0.`first`,
/// and so on): each has its own range of ephemeral ports, so thousands of client sockets in
/// TIME_WAIT exhaust neither 127.0.0.1's ports nor each other's.
pub fn source_addr(first: u8, count: u8, n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, first + (n % count as usize) as u8)
}

/// Starts a non-blocking TCP connect to `to` from `from` (any port); completion is reported by
/// writability, as for any non-blocking connect.
pub fn connect_nonblocking(from: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::IPV4,
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.bind(&SockAddr::from(SocketAddrV4::new(from, 0)))?;
    match socket.connect(&SockAddr::from(to)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}
