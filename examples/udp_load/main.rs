//! A UDP load generator: many source ports send to an echo server, at a fixed rate or as fast as
//! the echoes come back, and every echo is verified.
//!
//! ```text
//! cargo run --release --example udp_load                     # in-process sockloop udp echo server
//! cargo run --release --example udp_load -- -c 64 -s 1200 --duration 10
//! cargo run --release --example udp_load -- --rate 100000    # a fixed total rate (datagrams/s)
//! cargo run --release --example udp_load -- --addr 127.0.0.1:7879   # any UDP echo server
//! ```
//!
//! Each client is a connected UDP socket on the generator's own reactor (`Reactor::connect_udp`),
//! so each has its own source port and the kernel filters out strangers. A datagram carries its
//! client, its sequence number and the time it was sent, then bytes derived from those; an echo
//! must come back byte for byte, once. Datagrams that do not come back are **loss** (UDP may
//! lose them; it is reported, not a failure); an echo that is corrupted, unknown or duplicated
//! is a failure (exit status 1).
//!
//! Without `--rate` each client keeps `--window` datagrams in flight and sends the next when an
//! echo arrives; a client that heard nothing for a tick (50 ms) presumes its window lost and
//! sends a fresh one, so loss cannot stall it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use sockloop::{DatagramHandler, Reactor, SocketOptions, Stats, UdpContext, UdpError, UdpId};

/// Bytes of a datagram's header: client (4), sequence number (8), send time in ns (8).
const HEADER: usize = 20;
/// How often the rate is paced and stalled windows are looked at.
const TICK: Duration = Duration::from_millis(1);
/// A client that heard nothing for this long presumes its window lost.
const STALL: Duration = Duration::from_millis(50);
/// How long the end waits for the last echoes before counting the rest as lost.
const DRAIN: Duration = Duration::from_millis(500);

#[derive(Parser, Debug)]
#[command(
    about = "UDP load: many source ports, every echo verified; datagrams/s, loss, latency",
    after_help = "With no --addr, a sockloop UDP echo server runs on a thread of this process."
)]
struct Args {
    /// Target an external UDP echo server instead of starting one.
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<SocketAddr>,
    /// Client sockets (source ports).
    #[arg(short, long, default_value_t = 64)]
    clients: usize,
    /// Bytes per datagram (at least 20: the header).
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(20..))]
    size: u16,
    /// Datagrams per second in all (0: as fast as the echoes come back, with --window).
    #[arg(short, long, default_value_t = 0)]
    rate: u64,
    /// Datagrams in flight per client without --rate.
    #[arg(short, long, default_value_t = 8)]
    window: usize,
    /// Measured seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    warmup: f64,
}

/// What the generator counts, shared by the clients' handlers and the loop timers.
struct Shared {
    start: Instant,
    size: usize,
    window: usize,
    /// Counting only once the warmup is over.
    measuring: bool,
    /// No more sends: the end is draining.
    stopping: bool,
    /// When the measured window began, in ns since `start`: earlier sends are not counted.
    warm_at: u64,
    sent: u64,
    echoed: u64,
    bad: u64,
    latency: Histogram<u64>,
    clients: Vec<ClientState>,
}

/// One client socket's sequence numbers.
struct ClientState {
    id: Option<UdpId>,
    next: u64,
    /// Sent and not echoed yet (with those presumed lost, which may still come late).
    outstanding: HashSet<u64>,
    /// In flight as far as the window goes.
    live: usize,
    last_echo: Instant,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The next datagram of client `c`, noted as outstanding.
    fn next_datagram(&mut self, c: usize) -> Vec<u8> {
        let now = self.now_ns();
        let state = &mut self.clients[c];
        let seq = state.next;
        state.next += 1;
        state.outstanding.insert(seq);
        state.live += 1;
        if self.measuring && !self.stopping {
            self.sent += 1;
        }
        datagram(c as u32, seq, now, self.size)
    }

    /// Checks one echo for client `c`; false if it is not one of ours.
    fn take_echo(&mut self, c: usize, data: &[u8]) -> bool {
        if data.len() != self.size || data.len() < HEADER {
            return false;
        }
        let client = u32::from_le_bytes(data[0..4].try_into().unwrap_or_default());
        let seq = u64::from_le_bytes(data[4..12].try_into().unwrap_or_default());
        let sent = u64::from_le_bytes(data[12..20].try_into().unwrap_or_default());
        if client as usize != c || data != datagram(client, seq, sent, self.size) {
            return false;
        }
        let now = self.now_ns();
        let state = &mut self.clients[c];
        if !state.outstanding.remove(&seq) {
            return false; // a duplicate, or never sent
        }
        state.live = state.live.saturating_sub(1);
        state.last_echo = Instant::now();
        if self.measuring && sent >= self.warm_at {
            self.echoed += 1;
            let _ = self.latency.record((now - sent) / 1000);
        }
        true
    }
}

