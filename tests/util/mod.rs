//! Shared helpers for the integration tests: a reactor running on its own thread, blocking
//! clients with timeouts, a deterministic byte generator, and a handler that reports its
//! callbacks to the test thread.
//!
//! Every wait here has a deadline ([`TIMEOUT`]); a test that hangs fails instead.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sockloop::{CloseReason, ConnId, Context, Handle, Handler, Input, Reactor, Stats, TimerId};

/// Upper bound for any single wait: a blocking read, a channel receive, a condition to hold.
/// Generous because CI machines can be slow; a healthy test never comes near it.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// How long one `run_once` of the reactor thread may block before it looks at its stop flag.
const POLL_SLICE: Duration = Duration::from_millis(20);

/// A reactor served on its own thread by `run_once` until stopped.
///
/// `Reactor` is not `Send` (handlers need not be), so the reactor is created on that thread and
/// configured there by the setup closure given to [`spawn_reactor`].
pub struct ReactorThread {
    stop: Arc<AtomicBool>,
    /// `connection_count()` as of the end of the latest iteration.
    conns: Arc<AtomicUsize>,
    /// `run_once` calls so far (to show the loop is not spinning).
    iterations: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a reactor thread, runs `setup` on it (bind listeners, start connects) and returns what
/// `setup` returned once the reactor is about to serve.
pub fn spawn_reactor<T, S>(setup: S) -> (T, ReactorThread)
where
    S: FnOnce(&mut Reactor) -> T + Send + 'static,
    T: Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let conns = Arc::new(AtomicUsize::new(0));
    let iterations = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let thread = {
        let stop = Arc::clone(&stop);
        let conns = Arc::clone(&conns);
        let iterations = Arc::clone(&iterations);
        thread::Builder::new()
            .name("reactor".into())
            .spawn(move || {
                let mut reactor = Reactor::new().expect("Reactor::new");
                let out = setup(&mut reactor);
                conns.store(reactor.connection_count(), Ordering::Release);
                tx.send(out).expect("test thread gone");
                while !stop.load(Ordering::Acquire) {
                    reactor.run_once(Some(POLL_SLICE)).expect("run_once");
                    iterations.fetch_add(1, Ordering::Relaxed);
                    conns.store(reactor.connection_count(), Ordering::Release);
                }
            })
            .expect("spawn reactor thread")
    };
    let mut server = ReactorThread {
        stop,
        conns,
        iterations,
        thread: Some(thread),
    };
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => (out, server),
        // The setup panicked: surface its panic rather than a channel error.
        Err(_) => {
            server.join();
            panic!("reactor setup did not finish within {TIMEOUT:?}");
        }
    }
}

/// Serves `factory`'s handlers on a listener bound to an ephemeral port of 127.0.0.1.
pub fn serve<F, H>(factory: F) -> (SocketAddr, ReactorThread)
where
    F: FnMut() -> H + Send + 'static,
    H: Handler,
{
    spawn_reactor(move |reactor| {
        reactor
            .listen(localhost(), factory)
            .expect("listen on 127.0.0.1:0")
            .1
    })
}

/// Like [`serve`], with listener options.
pub fn serve_with<F, H>(options: sockloop::ListenOptions, factory: F) -> (SocketAddr, ReactorThread)
where
    F: FnMut() -> H + Send + 'static,
    H: Handler,
{
    spawn_reactor(move |reactor| {
        reactor
            .listen_with(localhost(), options, factory)
            .expect("listen on 127.0.0.1:0")
            .1
    })
}

/// `127.0.0.1:0`.
pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

