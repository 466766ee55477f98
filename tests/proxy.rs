//! The TCP proxy example (`examples/tcp_proxy`), included here with `#[path]` so that these
//! tests run exactly its handlers: a 256 MiB stream through it to an echo server, byte-exact;
//! half-close passed on in both directions; memory held under 64 MiB while a slow side throttles
//! a fast one (the proxy in a child process, so that its resident memory can be read); a client
//! closed by the failed upstream connect itself (no timer) when nothing listens upstream, and
//! reset when upstream resets.

#[path = "util/child.rs"]
mod child;
#[path = "../examples/tcp_proxy/proxy.rs"]
mod proxy;
mod util;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use util::{Echo, ReactorThread, Rng};

/// Bytes of the byte-exact stream test: long enough that every buffer on the way fills and
/// drains many times over (about a second or two on loopback).
const STREAM_BYTES: usize = 256 << 20;
/// Bytes that must pass a slow side while the proxy's memory is watched.
const SLOW_BYTES: usize = 256 << 20;
/// The slow side's pace: well below what the proxy forwards (several hundred MiB/s here), so
/// the fast side is held back for the whole transfer, which takes about two seconds.
const SLOW_RATE: f64 = 128.0 * 1024.0 * 1024.0;
/// The proxy process's peak resident memory must stay below this. Without backpressure it
/// would hold the difference between the two rates, more than 256 MiB over the transfer.
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// How long a pair stays idle before its FIN is sent, in the half-close test: longer than the
/// old design took to slow its polling tick to 250 ms.
const QUIET_SPELL: Duration = Duration::from_millis(600);
const PROXY_ENV: &str = "SOCKLOOP_PROXY_UPSTREAM";

// ---------------------------------------------------------------------------------------------
// Setups
// ---------------------------------------------------------------------------------------------

/// The proxy on a reactor thread of its own, forwarding to `upstream`.
fn proxy_to(upstream: SocketAddr) -> (SocketAddr, ReactorThread) {
    util::spawn_reactor(move |reactor| {
        proxy::listen(reactor, util::localhost(), upstream).expect("listen")
    })
}

/// A sockloop echo server and the proxy in front of it, each on its own reactor thread.
fn echo_behind_proxy() -> (SocketAddr, [ReactorThread; 2]) {
    let (echo, echo_thread) = util::serve(|| Echo);
    let (proxy, proxy_thread) = proxy_to(echo);
    (proxy, [proxy_thread, echo_thread])
}

/// An address nothing listens on: a port that was just bound and released.
fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind(util::localhost()).expect("bind");
    listener.local_addr().expect("local_addr")
}

/// An endless deterministic byte stream, for checking long transfers without holding them.
struct Pattern {
    rng: Rng,
    block: Vec<u8>,
    at: usize,
}

impl Pattern {
    fn new(seed: u64) -> Pattern {
        Pattern {
            rng: Rng::new(seed),
            block: vec![0; 64 << 10],
            at: 64 << 10,
        }
    }

    /// Fills `buf` with the next bytes of the stream.
    fn fill(&mut self, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            if self.at == self.block.len() {
                self.rng.fill(&mut self.block);
                self.at = 0;
            }
            let n = (buf.len() - done).min(self.block.len() - self.at);
            buf[done..done + n].copy_from_slice(&self.block[self.at..self.at + n]);
            self.at += n;
            done += n;
        }
    }
}

/// Writes `total` bytes of pattern `seed` in uneven chunks (so writes straddle the proxy's read
/// boundaries), at most `rate` bytes/s if given.
fn send_pattern(stream: &mut TcpStream, seed: u64, total: usize, rate: Option<f64>) {
    let mut pattern = Pattern::new(seed);
    let mut sizes = Rng::new(seed ^ 0x5eed);
    let mut buf = vec![0; 200_000];
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        let n = (1 + sizes.below(buf.len() as u64) as usize).min(total - sent);
        pattern.fill(&mut buf[..n]);
        stream.write_all(&buf[..n]).expect("write the pattern");
        sent += n;
        pace(started, sent, rate);
    }
}

