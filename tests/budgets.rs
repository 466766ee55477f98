//! Every path that could keep one iteration from ending is bounded, and tested here in loop
//! iterations, not milliseconds: accepts under a connect flood, datagrams under a flood,
//! posted jobs that post again, timers that re-arm at zero, and foreign sources. (Connections
//! and their read budget: `tests/fairness.rs`.)
//!
//! Each test drives the reactor itself, one `run_once` at a time, with the load already queued
//! in the kernel (or the loop) before the iteration starts, and checks after each iteration
//! what it did, and that a probe connection with a fresh ping was served in it.

mod util;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sockloop::{
    Context, DatagramHandler, Handler, Input, ListenOptions, Reactor, TimerId, UdpContext,
};

/// Accepts one listener turn makes (`ACCEPT_BUDGET` in `src/listener.rs`).
const ACCEPT_BUDGET: u64 = 256;
/// Datagrams one UDP socket's turn receives (`RECV_BUDGET` in `src/udp.rs`).
const RECV_BUDGET: u64 = 256;
/// Posted jobs run per iteration (`JOB_BUDGET` in `src/handle.rs`).
const JOB_BUDGET: usize = 1024;
/// Iterations a test runs at most before it fails: each needs far fewer.
const MAX_ITERATIONS: u32 = 100;

/// A probe connection: counts the pings its server side read.
struct Probe {
    pings: Rc<Cell<u64>>,
}

impl Handler for Probe {
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
        self.pings.set(self.pings.get() + 1);
    }
}

/// A reactor with a probe listener, and the probe's client, connected and accepted.
struct Bench {
    reactor: Reactor,
    pings: Rc<Cell<u64>>,
    client: TcpStream,
}

impl Bench {
    fn new() -> Bench {
        let mut reactor = Reactor::new().unwrap();
        let pings = Rc::new(Cell::new(0));
        let (_, addr) = {
            let pings = Rc::clone(&pings);
            reactor
                .listen(util::localhost(), move || Probe {
                    pings: Rc::clone(&pings),
                })
                .unwrap()
        };
        let client = util::client(addr);
        util::run_until(&mut reactor, "the probe accepted", |r| {
            r.connection_count() == 1
        });
        Bench {
            reactor,
            pings,
            client,
        }
    }

    /// Sends a ping, runs one iteration, and asserts the ping was served in it.
    fn iterate(&mut self, what: &str) {
        let before = self.pings.get();
        self.client.write_all(b"ping").unwrap();
        // The ping is in the server socket's queue now (loopback delivers within the send), so
        // the poll returns at once; the timeout only guards against a hang.
        self.reactor.run_once(Some(util::TIMEOUT)).unwrap();
        assert_eq!(
            self.pings.get(),
            before + 1,
            "{what}: the probe's ping was not served in the iteration"
        );
    }
}

#[test]
fn a_connect_flood_is_accepted_a_budget_per_iteration_beside_a_served_probe() {
    const FLOOD: usize = 1000;
    let mut bench = Bench::new();
    let options = ListenOptions::new().backlog(2048);
    let (_, addr) = bench
        .reactor
        .listen_with(util::localhost(), options, || util::Sink)
        .unwrap();
    // Blocking connects complete in the kernel, into the backlog, without the reactor.
    let clients: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let mut turns = 0;
    while bench.reactor.stats().accepted < FLOOD as u64 + 1 {
        turns += 1;
        assert!(turns <= MAX_ITERATIONS, "the flood was not accepted");
        let before = bench.reactor.stats().accepted;
        bench.iterate("connect flood");
        let accepted = bench.reactor.stats().accepted - before;
        assert!(
            accepted <= ACCEPT_BUDGET,
            "iteration {turns}: {accepted} accepts"
        );
    }
    assert_eq!(turns, (FLOOD as u64).div_ceil(ACCEPT_BUDGET) as u32);
    assert!(bench.reactor.stats().still_ready >= turns as u64 - 1);
    drop(clients);
}

/// Counts datagrams.
struct CountDatagrams(Rc<Cell<u64>>);

