//! CPU placement with `taskset`: the servers on one CPU and the load on the other, so that
//! neither takes CPU time from the other and each one's figures are its own work.

use std::ffi::OsStr;
use std::io;
use std::process::{Command, Stdio};

/// Where the servers run.
pub const SERVER_CPU: usize = 0;
/// Where the load (the bench itself, or the client tool it runs) runs.
pub const CLIENT_CPU: usize = 1;

/// Why the servers and the load cannot have a CPU each here, if they cannot.
pub fn unavailable() -> Option<String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        Some(format!("only {cpus} CPU available"))
    } else if !have_taskset() {
        Some("taskset not found".to_string())
    } else {
        None
    }
}

/// Whether `taskset` can be run (util-linux).
pub fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pins every thread of this process to `cpu` (threads started later inherit it).
pub fn pin_self(cpu: usize) -> io::Result<()> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-c",
            "-p",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("taskset exited with {status}")))
    }
}

/// A command running `program` under `taskset -c CPU` if `cpu` is given, else as it is.
pub fn command(program: impl AsRef<OsStr>, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string()]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}
