//! Connection limits, per listener and per reactor: at the limit a listener either leaves new
//! clients in the backlog (serving them once a connection closes) or accepts them, sends its
//! overload reply and closes; either way the loop does not spin.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sockloop::{Handle, ListenOptions, Reactor};
use util::Echo;

/// Serves `Echo` on one listener per entry of `options`; `setup` may configure the reactor.
fn serve(
    options: Vec<ListenOptions>,
    setup: impl FnOnce(&mut Reactor) + Send + 'static,
) -> ((Vec<SocketAddr>, Handle), util::ReactorThread) {
    util::spawn_reactor(move |reactor| {
        setup(reactor);
        let addrs = options
            .into_iter()
            .map(|o| {
                reactor
                    .listen_with(util::localhost(), o, || Echo)
                    .unwrap()
                    .1
            })
            .collect();
        (addrs, reactor.handle().unwrap())
    })
}

/// Connects and completes one echo round trip.
fn served_client(addr: SocketAddr) -> TcpStream {
    let mut c = util::client(addr);
    c.write_all(b"ping").unwrap();
    assert_eq!(util::read_exactly(&mut c, 4), b"ping");
    c
}

/// Connects (the kernel completes the handshake from the backlog) and sends a ping that must
/// not be answered while the server is at its limit.
fn waiting_client(addr: SocketAddr) -> TcpStream {
    let mut c = util::client(addr);
    c.write_all(b"ping").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4];
    match c.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a client past the limit was served: {other:?}"),
    }
    c.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    c
}

#[test]
fn at_the_listener_limit_clients_wait_in_the_backlog_until_a_connection_closes() {
    const MAX: usize = 5;
    let ((addrs, _handle), server) = serve(vec![ListenOptions::new().max_connections(MAX)], |_| {});
    let addr = addrs[0];
    let mut served: Vec<TcpStream> = (0..MAX).map(|_| served_client(addr)).collect();

    let started = Instant::now();
    let before = server.iterations();
    let mut waiting = waiting_client(addr);
    // A paused listener costs nothing: the loop sleeps (poll slices of the test harness only,
    // and the few events of the waiting client's connect).
    let spins = server.iterations() - before;
    server.assert_did_not_spin(spins, started.elapsed(), 10);
    assert_eq!(server.connections(), MAX);

    // A close frees a place, and the waiting client is accepted and served: its ping, sent
    // while the listener was paused, waited in the kernel and is echoed now.
    drop(served.pop());
    assert_eq!(util::read_exactly(&mut waiting, 4), b"ping");
    drop((served, waiting));
    server.wait_for_connections(0);
    server.stop();
}

#[test]
fn at_the_listener_limit_an_overload_reply_is_sent_and_the_client_closed() {
    let options = ListenOptions::new()
        .max_connections(2)
        .overload_reply(&b"busy, try later\n"[..]);
    let ((addrs, handle), server) = serve(vec![options], |_| {});
    let addr = addrs[0];
    let served: Vec<TcpStream> = (0..2).map(|_| served_client(addr)).collect();

    for _ in 0..3 {
        let mut refused = util::client(addr);
        // Whatever it sent before being refused is read and dropped, so the reply is not lost
        // to a reset.
        refused.write_all(b"ping").unwrap();
        assert_eq!(util::read_to_eof(&mut refused), b"busy, try later\n");
    }
    let stats = util::stats(&handle);
    assert_eq!((stats.rejected, stats.accepted), (3, 2), "{stats}");

    drop(served);
    server.wait_for_connections(0);
    served_client(addr);
    server.stop();
}

#[test]
fn the_reactor_limit_counts_connections_of_every_listener() {
    let options = vec![ListenOptions::new(), ListenOptions::new()];
    let ((addrs, _handle), server) = serve(options, |r| r.set_max_connections(Some(3)));
    let mut served = vec![
        served_client(addrs[0]),
        served_client(addrs[1]),
        served_client(addrs[0]),
    ];
    let mut waiting = waiting_client(addrs[1]);
    assert_eq!(server.connections(), 3);
    drop(served.remove(0));
    assert_eq!(util::read_exactly(&mut waiting, 4), b"ping");
    drop((served, waiting));
    server.wait_for_connections(0);
    server.stop();
}
