//! Outbound connections to names and address lists: resolution off the loop, Happy Eyeballs
//! (RFC 8305), the connect timeout, and targets that are not addresses at all.
//!
//! A listener whose accept queue is full makes the kernel drop SYNs: that is how these tests
//! make a host that "never answers" on loopback.

mod util;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use sockloop::{CloseReason, ConnectOptions, Context, Handler, Input, Target};

/// What a dialing handler saw.
#[derive(Debug, PartialEq)]
enum Seen {
    /// `on_open`, with the peer's address.
    Open(SocketAddr),
    /// The echo of what it sent on open.
    Echo(Vec<u8>),
    /// `on_close` with `ConnectFailed`: the error's kind and its text.
    Failed(ErrorKind, String),
    /// `on_close` with another reason.
    Closed(String),
}

/// Sends `hello` on open and reports everything it sees.
struct Dialer {
    tx: Sender<Seen>,
    got: Vec<u8>,
}

fn dialer(tx: Sender<Seen>) -> Dialer {
    Dialer {
        tx,
        got: Vec::new(),
    }
}

impl Handler for Dialer {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let peer = cx.peer_addr().expect("peer address of an open connection");
        let _ = self.tx.send(Seen::Open(peer));
        cx.write(b"hello");
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.got.extend_from_slice(input.take_all());
        if self.got.len() >= 5 {
            let _ = self.tx.send(Seen::Echo(std::mem::take(&mut self.got)));
            cx.close();
        }
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        let seen = match &reason {
            CloseReason::ConnectFailed(e) => Seen::Failed(e.kind(), e.to_string()),
            other => Seen::Closed(other.to_string()),
        };
        let _ = self.tx.send(seen);
    }
}

/// A listener that accepts nothing, with its accept queue filled: SYNs to it are dropped by the
/// kernel, as a host that never answers would drop them. Holds the queued clients.
struct Unanswering {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
}

fn unanswering(ip: &str) -> Unanswering {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    let addr = SocketAddr::new(ip, 0);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket.bind(&addr.into()).unwrap();
    // Backlog 0: Linux queues one established connection (backlog + 1), then drops SYNs.
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let queued = vec![TcpStream::connect(addr).expect("the connect that fills the queue")];
    Unanswering {
        addr,
        _listener: socket,
        _queued: queued,
    }
}

/// Connects to `target` with `options` on a reactor serving an echo listener on 127.0.0.1
/// (its address is handed to `target`), and returns what the dialer saw until it closed.
fn dial(
    target: impl FnOnce(SocketAddr) -> Target + Send + 'static,
    options: ConnectOptions,
) -> Vec<Seen> {
    let (tx, rx) = mpsc::channel();
    let ((), server) = util::spawn_reactor(move |reactor| {
        let (_, echo) = reactor.listen(util::localhost(), || util::Echo).unwrap();
        reactor.connect_with(target(echo), options, dialer(tx));
    });
    let mut seen = Vec::new();
    loop {
        let event = util::recv(&rx, "the dialer's next event");
        let last = matches!(event, Seen::Failed(..) | Seen::Closed(_));
        seen.push(event);
        if last {
            break;
        }
    }
    server.wait_for_connections(0);
    server.stop();
    assert!(rx.try_recv().is_err(), "events after on_close");
    seen
}

#[test]
fn a_host_name_is_resolved_off_the_loop_and_connected() {
    // "localhost" is in /etc/hosts everywhere; whichever of 127.0.0.1 and ::1 it gives, the
    // race falls through a refused ::1 at once to 127.0.0.1, where the echo listens.
    let seen = dial(
        |echo| format!("localhost:{}", echo.port()).as_str().into(),
        ConnectOptions::new(),
    );
    assert!(
        matches!(seen[0], Seen::Open(peer) if peer.ip().is_loopback()),
        "{seen:?}"
    );
    assert_eq!(seen[1], Seen::Echo(b"hello".to_vec()));
    assert_eq!(seen[2], Seen::Closed("closed locally".into()), "{seen:?}");
}

#[test]
fn a_host_and_port_pair_is_a_target_too() {
    let seen = dial(
        |echo| ("localhost", echo.port()).into(),
        ConnectOptions::new(),
    );
    assert!(matches!(seen[0], Seen::Open(_)), "{seen:?}");
    assert_eq!(seen[1], Seen::Echo(b"hello".to_vec()));
}

#[test]
fn a_name_that_does_not_resolve_fails_the_connect_with_the_name_in_the_error() {
    // .invalid is reserved (RFC 2606): no resolver answers it.
    let seen = dial(|_| "no-such-host.invalid:80".into(), ConnectOptions::new());
    assert_eq!(seen.len(), 1, "{seen:?}");
    let Seen::Failed(_, text) = &seen[0] else {
        panic!("expected ConnectFailed, got {seen:?}");
    };
    assert!(text.contains("no-such-host.invalid"), "{text}");
}