/// Datagram `seq` of client `c`, sent at `sent_ns`: the header, then bytes derived from it.
fn datagram(c: u32, seq: u64, sent_ns: u64, size: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(size);
    d.extend_from_slice(&c.to_le_bytes());
    d.extend_from_slice(&seq.to_le_bytes());
    d.extend_from_slice(&sent_ns.to_le_bytes());
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(c);
    while d.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d.push(x as u8);
    }
    d
}

/// One client socket: verify each echo, send the next while in flood mode.
struct Client {
    index: usize,
    flood: bool,
    shared: Rc<RefCell<Shared>>,
}

impl DatagramHandler for Client {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], _from: SocketAddr) {
        let mut s = self.shared.borrow_mut();
        if !s.take_echo(self.index, data) {
            s.bad += 1;
            return;
        }
        if self.flood && !s.stopping && s.clients[self.index].live < s.window {
            let next = s.next_datagram(self.index);
            if let Err(e) = cx.send(&next) {
                log::debug!("client {}: send failed: {e}", self.index);
            }
        }
    }

    fn on_error(&mut self, _cx: &mut UdpContext<'_>, error: UdpError) {
        log::debug!("client {}: {error}", self.index);
    }
}

/// The in-process server: echoes every datagram.
struct Echo;

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
        let _ = cx.send_to(data, from);
    }
}

/// Runs a sockloop UDP echo server on a thread until `stop`; returns its address, and its
/// stats when the thread ends.
fn start_server() -> Result<(SocketAddr, sockloop::Handle, thread::JoinHandle<Stats>), String> {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let setup = || -> std::io::Result<(Reactor, SocketAddr, sockloop::Handle)> {
            let mut reactor = Reactor::new()?;
            let options = SocketOptions::new().recv_buffer_size(4 << 20);
            let (_, addr) = reactor.bind_udp_with(localhost(), options, Echo)?;
            let handle = reactor.handle()?;
            Ok((reactor, addr, handle))
        };
        match setup() {
            Ok((mut reactor, addr, handle)) => {
                let _ = tx.send(Ok((addr, handle)));
                if let Err(e) = reactor.run() {
                    eprintln!("udp_load: server loop failed: {e}");
                }
                reactor.stats()
            }
            Err(e) => {
                let _ = tx.send(Err(format!("cannot start the server: {e}")));
                Stats::default()
            }
        }
    });
    let (addr, handle) = rx
        .recv()
        .map_err(|_| "the server thread died".to_string())??;
    Ok((addr, handle, thread))
}

