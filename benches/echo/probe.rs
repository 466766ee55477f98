//! What the echo benchmark observes of a server process from outside beyond its CPU time
//! (`common/cpu.rs`): resident memory and descriptors from `/proc`, and system calls from
//! `perf stat`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// Resident set size in bytes (`VmRSS` of `/proc/PID/status`): the process's user-space memory
/// that is actually in RAM. Socket buffers and epoll entries live in the kernel and do not count.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}

/// Number of open file descriptors of the process (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Waits until the process holds at least `fds` descriptors (it has accepted every connection
/// the clients see as established: those may still sit in the listen backlog) and its RSS has
/// stopped moving (work queued by the accepts, such as a task's first poll, is done). Returns
/// the RSS then, in bytes.
pub fn settled_rss(pid: u32, fds: usize, timeout: Duration) -> io::Result<u64> {
    let deadline = std::time::Instant::now() + timeout;
    while fd_count(pid)? < fds {
        if std::time::Instant::now() >= deadline {
            // Some connections failed or were never accepted: measure what is there.
            eprintln!(
                "  server holds {} descriptors after {timeout:?}, expected {fds}",
                fd_count(pid)?
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut last = rss_bytes(pid)?;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = rss_bytes(pid)?;
        if now == last || std::time::Instant::now() >= deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// Every system call.
const ALL_SYSCALLS: &str = "raw_syscalls:sys_enter";
/// The waits for readiness (mio calls `epoll_wait`; `epoll_pwait` in case a libc maps to it).
const WAIT_SYSCALLS: [&str; 2] = [
    "syscalls:sys_enter_epoll_wait",
    "syscalls:sys_enter_epoll_pwait",
];

/// Whether `perf stat` can count `events` here (perf installed, tracepoints readable).
fn perf_can_count(events: &[&str]) -> bool {
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-x,"]);
    for e in events {
        cmd.args(["-e", e]);
    }
    cmd.arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `perf stat` can count system calls here.
pub fn perf_can_count_syscalls() -> bool {
    perf_can_count(&[ALL_SYSCALLS])
}

/// What a [`SyscallCounter`] counted.
pub struct SyscallCounts {
    /// All system calls.
    pub all: u64,
    /// `epoll_wait` and `epoll_pwait` calls, if those tracepoints exist.
    pub waits: Option<u64>,
}

/// How long to wait for `perf` to acknowledge a control command.
const PERF_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// `perf stat -e raw_syscalls:sys_enter` (and the epoll waits) attached to a process, started
/// with counting disabled
/// and switched on and off through its control FIFO, so that it counts exactly between
/// [`enable`](Self::enable) and [`disable`](Self::disable) (attaching takes tens of milliseconds,
/// too long to do at a window boundary).
pub struct SyscallCounter {
    perf: Child,
    ctl: File,
    acks: Receiver<()>,
    /// A second handle on the acknowledgement FIFO, to wake its reader thread for good.
    ack_wake: File,
    dir: PathBuf,
    waits: bool,
}

impl SyscallCounter {
    /// Attaches to every thread of `pid`; counting starts disabled.
    pub fn attach(pid: u32) -> io::Result<SyscallCounter> {
        let dir = std::env::temp_dir().join(format!("echo-bench-perf-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        for fifo in ["ctl", "ack"] {
            let status = Command::new("mkfifo").arg(dir.join(fifo)).status()?;
            if !status.success() {
                return Err(io::Error::other("mkfifo failed"));
            }
        }
        let control = format!(
            "fifo:{},{}",
            dir.join("ctl").display(),
            dir.join("ack").display()
        );
        let waits = perf_can_count(&WAIT_SYSCALLS);
        let mut cmd = Command::new("perf");
        cmd.args(["stat", "-x,", "-e", ALL_SYSCALLS]);
        if waits {
            for e in WAIT_SYSCALLS {
                cmd.args(["-e", e]);
            }
        }
        let perf = cmd
            .args(["-D", "-1", "--control", &control, "-o"])
            .arg(dir.join("out"))
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // Opening a FIFO read-write never blocks (a write-only open would wait for perf).
        let ctl = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("ctl"))?;
        let ack = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("ack"))?;
        let ack_wake = ack.try_clone()?;
        let (tx, acks) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(ack).split(b'\n') {
                if line.is_err() || tx.send(()).is_err() {
                    return;
                }
            }
        });
        let mut counter = SyscallCounter {
            perf,
            ctl,
            acks,
            ack_wake,
            dir,
            waits,
        };
        // A harmless round trip proves perf is attached and listening before the window opens.
        counter.command("ping")?;
        Ok(counter)
    }

    fn command(&mut self, cmd: &str) -> io::Result<()> {
        writeln!(self.ctl, "{cmd}")?;
        self.acks
            .recv_timeout(PERF_ACK_TIMEOUT)
            .map_err(|_| io::Error::other(format!("perf did not acknowledge {cmd:?}")))
    }

    /// Starts counting.
    pub fn enable(&mut self) -> io::Result<()> {
        self.command("enable")
    }

    /// Stops counting.
    pub fn disable(&mut self) -> io::Result<()> {
        self.command("disable")
    }

    /// Ends perf and returns what it counted while enabled.
    pub fn finish(mut self) -> io::Result<SyscallCounts> {
        let status = Command::new("kill")
            .args(["-INT", &self.perf.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(io::Error::other("could not signal perf"));
        }
        self.perf.wait()?;
        let out = fs::read_to_string(self.dir.join("out"))?;
        // CSV lines: count,unit,event,...; a count of "<not counted>" means none happened.
        let count = |event: &str| -> io::Result<u64> {
            let line = out
                .lines()
                .find(|l| l.split(',').nth(2) == Some(event))
                .ok_or_else(|| io::Error::other(format!("no {event} in perf output: {out:?}")))?;
            let field = line.split(',').next().unwrap_or("");
            if field.contains("not counted") {
                return Ok(0);
            }
            field
                .parse()
                .map_err(|_| io::Error::other(format!("unexpected perf output: {line:?}")))
        };
        let waits = if self.waits {
            Some(count(WAIT_SYSCALLS[0])? + count(WAIT_SYSCALLS[1])?)
        } else {
            None
        };
        Ok(SyscallCounts {
            all: count(ALL_SYSCALLS)?,
            waits,
        })
    }
}

impl Drop for SyscallCounter {
    fn drop(&mut self) {
        // The reader thread holds the FIFO open read-write, so it never sees end-of-file: drop
        // our end of its channel, then give it one more line, and its next send fails.
        drop(std::mem::replace(&mut self.acks, mpsc::channel().1));
        let _ = self.ack_wake.write_all(b"\n");
        let _ = self.perf.kill();
        let _ = self.perf.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
