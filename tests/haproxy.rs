//! Three `http_server` processes behind a real HAProxy (`examples/haproxy/haproxy.cfg`: TCP
//! mode, PROXY protocol v2, health checks), as `examples/haproxy/run.sh` runs them:
//!
//! 1. every backend sees the real client addresses (each client's own source address and port,
//!    not HAProxy's), and the load is spread over all three;
//! 2. a backend drained through HAProxy's runtime API, then shut down gracefully (SIGTERM), in the
//!    middle of a steady load, finishes the requests it has, HAProxy sends the new ones to the
//!    other two, and no request is lost. (SIGTERM alone loses one request in a few hundred runs:
//!    a connection whose handshake completes between the server's last accept and the close of
//!    its listener is reset by the kernel, and HAProxy in TCP mode does not retry an established
//!    connection. Draining first is the operational procedure that closes that window.)
//!
//! Needs `haproxy` (a Debian package; `.ci/run` installs it). Without it the test is skipped
//! with a message, unless `SOCKLOOP_REQUIRE_TOOLS=1` (set by CI) makes that a failure. The
//! backends are the `http_server` example's binary, which `cargo test` builds beside this test.

#![cfg(all(unix, feature = "proxy-protocol"))]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Hang guard for every wait (never a measurement).
const GUARD: Duration = Duration::from_secs(60);
/// The clients' source address: the backends must log this one, not HAProxy's 127.0.0.1.
const CLIENT_IP: &str = "127.0.0.2";

/// A child process killed when dropped, its output lines collected.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stdout: Receiver<String>,
}

impl Proc {
    fn spawn(command: &mut Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let collected = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let collected = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        Proc {
            child,
            lines,
            stdout,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `http_server` backend behind the balancer.
struct Backend {
    proc: Proc,
    addr: SocketAddr,
}

impl Backend {
    fn start(bin: &Path) -> Backend {
        let proc = Proc::spawn(
            Command::new(bin)
                .args(["--listen", "127.0.0.1:0", "--proxy-protocol"])
                .env("RUST_LOG", "info"),
        );
        let line = proc
            .stdout
            .recv_timeout(GUARD)
            .unwrap_or_else(|_| panic!("http_server did not start: {:?}", proc.lines()));
        // "http_server listening on http://127.0.0.1:PORT/"
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Backend { proc, addr }
    }

    /// The (client, balancer) address pairs of the proxied connections it logged.
    fn proxied(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.proc
            .lines()
            .iter()
            .filter_map(|line| {
                let rest = line.split("connected from ").nth(1)?;
                let (client, via) = rest.split_once(" via ")?;
                Some((client.trim().parse().ok()?, via.trim().parse().ok()?))
            })
            .collect()
    }

    fn pid(&self) -> u32 {
        self.proc.child.id()
    }
}

fn haproxy_installed() -> bool {
    Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The example binary `name`, built by `cargo test` beside this test's own binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run the whole suite (`cargo test --release --all-features` builds the \
         examples first), or `cargo build --release --all-features --examples`",
        bin.display()
    );
    bin
}

/// HAProxy with the example's configuration, in front of `backends`; retried on another port
/// if the free port it was given was taken meanwhile.
fn start_haproxy(backends: &[Backend], socket: &Path) -> (Proc, SocketAddr) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/haproxy/haproxy.cfg");
    for _ in 0..5 {
        let front = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut command = Command::new("haproxy");
        command
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .env("FRONT_ADDR", front.to_string())
            .env("HAPROXY_SOCKET", socket);
        for (i, b) in backends.iter().enumerate() {
            command.env(format!("BACKEND_{}", i + 1), b.addr.to_string());
        }
        let mut proc = Proc::spawn(&mut command);
        let deadline = Instant::now() + GUARD;
        loop {
            if proc.exited() {
                break; // most likely the port: try another
            }
            // From the clients' address too: HAProxy passes the probe on to a backend.
            if connect_from_client(front).is_ok() {
                return (proc, front);
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen: {:?}",
                proc.lines()
            );
            thread::sleep(Duration::from_millis(20)); // polling a condition, with a deadline
        }
        eprintln!("haproxy exited at start: {:?}", proc.lines());
    }
    panic!("haproxy could not be started");
}

/// A connection to `front` from `CLIENT_IP`.
fn connect_from_client(front: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let source: SocketAddr = format!("{CLIENT_IP}:0").parse().unwrap();
    socket.bind(&source.into())?;
    socket.connect_timeout(&front.into(), GUARD)?;
    Ok(socket.into())
}

/// Sends one command to HAProxy's runtime API; returns its answer.
fn runtime_api(socket: &Path, command: &str) -> String {
    let mut api = std::os::unix::net::UnixStream::connect(socket).expect("the runtime API socket");
    api.set_read_timeout(Some(GUARD)).unwrap();
    api.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    api.read_to_string(&mut answer).unwrap();
    answer
}

/// One request on a new connection from `CLIENT_IP`: `Ok(local port)` if the answer is a 200.
fn request(front: SocketAddr) -> Result<u16, String> {
    let mut stream = connect_from_client(front).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(GUARD)).unwrap();
    let port = stream.local_addr().unwrap().port();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: sockloop\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("read from port {port}: {e}"))?;
    if answer.starts_with(b"HTTP/1.1 200") {
        Ok(port)
    } else {
        Err(format!(
            "port {port}: answer {:?}",
            String::from_utf8_lossy(&answer)
        ))
    }
}