impl ReactorThread {
    /// Connections the reactor held (open, connecting or closing) after its latest iteration.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::Acquire)
    }

    /// Loop iterations run so far.
    pub fn iterations(&self) -> usize {
        self.iterations.load(Ordering::Relaxed)
    }

    /// Asserts that the loop ran at most the iterations an idle loop can run in `elapsed` (time
    /// the caller measured around its count of `iterations`): one per poll slice, twice over
    /// for early wake-ups, plus `wakeups`, the events and timers the caller expects meanwhile.
    ///
    /// This is a count, not a speed: a busy machine lengthens the slices, so it only lowers the
    /// count, while a spinning loop runs thousands of iterations in the first slice's time.
    #[track_caller]
    pub fn assert_did_not_spin(&self, iterations: usize, elapsed: Duration, wakeups: usize) {
        let slices = (elapsed.as_micros() / POLL_SLICE.as_micros()) as usize + 1;
        let bound = 2 * slices + wakeups;
        assert!(
            iterations <= bound,
            "{iterations} loop iterations in {elapsed:?}: an idle loop runs at most {bound} \
             ({slices} poll slices of {POLL_SLICE:?}, {wakeups} wake-ups)"
        );
    }

    /// Waits until the reactor holds exactly `n` connections.
    #[track_caller]
    pub fn wait_for_connections(&self, n: usize) {
        wait_until(&format!("the reactor to hold {n} connections"), || {
            self.connections() == n
        });
    }

    /// Stops the loop and joins the thread; a panic on the reactor thread (a failed assertion
    /// inside a handler) is re-raised here. After this, every callback that will ever run has run.
    pub fn stop(mut self) {
        self.join();
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + TIMEOUT;
            while !thread.is_finished() {
                assert!(
                    Instant::now() < deadline,
                    "reactor thread did not stop within {TIMEOUT:?}"
                );
                thread::sleep(Duration::from_millis(2));
            }
            if let Err(panic) = thread.join() {
                panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for ReactorThread {
    fn drop(&mut self) {
        // A test that failed already must not panic again while unwinding.
        if thread::panicking() {
            self.stop.store(true, Ordering::Release);
        } else {
            self.join();
        }
    }
}

/// Polls `cond` every few milliseconds until it holds; panics after [`TIMEOUT`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// Receives one message or panics after [`TIMEOUT`].
#[track_caller]
pub fn recv<T>(rx: &Receiver<T>, what: &str) -> T {
    recv_within(rx, TIMEOUT, what)
}

/// Receives one message or panics after `timeout`.
#[track_caller]
pub fn recv_within<T>(rx: &Receiver<T>, timeout: Duration, what: &str) -> T {
    match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("timed out after {timeout:?} waiting for {what}"),
        Err(RecvTimeoutError::Disconnected) => {
            panic!("channel closed while waiting for {what} (reactor thread panicked?)")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reaching a running reactor: handles, `run()` on its own thread, and in-process driving
// ---------------------------------------------------------------------------------------------

/// Runs `job` on the reactor's thread (posted through `handle`) and returns its result. Because
/// posted jobs run in order, everything posted before this call has run when it returns.
#[track_caller]
pub fn on_loop<T, F>(handle: &Handle, job: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&mut Reactor) -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    handle
        .post(move |reactor| {
            let _ = tx.send(job(reactor));
        })
        .expect("post to the reactor");
    recv(&rx, "a job posted to the reactor")
}

/// The reactor's counters, read on its own thread.
#[track_caller]
pub fn stats(handle: &Handle) -> Stats {
    on_loop(handle, |reactor| reactor.stats())
}

/// What a reactor thread reports once its `run()` returned (and the reactor was dropped).
pub struct RunReturned {
    pub result: io::Result<()>,
    /// `stats()` right after `run()` returned.
    pub stats: Stats,
    /// When `run()` returned, as seen on the reactor thread.
    pub at: Instant,
}

/// A reactor whose thread calls [`Reactor::run`] once, so tests can observe `run` itself
/// returning (after `Handle::stop`, a graceful shutdown, ...). Reached through its [`Handle`].
pub struct RunThread {
    handle: Handle,
    returned: Receiver<RunReturned>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a reactor thread, runs `setup` on it, then calls `run()`; returns what `setup`
/// returned. The reactor is dropped as soon as `run()` returns, before that is reported.
pub fn spawn_run<T, S>(setup: S) -> (T, RunThread)
where
    S: FnOnce(&mut Reactor) -> T + Send + 'static,
    T: Send + 'static,
{
    let (setup_tx, setup_rx) = mpsc::channel();
    let (done_tx, returned) = mpsc::channel();
    let thread = thread::Builder::new()
        .name("reactor-run".into())
        .spawn(move || {
            let mut reactor = Reactor::new().expect("Reactor::new");
            let handle = reactor.handle().expect("Reactor::handle");
            let out = setup(&mut reactor);
            setup_tx.send((out, handle)).expect("test thread gone");
            let result = reactor.run();
            let at = Instant::now();
            let stats = reactor.stats();
            drop(reactor);
            let _ = done_tx.send(RunReturned { result, stats, at });
        })
        .expect("spawn reactor thread");
    match setup_rx.recv_timeout(TIMEOUT) {
        Ok((out, handle)) => (
            out,
            RunThread {
                handle,
                returned,
                thread: Some(thread),
            },
        ),
        Err(RecvTimeoutError::Disconnected) => {
            // The setup panicked: surface its panic rather than a channel error.
            if let Err(panic) = thread.join() {
                panic::resume_unwind(panic);
            }
            panic!("reactor setup ended without reporting");
        }
        Err(RecvTimeoutError::Timeout) => panic!("reactor setup did not finish within {TIMEOUT:?}"),
    }
}

impl RunThread {
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Waits (at most `within`) for `run()` to return; re-raises a panic of the reactor thread.
    #[track_caller]
    pub fn wait_returned(mut self, within: Duration) -> RunReturned {
        let outcome = match self.returned.recv_timeout(within) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Timeout) => panic!("run() did not return within {within:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(thread) = self.thread.take() {
                    if let Err(panic) = thread.join() {
                        panic::resume_unwind(panic);
                    }
                }
                panic!("the reactor thread ended without reporting");
            }
        };
        if let Some(thread) = self.thread.take() {
            thread.join().expect("reactor thread");
        }
        outcome
    }

    /// Whether `run()` has returned already (without waiting).
    pub fn has_returned(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for RunThread {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let _ = self.handle.stop();
        // A test that failed already must not panic again while unwinding.
        if thread::panicking() {
            return;
        }
        let deadline = Instant::now() + TIMEOUT;
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "reactor thread did not stop within {TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(2));
        }
        if let Err(panic) = thread.join() {
            panic::resume_unwind(panic);
        }
    }
}

/// Sets a loop timer that raises a flag: "this much time has passed on the loop" (a deadline
/// measured by the reactor itself, for tests that must show something did *not* happen).
pub fn flag_after(reactor: &mut Reactor, after: Duration) -> std::rc::Rc<std::cell::Cell<bool>> {
    let flag = std::rc::Rc::new(std::cell::Cell::new(false));
    let raised = std::rc::Rc::clone(&flag);
    reactor.add_timer(after, move |_| raised.set(true));
    flag
}

/// Runs iterations of a reactor owned by the calling thread until `done` holds; panics after
/// [`TIMEOUT`].
#[track_caller]
pub fn run_until(reactor: &mut Reactor, what: &str, mut done: impl FnMut(&mut Reactor) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done(reactor) {
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        reactor.run_once(Some(POLL_SLICE)).expect("run_once");
    }
}

/// A fresh directory under the system's temp dir, unique to this process and call, removed on
/// drop (Unix socket files live here).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("sockloop-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A blocking client connected to `addr`, with read and write timeouts so no test can hang.
pub fn client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads exactly `len` bytes.
#[track_caller]
pub fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        match stream.read(&mut buf[got..]) {
            Ok(0) => panic!("EOF after {got} of {len} bytes"),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {got} of {len} bytes: {e}"),
        }
    }
    buf
}

