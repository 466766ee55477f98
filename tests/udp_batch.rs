//! Batched UDP (`recvmmsg`/`sendmmsg` on Linux): a burst is received and answered in a few
//! system calls, in order; a datagram the kernel refuses is reported to `on_error` and the
//! rest of its batch goes on; a GSO train comes to the handler as the datagrams it was cut
//! from. Counts come from `Stats::datagram_recv_calls` / `datagram_send_calls`.

mod util;

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;

use sockloop::{DatagramHandler, Reactor, SocketOptions, UdpContext, UdpError};

/// Datagrams asked for per `recvmmsg`, and given per `sendmmsg` (`src/sys/udp.rs`).
#[cfg(target_os = "linux")]
const RECV_BATCH: u64 = 32;
#[cfg(target_os = "linux")]
const SEND_BATCH: u64 = 64;

/// Sends every datagram back to where it came from.
struct UdpEcho;

impl DatagramHandler for UdpEcho {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, data: &[u8], from: SocketAddr) {
        cx.send_to(data, from).expect("echo send");
    }
}

/// A client socket with room for a burst, and a timeout as a hang guard.
fn client() -> UdpSocket {
    let socket = UdpSocket::bind(util::localhost()).unwrap();
    sockloop::socket2::SockRef::from(&socket)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    socket.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    socket
}

/// Datagram `i` of a burst: its index, then bytes determined by it.
fn datagram(i: u64, len: usize) -> Vec<u8> {
    let mut d = i.to_le_bytes().to_vec();
    d.extend_from_slice(&util::pattern(i, len - 8));
    d
}

#[test]
fn a_burst_is_received_and_answered_in_batches_in_order() {
    const BURST: u64 = 200;
    let mut reactor = Reactor::new().unwrap();
    // Room for the whole burst, so that it waits in the kernel before the first iteration.
    let options = SocketOptions::new().recv_buffer_size(4 << 20);
    let (_, addr) = reactor
        .bind_udp_with(util::localhost(), options, UdpEcho)
        .unwrap();
    let client = client();
    for i in 0..BURST {
        client.send_to(&datagram(i, 64), addr).unwrap();
    }
    // On loopback `sendto` puts the datagram in the receiver's queue: all of the burst is
    // there now, and one iteration (a turn's budget is 256) takes it.
    util::run_until(&mut reactor, "the burst", |r| {
        r.stats().datagrams_received > 0
    });
    let stats = reactor.stats();
    assert_eq!(stats.datagrams_received, BURST, "{stats}");
    assert_eq!(stats.datagrams_sent, BURST, "{stats}");
    assert_eq!(stats.datagram_errors, 0, "{stats}");
    #[cfg(target_os = "linux")]
    {
        // Full batches, then a short one that proves the socket empty: no call for WouldBlock.
        assert_eq!(
            stats.datagram_recv_calls,
            BURST.div_ceil(RECV_BATCH),
            "{stats}"
        );
        assert_eq!(
            stats.datagram_send_calls,
            BURST.div_ceil(SEND_BATCH),
            "{stats}"
        );
    }
    let mut buf = [0u8; 128];
    for i in 0..BURST {
        let (n, from) = client.recv_from(&mut buf).expect("an echo");
        assert_eq!(from, addr);
        util::assert_bytes_eq(&buf[..n], &datagram(i, 64), "echo, in the order sent");
    }
}

/// Sends three datagrams to whoever says "go", the middle one too big for UDP; records what
/// `on_error` is told.
struct Three(Errors);

/// Each error's destination, and whether it was a send's.
type Errors = Rc<RefCell<Vec<(Option<SocketAddr>, bool)>>>;

impl DatagramHandler for Three {
    fn on_datagram(&mut self, cx: &mut UdpContext<'_>, _data: &[u8], from: SocketAddr) {
        cx.send_to(b"one", from).unwrap();
        cx.send_to(&vec![0u8; 70_000], from).unwrap(); // queued; the kernel will refuse it
        cx.send_to(b"two", from).unwrap();
    }