#[test]
fn a_target_that_is_neither_address_nor_name_fails_with_invalid_input() {
    for bad in ["localhost", "127.0.0.1", "host:port", ":80", "[::1:80"] {
        let seen = dial(move |_| bad.into(), ConnectOptions::new());
        assert!(
            matches!(&seen[..], [Seen::Failed(ErrorKind::InvalidInput, _)]),
            "{bad:?}: {seen:?}"
        );
    }
    let seen = dial(|_| Vec::<SocketAddr>::new().into(), ConnectOptions::new());
    assert!(
        matches!(&seen[..], [Seen::Failed(ErrorKind::InvalidInput, _)]),
        "an empty list: {seen:?}"
    );
}

#[test]
fn an_ipv6_literal_with_brackets_is_an_address() {
    let (tx, rx) = mpsc::channel();
    let ((), server) = util::spawn_reactor(move |reactor| {
        let any6: SocketAddr = "[::1]:0".parse().unwrap();
        let (_, echo) = reactor.listen(any6, || util::Echo).unwrap();
        let target = format!("[::1]:{}", echo.port());
        reactor.connect(target.as_str(), dialer(tx));
    });
    let first = util::recv(&rx, "on_open over ::1");
    assert!(
        matches!(first, Seen::Open(peer) if peer.is_ipv6()),
        "{first:?}"
    );
    assert_eq!(util::recv(&rx, "the echo"), Seen::Echo(b"hello".to_vec()));
    server.stop();
}

#[test]
fn the_connect_timeout_fails_a_connect_nobody_answers_with_timed_out() {
    let host = unanswering("127.0.0.1");
    let addr = host.addr;
    let options = ConnectOptions::new().connect_timeout(Duration::from_millis(200));
    let seen = dial(move |_| addr.into(), options);
    assert!(
        matches!(&seen[..], [Seen::Failed(ErrorKind::TimedOut, _)]),
        "{seen:?}"
    );
}

#[test]
fn the_connect_timeout_covers_a_race_in_which_no_address_answers() {
    let (a, b) = (unanswering("127.0.0.1"), unanswering("::1"));
    let addrs = vec![a.addr, b.addr];
    let options = ConnectOptions::new()
        .connect_timeout(Duration::from_millis(300))
        .attempt_delay(Duration::from_millis(10));
    let seen = dial(move |_| addrs.into(), options);
    assert!(
        matches!(&seen[..], [Seen::Failed(ErrorKind::TimedOut, _)]),
        "{seen:?}"
    );
}

#[test]
fn happy_eyeballs_a_silent_first_address_loses_to_the_next_one_unseen() {
    // The first address (IPv6) never answers; after the attempt delay the next family's
    // address is tried and wins. The handler sees one connection, to the winner.
    let silent = unanswering("::1");
    let first = silent.addr;
    let seen = dial(
        move |echo| vec![first, echo].into(),
        ConnectOptions::new().attempt_delay(Duration::from_millis(20)),
    );
    let Seen::Open(peer) = seen[0] else {
        panic!("expected on_open first: {seen:?}");
    };
    assert!(peer.is_ipv4(), "connected to {peer}, not the IPv4 echo");
    assert_eq!(seen[1], Seen::Echo(b"hello".to_vec()));
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn happy_eyeballs_a_refused_address_moves_to_the_next_at_once() {
    // Refused at once: the next address starts without waiting for the attempt delay, which
    // is set far beyond the connect timeout, so only "at once" can connect in time.
    let closed = TcpListener::bind("[::1]:0").unwrap().local_addr().unwrap();
    let seen = dial(
        move |echo| vec![closed, echo].into(),
        ConnectOptions::new()
            .attempt_delay(Duration::from_secs(3600))
            .connect_timeout(Duration::from_secs(60)),
    );
    assert!(
        matches!(seen[0], Seen::Open(peer) if peer.is_ipv4()),
        "{seen:?}"
    );
    assert_eq!(seen[1], Seen::Echo(b"hello".to_vec()));
}

#[test]
fn when_every_address_is_refused_the_last_error_is_reported() {
    let a = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let b = TcpListener::bind("[::1]:0").unwrap().local_addr().unwrap();
    let seen = dial(move |_| vec![a, b].into(), ConnectOptions::new());
    assert!(
        matches!(&seen[..], [Seen::Failed(ErrorKind::ConnectionRefused, _)]),
        "{seen:?}"
    );
}

#[test]
fn closing_a_connect_while_its_name_resolves_reports_local_once() {
    let (tx, rx) = mpsc::channel();
    let ((), server) = util::spawn_reactor(move |reactor| {
        let id = reactor.connect("localhost:9", dialer(tx));
        reactor.close(id).unwrap();
    });
    assert_eq!(
        util::recv(&rx, "on_close"),
        Seen::Closed("closed locally".into())
    );
    // The answer of the lookup comes back to a connection that is gone: nothing happens.
    server.wait_for_connections(0);
    server.stop();
    assert!(rx.try_recv().is_err(), "events after on_close");
}
