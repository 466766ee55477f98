//! Socket options, read back from the sockets they were set on: a listener's accepted
//! connections, an outbound connection, a UDP socket; and IPv6 (`::1`, `[::]` dual stack and
//! IPv6-only).

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use sockloop::socket2::SockRef;
use sockloop::{
    ConnectOptions, Context, DatagramHandler, Handler, Input, ListenOptions, SocketOptions,
    UdpContext,
};

/// Every named option at once.
fn all_options() -> SocketOptions {
    SocketOptions::new()
        .keepalive(Duration::from_secs(61))
        .keepalive_interval(Duration::from_secs(7))
        .keepalive_retries(4)
        .send_buffer_size(200_000)
        .recv_buffer_size(300_000)
        .linger(Duration::from_secs(3))
        .user_timeout(Duration::from_secs(29))
        .tos(0xb8)
}

/// What the options above look like on a socket, as the kernel reports them.
fn read_back(socket: &SockRef<'_>, v6: bool) -> String {
    let tos = if v6 {
        socket.tclass_v6().unwrap()
    } else {
        socket.tos_v4().unwrap()
    };
    format!(
        "keepalive={} time={:?} interval={:?} retries={} sndbuf>={} rcvbuf>={} linger={:?} \
         user_timeout={:?} tos={tos:#x}",
        socket.keepalive().unwrap(),
        socket.tcp_keepalive_time().unwrap(),
        socket.tcp_keepalive_interval().unwrap(),
        socket.tcp_keepalive_retries().unwrap(),
        socket.send_buffer_size().unwrap() >= 200_000,
        socket.recv_buffer_size().unwrap() >= 300_000,
        socket.linger().unwrap(),
        socket.tcp_user_timeout().unwrap(),
    )
}

const EXPECTED: &str = "keepalive=true time=61s interval=7s retries=4 sndbuf>=true \
                        rcvbuf>=true linger=Some(3s) user_timeout=Some(29s) tos=0xb8";

/// Reports its socket's options when it opens.
struct Report(mpsc::Sender<String>, bool);

impl Handler for Report {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let socket = cx.socket().expect("an open connection has its socket");
        let _ = self.0.send(read_back(&socket, self.1));
    }
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }
}

#[test]
fn a_listeners_options_are_set_on_every_accepted_connection() {
    let (tx, rx) = mpsc::channel();
    let options = ListenOptions::new().socket_options(all_options());
    let (addr, server) = util::serve_with(options, move || Report(tx.clone(), false));
    let _a = util::client(addr);
    let _b = util::client(addr);
    for _ in 0..2 {
        assert_eq!(util::recv(&rx, "an accepted socket's options"), EXPECTED);
    }
    server.stop();
}

#[test]
fn an_outbound_connections_options_are_set_before_it_connects() {
    let (tx, rx) = mpsc::channel();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (_, server) = util::spawn_reactor(move |reactor| {
        let options = ConnectOptions::new().socket_options(all_options());
        reactor.connect_with(addr, options, Report(tx, false));
    });
    let _accepted = listener.accept().unwrap();
    assert_eq!(util::recv(&rx, "the outbound socket's options"), EXPECTED);
    server.stop();
}

/// A hook runs after the named options, on the same socket.
#[test]
fn the_configure_hook_runs_on_accepted_connections() {
    let (tx, rx) = mpsc::channel();
    struct Cork(mpsc::Sender<bool>);
    impl Handler for Cork {
        fn on_open(&mut self, cx: &mut Context<'_>) {
            let _ = self.0.send(cx.socket().unwrap().tcp_cork().unwrap());
        }
        fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
            input.consume(input.len());
        }
    }
    let socket = SocketOptions::new().configure(|s| s.set_tcp_cork(true));
    let options = ListenOptions::new().socket_options(socket);
    let (addr, server) = util::serve_with(options, move || Cork(tx.clone()));
    let _c = util::client(addr);
    assert!(util::recv(&rx, "TCP_CORK read back"));
    server.stop();
}

/// A hook's error drops that accepted connection, and the listener serves the next.
#[test]
fn a_failing_hook_drops_only_that_connection() {
    // It fails on connected (accepted) sockets only, not on the listening one.
    let socket = SocketOptions::new().configure(|s| match s.peer_addr() {
        Ok(_) => Err(std::io::ErrorKind::Other.into()),
        Err(_) => Ok(()),
    });
    let options = ListenOptions::new().socket_options(socket);
    let (addr, server) = util::serve_with(options, || util::Echo);
    let mut c = util::client(addr);
    // Dropped: the client sees the end of the stream (or a reset), never an echo.
    let _ = c.write_all(b"x");
    let mut buf = [0u8; 1];
    let got = std::io::Read::read(&mut c, &mut buf);
    assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");
    server.stop();
}

/// Reports its socket's receive buffer size on the first datagram.
struct UdpReport(mpsc::Sender<usize>);