/// `127.0.0.1:0`.
fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("udp_load: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the load; Ok(false) if an echo failed verification.
fn run(args: Args) -> Result<bool, String> {
    let server = match args.addr {
        Some(addr) => (addr, None),
        None => {
            let (addr, handle, thread) = start_server()?;
            (addr, Some((handle, thread)))
        }
    };
    let target = server.0;
    let flood = args.rate == 0;
    let start = Instant::now();
    let shared = Rc::new(RefCell::new(Shared {
        start,
        size: usize::from(args.size),
        window: args.window.max(1),
        measuring: false,
        stopping: false,
        sent: 0,
        echoed: 0,
        bad: 0,
        warm_at: 0,
        latency: Histogram::new(3).map_err(|e| e.to_string())?,
        clients: Vec::new(),
    }));

    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let options = SocketOptions::new().recv_buffer_size(1 << 20);
    for index in 0..args.clients.max(1) {
        shared.borrow_mut().clients.push(ClientState {
            id: None,
            next: 0,
            outstanding: HashSet::new(),
            live: 0,
            last_echo: start,
        });
        let client = Client {
            index,
            flood,
            shared: Rc::clone(&shared),
        };
        let (id, _) = reactor
            .connect_udp_with(target, options.clone(), client)
            .map_err(|e| format!("cannot open client socket {index}: {e}"))?;
        shared.borrow_mut().clients[index].id = Some(id);
    }
    println!(
        "udp_load: {} clients -> {target}, {} B datagrams, {}, {:.1} s warmup + {:.1} s",
        args.clients.max(1),
        args.size,
        if flood {
            format!("window {} per client", args.window.max(1))
        } else {
            format!("{} datagrams/s", args.rate)
        },
        args.warmup,
        args.duration
    );

    // Pacing (rate mode) and stall recovery (flood mode), every tick.
    // The rate is paced by elapsed time, not by ticks: a tick may come late.
    let mut owed = 0.0f64;
    let mut paced_to = Instant::now();
    let mut turn = 0usize;
    let ticker = {
        let shared = Rc::clone(&shared);
        reactor.add_repeating_timer(TICK, move |reactor| {
            let mut sends = Vec::new();
            {
                let mut s = shared.borrow_mut();
                if s.stopping {
                    return;
                }
                let n = s.clients.len();
                if flood {
                    for c in 0..n {
                        let state = &mut s.clients[c];
                        if state.live > 0 && state.last_echo.elapsed() < STALL {
                            continue;
                        }
                        state.live = 0; // presumed lost; late echoes still count
                        state.last_echo = Instant::now();
                        for _ in 0..s.window {
                            sends.push((c, s.next_datagram(c)));
                        }
                    }
                } else {
                    let now = Instant::now();
                    owed += args.rate as f64 * (now - paced_to).as_secs_f64();
                    paced_to = now;
                    while owed >= 1.0 {
                        owed -= 1.0;
                        turn = (turn + 1) % n;
                        sends.push((turn, s.next_datagram(turn)));
                    }
                }
            }
            for (c, data) in sends {
                let id = shared.borrow().clients[c].id;
                if let Some(id) = id {
                    if let Err(e) = reactor.send(id, &data) {
                        log::debug!("client {c}: send failed: {e}");
                    }
                }
            }
        })
    };

    // Warmup, then the measured window, then the drain.
    let warm_at = start + Duration::from_secs_f64(args.warmup);
    let end_at = warm_at + Duration::from_secs_f64(args.duration);
    let mut measured_from = warm_at;
    while Instant::now() < end_at {
        reactor
            .run_once(Some(TICK))
            .map_err(|e| format!("event loop failed: {e}"))?;
        let mut s = shared.borrow_mut();
        if !s.measuring && Instant::now() >= warm_at {
            s.measuring = true;
            s.warm_at = s.now_ns();
            measured_from = Instant::now();
        }
    }
    let elapsed = measured_from.elapsed();
    shared.borrow_mut().stopping = true;
    reactor.cancel_timer(ticker);
    let drain_end = Instant::now() + DRAIN;
    while Instant::now() < drain_end {
        let outstanding: usize = shared
            .borrow()
            .clients
            .iter()
            .map(|c| c.outstanding.len())
            .sum();
        if outstanding == 0 {
            break;
        }
        reactor
            .run_once(Some(TICK))
            .map_err(|e| format!("event loop failed: {e}"))?;
    }

    let server_stats = match server.1 {
        Some((handle, thread)) => {
            let _ = handle.stop();
            thread.join().ok()
        }
        None => None,
    };
    let s = shared.borrow();
    report(&s, elapsed, reactor.stats(), server_stats);
    Ok(s.bad == 0)
}

/// Prints the results: rate, loss, latency, and the system calls both sides made.
fn report(s: &Shared, elapsed: Duration, client: Stats, server: Option<Stats>) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let lost = s.sent.saturating_sub(s.echoed);
    println!(
        "echoed {} of {} datagrams in {:.2} s: {:.0} datagrams/s; lost {} ({:.3}%); bad {}",
        s.echoed,
        s.sent,
        secs,
        s.echoed as f64 / secs,
        lost,
        if s.sent == 0 {
            0.0
        } else {
            100.0 * lost as f64 / s.sent as f64
        },
        s.bad
    );
    let h = &s.latency;
    if !h.is_empty() {
        println!(
            "latency µs: p50 {} p90 {} p99 {} p99.9 {} max {}",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
    let per = |calls: u64, datagrams: u64| calls as f64 / datagrams.max(1) as f64;
    println!(
        "client: {:.3} receive and {:.3} send calls per datagram",
        per(client.datagram_recv_calls, client.datagrams_received),
        per(client.datagram_send_calls, client.datagrams_sent)
    );
    if let Some(server) = server {
        println!(
            "server: {} datagrams in, {} out, {:.3} receive and {:.3} send calls per datagram",
            server.datagrams_received,
            server.datagrams_sent,
            per(server.datagram_recv_calls, server.datagrams_received),
            per(server.datagram_send_calls, server.datagrams_sent)
        );
    }
}
