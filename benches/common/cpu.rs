//! CPU time from `/proc`: the first field of a thread's `schedstat`, its nanoseconds on a CPU
//! (user and kernel). Finer than `utime + stime` of `/proc/PID/stat`, which come in 10 ms clock
//! ticks.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The first field of a `schedstat` file: nanoseconds on a CPU.
pub fn schedstat_ns(text: &str) -> io::Result<u64> {
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected schedstat {text:?}")))
}

/// The directories of process `pid`'s threads (`/proc/PID/task/TID`).
pub fn tasks(pid: u32) -> io::Result<Vec<PathBuf>> {
    fs::read_dir(format!("/proc/{pid}/task"))?
        .map(|task| Ok(task?.path()))
        .collect()
}

/// Nanoseconds process `pid` has spent on a CPU, summed over its threads
/// (`/proc/PID/task/*/schedstat`).
pub fn process_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in tasks(pid)? {
        // A thread that exited between the listing and the read no longer counts.
        if let Ok(text) = fs::read_to_string(task.join("schedstat")) {
            total += schedstat_ns(&text)?;
        }
    }
    Ok(total)
}

/// Nanoseconds the calling thread has spent on a CPU.
pub fn this_thread_ns() -> io::Result<u64> {
    read_ns(Path::new("/proc/thread-self/schedstat"))
}

/// Nanoseconds thread `tid` of this process has spent on a CPU.
pub fn thread_ns(tid: u32) -> io::Result<u64> {
    read_ns(Path::new(&format!("/proc/self/task/{tid}/schedstat")))
}

/// The kernel id of the calling thread, from `/proc/thread-self` (a link to `PID/task/TID`).
pub fn current_tid() -> io::Result<u32> {
    let link = fs::read_link("/proc/thread-self")?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/thread-self {link:?}")))
}

fn read_ns(path: &Path) -> io::Result<u64> {
    let text = fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    schedstat_ns(&text)
}

/// The pid of `ksoftirqd/CPU`, the kernel thread that runs the softirq work (packet
/// processing, timers) that CPU `cpu` could not finish on the spot; `None` if there is none.
///
/// Why a benchmark looks at it: softirq work done on the spot is charged to whichever process
/// the CPU was running, so a server pays for the packets its own `write`s deliver. Once a CPU
/// is saturated the kernel moves the overflow to this thread, where no server's time counts
/// it, and how much overflows differs from server to server.
pub fn ksoftirqd(cpu: usize) -> io::Result<Option<u32>> {
    let name = format!("ksoftirqd/{cpu}");
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A process that exited since the listing has no comm any more: skip it.
        if fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim_end() == name) {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

/// Nanoseconds thread or process `pid` (of any owner) has spent on a CPU.
pub fn pid_ns(pid: u32) -> io::Result<u64> {
    read_ns(Path::new(&format!("/proc/{pid}/schedstat")))
}