/// Reads exactly `total` bytes and checks them against pattern `seed`, at most `rate` bytes/s if
/// given; panics at the first wrong byte.
fn expect_pattern(stream: &mut TcpStream, seed: u64, total: usize, rate: Option<f64>) {
    let mut pattern = Pattern::new(seed);
    let mut buf = vec![0; 64 << 10];
    let mut want = vec![0; 64 << 10];
    let started = Instant::now();
    let mut got = 0;
    while got < total {
        let room = buf.len().min(total - got);
        let n = match stream.read(&mut buf[..room]) {
            Ok(0) => panic!("EOF after {got} of {total} bytes"),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("read failed after {got} of {total} bytes: {e}"),
        };
        pattern.fill(&mut want[..n]);
        if buf[..n] != want[..n] {
            let at = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b);
            panic!("stream differs at byte {}", got + at.unwrap_or(0));
        }
        got += n;
        pace(started, got, rate);
    }
}

/// Sleeps as long as `done` bytes are ahead of `rate` (this is the slow side being slow, not a
/// wait for anything).
fn pace(started: Instant, done: usize, rate: Option<f64>) {
    if let Some(rate) = rate {
        let due = Duration::from_secs_f64(done as f64 / rate);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            thread::sleep(ahead);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data and half-close
// ---------------------------------------------------------------------------------------------

#[test]
fn a_256_mib_stream_comes_back_through_the_proxy_byte_exact() {
    let (proxy, _threads) = echo_behind_proxy();
    let mut client = util::client(proxy);
    let mut writer = client.try_clone().unwrap();
    let started = Instant::now();
    // The writer starts at once, before the proxy's upstream connect can have completed: those
    // first bytes must be held, not lost.
    let sender = thread::spawn(move || send_pattern(&mut writer, 1, STREAM_BYTES, None));
    expect_pattern(&mut client, 1, STREAM_BYTES, None);
    sender.join().expect("writer thread");
    let took = started.elapsed();
    eprintln!(
        "{} MiB through the proxy and back in {took:.2?} ({:.0} MiB/s each way)",
        STREAM_BYTES >> 20,
        (STREAM_BYTES >> 20) as f64 / took.as_secs_f64()
    );
    // And the stream ends cleanly: FIN in, through the echo server, FIN out.
    util::half_close(&client);
    util::assert_eof(&mut client);
}

#[test]
fn a_client_that_reads_late_does_not_stall_the_echo() {
    let (proxy, _threads) = echo_behind_proxy();
    send_all_then_read(proxy);
}

/// Sends 128 MiB before reading anything: every buffer between the client and the echo server
/// fills, the echo server stops reading (its replies are not taken), and the proxy must still
/// read the echo server's replies once the client reads, or all three wait for each other
/// forever. Then reads the whole echo.
fn send_all_then_read(proxy: SocketAddr) {
    // Far more than the kernel buffers of the four hops can hold (loopback autotuning lets each
    // hold several MiB), so the writer must stall.
    const BYTES: usize = 128 << 20;
    let mut client = util::client(proxy);
    let mut writer = client.try_clone().unwrap();
    let (sent_tx, sent_rx) = mpsc::channel();
    let sender = thread::spawn(move || {
        let mut pattern = Pattern::new(2);
        let mut buf = vec![0; 256 << 10];
        let mut sent = 0;
        while sent < BYTES {
            pattern.fill(&mut buf);
            writer.write_all(&buf).expect("write");
            sent += buf.len();
            let _ = sent_tx.send(sent);
        }
    });
    // The writer is stuck once it has made no progress for 300 ms: the buffers are full.
    let deadline = Instant::now() + util::TIMEOUT;
    let mut progress = 0;
    while let Ok(sent) = sent_rx.recv_timeout(Duration::from_millis(300)) {
        progress = sent;
        assert!(Instant::now() < deadline, "the writer never stalled");
    }
    assert!(
        progress < BYTES,
        "128 MiB fit in the buffers; nothing was held back"
    );
    expect_pattern(&mut client, 2, BYTES, None);
    sender.join().expect("writer thread");
}

/// The proxy pattern as `Context::pause_reading`'s documentation shows it (each half forwards
/// with `write_to` and pauses its partner while it is not writable), with both halves set not
/// to pause their own reading over the high watermark, holds up against sockloop's own echo
/// server backed up behind it. With the default (pause reading over the high mark) it used to
/// deadlock: upstream's queue over its mark stopped it reading the echo server's replies, the
/// echo server stopped reading because its own output was over *its* mark, and neither side
/// ever read again. A proxy's two directions are independent; `pause_reading_over_high(false)`
/// says so.
#[test]
fn documented_proxy_pattern_does_not_deadlock_against_a_backlogged_echo_server() {
    let (echo, _echo_thread) = util::serve(|| Echo);
    let (proxy, _proxy_thread) = util::spawn_reactor(move |reactor| {
        let naive = move || Naive {
            other: None,
            upstream: Some(echo),
        };
        let options = sockloop::ListenOptions::new().pause_reading_over_high(false);
        reactor
            .listen_with(util::localhost(), options, naive)
            .expect("listen")
            .1
    });
    send_all_then_read(proxy);
}

/// Both halves of the documented proxy pattern; `upstream` is set on the client half only.
struct Naive {
    other: Option<sockloop::ConnId>,
    upstream: Option<SocketAddr>,
}

impl sockloop::Handler for Naive {
    fn on_open(&mut self, cx: &mut sockloop::Context<'_>) {
        if let Some(addr) = self.upstream {
            let me = Some(cx.id());
            let options = sockloop::ConnectOptions::new().pause_reading_over_high(false);
            self.other = Some(cx.connect_with(
                addr,
                options,
                Naive {
                    other: me,
                    upstream: None,
                },
            ));
        }
    }
    fn on_data(&mut self, cx: &mut sockloop::Context<'_>, input: &mut sockloop::Input<'_>) {
        if let Some(other) = self.other {
            let _ = cx.write_to(other, input.take_all());
        }
    }
    fn on_writability(&mut self, cx: &mut sockloop::Context<'_>, writable: bool) {
        if let Some(other) = self.other {
            let _ = if writable {
                cx.resume_reading(other)
            } else {
                cx.pause_reading(other)
            };
        }
    }
}

#[test]
fn client_fin_reaches_upstream_and_upstream_fin_comes_back_after_the_data() {
    let (proxy, _threads) = echo_behind_proxy();
    let mut client = util::client(proxy);
    let data = util::pattern(3, 1 << 20);
    client.write_all(&data).unwrap();
    util::half_close(&client);
    // The echo server answers everything and closes only after our FIN reached it; its FIN
    // must come back behind the last byte.
    let echoed = util::read_to_eof(&mut client);
    util::assert_bytes_eq(&echoed, &data, "echo through the proxy");
}

/// A FIN is passed on by the loop iteration that reads it (`shutdown_write_conn` from
/// `on_read_closed`), however long the pair was idle: no half polls for it, so an idle pair
/// costs no timer firings at all. That no timer fired is the exact check that nothing polls;
/// how long the FIN took is printed (a few loop iterations' work on an idle machine), not
/// asserted.
#[test]
fn a_fin_after_a_quiet_spell_is_passed_on_at_once_and_an_idle_pair_fires_no_timers() {
    let (echo, _echo_thread) = util::serve(|| Echo);
    let ((proxy, handle), _proxy_thread) = util::spawn_reactor(move |reactor| {
        let addr = proxy::listen(reactor, util::localhost(), echo).expect("listen");
        (addr, reactor.handle().expect("handle"))
    });
    let mut client = util::client(proxy);
    client.write_all(b"ping").unwrap();
    assert_eq!(util::read_exactly(&mut client, 4), b"ping");
    // Idle for a while (a quiet spell, not a wait for anything): the old design's polling
    // tick slowed to 250 ms after about 300 ms of this.
    thread::sleep(QUIET_SPELL);
    let idle = util::stats(&handle);
    let started = Instant::now();
    util::half_close(&client);
    util::assert_eof(&mut client);
    let took = started.elapsed();
    let after = util::stats(&handle);
    eprintln!(
        "FIN through the proxy to the echo server and back after {QUIET_SPELL:?} idle: \
         {took:.2?}; proxy timers fired: {} while idle, {} in all",
        idle.timers_fired, after.timers_fired
    );
    assert_eq!(after.timers_fired, 0, "the proxy polled with timers");
}

#[test]
fn upstream_fin_reaches_the_client_which_can_still_send() {
    let upstream = TcpListener::bind(util::localhost()).unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let (got_tx, got_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let (mut conn, _) = upstream.accept().unwrap();
        conn.set_read_timeout(Some(util::TIMEOUT)).unwrap();
        conn.write_all(b"the whole answer").unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        // Half-closed: still reading until the client finishes too.
        let _ = got_tx.send(util::read_to_eof(&mut conn));
    });
    let (proxy, _proxy_thread) = proxy_to(upstream_addr);
    let mut client = util::client(proxy);
    assert_eq!(util::read_to_eof(&mut client), b"the whole answer");
    client.write_all(b"thanks, bye").unwrap();
    util::half_close(&client);
    let got = util::recv(&got_rx, "what upstream read after its FIN");
    assert_eq!(got, b"thanks, bye");
    server.join().unwrap();
    // Both directions are done: the proxy closes the client's connection.
    util::assert_eof(&mut client);
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

/// A client whose upstream connect is refused is closed as a consequence of that failure (the
/// failed half's `on_close` closes its partner): the client sees EOF or a reset, the proxy
/// counts one failed connect per client, and no timer was involved, so nothing waits for a
/// timeout. How long it took is printed, not asserted.
#[test]
fn client_is_closed_promptly_when_nothing_listens_upstream() {
    let upstream = refused_addr();
    let ((proxy, handle), _proxy_thread) = util::spawn_reactor(move |reactor| {
        let addr = proxy::listen(reactor, util::localhost(), upstream).expect("listen");
        (addr, reactor.handle().expect("handle"))
    });
    const CLIENTS: u64 = 3;
    for _ in 0..CLIENTS {
        let started = Instant::now();
        let mut client = util::client(proxy);
        let _ = client.write_all(b"anyone there?");
        let mut buf = [0u8; 64];
        match client.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("got {n} bytes from a proxy with no upstream"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "unexpected error {e}"),
        }
        eprintln!(
            "closed {:.2?} after connecting, with nothing upstream",
            started.elapsed()
        );
    }
    let stats = util::stats(&handle);
    assert_eq!(stats.closed.connect_failed, CLIENTS, "{stats}");
    assert_eq!(stats.timers_fired, 0, "{stats}");
}

#[test]
fn an_upstream_reset_resets_the_client() {
    let upstream = TcpListener::bind(util::localhost()).unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut conn, _) = upstream.accept().unwrap();
        conn.set_read_timeout(Some(util::TIMEOUT)).unwrap();
        util::read_exactly(&mut conn, 5);
        util::reset(conn);
    });
    let (proxy, _proxy_thread) = proxy_to(upstream_addr);
    let mut client = util::client(proxy);
    client.write_all(b"hello").unwrap();
    server.join().unwrap();
    // A reset, not a clean EOF: the client must not take the cut stream for a complete one.
    let (_, e) = util::read_until_error(&mut client);
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "unexpected error {e}");
}

