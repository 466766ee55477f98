//! Fairness under hot streams, asserted in loop iterations and bytes, never in milliseconds.
//!
//! The guarantee on [`Reactor::run_once`](sockloop::Reactor::run_once): one iteration gives a
//! ready connection at most one turn, of at most 16 reads of at most 64 KiB each; a turn that
//! ends with work left puts the connection on the still-ready queue at most once, and that queue
//! is served after the next iteration's fresh events. These tests load a reactor with hot peers
//! (child processes, so that their threads are not this process's) beside a probe connection,
//! and check on the reactor's own thread, after every iteration, that no connection read more
//! than the budget in it, and that the still-ready queue did not grow by more than one entry
//! per connection. They go on until the load really exercised the budget (turns ended with
//! work left; the loop stalls briefly now and then, as a slow handler would, so that the peers
//! get ahead of it) and check that every probe round trip came back intact.
//!
//! Before the fix this file was written for, one iteration of a hot echo stream could read
//! hundreds of times: a connection was queued again by each flush that crossed its low
//! watermark, and the retry pass served what the same iteration had just queued.

mod util;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sockloop::{ConnId, Context, Handler, Input, Reactor, Stats};

/// Reads one turn may make (`READ_BUDGET` in `src/conn.rs`, documented on `run_once`).
const READ_BUDGET: u64 = 16;
/// The size of the reactor's shared read buffer: the most one read returns.
const READ_SIZE: u64 = 64 << 10;
/// Probe round trips per test.
const PROBES: usize = 300;
/// Bytes each hot connection must have read during the probes: the hot streams were hot.
const HOT_PROGRESS: u64 = 8 << 20;
/// The hot peers' size of one write.
const BLOB: usize = 1 << 20;

/// Every this many iterations the server loop stalls for `STALL`.
const STALL_EVERY: u64 = 64;
const STALL: Duration = Duration::from_millis(5);

const HOT_ENV: &str = "SOCKLOOP_HOT_ECHO_ADDR";
const BLAST_ENV: &str = "SOCKLOOP_BLAST_ADDR";
/// How long a child peer runs at most, if the parent never kills it.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Child processes: the hot peers
// ---------------------------------------------------------------------------------------------