/// Reads until EOF; panics on an error (a reset is not a clean end of stream).
#[track_caller]
pub fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {} bytes, before EOF: {e}", out.len()),
        }
    }
}

/// Asserts the next read is a clean EOF.
#[track_caller]
pub fn assert_eof(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("expected EOF, got byte {:#04x}", byte[0]),
        Err(e) => panic!("expected EOF, got error {e}"),
    }
}

/// Reads until the stream fails and returns (bytes read, the error). Panics on a clean EOF.
#[track_caller]
pub fn read_until_error(stream: &mut TcpStream) -> (usize, io::Error) {
    let mut total = 0;
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => panic!("clean EOF after {total} bytes; expected the stream to fail"),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (total, e),
        }
    }
}

/// Sends `data` from a second thread while this one reads the same amount back, so neither side
/// waits for the other to drain; returns what was read.
pub fn echo_concurrently(stream: &mut TcpStream, data: Arc<Vec<u8>>) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sent = Arc::clone(&data);
    let handle = thread::spawn(move || {
        // Uneven chunk sizes so that writes straddle the reactor's read boundaries.
        let mut rng = Rng::new(sent.len() as u64);
        let mut off = 0;
        while off < sent.len() {
            let n = (1 + rng.below(200_000) as usize).min(sent.len() - off);
            writer.write_all(&sent[off..off + n]).expect("client write");
            off += n;
        }
    });
    let got = read_exactly(stream, data.len());
    handle.join().expect("writer thread panicked");
    got
}

/// Asserts two byte strings are equal, reporting the first difference instead of dumping them.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: got {} bytes, want {}; first difference at offset {first} (got {:?}, want {:?})",
        got.len(),
        want.len(),
        got.get(first),
        want.get(first)
    );
}

/// Shuts down the client's write side (sends FIN).
pub fn half_close(stream: &TcpStream) {
    stream.shutdown(Shutdown::Write).expect("shutdown(Write)");
}

/// Closes with a reset: `SO_LINGER` 0 makes `close` send RST instead of FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream);
}

// ---------------------------------------------------------------------------------------------
// Deterministic bytes
// ---------------------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, and good enough to make payloads whose corruption cannot go unseen.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes determined by `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    Rng::new(seed).fill(&mut v);
    v
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// Writes back every byte it receives; closes after the peer's FIN (the default).
pub struct Echo;