/// Clients on `threads` threads sending requests until `stop`; every outcome is kept.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    threads: Vec<thread::JoinHandle<(Vec<u16>, Vec<String>)>>,
}

impl Load {
    fn start(front: SocketAddr, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
                thread::spawn(move || {
                    let (mut ports, mut errors) = (Vec::new(), Vec::new());
                    while !stop.load(Ordering::Acquire) {
                        match request(front) {
                            Ok(port) => {
                                ports.push(port);
                                ok.fetch_add(1, Ordering::AcqRel);
                            }
                            Err(e) => errors.push(e),
                        }
                    }
                    (ports, errors)
                })
            })
            .collect();
        Load { stop, ok, threads }
    }

    fn answered(&self) -> usize {
        self.ok.load(Ordering::Acquire)
    }

    /// Waits until `n` requests in all were answered.
    fn wait_for(&self, n: usize, what: &str) {
        let deadline = Instant::now() + GUARD;
        while self.answered() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {n}",
                self.answered()
            );
            thread::sleep(Duration::from_millis(5)); // polling a counter, with a deadline
        }
    }

    /// Stops the clients; returns the source ports of the answered requests and the errors.
    fn finish(self) -> (Vec<u16>, Vec<String>) {
        self.stop.store(true, Ordering::Release);
        let (mut ports, mut errors) = (Vec::new(), Vec::new());
        for t in self.threads {
            let (p, e) = t.join().unwrap();
            ports.extend(p);
            errors.extend(e);
        }
        (ports, errors)
    }
}

#[test]
fn haproxy_spreads_real_client_addresses_and_drains_a_backend_without_losing_a_request() {
    if !haproxy_installed() {
        assert!(
            std::env::var_os("SOCKLOOP_REQUIRE_TOOLS").is_none(),
            "haproxy is required (SOCKLOOP_REQUIRE_TOOLS is set) but not installed"
        );
        eprintln!("skipped: haproxy is not installed (apt-get install haproxy)");
        return;
    }
    let bin = example("http_server");
    let mut backends: Vec<Backend> = (0..3).map(|_| Backend::start(&bin)).collect();
    let dir = std::env::temp_dir().join(format!("sockloop-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("api.sock");
    let (haproxy, front) = start_haproxy(&backends, &socket);

    // 1. A steady load: every backend gets some, and sees the clients' own addresses.
    let load = Load::start(front, 4);
    load.wait_for(90, "requests answered before the drain");
    let spread: Vec<usize> = backends.iter().map(|b| b.proxied().len()).collect();
    assert!(
        spread.iter().all(|&n| n > 0),
        "load not spread over all three backends: {spread:?}"
    );

    // 2. Drain the second backend at the balancer, then SIGTERM it, under the same load. Once
    //    30 more requests were answered, any connect HAProxy chose b2 for before the drain is
    //    long done.
    let answer = runtime_api(&socket, "set server sockloop/b2 state drain");
    assert!(answer.trim().is_empty(), "runtime API: {answer:?}");
    load.wait_for(
        load.answered() + 30,
        "requests answered after the drain command",
    );
    let drained = backends.remove(1);
    let before_drain = load.answered();
    let killed = Command::new("kill")
        .args(["-TERM", &drained.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut drained = drained;
    let status = {
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = drained.proc.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the drained backend did not exit"
            );
            thread::sleep(Duration::from_millis(10)); // polling its exit, with a deadline
        }
    };
    assert!(
        status.success(),
        "graceful shutdown exit status {status}: {:?}",
        drained.proc.lines()
    );
    // The others go on serving everyone.
    let during_drain = load.answered() - before_drain;
    let after_exit: Vec<usize> = backends.iter().map(|b| b.proxied().len()).collect();
    load.wait_for(load.answered() + 90, "requests answered after the drain");
    let (ports, errors) = load.finish();
    assert!(
        errors.is_empty(),
        "{} requests lost of {}: {:?}",
        errors.len(),
        ports.len() + errors.len(),
        &errors[..errors.len().min(5)]
    );
    let grown: Vec<usize> = backends
        .iter()
        .zip(&after_exit)
        .map(|(b, before)| b.proxied().len() - before)
        .collect();
    assert!(
        grown.iter().all(|&n| n > 0),
        "after the drain, new requests did not reach both remaining backends: {grown:?}"
    );

    // Real client addresses: every proxied connection a backend logged comes from CLIENT_IP,
    // from a port of one of our requests, through HAProxy's address.
    let mut seen_ports = HashSet::new();
    for backend in backends.iter().chain(std::iter::once(&drained)) {
        for (client, via) in backend.proxied() {
            assert_eq!(
                client.ip().to_string(),
                CLIENT_IP,
                "client {client} via {via}"
            );
            assert!(via.ip().is_loopback() && via.ip().to_string() != CLIENT_IP);
            seen_ports.insert(client.port());
        }
    }
    let sent: HashSet<u16> = ports.iter().copied().collect();
    assert!(
        sent.is_subset(&seen_ports),
        "{} answered requests not logged by any backend with their client address",
        sent.difference(&seen_ports).count()
    );
    eprintln!(
        "haproxy: {} requests answered, {during_drain} while a backend drained; spread {spread:?}",
        ports.len()
    );
    drop(haproxy);
    let _ = std::fs::remove_dir_all(&dir);
}
