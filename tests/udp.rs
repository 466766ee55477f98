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

#[test]
fn udp_echo_of_ten_thousand_datagrams_loses_none_in_the_library() {
    const COUNT: u64 = 10_000;
    // Outstanding datagrams at most: few enough that socket buffers rarely overflow.
    const WINDOW: usize = 64;
    // With this many out and nothing back for this long, the rest of the window is lost.
    const GIVE_UP: Duration = Duration::from_millis(500);

    let ((addr, handle), server) = serve_udp_echo();
    let client = UdpSocket::bind(util::localhost()).unwrap();
    client.set_read_timeout(Some(GIVE_UP)).unwrap();
    let kernel_before = kernel_udp_counters();

    let mut echoed = vec![false; COUNT as usize];
    let mut outstanding: VecDeque<u64> = VecDeque::new();
    let mut next = 0;
    let mut buf = vec![0u8; 2048];
    while next < COUNT || !outstanding.is_empty() {
        while next < COUNT && outstanding.len() < WINDOW {
            client.send_to(&datagram(next), addr).expect("client send");
            outstanding.push_back(next);
            next += 1;
        }
        match client.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, addr, "a datagram from a stranger");
                assert!(n >= 8, "a {n}-byte datagram");
                let i = u64::from_le_bytes(buf[..8].try_into().unwrap());
                assert!(i < next, "echo of datagram {i}, never sent");
                assert!(!echoed[i as usize], "datagram {i} echoed twice");
                util::assert_bytes_eq(&buf[..n], &datagram(i), "echoed datagram");
                echoed[i as usize] = true;
                outstanding.retain(|&o| o != i);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Nothing for GIVE_UP: what is still out was dropped somewhere.
                outstanding.clear();
            }
            Err(e) => panic!("client receive: {e}"),
        }
    }
    let lost = echoed.iter().filter(|&&e| !e).count() as u64;

    // Every datagram that reached the server has been answered once it is idle again.
    let stats = {
        let mut stats = util::stats(&handle);
        util::wait_until("the server to answer all it received", || {
            stats = util::stats(&handle);
            stats.datagrams_received == stats.datagrams_sent + stats.datagrams_dropped
        });
        stats
    };
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
    // Mostly to show the windowing works; a loaded machine may still overflow a buffer or two.
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