impl Handler for Echo {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }
}

/// Discards everything it receives.
pub struct Sink;

impl Handler for Sink {
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }
}

/// A `CloseReason` reduced to something `Clone + PartialEq` that can cross threads and be
/// compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    PeerClosed,
    Local,
    Aborted,
    ConnectFailed(ErrorKind),
    Error(ErrorKind),
    IdleTimeout,
    ShutdownDeadline,
    /// A variant added after these tests were written.
    Other(String),
}

impl From<&CloseReason> for Reason {
    fn from(reason: &CloseReason) -> Reason {
        match reason {
            CloseReason::PeerClosed => Reason::PeerClosed,
            CloseReason::Local => Reason::Local,
            CloseReason::Aborted => Reason::Aborted,
            CloseReason::ConnectFailed(e) => Reason::ConnectFailed(e.kind()),
            CloseReason::Error(e) => Reason::Error(e.kind()),
            CloseReason::IdleTimeout => Reason::IdleTimeout,
            CloseReason::ShutdownDeadline => Reason::ShutdownDeadline,
            other => Reason::Other(other.to_string()),
        }
    }
}

/// One callback, as seen by [`Recorder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Open(ConnId),
    ReadClosed(ConnId),
    Drained(ConnId),
    Writable(ConnId, bool),
    Shutdown(ConnId),
    Close(ConnId, Reason),
}

/// Wraps a handler and reports its lifecycle callbacks (not `on_data` or `on_timer`, which it only
/// forwards) to the test thread.
pub struct Recorder<H> {
    inner: H,
    tx: Sender<Event>,
}

impl<H> Recorder<H> {
    pub fn new(inner: H, tx: Sender<Event>) -> Self {
        Recorder { inner, tx }
    }
}

impl<H: Handler> Handler for Recorder<H> {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = self.tx.send(Event::Open(cx.id()));
        self.inner.on_open(cx);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.inner.on_data(cx, input);
    }

    fn on_drained(&mut self, cx: &mut Context<'_>) {
        let _ = self.tx.send(Event::Drained(cx.id()));
        self.inner.on_drained(cx);
    }

    fn on_writability(&mut self, cx: &mut Context<'_>, writable: bool) {
        let _ = self.tx.send(Event::Writable(cx.id(), writable));
        self.inner.on_writability(cx, writable);
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        let _ = self.tx.send(Event::ReadClosed(cx.id()));
        self.inner.on_read_closed(cx);
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, timer: TimerId) {
        self.inner.on_timer(cx, timer);
    }

    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        let _ = self.tx.send(Event::Shutdown(cx.id()));
        self.inner.on_shutdown(cx);
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let closed = Reason::from(&reason);
        let id = cx.id();
        self.inner.on_close(cx, reason);
        let _ = self.tx.send(Event::Close(id, closed));
    }
}

/// Waits for the first event that `wanted` accepts, skipping others.
#[track_caller]
pub fn recv_matching(rx: &Receiver<Event>, what: &str, wanted: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if wanted(&e) => return e,
            Ok(_) => {}
            Err(_) => panic!("no {what} within {TIMEOUT:?}"),
        }
    }
}

/// Waits for the next `Close` event, skipping others; returns its id and reason.
#[track_caller]
pub fn next_close(rx: &Receiver<Event>) -> (ConnId, Reason) {
    loop {
        if let Event::Close(id, why) = recv(rx, "on_close") {
            return (id, why);
        }
    }
}

/// Checks the complete event history of a stopped reactor: every connection opened at most once,
/// closed exactly once, and nothing happened to it after its close. Returns the close reasons in
/// order of closing.
pub fn closes_exactly_once(events: &[Event]) -> Vec<(ConnId, Reason)> {
    let mut closes: Vec<(ConnId, Reason)> = Vec::new();
    let mut opened: Vec<ConnId> = Vec::new();
    for event in events {
        let id = match event {
            Event::Open(id)
            | Event::ReadClosed(id)
            | Event::Drained(id)
            | Event::Writable(id, _)
            | Event::Shutdown(id)
            | Event::Close(id, _) => *id,
        };
        assert!(
            !closes.iter().any(|(c, _)| *c == id),
            "{event:?} after {id} was closed; history: {events:?}"
        );
        match event {
            Event::Open(_) => {
                assert!(!opened.contains(&id), "{id} opened twice: {events:?}");
                opened.push(id);
            }
            Event::Close(_, why) => closes.push((id, why.clone())),
            _ => {}
        }
    }
    for id in &opened {
        assert!(
            closes.iter().any(|(c, _)| c == id),
            "{id} opened but never closed: {events:?}"
        );
    }
    closes
}