/// A hot echo stream, run in a child process: one thread writes 1 MiB blobs to the address in
/// `HOT_ENV` as fast as it can while this one reads the echo back, until the connection fails
/// (the parent is done and killed us) or `CHILD_LIFETIME` passes.
#[test]
#[ignore = "runs only as a child process of the hot-stream test"]
fn hot_echo_process() {
    let Some(addr) = std::env::var_os(HOT_ENV) else {
        return;
    };
    let addr: SocketAddr = addr.to_str().unwrap().parse().unwrap();
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let deadline = Instant::now() + CHILD_LIFETIME;
    thread::spawn(move || {
        let blob = vec![b'h'; BLOB];
        while Instant::now() < deadline && writer.write_all(&blob).is_ok() {}
    });
    let mut reader = stream;
    reader.set_read_timeout(Some(CHILD_LIFETIME)).unwrap();
    let mut buf = vec![0; 256 << 10];
    while Instant::now() < deadline {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// A blaster, run in a child process: writes 1 MiB blobs to the address in `BLAST_ENV` and
/// never reads, until the connection fails or `CHILD_LIFETIME` passes.
#[test]
#[ignore = "runs only as a child process of the blaster test"]
fn blaster_process() {
    let Some(addr) = std::env::var_os(BLAST_ENV) else {
        return;
    };
    let addr: SocketAddr = addr.to_str().unwrap().parse().unwrap();
    let mut blaster = std::net::TcpStream::connect(addr).unwrap();
    let blob = vec![b'b'; BLOB];
    let deadline = Instant::now() + CHILD_LIFETIME;
    while Instant::now() < deadline && blaster.write_all(&blob).is_ok() {}
}

/// Child peer processes, killed when dropped (also when a test fails).
struct Peers(Vec<Child>);

impl Peers {
    /// Starts `n` copies of the ignored test `role`, each told `addr` through `env`.
    fn start(role: &str, env: &str, addr: SocketAddr, n: usize) -> Peers {
        let children = (0..n)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", role, "--ignored", "--quiet"])
                    .env(env, addr.to_string())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn a peer process")
            })
            .collect();
        Peers(children)
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server side: a reactor thread that checks every iteration
// ---------------------------------------------------------------------------------------------

/// What the reactor thread saw, for the test thread to assert on.
#[derive(Default, Debug)]
struct Seen {
    /// The most reads one connection made in one iteration, and the bytes it read then.
    most_reads_in_an_iteration: u64,
    most_bytes_in_an_iteration: u64,
    /// Iterations in which all connections together read more than their budgets allow
    /// (`READ_BUDGET` per connection), and in which the still-ready queue grew by more than
    /// one entry per source: each is a broken guarantee.
    iterations_over_read_budget: u64,
    iterations_over_queue_bound: u64,
    /// Bytes read per connection.
    bytes: HashMap<ConnId, u64>,
    iterations: u64,
}

/// One connection's reads in the current iteration.
#[derive(Default)]
struct Turn {
    iteration: u64,
    reads: u64,
    bytes: u64,
}

/// Echoes (or, as a sink, discards) what it reads, and counts its reads per iteration.
struct Counted {
    echo: bool,
    iteration: Arc<AtomicU64>,
    seen: Arc<Mutex<Seen>>,
    turn: Turn,
}

impl Handler for Counted {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let data = input.take_all();
        let now = self.iteration.load(Ordering::Relaxed);
        if self.turn.iteration != now {
            self.turn = Turn {
                iteration: now,
                ..Turn::default()
            };
        }
        self.turn.reads += 1;
        self.turn.bytes += data.len() as u64;
        {
            let mut seen = self.seen.lock().unwrap();
            seen.most_reads_in_an_iteration = seen.most_reads_in_an_iteration.max(self.turn.reads);
            seen.most_bytes_in_an_iteration = seen.most_bytes_in_an_iteration.max(self.turn.bytes);
            *seen.bytes.entry(cx.id()).or_default() += data.len() as u64;
        }
        if self.echo {
            cx.write(data);
        }
    }
}

/// A reactor on its own thread with an echo and a sink listener of [`Counted`] handlers. The
/// thread numbers its iterations (the number is visible to the handlers) and compares the
/// counters before and after each one.
struct Server {
    echo: SocketAddr,
    sink: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    stats: Arc<Mutex<Stats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (seen, stats, stop) = (Arc::clone(&seen), Arc::clone(&stats), Arc::clone(&stop));
            thread::spawn(move || serve(&seen, &stats, &stop, &tx))
        };
        let (echo, sink) = util::recv(&rx, "the server's addresses");
        Server {
            echo,
            sink,
            seen,
            stats,
            stop,
            thread: Some(thread),
        }
    }

    fn stats(&self) -> Stats {
        *self.stats.lock().unwrap()
    }

    /// Stops the loop and returns what it saw.
    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn serve(
    seen: &Arc<Mutex<Seen>>,
    stats: &Arc<Mutex<Stats>>,
    stop: &AtomicBool,
    ready: &mpsc::Sender<(SocketAddr, SocketAddr)>,
) {
    let iteration = Arc::new(AtomicU64::new(0));
    let mut reactor = Reactor::new().unwrap();
    let listener = |echo: bool| {
        let (iteration, seen) = (Arc::clone(&iteration), Arc::clone(seen));
        move || Counted {
            echo,
            iteration: Arc::clone(&iteration),
            seen: Arc::clone(&seen),
            turn: Turn::default(),
        }
    };
    let echo = reactor.listen(util::localhost(), listener(true)).unwrap().1;
    let sink = reactor
        .listen(util::localhost(), listener(false))
        .unwrap()
        .1;
    ready.send((echo, sink)).unwrap();
    let mut before = reactor.stats();
    while !stop.load(Ordering::Acquire) {
        let now = iteration.fetch_add(1, Ordering::Relaxed) + 1;
        if now % STALL_EVERY == 0 {
            // A slow moment of the loop, as a handler doing slow work makes one. Meanwhile the
            // peers fill their sockets, so the turns after it meet the read budget, whichever
            // side is faster otherwise. It is not synchronisation: no assertion waits on it.
            thread::sleep(STALL);
        }
        let conns = reactor.connection_count() as u64;
        reactor.run_once(Some(Duration::from_millis(20))).unwrap();
        let after = reactor.stats();
        // Connections opened during this iteration cannot have read before it began; count
        // them too, as the bound is per connection served.
        let served = conns.max(reactor.connection_count() as u64);
        let sources = served + 2; // and the two listeners
        let mut seen = seen.lock().unwrap();
        seen.iterations += 1;
        if after.reads - before.reads > served * READ_BUDGET {
            seen.iterations_over_read_budget += 1;
        }
        if after.still_ready - before.still_ready > sources {
            seen.iterations_over_queue_bound += 1;
        }
        drop(seen);
        *stats.lock().unwrap() = after;
        before = after;
    }
}