#[test]
fn a_client_reset_resets_upstream() {
    let upstream = TcpListener::bind(util::localhost()).unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let (proxy, _proxy_thread) = proxy_to(upstream_addr);
    let mut client = util::client(proxy);
    client.write_all(b"hello").unwrap();
    let (mut conn, _) = upstream.accept().unwrap();
    conn.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    assert_eq!(util::read_exactly(&mut conn, 5), b"hello");
    util::reset(client);
    let (_, e) = util::read_until_error(&mut conn);
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "unexpected error {e}");
}

// ---------------------------------------------------------------------------------------------
// Memory under a slow side (the proxy in a child process)
// ---------------------------------------------------------------------------------------------

/// The proxy, run as a child process by the memory tests.
#[test]
#[ignore = "runs only as the memory tests' child proxy process"]
fn proxy_process() {
    let Some(upstream) = std::env::var_os(PROXY_ENV) else {
        return;
    };
    let upstream: SocketAddr = upstream.to_str().unwrap().parse().unwrap();
    child::serve_until_stdin_closes(|reactor| {
        proxy::listen(reactor, util::localhost(), upstream).expect("listen")
    });
}

/// The proxy in a child process (this test binary re-executed); killed when dropped.
struct ProxyProcess {
    child: Child,
    addr: SocketAddr,
}

