//! A server in a child process: the bench binary re-executed with an environment variable that
//! names the server to run. The child prints its address as the first line of its stdout and
//! serves until its stdin closes, so it never outlives the bench, even one that died.
//!
//! [`ServerProcess`] is the bench's side; [`serve_sockloop`] and [`exit_when_stdin_closes`]
//! are the child's.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use sockloop::mio::unix::SourceFd;
use sockloop::mio::Interest;
use sockloop::Reactor;

use super::{cpu, pin};

/// How long a server may take to exit once its stdin is closed before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// A server child process; dropping it closes its stdin (which ends it) and reaps it.
pub struct ServerProcess {
    /// The server's kind, as the child was asked to run it.
    pub kind: &'static str,
    pub addr: SocketAddr,
    /// How long dropping waits for the server to exit before killing it.
    pub exit_grace: Duration,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The rest of the child's stdout, for servers that answer questions (see [`Self::ask`]).
    stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Starts this binary with `env`=`kind` in its environment, under `taskset -c CPU` if `cpu`
    /// is given, and reads the address it prints.
    pub fn spawn(env: &str, kind: &'static str, cpu: Option<usize>) -> io::Result<ServerProcess> {
        let exe = std::env::current_exe()
            .map_err(|e| io::Error::other(format!("start the {kind} server: {e}")))?;
        ServerProcess::spawn_exe(&exe, env, kind, kind, cpu)
    }

    /// Starts `exe` with `env`=`value` in its environment, under `taskset -c CPU` if `cpu` is
    /// given, and reads the address it prints; `kind` names the server in messages.
    ///
    /// `exe` is normally this binary; an A/B comparison passes another build of the same bench
    /// (the same child protocol against another version of the library) and asks it for the
    /// server this binary calls `value`.
    pub fn spawn_exe(
        exe: &Path,
        env: &str,
        value: &str,
        kind: &'static str,
        cpu: Option<usize>,
    ) -> io::Result<ServerProcess> {
        let context = |e| io::Error::other(format!("start the {kind} server: {e}"));
        let mut child = pin::command(exe, cpu)
            .env(env, value)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(context)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "the {kind} server's stdio is not piped"
            )));
        };
        let mut server = ServerProcess {
            kind,
            addr: ([127, 0, 0, 1], 0).into(),
            exit_grace: EXIT_GRACE,
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        };
        // An error leaves `line` empty, reported below; dropping `server` ends the child.
        let mut line = String::new();
        let _ = server.stdout.read_line(&mut line);
        server.addr = line.trim().parse().map_err(|_| {
            io::Error::other(format!(
                "the {kind} server printed {line:?}, not its address"
            ))
        })?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Nanoseconds the server has spent on a CPU, all threads.
    pub fn cpu_ns(&self) -> io::Result<u64> {
        cpu::process_ns(self.pid())
    }

    /// Writes `question` as one line to the server's stdin and returns the line it answers on
    /// its stdout.
    pub fn ask(&mut self, question: &str) -> io::Result<String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("stdin is closed"))?;
        writeln!(stdin, "{question}")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // End of stdin asks the server to exit; one that has not within the grace is killed.
        drop(self.stdin.take());
        let deadline = Instant::now() + self.exit_grace;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side for a sockloop server: runs a reactor that `setup` makes listen (returning
/// the bound address), prints that address, and stops when stdin closes.
pub fn serve_sockloop(
    setup: impl FnOnce(&mut Reactor) -> io::Result<SocketAddr>,
) -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let bound = setup(&mut reactor)?;
    // Standard input in the loop: end-of-file (the benchmark is done, or died) stops it.
    static STDIN: i32 = 0;
    reactor.add_source(SourceFd(&STDIN), Interest::READABLE, |reactor, _, _| {
        reactor.stop()
    })?;
    println!("{bound}");
    reactor.run()
}

/// The child's side for any other server: ends the process once stdin reaches end-of-file (a
/// thread: tokio's stdin needs `io-std`).
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}
