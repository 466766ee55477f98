//! TCP urgent data (`send(MSG_OOB)`, still sent by telnet and some legacy protocols).
//!
//! A read stops short at the urgent mark although more bytes are queued behind it, so "a
//! short read emptied the socket" does not hold there, and no new edge comes for the rest.
//! sockloop registers stream sockets for priority readiness (`EPOLLPRI`), reads to
//! `WouldBlock` after such an event, and keeps the urgent byte in line (`SO_OOBINLINE`): the
//! handler sees exactly the bytes the peer sent, in order.

mod util;

use std::io::Read;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sockloop::Reactor;

/// Rounds of `abc`, urgent `X`, `def`: the stall needed all three queued before the server's
/// read, which happened in about half of the rounds, so 200 rounds hit it in every run.
const ROUNDS: usize = 200;

fn sends_with_urgent_byte(socket: &Socket, round: usize) {
    let tag = b'a' + (round % 26) as u8;
    socket.send(&[tag, b'b', b'c']).unwrap();
    socket.send_out_of_band(b"X").unwrap();
    socket.send(b"def").unwrap();
}

fn expected(round: usize) -> Vec<u8> {
    let tag = b'a' + (round % 26) as u8;
    [&[tag, b'b', b'c'][..], b"Xdef"].concat()
}

/// Each round's echo comes back whole without the client sending anything more: before the
/// fix, `def` stayed in the kernel until the client's next send, and this test's read waited
/// for it until its timeout.
#[test]
fn the_stream_after_an_urgent_byte_is_delivered_without_new_bytes() {
    let (addr, server) = util::serve(|| util::Echo);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.connect(&SockAddr::from(addr)).unwrap();
    socket.set_tcp_nodelay(true).unwrap();
    socket.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    // The echo carries the urgent byte too; keep it in line on this side as well.
    socket.set_out_of_band_inline(true).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    for round in 0..ROUNDS {
        let socket = socket2::SockRef::from(&stream);
        sends_with_urgent_byte(&socket, round);
        let want = expected(round);
        let mut got = vec![0; want.len()];
        let mut have = 0;
        while have < want.len() {
            match stream.read(&mut got[have..]) {
                Ok(0) => panic!("round {round}: EOF after {have} bytes"),
                Ok(n) => have += n,
                Err(e) => panic!(
                    "round {round}: {have} of {} bytes echoed, then {e}: the rest stalled",
                    want.len()
                ),
            }
        }
        util::assert_bytes_eq(&got, &want, &format!("round {round}"));
    }
    drop(stream);
    server.stop();
}

/// After urgent data is read past, the socket raises no more events and nothing reads again:
/// priority readiness does not turn into a busy loop.
#[test]
fn urgent_data_leaves_no_busy_loop() {
    let mut reactor = Reactor::new().unwrap();
    let (_, addr) = reactor.listen(util::localhost(), || util::Echo).unwrap();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.connect(&SockAddr::from(addr)).unwrap();
    socket.set_out_of_band_inline(true).unwrap();
    socket.set_nonblocking(true).unwrap();
    util::run_until(&mut reactor, "the connection accepted", |r| {
        r.connection_count() == 1
    });
    sends_with_urgent_byte(&socket, 0);
    let mut stream: std::net::TcpStream = socket.into();
    let mut got = Vec::new();
    util::run_until(&mut reactor, "the echo", |_| {
        let mut buf = [0; 16];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() >= expected(0).len()
    });
    assert_eq!(got, expected(0));
    // The echo's acknowledgements may still raise an event or two; after that, quiet.
    for _ in 0..3 {
        reactor.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    let before = reactor.stats();
    for _ in 0..10 {
        reactor.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    let after = reactor.stats();
    assert_eq!(after.reads, before.reads, "reads went on: {after}");
    assert_eq!(after.still_ready, before.still_ready, "{after}");
}