// ---------------------------------------------------------------------------------------------
// The probe
// ---------------------------------------------------------------------------------------------

/// Makes `PROBES` 32-byte round trips through the echo listener, checking every byte, and goes
/// on until `hot_done` says the hot peers have moved enough bytes too.
fn probe(server: &Server, mut hot_done: impl FnMut(&Seen) -> bool) -> usize {
    let mut probe = util::client(server.echo);
    let mut rounds = 0;
    let deadline = Instant::now() + util::TIMEOUT;
    loop {
        let msg = [b'0' + (rounds % 10) as u8; 32];
        probe.write_all(&msg).unwrap();
        assert_eq!(
            util::read_exactly(&mut probe, msg.len()),
            msg,
            "probe {rounds}"
        );
        rounds += 1;
        if rounds >= PROBES && hot_done(&server.seen.lock().unwrap()) {
            return rounds;
        }
        assert!(
            Instant::now() < deadline,
            "the hot peers did not move {HOT_PROGRESS} bytes each within {:?}",
            util::TIMEOUT
        );
    }
}

/// Asserts the per-iteration guarantee over everything the server saw.
fn assert_fair(seen: &Seen, during_probes: (Stats, Stats)) {
    let (before, after) = during_probes;
    eprintln!(
        "{} iterations; at most {} reads ({} KiB) by one connection in one; \
         still-ready {} and reads {} during the probes",
        seen.iterations,
        seen.most_reads_in_an_iteration,
        seen.most_bytes_in_an_iteration >> 10,
        after.still_ready - before.still_ready,
        after.reads - before.reads,
    );
    assert!(
        seen.most_reads_in_an_iteration <= READ_BUDGET,
        "a connection read {} times in one iteration (budget {READ_BUDGET})",
        seen.most_reads_in_an_iteration
    );
    assert!(
        seen.most_bytes_in_an_iteration <= READ_BUDGET * READ_SIZE,
        "a connection read {} bytes in one iteration",
        seen.most_bytes_in_an_iteration
    );
    assert_eq!(
        seen.iterations_over_read_budget, 0,
        "iterations in which the connections together read more than their budgets"
    );
    assert_eq!(
        seen.iterations_over_queue_bound, 0,
        "iterations in which a source was put on the still-ready queue twice"
    );
}

/// Whether every connection but the probe (the one that read least) read `HOT_PROGRESS`.
fn each_hot_read(seen: &Seen, hot: usize) -> bool {
    let mut moved: Vec<u64> = seen.bytes.values().copied().collect();
    moved.sort_unstable();
    moved.len() > hot && moved[moved.len() - hot] >= HOT_PROGRESS
}

#[test]
fn hot_echo_streams_wait_their_turn() {
    const HOT: usize = 3;
    let server = Server::start();
    let _peers = Peers::start("hot_echo_process", HOT_ENV, server.echo, HOT);
    util::wait_until("the hot streams to be read", || {
        let seen = server.seen.lock().unwrap();
        seen.bytes.len() == HOT && seen.bytes.values().all(|&b| b > 4 * BLOB as u64)
    });
    let before = server.stats();
    let rounds = probe(&server, |seen| each_hot_read(seen, HOT));
    let after = server.stats();
    let seen = server.finish();
    eprintln!("{rounds} probe round trips beside {HOT} hot echo streams");
    assert_fair(&seen, (before, after));
}

