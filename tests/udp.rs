//! UDP sockets (`Reactor::bind_udp`, `DatagramHandler`, `UdpContext::send_to`): an echo of ten
//! thousand datagrams in which the library loses none, datagrams of every size from empty to the
//! IPv4 maximum, and the datagram counters of `stats()`.
//!
//! The send queue's bound (`UDP_QUEUE_LIMIT`) is not exercised: on loopback a send never finds
//! the socket's buffer full (the kernel hands the datagram to the receiver, or drops it there,
//! within the `sendto` call), so nothing is ever queued.

mod util;

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use sockloop::{DatagramHandler, UdpContext};

/// Sends every datagram back to where it came from.
struct UdpEcho;

impl DatagramHandler for UdpEcho {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
        cx.send_to(data, from).expect("echo send");
    }
}

/// Serves `UdpEcho` on an ephemeral port of 127.0.0.1; returns its address and a handle.
fn serve_udp_echo() -> ((SocketAddr, sockloop::Handle), util::ReactorThread) {
    util::spawn_reactor(|reactor| {
        let (_, addr) = reactor
            .bind_udp(util::localhost(), UdpEcho)
            .expect("bind_udp");
        (addr, reactor.handle().unwrap())
    })
}

/// The `Udp:` line of `/proc/net/snmp` as (name, value) pairs.
fn kernel_udp_counters() -> Vec<(String, u64)> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").expect("read /proc/net/snmp");
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = lines.next().expect("Udp: header");
    let values = lines.next().expect("Udp: values");
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .map(|(n, v)| (n.to_string(), v.parse().expect("counter")))
        .collect()
}

fn counter(counters: &[(String, u64)], name: &str) -> u64 {
    counters
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no Udp counter {name}"))
        .1
}

/// Datagram `i`: its index, then 8 to 1,024 bytes determined by it.
fn datagram(i: u64) -> Vec<u8> {
    let len = 8 + (i * 7919 % 1017) as usize;
    let mut d = i.to_le_bytes().to_vec();
    d.extend_from_slice(&util::pattern(i, len));
    d
}

/// Bytes waiting in the receive queue of the UDP socket bound to 127.0.0.1:`port` (the
/// `rx_queue` of its line in `/proc/net/udp`).
fn receive_queue(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(1) != Some(&local.as_str()) {
                return None;
            }
            let (_, rx) = f.get(4)?.split_once(':')?;
            u64::from_str_radix(rx, 16).ok()
        })
        .unwrap_or_else(|| panic!("no UDP socket on 127.0.0.1:{port} in /proc/net/udp"))
}

/// The client side of the echo test: what was sent, what came back.
struct EchoClient {
    socket: UdpSocket,
    server: SocketAddr,
    next: u64,
    echoed: Vec<bool>,
    outstanding: VecDeque<u64>,
    buf: Vec<u8>,
}

impl EchoClient {
    /// Checks one received echo and marks its datagram answered.
    fn take_echo(&mut self, n: usize, from: SocketAddr) {
        assert_eq!(from, self.server, "a datagram from a stranger");
        assert!(n >= 8, "a {n}-byte datagram");
        let i = u64::from_le_bytes(self.buf[..8].try_into().unwrap());
        assert!(i < self.next, "echo of datagram {i}, never sent");
        assert!(!self.echoed[i as usize], "datagram {i} echoed twice");
        util::assert_bytes_eq(&self.buf[..n], &datagram(i), "echoed datagram");
        self.echoed[i as usize] = true;
        self.outstanding.retain(|&o| o != i);
    }

    /// Waits until the server has answered everything it will ever answer of what was sent so
    /// far, takes every echo already delivered, and forgets the rest: those datagrams were
    /// dropped by the kernel (on loopback `sendto` delivers into the receiver's queue or drops
    /// there, so nothing is still on its way). No timeout decides what was lost.
    fn settle(&mut self, handle: &sockloop::Handle) {
        let port = self.server.port();
        util::wait_until("the server to answer all it received", || {
            // Its queue is empty first, then the loop (which reads and answers a datagram
            // within one dispatch) has answered or dropped every datagram it read.
            receive_queue(port) == 0 && {
                let stats = util::stats(handle);
                stats.datagrams_received == stats.datagrams_sent + stats.datagrams_dropped
            }
        });
        self.socket.set_nonblocking(true).unwrap();
        loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => self.take_echo(n, from),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("client receive: {e}"),
            }
        }
        self.socket.set_nonblocking(false).unwrap();
        self.outstanding.clear();
    }
}