impl ProxyProcess {
    fn start(upstream: SocketAddr) -> ProxyProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "proxy_process", "--ignored", "--nocapture"])
            .args(["--test-threads=1"])
            .env(PROXY_ENV, upstream.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the proxy process");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // The ADDR line comes first; a thread reads it so that the wait has a deadline.
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some((_, addr)) = line.split_once("ADDR ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = util::recv(&rx, "the proxy process's address");
        let addr = addr.parse().expect("proxy address");
        ProxyProcess { child, addr }
    }

    /// A line of `/proc/PID/status` in KiB: `VmRSS` now, `VmHWM` the peak so far.
    fn status_kib(&self, key: &str) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {path}"))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `upstream_side` on the one connection a child proxy makes to a listener of ours while
/// `client_side` runs on a client of that proxy; returns the proxy's peak RSS in KiB.
fn through_child_proxy(
    what: &str,
    upstream_side: impl FnOnce(TcpStream) + Send + 'static,
    client_side: impl FnOnce(TcpStream),
) -> u64 {
    let upstream = TcpListener::bind(util::localhost()).unwrap();
    let proxy = ProxyProcess::start(upstream.local_addr().unwrap());
    let before = proxy.status_kib("VmHWM:");
    let server = thread::spawn(move || {
        let (conn, _) = upstream.accept().unwrap();
        conn.set_read_timeout(Some(util::TIMEOUT)).unwrap();
        conn.set_write_timeout(Some(util::TIMEOUT)).unwrap();
        upstream_side(conn);
    });
    let started = Instant::now();
    client_side(util::client(proxy.addr));
    server.join().expect("upstream thread");
    let peak = proxy.status_kib("VmHWM:");
    eprintln!(
        "{what}: {} MiB in {:.2?}; proxy peak RSS {} KiB (at start {} KiB, now {} KiB)",
        SLOW_BYTES >> 20,
        started.elapsed(),
        peak,
        before,
        proxy.status_kib("VmRSS:")
    );
    peak
}

#[test]
fn a_slow_upstream_holds_a_fast_client_back_in_bounded_memory() {
    let peak = through_child_proxy(
        "slow upstream",
        |mut conn| expect_pattern(&mut conn, 4, SLOW_BYTES, Some(SLOW_RATE)),
        |mut client| send_pattern(&mut client, 4, SLOW_BYTES, None),
    );
    assert!(peak < RSS_LIMIT_KIB, "proxy peak RSS {peak} KiB");
}

#[test]
fn a_slow_client_holds_a_fast_upstream_back_in_bounded_memory() {
    let peak = through_child_proxy(
        "slow client",
        |mut conn| send_pattern(&mut conn, 5, SLOW_BYTES, None),
        |mut client| expect_pattern(&mut client, 5, SLOW_BYTES, Some(SLOW_RATE)),
    );
    assert!(peak < RSS_LIMIT_KIB, "proxy peak RSS {peak} KiB");
}

/// Reports each connection's `peer_addr` (the client's, from its PROXY header) and echoes.
#[cfg(feature = "proxy-protocol")]
struct Whom(mpsc::Sender<(SocketAddr, SocketAddr)>);

#[cfg(feature = "proxy-protocol")]
impl sockloop::Handler for Whom {
    fn on_open(&mut self, cx: &mut sockloop::Context<'_>) {
        let _ = self
            .0
            .send((cx.peer_addr().unwrap(), cx.socket_peer_addr().unwrap()));
    }

    fn on_data(&mut self, cx: &mut sockloop::Context<'_>, input: &mut sockloop::Input<'_>) {
        cx.write(input.take_all());
    }
}

/// `tcp_proxy --send-proxy v1|v2`: the upstream, which requires the PROXY protocol, sees the
/// client's own address and port, and the bytes pass both ways after the header.
#[cfg(feature = "proxy-protocol")]
#[test]
fn send_proxy_passes_the_client_address_upstream() {
    use sockloop::{ConnectOptions, ListenOptions, ProxyHeader, ProxyProtocol, ProxyVersion};
    for version in [ProxyVersion::V1, ProxyVersion::V2] {
        let (tx, seen) = mpsc::channel();
        let options = ListenOptions::new().proxy_protocol(ProxyProtocol::Required);
        let (upstream, upstream_thread) = util::serve_with(options, move || Whom(tx.clone()));
        let (front, proxy_thread) = util::spawn_reactor(move |reactor| {
            proxy::listen_with(reactor, util::localhost(), upstream, move |cx| {
                let header =
                    ProxyHeader::new(version, cx.peer_addr().unwrap(), cx.local_addr().unwrap());
                ConnectOptions::new().proxy_header(header)
            })
            .expect("listen")
        });
        let mut client = util::client(front);
        client.write_all(b"through the proxy").unwrap();
        assert_eq!(util::read_exactly(&mut client, 17), b"through the proxy");
        let (client_addr, via) = util::recv(&seen, "the upstream's on_open");
        assert_eq!(client_addr, client.local_addr().unwrap(), "{version}");
        assert_ne!(via, client_addr);
        drop(client);
        proxy_thread.wait_for_connections(0);
        proxy_thread.stop();
        upstream_thread.stop();
    }
}