impl DatagramHandler for UdpReport {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {
        let _ = self
            .0
            .send(cx.socket().unwrap().recv_buffer_size().unwrap());
    }
}

#[test]
fn a_udp_sockets_options_are_set_before_it_binds() {
    let (tx, rx) = mpsc::channel();
    let (addr, server) = util::spawn_reactor(move |reactor| {
        let options = SocketOptions::new().recv_buffer_size(1 << 20);
        reactor
            .bind_udp_with(util::localhost(), options, UdpReport(tx))
            .unwrap()
            .1
    });
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"x", addr)
        .unwrap();
    assert!(util::recv(&rx, "SO_RCVBUF") >= 1 << 20);
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// IPv6
// ---------------------------------------------------------------------------------------------

fn v6(addr: &str) -> SocketAddr {
    addr.parse().unwrap()
}

#[test]
fn tcp_echo_over_ipv6_loopback_with_v6_options() {
    let (tx, rx) = mpsc::channel();
    let (addr, server) = util::spawn_reactor(move |reactor| {
        let options = ListenOptions::new().socket_options(all_options());
        let echo = reactor
            .listen_with(v6("[::1]:0"), options, move || Report(tx.clone(), true))
            .unwrap()
            .1;
        let plain = reactor.listen(v6("[::1]:0"), || util::Echo).unwrap().1;
        (echo, plain)
    });
    let (with_options, plain) = addr;
    assert!(with_options.is_ipv6());
    let _c = TcpStream::connect(with_options).unwrap();
    assert_eq!(util::recv(&rx, "options on an IPv6 socket"), EXPECTED);
    let mut c = util::client(plain);
    let data = util::pattern(6, 100_000);
    let echoed = util::echo_concurrently(&mut c, std::sync::Arc::new(data.clone()));
    util::assert_bytes_eq(&echoed, &data, "echo over ::1");
    server.stop();
}

/// Records the peer address of each connection.
struct Peer(mpsc::Sender<SocketAddr>);

impl Handler for Peer {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = self.0.send(cx.peer_addr().unwrap());
    }
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }
}

/// `[::]` is dual stack by default on Linux (IPv4 clients arrive as IPv4-mapped addresses), and
/// IPv6-only with `only_v6(true)`: then an IPv4 client is refused.
#[test]
fn unspecified_v6_is_dual_stack_unless_v6_only() {
    let (tx, rx) = mpsc::channel();
    let ((dual, only), server) = util::spawn_reactor(move |reactor| {
        let tx2 = tx.clone();
        let dual = reactor
            .listen(v6("[::]:0"), move || Peer(tx.clone()))
            .unwrap()
            .1;
        let options = ListenOptions::new().socket_options(SocketOptions::new().only_v6(true));
        let only = reactor
            .listen_with(v6("[::]:0"), options, move || Peer(tx2.clone()))
            .unwrap()
            .1;
        (dual, only)
    });
    let _v4 = TcpStream::connect(("127.0.0.1", dual.port())).unwrap();
    let peer = util::recv(&rx, "the IPv4 client");
    assert_eq!(peer.ip().to_string(), "::ffff:127.0.0.1");
    let _v6 = TcpStream::connect(("::1", dual.port())).unwrap();
    assert_eq!(util::recv(&rx, "the IPv6 client").ip().to_string(), "::1");
    let refused = TcpStream::connect(("127.0.0.1", only.port()));
    assert!(
        refused.is_err(),
        "an IPv4 client reached an IPv6-only listener"
    );
    let _v6 = TcpStream::connect(("::1", only.port())).unwrap();
    assert_eq!(
        util::recv(&rx, "the IPv6-only listener's client")
            .ip()
            .to_string(),
        "::1"
    );
    server.stop();
}

/// Echoes datagrams.
struct UdpEcho;

impl DatagramHandler for UdpEcho {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
        let _ = cx.send_to(data, from);
    }
}

#[test]
fn udp_echo_over_ipv6_loopback() {
    let (addr, server) =
        util::spawn_reactor(|reactor| reactor.bind_udp(v6("[::1]:0"), UdpEcho).unwrap().1);
    let client = UdpSocket::bind("[::1]:0").unwrap();
    client.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    client.send_to(b"over ipv6", addr).unwrap();
    let mut buf = [0u8; 32];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"over ipv6"[..], addr));
    server.stop();
}

/// sockloop's own client connects to an IPv6 literal.
#[test]
fn connect_to_an_ipv6_literal() {
    let (tx, rx) = mpsc::channel();
    let (_, server) = util::spawn_reactor(move |reactor| {
        let (_, addr) = reactor.listen(v6("[::1]:0"), || util::Sink).unwrap();
        reactor.connect(addr, Peer(tx));
    });
    let peer = util::recv(&rx, "the outbound connection's peer");
    assert!(peer.is_ipv6() && peer.ip().is_loopback(), "{peer}");
    server.stop();
}