#[test]
fn udp_echo_of_ten_thousand_datagrams_loses_none_in_the_library() {
    const COUNT: u64 = 10_000;
    // Outstanding datagrams at most: few enough that neither socket's buffer can overflow.
    const WINDOW: usize = 64;
    // With this many out and nothing back for this long, look at where they are (`settle`).
    const LOOK: Duration = Duration::from_millis(100);

    let ((addr, handle), server) = serve_udp_echo();
    let socket = UdpSocket::bind(util::localhost()).unwrap();
    socket.set_read_timeout(Some(LOOK)).unwrap();
    let kernel_before = kernel_udp_counters();

    let mut client = EchoClient {
        socket,
        server: addr,
        next: 0,
        echoed: vec![false; COUNT as usize],
        outstanding: VecDeque::new(),
        buf: vec![0u8; 2048],
    };
    while client.next < COUNT || !client.outstanding.is_empty() {
        while client.next < COUNT && client.outstanding.len() < WINDOW {
            let i = client.next;
            client
                .socket
                .send_to(&datagram(i), addr)
                .expect("client send");
            client.outstanding.push_back(i);
            client.next += 1;
        }
        match client.socket.recv_from(&mut client.buf) {
            Ok((n, from)) => client.take_echo(n, from),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                client.settle(&handle);
            }
            Err(e) => panic!("client receive: {e}"),
        }
    }
    client.settle(&handle);
    let lost = client.echoed.iter().filter(|&&e| !e).count() as u64;

    // Every datagram that reached the server has been answered (`settle` waited for that).
    let stats = util::stats(&handle);
    let kernel_after = kernel_udp_counters();
    server.stop();

    assert_eq!(stats.datagrams_dropped, 0, "{stats}");
    assert_eq!(stats.datagrams_received, stats.datagrams_sent, "{stats}");
    assert!(stats.datagrams_received <= COUNT, "{stats}");
    assert!(
        stats.datagrams_received >= COUNT - lost,
        "the server received fewer than were echoed: {stats}"
    );
    // Whatever was lost, the kernel dropped (these counters are system-wide, so they can only
    // over-count; `InErrors` includes `RcvbufErrors` on Linux, the max covers kernels where not).
    let delta = |name| counter(&kernel_after, name) - counter(&kernel_before, name);
    let kernel_drops = delta("InErrors").max(delta("RcvbufErrors"));
    assert!(
        lost <= kernel_drops,
        "{lost} datagrams lost, the kernel dropped at most {kernel_drops}: the library lost some"
    );
    // The window is far below either socket's buffer, and the client never sends past it
    // before everything out was answered or found dropped: the windowing works.
    assert!(lost < COUNT / 10, "{lost} of {COUNT} lost");
}

#[test]
fn datagrams_of_every_size_come_back_byte_exact() {
    // Empty, tiny, one Ethernet frame, a jumbo frame, and the largest IPv4 UDP payload.
    const SIZES: [usize; 6] = [0, 1, 1472, 9000, 65_000, 65_507];
    let ((addr, handle), server) = serve_udp_echo();
    let client = UdpSocket::bind(util::localhost()).unwrap();
    client.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    let mut buf = vec![0u8; 70_000];
    for (k, &size) in SIZES.iter().enumerate() {
        let data = util::pattern(k as u64, size);
        client.send_to(&data, addr).expect("send");
        let (n, from) = client.recv_from(&mut buf).expect("echo");
        assert_eq!(from, addr);
        util::assert_bytes_eq(&buf[..n], &data, &format!("{size}-byte datagram"));
    }
    let stats = util::stats(&handle);
    assert_eq!(stats.datagrams_received, SIZES.len() as u64, "{stats}");
    assert_eq!(stats.datagrams_sent, SIZES.len() as u64, "{stats}");
    server.stop();
}

/// Sends from the reactor (`Reactor::send_to`) to a plain socket, and to a closed UDP id.
#[test]
fn reactor_send_to_reaches_the_peer_and_fails_for_a_closed_socket() {
    struct Ignore;
    impl DatagramHandler for Ignore {
        fn on_datagram(&mut self, _cx: &mut UdpContext<'_>, _data: &[u8], _from: SocketAddr) {}
    }
    let peer = UdpSocket::bind(util::localhost()).unwrap();
    peer.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    let to = peer.local_addr().unwrap();
    let mut reactor = sockloop::Reactor::new().unwrap();
    let (id, from) = reactor.bind_udp(util::localhost(), Ignore).unwrap();
    reactor.send_to(id, b"from the loop", to).unwrap();
    let mut buf = [0u8; 64];
    let (n, src) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], src), (&b"from the loop"[..], from));
    assert_eq!(reactor.stats().datagrams_sent, 1);

    reactor.close_udp(id).unwrap();
    let err = reactor.send_to(id, b"too late", to).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        reactor.close_udp(id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
