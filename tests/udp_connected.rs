//! Connected UDP (`Reactor::connect_udp`): sends without an address, only the peer's datagrams
//! delivered, and a closed port reported to `on_error` as `ConnectionRefused`.

mod util;

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;

use sockloop::{DatagramHandler, Reactor, UdpContext, UdpError};

/// What a client handler saw.
#[derive(Default)]
struct Seen {
    datagrams: Vec<(Vec<u8>, SocketAddr)>,
    errors: Vec<(ErrorKind, bool)>,
}

/// Answers every datagram with "ack" (no address: the connected peer), and records it all.
struct Client(Rc<RefCell<Seen>>);

impl DatagramHandler for Client {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
        assert_eq!(cx.peer_addr().ok(), Some(from));
        self.0.borrow_mut().datagrams.push((data.to_vec(), from));
        cx.send(b"ack").unwrap();
    }

    fn on_error(&mut self, _cx: &mut UdpContext<'_>, error: UdpError) {
        let receive = matches!(error, UdpError::Receive(_));
        self.0.borrow_mut().errors.push((error.kind(), receive));
    }
}

fn server() -> UdpSocket {
    let socket = UdpSocket::bind(util::localhost()).unwrap();
    socket.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    socket
}

#[test]
fn a_connected_socket_sends_without_an_address_and_hears_only_its_peer() {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let server = server();
    let peer = server.local_addr().unwrap();
    let mut reactor = Reactor::new().unwrap();
    let (id, local) = reactor.connect_udp(peer, Client(Rc::clone(&seen))).unwrap();
    reactor.send(id, b"hello").unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"hello"[..], local));

    // A stranger's datagram, sent between the peer's two, never reaches the handler.
    server.send_to(b"one", local).unwrap();
    UdpSocket::bind(util::localhost())
        .unwrap()
        .send_to(b"stranger", local)
        .unwrap();
    server.send_to(b"two", local).unwrap();
    util::run_until(&mut reactor, "the peer's datagrams", |_| {
        seen.borrow().datagrams.len() == 2
    });
    let want = vec![(b"one".to_vec(), peer), (b"two".to_vec(), peer)];
    assert_eq!(seen.borrow().datagrams, want);
    for _ in 0..2 {
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"ack"[..], local));
    }
    assert!(seen.borrow().errors.is_empty());
    assert_eq!(reactor.stats().datagrams_received, 2);
}

#[test]
fn a_closed_port_is_reported_as_connection_refused() {
    // A port that was free a moment ago: nothing listens there now.
    let closed = UdpSocket::bind(util::localhost())
        .unwrap()
        .local_addr()
        .unwrap();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut reactor = Reactor::new().unwrap();
    let (id, _) = reactor
        .connect_udp(closed, Client(Rc::clone(&seen)))
        .unwrap();
    reactor.send(id, b"anyone?").unwrap();
    util::run_until(&mut reactor, "the refusal", |_| {
        !seen.borrow().errors.is_empty()
    });
    assert_eq!(
        seen.borrow().errors,
        vec![(ErrorKind::ConnectionRefused, true)]
    );
    assert!(seen.borrow().datagrams.is_empty());
    assert_eq!(reactor.stats().datagram_errors, 1);
    // The socket stays open and usable.
    reactor.send(id, b"still here").unwrap();
}

#[test]
fn a_send_without_an_address_needs_a_connected_socket() {
    struct Sink;
    impl DatagramHandler for Sink {
        fn on_datagram(&mut self, _: &mut UdpContext<'_>, _: &[u8], _: SocketAddr) {}
    }
    let mut reactor = Reactor::new().unwrap();
    let (id, _) = reactor.bind_udp(util::localhost(), Sink).unwrap();
    let err = reactor.send(id, b"where to?").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    assert_eq!(reactor.stats().datagrams_sent, 0);
}

#[test]
fn connect_udp_works_over_ipv6_where_there_is_ipv6() {
    let Ok(server) = UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    server.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut reactor = Reactor::new().unwrap();
    let (id, local) = reactor
        .connect_udp(server.local_addr().unwrap(), Client(Rc::clone(&seen)))
        .unwrap();
    assert!(local.is_ipv6());
    reactor.send(id, b"v6").unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"v6"[..], local));
}
