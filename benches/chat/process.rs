//! The servers' child processes and CPU accounting: start one (pinned with `taskset`), read its
//! address, measure its CPU time from `/proc`, and end it by closing its stdin.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use std::net::SocketAddr;

/// Set in a child's environment to make this binary a chat server of that kind.
pub const SERVER_ENV: &str = "SOCKLOOP_CHAT_SERVER";
pub const SERVER_CPU: usize = 0;
pub const CLIENT_CPU: usize = 1;

/// A server child process; dropping it closes its stdin (which ends it) and reaps it.
pub struct Server {
    pub name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts this binary as the `name` server and reads the address it prints.
    pub fn spawn(name: &'static str, pin: bool) -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let mut cmd = if pin {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &SERVER_CPU.to_string()]).arg(exe);
            cmd
        } else {
            Command::new(exe)
        };
        let mut child = cmd
            .env(SERVER_ENV, name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start the {name} server: {e}"))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            // An error leaves `line` empty, reported below.
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        match line.trim().parse() {
            Ok(addr) => Ok(Server {
                name,
                child,
                stdin,
                addr,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the {name} server printed {line:?}, not its address"
                ))
            }
        }
    }

    /// Nanoseconds the server has spent on a CPU, all threads (`/proc/PID/task/*/schedstat`).
    pub fn cpu_ns(&self) -> Result<u64, String> {
        let dir = format!("/proc/{}/task", self.child.id());
        let tasks = fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
        let mut total = 0;
        for task in tasks.flatten() {
            // A thread that exited between the listing and the read no longer counts.
            if let Ok(text) = fs::read_to_string(task.path().join("schedstat")) {
                total += first_number(&text)?;
            }
        }
        Ok(total)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // End of stdin asks the server to exit; one that has not within a second is killed.
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

fn first_number(schedstat: &str) -> Result<u64, String> {
    schedstat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("unexpected schedstat {schedstat:?}"))
}

/// Nanoseconds this thread (the whole client) has spent on a CPU.
pub fn own_cpu_ns() -> Result<u64, String> {
    let text = fs::read_to_string("/proc/thread-self/schedstat")
        .map_err(|e| format!("/proc/thread-self/schedstat: {e}"))?;
    first_number(&text)
}

/// Pins the client and the servers to separate CPUs if taskset and two CPUs are there; whether
/// it did.
pub fn pin_client(wanted: bool) -> bool {
    let taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    wanted && taskset && cpus >= 2 && pin_self(CLIENT_CPU).is_ok()
}

/// Pins every thread of this process to `cpu`.
fn pin_self(cpu: usize) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-a", "-c", "-p", &cpu.to_string()])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset exited with {status}"))
    }
}

/// Ends the process once stdin reaches end-of-file (a thread: tokio's stdin needs `io-std`).
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}
