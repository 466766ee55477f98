//! Outbound connections through the reactor: to its own listener, to a closed port, with output
//! queued before the connection opens, and from inside a callback (a proxy).

mod util;

use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;

use sockloop::{ConnId, Context, Handler, Input};
use util::{assert_bytes_eq, Echo, Event, Reason, Recorder};

/// Sends `request` on open, collects the reply, reports it and closes once it is complete.
struct Requester {
    request: Vec<u8>,
    got: Vec<u8>,
    replies: Sender<Vec<u8>>,
}

impl Handler for Requester {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.write(&self.request);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.got.extend_from_slice(input.take_all());
        if self.got.len() >= self.request.len() {
            let _ = self.replies.send(std::mem::take(&mut self.got));
            cx.close();
        }
    }
}

#[test]
fn connect_to_own_listener_opens_and_exchanges_data() {
    let (events_tx, events) = mpsc::channel();
    let (replies_tx, replies) = mpsc::channel();
    let request = util::pattern(21, 3 << 20);
    let req = request.clone();
    let (client_id, server) = util::spawn_reactor(move |reactor| {
        let (_, addr) = reactor.listen(util::localhost(), || Echo).unwrap();
        let requester = Requester {
            request: req,
            got: Vec::new(),
            replies: replies_tx,
        };
        reactor.connect(addr, Recorder::new(requester, events_tx))
    });
    assert_eq!(
        util::recv(&events, "on_open of the outbound connection"),
        Event::Open(client_id)
    );
    let reply = util::recv(&replies, "the echoed request");
    assert_bytes_eq(&reply, &request, "reply over an outbound connection");
    assert_eq!(util::next_close(&events), (client_id, Reason::Local));
    server.wait_for_connections(0);
    server.stop();
}

/// A port that nobody listens on (bound once to find it, then released).
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Reports the close reason, including the full error, and whether `on_open` ever ran.
struct Probe {
    opened: bool,
    tx: Sender<(bool, ErrorKind, String)>,
}

impl Handler for Probe {
    fn on_open(&mut self, _cx: &mut Context<'_>) {
        self.opened = true;
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, _input: &mut Input<'_>) {}

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: sockloop::CloseReason) {
        let (kind, text) = match &reason {
            sockloop::CloseReason::ConnectFailed(e) => (e.kind(), reason.to_string()),
            other => panic!("expected ConnectFailed, got {other}"),
        };
        let _ = self.tx.send((self.opened, kind, text));
    }
}

#[test]
fn connect_to_closed_port_reports_connection_refused() {
    let (tx, rx) = mpsc::channel();
    let addr = closed_port();
    let ((), server) = util::spawn_reactor(move |reactor| {
        reactor.connect(addr, Probe { opened: false, tx });
    });
    let (opened, kind, text) = util::recv(&rx, "on_close of a refused connect");
    assert!(!opened, "on_open ran for a refused connect");
    assert_eq!(kind, ErrorKind::ConnectionRefused, "{text}");
    server.wait_for_connections(0);
    server.stop();
    assert!(rx.try_recv().is_err(), "on_close called twice");
}

/// Forwards everything it reads to the test thread.
struct Collect(Sender<Vec<u8>>);

impl Handler for Collect {
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        let _ = self.0.send(input.take_all().to_vec());
    }
}

/// `Reactor::write_to` and `close` on a connection still connecting: the bytes are sent once it
/// opens, then it closes gracefully.
#[test]
fn output_written_before_connect_completes_is_sent_once_open() {
    let (data_tx, data) = mpsc::channel();
    let (events_tx, events) = mpsc::channel();
    let (id, server) = util::spawn_reactor(move |reactor| {
        let (_, addr) = reactor
            .listen(util::localhost(), move || Collect(data_tx.clone()))
            .unwrap();
        let id = reactor.connect(addr, Recorder::new(util::Sink, events_tx));
        reactor
            .write_to(id, b"sent before the connection was open")
            .unwrap();
        id
    });
    let mut got = Vec::new();
    while got.len() < 35 {
        got.extend(util::recv(&data, "early bytes"));
    }
    assert_eq!(got, b"sent before the connection was open");
    assert_eq!(util::recv(&events, "on_open"), Event::Open(id));
    server.stop();
}

/// Closing a connection that is still connecting: `on_open` never runs, `on_close` says `Local`
/// exactly once.
#[test]
fn close_while_connecting_reports_local_without_open() {
    let (tx, events) = mpsc::channel();
    let (id, server) = util::spawn_reactor(move |reactor| {
        let (_, addr) = reactor.listen(util::localhost(), || util::Sink).unwrap();
        let id = reactor.connect(addr, Recorder::new(util::Sink, tx));
        reactor.close(id).unwrap();
        id
    });
    assert_eq!(util::next_close(&events), (id, Reason::Local));
    server.wait_for_connections(0);
    server.stop();
    let history: Vec<Event> = events.try_iter().collect();
    assert!(history.is_empty(), "events after on_close: {history:?}");
}

/// A proxy: each accepted connection opens an outbound one (from inside `on_open`) to an echo
/// listener and relays both ways with `write_to`, including bytes that arrive before the outbound
/// connection is open.
struct Front {
    backend: SocketAddr,
    back: Option<ConnId>,
}

struct Back {
    front: ConnId,
}

impl Handler for Front {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.back = Some(cx.connect(self.backend, Back { front: cx.id() }));
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let back = self.back.expect("backend id");
        cx.write_to(back, input.take_all())
            .expect("write to the backend connection");
    }

    fn on_close(&mut self, cx: &mut Context<'_>, _reason: sockloop::CloseReason) {
        if let Some(back) = self.back {
            let _ = cx.close_conn(back);
        }
    }
}

impl Handler for Back {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        // The front may be gone already (its client left): then the bytes have nowhere to go.
        let _ = cx.write_to(self.front, input.take_all());
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: sockloop::CloseReason) {
        assert!(!reason.is_error(), "backend connection failed: {reason}");
        let _ = cx.close_conn(self.front);
    }
}

#[test]
fn proxy_connects_from_a_callback_and_relays_with_write_to() {
    let (addr, server) = util::spawn_reactor(|reactor| {
        let (_, backend) = reactor.listen(util::localhost(), || Echo).unwrap();
        reactor
            .listen(util::localhost(), move || Front {
                backend,
                back: None,
            })
            .unwrap()
            .1
    });
    let mut c = util::client(addr);
    // The first bytes go out at once, most likely before the outbound connect has completed.
    c.write_all(b"early").unwrap();
    assert_eq!(util::read_exactly(&mut c, 5), b"early");
    let data = Arc::new(util::pattern(22, 4 << 20));
    let got = util::echo_concurrently(&mut c, Arc::clone(&data));
    assert_bytes_eq(&got, &data, "4 MiB through the proxy");
    drop(c);
    // The client, the front, the back and the echo side: all four are released.
    server.wait_for_connections(0);
    server.stop();
}
