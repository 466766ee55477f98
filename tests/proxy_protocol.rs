//! The PROXY protocol v1 and v2 on listeners and outbound connections (feature
//! `proxy-protocol`): the header is consumed before the handler sees a byte, however it is
//! split; `peer_addr` is the client's, `socket_peer_addr` the balancer's; bad or missing
//! headers close that connection only; TLS comes after the header.

#![cfg(feature = "proxy-protocol")]

#[cfg(feature = "tls")]
#[path = "util/tls.rs"]
mod tls_util;
#[path = "util/mod.rs"]
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use sockloop::{
    CloseReason, ConnectOptions, Context, Handler, Input, ListenOptions, ProxyHeader,
    ProxyProtocol, ProxyVersion,
};

/// What the server's handler saw of one connection.
#[derive(Debug)]
enum Seen {
    /// `on_open`: peer_addr, socket_peer_addr, the header.
    Open(SocketAddr, SocketAddr, Option<ProxyHeader>),
    /// `on_close`: the reason, with its error kind for a PROXY protocol one.
    Close(String, Option<ErrorKind>),
}

/// Echoes, and reports what it saw.
struct Who(Sender<Seen>);

impl Handler for Who {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let seen = Seen::Open(
            cx.peer_addr().unwrap(),
            cx.socket_peer_addr().unwrap(),
            cx.proxy_header().cloned(),
        );
        let _ = self.0.send(seen);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        let kind = match &reason {
            CloseReason::ProxyProtocol(e) => Some(e.kind()),
            _ => None,
        };
        let _ = self.0.send(Seen::Close(reason.to_string(), kind));
    }
}

/// A reactor with a `Who` listener taking the PROXY protocol in `mode`.
fn server(options: ListenOptions) -> (SocketAddr, Receiver<Seen>, util::ReactorThread) {
    let (tx, rx) = mpsc::channel();
    let (addr, thread) = util::spawn_reactor(move |reactor| {
        let (_, addr) = reactor
            .listen_with(util::localhost(), options, move || Who(tx.clone()))
            .unwrap();
        addr
    });
    (addr, rx, thread)
}

