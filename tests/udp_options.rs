//! UDP socket options (`UdpOptions`, from `Reactor::udp_options` and `UdpContext::options`):
//! each read back after it is set, and multicast delivered on loopback, IPv4 on 127.0.0.1 and
//! IPv6 on `lo` where the machine allows it (skipped with a message where not).

mod util;

use std::cell::RefCell;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;

use sockloop::{DatagramHandler, Reactor, UdpContext};

/// Every datagram with its source.
type Got = Rc<RefCell<Vec<(Vec<u8>, SocketAddr)>>>;

/// Records every datagram with its source.
struct Record(Got);

impl DatagramHandler for Record {
    fn on_datagram(&mut self, _cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
        self.0.borrow_mut().push((data.to_vec(), from));
    }
}

fn record() -> (Record, Got) {
    let got = Rc::new(RefCell::new(Vec::new()));
    (Record(Rc::clone(&got)), got)
}

#[test]
fn ipv4_options_read_back_what_was_set() {
    let mut reactor = Reactor::new().unwrap();
    let (id, _) = reactor.bind_udp(util::localhost(), record().0).unwrap();
    let o = reactor.udp_options(id).unwrap();
    assert!(!o.broadcast().unwrap());
    o.set_broadcast(true).unwrap();
    assert!(o.broadcast().unwrap());
    assert_eq!(o.multicast_ttl_v4().unwrap(), 1);
    o.set_multicast_ttl_v4(7).unwrap();
    assert_eq!(o.multicast_ttl_v4().unwrap(), 7);
    assert!(o.multicast_loop_v4().unwrap());
    o.set_multicast_loop_v4(false).unwrap();
    assert!(!o.multicast_loop_v4().unwrap());
    o.set_multicast_interface_v4(Ipv4Addr::LOCALHOST).unwrap();
    assert_eq!(o.multicast_interface_v4().unwrap(), Ipv4Addr::LOCALHOST);
    // Linux doubles the requested size (bookkeeping overhead); other systems may not.
    o.set_recv_buffer_size(100_000).unwrap();
    assert!(o.recv_buffer_size().unwrap() >= 100_000);
    o.set_send_buffer_size(50_000).unwrap();
    assert!(o.send_buffer_size().unwrap() >= 50_000);
}

#[test]
fn ipv6_options_read_back_what_was_set() {
    let mut reactor = Reactor::new().unwrap();
    let Ok((id, _)) = reactor.bind_udp("[::1]:0".parse().unwrap(), record().0) else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    let o = reactor.udp_options(id).unwrap();
    assert_eq!(o.multicast_hops_v6().unwrap(), 1);
    o.set_multicast_hops_v6(9).unwrap();
    assert_eq!(o.multicast_hops_v6().unwrap(), 9);
    assert!(o.multicast_loop_v6().unwrap());
    o.set_multicast_loop_v6(false).unwrap();
    assert!(!o.multicast_loop_v6().unwrap());
    assert_eq!(o.multicast_interface_v6().unwrap(), 0);
}

#[test]
fn options_are_reachable_from_the_handler() {
    /// Sets broadcast on its own socket when told, and answers with what it reads back.
    struct Toggle;
    impl DatagramHandler for Toggle {
        fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], from: SocketAddr) {
            let options = cx.options().unwrap();
            options.set_broadcast(true).unwrap();
            let on = options.broadcast().unwrap();
            cx.send_to(&[on as u8], from).unwrap();
        }
    }
    let mut reactor = Reactor::new().unwrap();
    let (_, addr) = reactor.bind_udp(util::localhost(), Toggle).unwrap();
    let client = std::net::UdpSocket::bind(util::localhost()).unwrap();
    client.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    client.send_to(b"?", addr).unwrap();
    util::run_until(&mut reactor, "the answer", |r| {
        r.stats().datagrams_sent == 1
    });
    let mut buf = [0u8; 4];
    assert_eq!(client.recv(&mut buf).unwrap(), 1);
    assert_eq!(buf[0], 1);
}

#[test]
fn ipv4_multicast_is_delivered_on_loopback_to_a_member() {
    // A group of this test's own, so that tests running in parallel do not hear each other.
    let group = Ipv4Addr::new(239, 255, 70, 17);
    let (member, got) = record();
    let mut reactor = Reactor::new().unwrap();
    // Bound to the group's address, port 0: it hears only this group.
    let (receiver, port) = match reactor.bind_udp(SocketAddr::from((group, 0)), member) {
        Ok((id, addr)) => (id, addr.port()),
        Err(e) => {
            eprintln!("skipped: cannot bind the multicast group's address here ({e})");
            return;
        }
    };
    if let Err(e) = reactor
        .udp_options(receiver)
        .unwrap()
        .join_multicast_v4(group, Ipv4Addr::LOCALHOST)
    {
        eprintln!("skipped: cannot join {group} on 127.0.0.1 here ({e})");
        return;
    }
    let (sender, from) = reactor.bind_udp(util::localhost(), record().0).unwrap();
    let o = reactor.udp_options(sender).unwrap();
    o.set_multicast_interface_v4(Ipv4Addr::LOCALHOST).unwrap();
    o.set_multicast_loop_v4(true).unwrap();
    let to = SocketAddr::from((group, port));
    for text in [&b"first"[..], b"second"] {
        reactor.send_to(sender, text, to).unwrap();
    }
    util::run_until(&mut reactor, "the multicast datagrams", |_| {
        got.borrow().len() == 2
    });
    let want = vec![(b"first".to_vec(), from), (b"second".to_vec(), from)];
    assert_eq!(*got.borrow(), want);
    let o = reactor.udp_options(receiver).unwrap();
    o.leave_multicast_v4(group, Ipv4Addr::LOCALHOST).unwrap();
    // Not a member any more: leaving again is an error.
    assert!(o.leave_multicast_v4(group, Ipv4Addr::LOCALHOST).is_err());
}

/// The index of the loopback interface, from sysfs (Linux); 1 elsewhere.
fn loopback_index() -> u32 {
    std::fs::read_to_string("/sys/class/net/lo/ifindex")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}

#[test]
fn ipv6_multicast_is_delivered_on_loopback_where_lo_allows_it() {
    let group: Ipv6Addr = "ff02::5a17:1".parse().unwrap();
    let lo = loopback_index();
    let (member, got) = record();
    let mut reactor = Reactor::new().unwrap();
    let Ok((receiver, addr)) = reactor.bind_udp("[::1]:0".parse().unwrap(), member) else {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    };
    if let Err(e) = reactor
        .udp_options(receiver)
        .unwrap()
        .join_multicast_v6(group, lo)
    {
        // Linux's `lo` has no MULTICAST flag by default, and IPv6 will not join a group there.
        eprintln!("skipped: cannot join {group} on lo (index {lo}) here ({e})");
        return;
    }
    let (sender, _) = reactor
        .bind_udp("[::1]:0".parse().unwrap(), record().0)
        .unwrap();
    reactor
        .udp_options(sender)
        .unwrap()
        .set_multicast_interface_v6(lo)
        .unwrap();
    let to = SocketAddr::V6(std::net::SocketAddrV6::new(group, addr.port(), 0, lo));
    if let Err(e) = reactor.send_to(sender, b"six", to) {
        // The join may pass and the route still be missing: `lo` without MULTICAST.
        eprintln!("skipped: cannot send to {group} on lo (index {lo}) here ({e})");
        return;
    }
    util::run_until(&mut reactor, "the multicast datagram", |_| {
        !got.borrow().is_empty()
    });
    assert_eq!(got.borrow()[0].0, b"six");
}