impl DatagramHandler for CountDatagrams {
    fn on_datagram(&mut self, _cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn a_datagram_flood_is_received_a_budget_per_iteration_beside_a_served_probe() {
    const FLOOD: u64 = 1000;
    let mut bench = Bench::new();
    // The default receive buffer holds 256 small datagrams, no more than one turn: make room
    // for the whole flood, so that it is queued before the first iteration.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&socket)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let received = Rc::new(Cell::new(0));
    bench
        .reactor
        .add_udp_socket(socket, CountDatagrams(Rc::clone(&received)))
        .unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..FLOOD {
        sender.send_to(&i.to_le_bytes(), addr).unwrap();
    }
    let mut turns = 0;
    while received.get() < FLOOD {
        turns += 1;
        assert!(
            turns <= MAX_ITERATIONS,
            "{} datagrams received",
            received.get()
        );
        let before = received.get();
        bench.iterate("datagram flood");
        let got = received.get() - before;
        assert!(got <= RECV_BUDGET, "iteration {turns}: {got} datagrams");
    }
    assert_eq!(received.get(), FLOOD);
    assert_eq!(turns, FLOOD.div_ceil(RECV_BUDGET) as u32);
}

#[test]
fn a_job_that_posts_itself_again_runs_once_per_iteration() {
    fn repost(handle: sockloop::Handle, runs: Arc<AtomicUsize>) {
        let again = handle.clone();
        handle
            .post(move |_| {
                runs.fetch_add(1, Ordering::Relaxed);
                repost(again, runs);
            })
            .unwrap();
    }
    let mut bench = Bench::new();
    let runs = Arc::new(AtomicUsize::new(0));
    repost(bench.reactor.handle().unwrap(), Arc::clone(&runs));
    for turn in 1..=20 {
        bench.iterate("a job that posts itself");
        assert_eq!(
            runs.load(Ordering::Relaxed),
            turn,
            "runs after {turn} iterations"
        );
    }
}

#[test]
fn a_flood_of_posted_jobs_runs_a_budget_per_iteration_in_order() {
    const JOBS: usize = 5000;
    let mut bench = Bench::new();
    let handle = bench.reactor.handle().unwrap();
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    // Posted from another thread, all before the loop looks.
    std::thread::spawn({
        let ran = Arc::clone(&ran);
        move || {
            for i in 0..JOBS {
                let ran = Arc::clone(&ran);
                handle.post(move |_| ran.lock().unwrap().push(i)).unwrap();
            }
        }
    })
    .join()
    .unwrap();
    let mut turns = 0;
    while ran.lock().unwrap().len() < JOBS {
        turns += 1;
        assert!(turns <= MAX_ITERATIONS, "posted jobs did not all run");
        let before = ran.lock().unwrap().len();
        bench.iterate("a flood of posted jobs");
        let now = ran.lock().unwrap().len();
        assert!(
            now - before <= JOB_BUDGET,
            "iteration {turns}: {} jobs",
            now - before
        );
    }
    assert_eq!(turns as usize, JOBS.div_ceil(JOB_BUDGET));
    assert!(
        ran.lock().unwrap().iter().copied().eq(0..JOBS),
        "jobs ran out of order"
    );
}

#[test]
fn a_loop_timer_that_rearms_at_zero_fires_once_per_iteration() {
    fn rearm(reactor: &mut Reactor, fired: Rc<Cell<u32>>) {
        reactor.add_timer(Duration::ZERO, move |reactor| {
            fired.set(fired.get() + 1);
            rearm(reactor, fired);
        });
    }
    let mut bench = Bench::new();
    let fired = Rc::new(Cell::new(0));
    rearm(&mut bench.reactor, Rc::clone(&fired));
    for turn in 1..=20 {
        bench.iterate("a timer that re-arms at zero");
        assert_eq!(fired.get(), turn, "fired after {turn} iterations");
    }
}

/// Arms a zero timer on open and again each time it fires.
struct Ticker {
    fired: Rc<Cell<u32>>,
}

impl Handler for Ticker {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.set_timer(Duration::ZERO);
    }
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }
    fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
        self.fired.set(self.fired.get() + 1);
        cx.set_timer(Duration::ZERO);
    }
}

#[test]
fn a_connection_timer_that_rearms_at_zero_fires_once_per_iteration() {
    let mut bench = Bench::new();
    let fired = Rc::new(Cell::new(0));
    let (_, addr) = {
        let fired = Rc::clone(&fired);
        bench
            .reactor
            .listen(util::localhost(), move || Ticker {
                fired: Rc::clone(&fired),
            })
            .unwrap()
    };
    let _ticking = util::client(addr);
    util::run_until(&mut bench.reactor, "the ticker accepted", |r| {
        r.connection_count() == 2
    });
    let start = fired.get();
    for turn in 1..=20 {
        bench.iterate("a connection timer that re-arms at zero");
        assert_eq!(fired.get() - start, turn, "fired after {turn} iterations");
    }
}

#[test]
fn a_foreign_source_that_stays_ready_runs_once_per_iteration() {
    use std::io::Read;
    let mut bench = Bench::new();
    let (mut tx, rx) = sockloop::mio::unix::pipe::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let log = Rc::new(RefCell::new(Vec::new()));
    {
        let (calls, log) = (Rc::clone(&calls), Rc::clone(&log));
        bench
            .reactor
            .add_source(rx, sockloop::mio::Interest::READABLE, move |_, rx, _| {
                calls.set(calls.get() + 1);
                let mut buf = [0; 64];
                while let Ok(n) = rx.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.borrow_mut().extend_from_slice(&buf[..n]);
                }
            })
            .unwrap();
    }
    for turn in 1..=20u32 {
        // New bytes before every iteration: the source is ready each time.
        tx.write_all(&[turn as u8; 3]).unwrap();
        bench.iterate("a source that stays ready");
        assert_eq!(calls.get(), turn, "callbacks after {turn} iterations");
    }
    assert_eq!(log.borrow().len(), 60);
}