#[test]
fn a_blaster_waits_its_turn() {
    let server = Server::start();
    let _peers = Peers::start("blaster_process", BLAST_ENV, server.sink, 1);
    util::wait_until("the blaster to be read", || {
        let seen = server.seen.lock().unwrap();
        seen.bytes.values().any(|&b| b > 4 * BLOB as u64)
    });
    let before = server.stats();
    let rounds = probe(&server, |seen| each_hot_read(seen, 1));
    let after = server.stats();
    let seen = server.finish();
    eprintln!("{rounds} probe round trips beside a blaster");
    assert_fair(&seen, (before, after));
}

/// (iteration, which connection, bytes) of each read.
type ReadLog = Rc<RefCell<Vec<(u64, &'static str, usize)>>>;

/// Logs each read.
struct Logged {
    name: &'static str,
    iteration: Rc<Cell<u64>>,
    log: ReadLog,
}

impl Handler for Logged {
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        let n = input.take_all().len();
        self.log
            .borrow_mut()
            .push((self.iteration.get(), self.name, n));
    }
}

/// In one process, with no timing at all: Unix stream sockets put written bytes in the
/// reader's queue within the writer's system call, so what is ready when is exact. A peer with
/// 2 MiB queued is served in turns of 16 reads, one per iteration, although no new edge comes
/// for the bytes its first turn left behind; a ping sent before each iteration is served in it,
/// before the hot connection's next turn.
#[test]
fn a_hot_connection_is_resumed_without_a_new_edge_and_after_fresh_events() {
    use std::os::unix::net::UnixStream;
    const HOT_BYTES: usize = 2 << 20;
    let dir = util::TempDir::new("fairness");
    let iteration = Rc::new(Cell::new(0u64));
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut reactor = Reactor::new().unwrap();
    for name in ["hot", "ping"] {
        let (iteration, log) = (Rc::clone(&iteration), Rc::clone(&log));
        reactor
            .listen_unix(dir.join(name), move || Logged {
                name,
                iteration: Rc::clone(&iteration),
                log: Rc::clone(&log),
            })
            .unwrap();
    }
    let mut hot = UnixStream::connect(dir.join("hot")).unwrap();
    let mut ping = UnixStream::connect(dir.join("ping")).unwrap();
    util::run_until(&mut reactor, "both connections accepted", |r| {
        r.connection_count() == 2
    });
    // The sender's buffer bounds what a Unix stream holds: make room for all of it at once.
    socket2::SockRef::from(&hot)
        .set_send_buffer_size(4 * HOT_BYTES)
        .unwrap();
    hot.set_nonblocking(true).unwrap();
    hot.write_all(&vec![b'h'; HOT_BYTES])
        .expect("the whole hot load fits the socket at once");

    let mut hot_read = 0;
    while hot_read < HOT_BYTES {
        let turn = iteration.get() + 1;
        assert!(
            turn <= 8,
            "{hot_read} of {HOT_BYTES} hot bytes read after 8 iterations"
        );
        iteration.set(turn);
        ping.write_all(b"ping").unwrap();
        reactor.run_once(Some(util::TIMEOUT)).unwrap();
        let log = log.borrow();
        let this: Vec<_> = log.iter().filter(|(i, ..)| *i == turn).collect();
        let hot_reads: Vec<usize> = this
            .iter()
            .filter(|(_, who, _)| *who == "hot")
            .map(|(.., n)| *n)
            .collect();
        hot_read += hot_reads.iter().sum::<usize>();
        assert!(
            hot_reads.len() as u64 <= READ_BUDGET,
            "iteration {turn}: {} hot reads",
            hot_reads.len()
        );
        let pinged = this.iter().position(|(_, who, _)| *who == "ping");
        assert!(
            pinged.is_some(),
            "iteration {turn}: the ping was not served"
        );
        if turn > 1 && !hot_reads.is_empty() {
            // From the second iteration on the hot connection is served from the still-ready
            // queue (no new edge came for it), after the fresh ping.
            let first_hot = this.iter().position(|(_, who, _)| *who == "hot");
            assert!(
                pinged < first_hot,
                "iteration {turn}: the hot connection's retry came before a fresh event"
            );
        }
    }
    assert_eq!(hot_read, HOT_BYTES);
    let turns = iteration.get();
    assert!(
        turns >= (HOT_BYTES as u64).div_ceil(READ_BUDGET * READ_SIZE),
        "{HOT_BYTES} bytes in {turns} iterations: more than one budget per iteration"
    );
    assert!(reactor.stats().still_ready >= turns - 1);
}
