//! Unix domain stream sockets (`Reactor::listen_unix`, `connect_unix`): served exactly like TCP,
//! from the same handlers. Every socket file lives in a fresh temporary directory.

#![cfg(unix)]

mod util;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use sockloop::{CloseReason, Context, Handler, Input, ListenOptions, Reactor};
use util::{Echo, TempDir};

/// A blocking Unix client with timeouts, so no test can hang.
fn unix_client(path: &Path) -> UnixStream {
    let c = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    c.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    c.set_write_timeout(Some(util::TIMEOUT)).unwrap();
    c
}

#[test]
fn unix_listener_echoes_byte_exact() {
    const LEN: usize = 48 * 1024;
    let dir = TempDir::new("unix-echo");
    let path = dir.join("echo.sock");
    let (handle, server) = {
        let path = path.clone();
        util::spawn_reactor(move |reactor| {
            reactor.listen_unix(&path, || Echo).expect("listen_unix");
            reactor.handle().unwrap()
        })
    };
    let mut c = unix_client(&path);
    let data = util::pattern(7, LEN);
    let mut writer = c.try_clone().unwrap();
    let sent = data.clone();
    // Uneven chunks from a second thread, while this one reads, so neither side waits for the
    // other to drain.
    let send = thread::spawn(move || {
        let mut rng = util::Rng::new(3);
        let mut off = 0;
        while off < sent.len() {
            let n = (1 + rng.below(5000) as usize).min(sent.len() - off);
            writer.write_all(&sent[off..off + n]).unwrap();
            off += n;
        }
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("read to EOF");
    send.join().unwrap();
    util::assert_bytes_eq(&got, &data, "unix echo");
    drop(c);
    server.wait_for_connections(0);
    let stats = util::stats(&handle);
    assert_eq!(stats.accepted, 1, "{stats}");
    assert_eq!(stats.closed.peer_closed, 1, "{stats}");
    assert_eq!(
        (stats.bytes_read, stats.bytes_written),
        (LEN as u64, LEN as u64)
    );
    server.stop();
}

/// What the in-process client saw.
#[derive(Debug, Default)]
struct Outcome {
    opened: bool,
    echoed: Vec<u8>,
    closed: Option<String>,
    peer_addr: Option<ErrorKind>,
}

/// Sends `msg` once open, collects the echo, closes when it is complete.
struct Client {
    msg: &'static [u8],
    out: Rc<RefCell<Outcome>>,
}

impl Handler for Client {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let mut out = self.out.borrow_mut();
        out.opened = true;
        out.peer_addr = cx.peer_addr().err().map(|e| e.kind());
        cx.write(self.msg);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let mut out = self.out.borrow_mut();
        out.echoed.extend_from_slice(input.take_all());
        if out.echoed.len() >= self.msg.len() {
            cx.close();
        }
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        self.out.borrow_mut().closed = Some(match reason {
            CloseReason::ConnectFailed(e) => format!("ConnectFailed({:?})", e.kind()),
            other => other.to_string(),
        });
    }
}

#[test]
fn connect_unix_reaches_the_reactors_own_unix_listener() {
    let dir = TempDir::new("unix-self");
    let path = dir.join("self.sock");
    let mut reactor = Reactor::new().unwrap();
    reactor.listen_unix(&path, || Echo).unwrap();
    let out = Rc::new(RefCell::new(Outcome::default()));
    let msg: &[u8] = b"over a unix socket, to myself";
    reactor.connect_unix(
        &path,
        Client {
            msg,
            out: Rc::clone(&out),
        },
    );
    util::run_until(&mut reactor, "the client to close", |_| {
        out.borrow().closed.is_some()
    });
    let out = out.borrow();
    assert!(out.opened);
    assert_eq!(out.echoed, msg);
    assert_eq!(out.closed.as_deref(), Some("closed locally"), "{out:?}");
    // A Unix socket has no IP address to report.
    assert_eq!(out.peer_addr, Some(ErrorKind::Unsupported));
    util::run_until(&mut reactor, "both ends to be released", |r| {
        r.connection_count() == 0
    });
    let stats = reactor.stats();
    assert_eq!((stats.accepted, stats.connected), (1, 1), "{stats}");
}

#[test]
fn connect_unix_to_a_missing_path_reports_connect_failed() {
    let dir = TempDir::new("unix-missing");
    let mut reactor = Reactor::new().unwrap();
    let out = Rc::new(RefCell::new(Outcome::default()));
    reactor.connect_unix(
        dir.join("nobody-listens.sock"),
        Client {
            msg: b"",
            out: Rc::clone(&out),
        },
    );
    util::run_until(&mut reactor, "on_close", |_| out.borrow().closed.is_some());
    let out = out.borrow();
    assert!(!out.opened, "on_open ran for a failed connect");
    assert_eq!(out.closed.as_deref(), Some("ConnectFailed(NotFound)"));
    assert_eq!(reactor.stats().closed.connect_failed, 1);
    assert_eq!(reactor.connection_count(), 0);
}

#[test]
fn listen_unix_on_an_existing_path_fails_with_addr_in_use() {
    let dir = TempDir::new("unix-in-use");
    let path = dir.join("taken.sock");
    let mut reactor = Reactor::new().unwrap();
    reactor.listen_unix(&path, || Echo).unwrap();
    let err = reactor.listen_unix(&path, || Echo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
}

/// The idle timeout applies to Unix listeners as well.
#[test]
fn idle_unix_connection_is_closed() {
    const IDLE: Duration = Duration::from_millis(100);
    let dir = TempDir::new("unix-idle");
    let path = dir.join("idle.sock");
    let (handle, server) = {
        let path = path.clone();
        util::spawn_reactor(move |reactor| {
            let options = ListenOptions::new().idle_timeout(IDLE);
            reactor.listen_unix_with(&path, options, || Echo).unwrap();
            reactor.handle().unwrap()
        })
    };
    let start = Instant::now();
    let mut c = unix_client(&path);
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).expect("EOF"), 0);
    assert!(
        start.elapsed() >= IDLE,
        "closed after {:?}",
        start.elapsed()
    );
    server.wait_for_connections(0);
    assert_eq!(util::stats(&handle).closed.idle_timeout, 1);
    server.stop();
}