    fn on_error(&mut self, _cx: &mut UdpContext<'_>, error: UdpError) {
        let is_send = matches!(error, UdpError::Send { .. });
        self.0.borrow_mut().push((error.to(), is_send));
    }
}

#[test]
fn a_datagram_the_kernel_refuses_is_reported_and_the_rest_go_on_in_order() {
    let errors = Rc::new(RefCell::new(Vec::new()));
    let mut reactor = Reactor::new().unwrap();
    let (_, addr) = reactor
        .bind_udp(util::localhost(), Three(Rc::clone(&errors)))
        .unwrap();
    let client = client();
    let me = client.local_addr().unwrap();
    client.send_to(b"go", addr).unwrap();
    util::run_until(&mut reactor, "the replies", |r| {
        r.stats().datagrams_sent + r.stats().datagram_errors == 3
    });
    let stats = reactor.stats();
    assert_eq!(
        (stats.datagrams_sent, stats.datagram_errors),
        (2, 1),
        "{stats}"
    );
    assert_eq!(*errors.borrow(), vec![(Some(me), true)]);
    let mut buf = [0u8; 16];
    for want in [&b"one"[..], b"two"] {
        let (n, from) = client.recv_from(&mut buf).expect("a reply");
        assert_eq!((&buf[..n], from), (want, addr));
    }
}

/// Records every datagram.
struct Record(Rc<RefCell<Vec<Vec<u8>>>>);

impl DatagramHandler for Record {
    fn on_datagram(&mut self, _cx: &mut UdpContext<'_>, data: &[u8], _from: SocketAddr) {
        self.0.borrow_mut().push(data.to_vec());
    }
}

/// One `sendmsg` with `UDP_SEGMENT`: the kernel cuts `data` into datagrams of `segment` bytes
/// (the last may be shorter). Returns false where the kernel has no UDP GSO.
#[cfg(target_os = "linux")]
fn send_gso(socket: &UdpSocket, data: &[u8], segment: u16, to: SocketAddr) -> bool {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let to = SockaddrStorage::from(to);
    let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
    let iov = [IoSlice::new(data)];
    match sendmsg(
        socket.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::empty(),
        Some(&to),
    ) {
        Ok(n) => {
            assert_eq!(n, data.len());
            true
        }
        Err(e) => {
            eprintln!("skipped: this kernel has no UDP GSO ({e})");
            false
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_gso_train_reaches_the_handler_as_the_datagrams_it_was_cut_into() {
    const SEGMENT: usize = 1000;
    let got = Rc::new(RefCell::new(Vec::new()));
    let mut reactor = Reactor::new().unwrap();
    let (_, addr) = reactor
        .bind_udp(util::localhost(), Record(Rc::clone(&got)))
        .unwrap();
    let sender = UdpSocket::bind(util::localhost()).unwrap();
    // An ordinary datagram first, received alone: the receive headers it used must still
    // have room for the train's segment size afterwards.
    sender.send_to(b"before", addr).unwrap();
    util::run_until(&mut reactor, "the first datagram", |_| {
        got.borrow().len() == 1
    });
    // Ten full segments and a short one, then an ordinary datagram behind them.
    let train = util::pattern(7, 10 * SEGMENT + 123);
    if !send_gso(&sender, &train, SEGMENT as u16, addr) {
        return;
    }
    sender.send_to(b"after", addr).unwrap();
    util::run_until(&mut reactor, "the train", |_| got.borrow().len() == 13);
    let got = got.borrow();
    let mut want: Vec<&[u8]> = vec![b"before"];
    want.extend(train.chunks(SEGMENT));
    want.push(b"after");
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        util::assert_bytes_eq(g, w, &format!("datagram {k}"));
    }
    // With UDP GRO the train is one buffer; without, eleven: one receive call either way.
    assert_eq!(reactor.stats().datagrams_received, 13);
}