fn required() -> ListenOptions {
    ListenOptions::new().proxy_protocol(ProxyProtocol::Required)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Sends `bytes` then `payload`, reads the echo of `payload`, and returns what the server saw
/// on open.
fn through(addr: SocketAddr, header: &[u8], payload: &[u8], rx: &Receiver<Seen>) -> Seen {
    let mut client = util::client(addr);
    client.write_all(header).unwrap();
    client.write_all(payload).unwrap();
    assert_eq!(util::read_exactly(&mut client, payload.len()), payload);
    next_open(rx)
}

/// The next `on_open`, past the closes of connections of earlier steps.
fn next_open(rx: &Receiver<Seen>) -> Seen {
    loop {
        let seen = util::recv(rx, "on_open");
        if matches!(seen, Seen::Open(..)) {
            return seen;
        }
    }
}

#[test]
fn a_v1_header_gives_the_client_address_and_is_not_seen_by_the_handler() {
    let (addr, rx, server) = server(required());
    let seen = through(
        addr,
        b"PROXY TCP4 192.0.2.7 198.51.100.1 50000 443\r\n",
        b"hello after the header",
        &rx,
    );
    let Seen::Open(peer, socket_peer, Some(header)) = seen else {
        panic!("{seen:?}");
    };
    assert_eq!(peer, sa("192.0.2.7:50000"));
    assert!(socket_peer.ip().is_loopback(), "{socket_peer}");
    assert_eq!(header.version(), ProxyVersion::V1);
    assert_eq!(header.destination(), Some(sa("198.51.100.1:443")));
    server.stop();
}

#[test]
fn a_v2_header_with_tlvs_over_ipv6() {
    let (addr, rx, server) = server(required());
    let sent = ProxyHeader::new(
        ProxyVersion::V2,
        sa("[2001:db8::7]:4000"),
        sa("[2001:db8::1]:443"),
    )
    .with_tlv(0x02, b"example.org")
    .with_tlv(0xE0, &[7; 100]);
    let seen = through(addr, &sent.to_bytes().unwrap(), b"payload", &rx);
    let Seen::Open(peer, _, Some(header)) = seen else {
        panic!("{seen:?}");
    };
    assert_eq!(peer, sa("[2001:db8::7]:4000"));
    assert_eq!(header, sent);
    assert_eq!(header.tlv(0x02), Some(&b"example.org"[..]));
    server.stop();
}

#[test]
fn a_header_split_byte_by_byte_across_reads_is_still_consumed_whole() {
    for version in [ProxyVersion::V1, ProxyVersion::V2] {
        let (addr, rx, server) = server(required());
        let header = ProxyHeader::new(version, sa("203.0.113.9:1234"), sa("10.0.0.1:80"))
            .to_bytes()
            .unwrap();
        let mut client = util::client(addr);
        client.set_nodelay(true).unwrap();
        let (last, most) = header.split_last().unwrap();
        for byte in most {
            // Each byte is its own segment; let the loop see it before the next one comes.
            let before = server.iterations();
            client.write_all(std::slice::from_ref(byte)).unwrap();
            util::wait_until("an iteration after one byte", || {
                server.iterations() > before
            });
        }
        assert!(
            rx.try_recv().is_err(),
            "{version}: the handler heard of the connection before its header was whole"
        );
        client.write_all(std::slice::from_ref(last)).unwrap();
        client.write_all(b"data").unwrap();
        assert_eq!(util::read_exactly(&mut client, 4), b"data");
        let seen = util::recv(&rx, "on_open");
        assert!(
            matches!(seen, Seen::Open(peer, _, Some(_)) if peer == sa("203.0.113.9:1234")),
            "{version}: {seen:?}"
        );
        server.stop();
    }
}

#[test]
fn a_missing_header_closes_that_connection_and_the_others_are_served() {
    let (addr, rx, server) = server(required());
    let mut bad = util::client(addr);
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    util::assert_eof(&mut bad);
    drop(bad); // our FIN: the server's graceful close completes
    let seen = util::recv(&rx, "on_close of the connection without a header");
    assert!(
        matches!(&seen, Seen::Close(_, Some(ErrorKind::InvalidData))),
        "{seen:?}"
    );
    // The listener goes on serving those that send a header.
    let good = through(addr, b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n", b"ok", &rx);
    assert!(matches!(good, Seen::Open(..)), "{good:?}");
    server.stop();
}

#[test]
fn malformed_headers_close_with_a_proxy_protocol_reason_and_no_open() {
    let mut endless = b"PROXY ".to_vec();
    endless.resize(200, b'x');
    let cases: Vec<Vec<u8>> = vec![
        b"PROXY TCP4 192.0.2.7 nonsense\r\n".to_vec(),
        b"PROXY TCP4 192.0.2.7 198.51.100.1 50000 99999\r\n".to_vec(),
        b"PROXY TCP9 1 2 3 4\r\n".to_vec(),
        // A v1 line that does not end within 107 bytes.
        endless,
        // A v2 signature with version 3.
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02"
            .to_vec(),
    ];
    let (tx, rx) = mpsc::channel();
    let (addr, server) = util::spawn_run(move |reactor| {
        let (_, addr) = reactor
            .listen_with(util::localhost(), required(), move || Who(tx.clone()))
            .unwrap();
        addr
    });
    for case in &cases {
        let mut client = util::client(addr);
        client.write_all(case).unwrap();
        util::assert_eof(&mut client);
        drop(client);
        let seen = util::recv(&rx, "on_close");
        assert!(
            matches!(&seen, Seen::Close(_, Some(ErrorKind::InvalidData))),
            "{:?}: {seen:?}",
            String::from_utf8_lossy(case)
        );
    }
    let stats = util::stats(server.handle());
    assert_eq!(stats.closed.proxy_protocol, cases.len() as u64);
    assert_eq!(stats.closed.total(), cases.len() as u64);
    server.handle().stop().unwrap();
    server.wait_returned(Duration::from_secs(30));
}

#[test]
fn a_stream_that_ends_inside_the_header_is_unexpected_eof() {
    let (addr, rx, server) = server(required());
    let mut client = util::client(addr);
    client.write_all(b"PROXY TCP4 192.0.2.7 ").unwrap();
    util::half_close(&client);
    let seen = util::recv(&rx, "on_close");
    assert!(
        matches!(&seen, Seen::Close(_, Some(ErrorKind::UnexpectedEof))),
        "{seen:?}"
    );
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(rest.is_empty());
    server.stop();
}

#[test]
fn the_first_bytes_timeout_covers_a_header_that_never_comes() {
    let options = required().first_bytes_timeout(Duration::from_millis(100));
    let (addr, rx, server) = server(options);
    let mut silent = util::client(addr);
    let seen = util::recv(&rx, "on_close of the silent client");
    assert!(
        matches!(&seen, Seen::Close(reason, None) if reason == "first bytes timeout"),
        "{seen:?}"
    );
    util::assert_eof(&mut silent);
    server.stop();
}

#[test]
fn optional_headers_are_taken_when_present_and_not_required() {
    let options = ListenOptions::new().proxy_protocol(ProxyProtocol::Optional);
    let (addr, rx, server) = server(options);
    let with = through(addr, b"PROXY TCP4 192.0.2.7 192.0.2.8 7 8\r\n", b"a", &rx);
    assert!(
        matches!(with, Seen::Open(peer, _, Some(_)) if peer == sa("192.0.2.7:7")),
        "{with:?}"
    );
    // "PUT" starts like "PROXY" for two bytes, then is not a header.
    let without = through(addr, b"", b"PUT /x HTTP/1.1\r\n", &rx);
    let Seen::Open(peer, socket_peer, None) = without else {
        panic!("{without:?}");
    };
    assert_eq!(peer, socket_peer);
    server.stop();
}

#[test]
fn a_local_header_from_a_health_check_keeps_the_socket_addresses() {
    let (addr, rx, server) = server(required());
    // v2 LOCAL, no addresses: what HAProxy's health checks send with send-proxy-v2.
    let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    let seen = through(addr, local, b"ping", &rx);
    let Seen::Open(peer, socket_peer, Some(header)) = seen else {
        panic!("{seen:?}");
    };
    assert_eq!(peer, socket_peer);
    assert_eq!(header.source(), None);
    server.stop();
}

#[test]
fn unix_listeners_refuse_the_proxy_protocol() {
    let dir = util::TempDir::new("proxy-unix");
    let mut reactor = sockloop::Reactor::new().unwrap();
    let err = reactor
        .listen_unix_with(dir.join("s.sock"), required(), || util::Echo)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// Connects with `options` through the reactor to `target`, writes `payload`, and reports the
/// echo.
struct Sender2 {
    payload: &'static [u8],
    got: Vec<u8>,
    done: Sender<Vec<u8>>,
}

impl Handler for Sender2 {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.write(self.payload);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.got.extend_from_slice(input.take_all());
        if self.got.len() >= self.payload.len() {
            let _ = self.done.send(std::mem::take(&mut self.got));
            cx.close();
        }
    }
}

#[test]
fn connect_options_send_a_header_first() {
    for version in [ProxyVersion::V1, ProxyVersion::V2] {
        let (seen_tx, seen) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let client = sa("192.0.2.44:4444");
        let ((), server) = util::spawn_reactor(move |reactor| {
            let (_, addr) = reactor
                .listen_with(util::localhost(), required(), move || Who(seen_tx.clone()))
                .unwrap();
            let header = ProxyHeader::new(version, client, addr);
            let options = ConnectOptions::new().proxy_header(header);
            let sender = Sender2 {
                payload: b"through the header",
                got: Vec::new(),
                done: done_tx,
            };
            reactor.connect_with(addr, options, sender);
        });
        assert_eq!(util::recv(&done, "echo"), b"through the header");
        let opened = util::recv(&seen, "server's on_open");
        assert!(
            matches!(opened, Seen::Open(peer, _, Some(_)) if peer == client),
            "{version}: {opened:?}"
        );
        server.stop();
    }
}

#[cfg(feature = "tls")]
#[test]
fn tls_comes_after_the_header_both_ways() {
    let pki = tls_util::Pki::new();
    let (seen_tx, seen) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let server_config = pki.server_config(&[]);
    let client_config = pki.client_config(&[]);
    let client = sa("192.0.2.45:4545");
    let ((), server) = util::spawn_reactor(move |reactor| {
        let options = required().tls(server_config);
        let (_, addr) = reactor
            .listen_with(util::localhost(), options, move || Who(seen_tx.clone()))
            .unwrap();
        let options = ConnectOptions::new()
            .proxy_header(ProxyHeader::new(ProxyVersion::V2, client, addr))
            .tls(client_config, tls_util::localhost_name());
        let sender = Sender2 {
            payload: b"encrypted after the header",
            got: Vec::new(),
            done: done_tx,
        };
        reactor.connect_with(addr, options, sender);
    });
    assert_eq!(util::recv(&done, "echo"), b"encrypted after the header");
    let opened = util::recv(&seen, "server's on_open");
    assert!(
        matches!(opened, Seen::Open(peer, _, Some(_)) if peer == client),
        "{opened:?}"
    );
    server.stop();
}

/// A raw socket (not through sockloop) that sends a v1 header, then speaks TLS with rustls.
#[cfg(feature = "tls")]
#[test]
fn a_rustls_client_behind_a_v1_header() {
    use sockloop::rustls::{ClientConnection, StreamOwned};
    let pki = tls_util::Pki::new();
    let (addr, rx, server) = server(required().tls(pki.server_config(&[])));
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.write_all(b"PROXY TCP4 192.0.2.46 127.0.0.1 4646 443\r\n")
        .unwrap();
    let session =
        ClientConnection::new(pki.client_config(&[]), tls_util::localhost_name()).unwrap();
    let mut tls = StreamOwned::new(session, tcp);
    tls.write_all(b"secret").unwrap();
    let mut echo = [0; 6];
    tls.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"secret");
    let seen = util::recv(&rx, "on_open");
    assert!(
        matches!(seen, Seen::Open(peer, _, Some(_)) if peer == sa("192.0.2.46:4646")),
        "{seen:?}"
    );
    server.stop();
}
