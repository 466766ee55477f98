//! The WebSocket chat example (`examples/ws_chat/`), served in-process by its own modules and
//! driven by tungstenite as a blocking client: the page and HTTP errors, one broadcast order
//! for every member, pings, close handshakes and protocol errors, graceful shutdown, and a
//! member that never reads being reset at the output cap while the others keep receiving.
//!
//! With the `tls` feature, the same chat is also served over TLS, as `ws_chat --tls` serves it,
//! and members join over `wss://`.
//!
//! Every client socket has a read timeout ([`util::TIMEOUT`]), so no read can hang a test.

#[allow(dead_code)]
#[path = "../examples/ws_chat/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../examples/ws_chat/room.rs"]
mod room;
#[allow(dead_code)]
#[path = "../examples/ws_chat/server.rs"]
mod server;
#[path = "../examples/ws_chat/stream.rs"]
mod stream;
#[cfg(feature = "tls")]
#[path = "util/tls.rs"]
mod tls_util;
mod util;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tungstenite::error::Error;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use util::{localhost, read_to_eof, spawn_run, RunThread, TIMEOUT};

type Ws = WebSocket<TcpStream>;

/// Serves the chat with `max_output` on a reactor thread.
fn start(max_output: usize) -> (SocketAddr, RunThread) {
    spawn_run(move |reactor| {
        server::serve(reactor, localhost(), server::listen_options(max_output))
            .expect("listen on 127.0.0.1:0")
            .0
    })
}

/// Joins the room as `name` over `stream` (already connected); returns once the handshake is
/// done and this member's own join announcement has arrived.
fn join_over(addr: SocketAddr, name: &str, stream: TcpStream) -> Ws {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let (mut ws, response) = tungstenite::client(format!("ws://{addr}/ws?name={name}"), stream)
        .unwrap_or_else(|e| panic!("{name}: handshake failed: {e}"));
    assert_eq!(response.status(), 101);
    let announced = next_text(&mut ws);
    assert!(
        announced.starts_with(&format!("* {name} joined (")),
        "{name} got {announced:?} first"
    );
    ws
}

fn join(addr: SocketAddr, name: &str) -> Ws {
    join_over(addr, name, util::client(addr))
}

/// The next text message, skipping control messages; panics on anything else.
#[track_caller]
fn next_text(ws: &mut Ws) -> String {
    for _ in 0..1_000 {
        match ws.read() {
            Ok(Message::Text(text)) => return text.as_str().to_owned(),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
    panic!("only control messages arrived");
}

/// The next chat line, skipping notices (`* ... joined`, `* ... left`).
#[track_caller]
fn next_chat(ws: &mut Ws) -> String {
    for _ in 0..1_000 {
        let line = next_text(ws);
        if !line.starts_with("* ") {
            return line;
        }
    }
    panic!("only notices arrived");
}

/// Reads until the text `line` arrives (at most 10,000 messages).
#[track_caller]
fn wait_for_line(ws: &mut Ws, line: &str) {
    for _ in 0..10_000 {
        if next_text(ws) == line {
            return;
        }
    }
    panic!("{line:?} never arrived");
}

/// Reads until a close frame arrives (skipping up to 10,000 other messages) and returns it.
#[track_caller]
fn next_close(ws: &mut Ws) -> CloseFrame {
    for _ in 0..10_000 {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return frame,
            Ok(Message::Close(None)) => panic!("close frame without a code"),
            Ok(_) => {}
            Err(e) => panic!("connection ended before a close frame: {e}"),
        }
    }
    panic!("no close frame among 10,000 messages");
}

/// After the close handshake, the server closes the TCP connection: tungstenite reports that
/// as `ConnectionClosed` (a client only does so on EOF).
#[track_caller]
fn assert_closed_by_server(ws: &mut Ws) {
    match ws.read() {
        Err(Error::ConnectionClosed) => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
}

/// Sends a raw HTTP request and returns the whole response (the server closes after it).
fn http_exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = util::client(addr);
    stream.write_all(request.as_bytes()).unwrap();
    String::from_utf8(read_to_eof(&mut stream)).unwrap()
}

#[test]
fn get_root_serves_the_page_and_other_requests_get_clear_errors() {
    let (addr, _server) = start(server::DEFAULT_MAX_OUTPUT);

    let page = http_exchange(addr, "GET /?name=alice HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = page.split_once("\r\n\r\n").expect("a complete response");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert_eq!(body, http::PAGE);
    assert!(body.contains("new WebSocket("), "the page connects back");

    let cases = [
        ("GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 "),
        (
            "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 405 ",
        ),
        // A WebSocket path without the upgrade headers: tungstenite names what is missing.
        ("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "),
        ("NOT HTTP AT ALL\r\n\r\n", "HTTP/1.1 400 "),
    ];
    for (request, status) in cases {
        let response = http_exchange(addr, request);
        assert!(response.starts_with(status), "{request:?} got {response:?}");
    }
    let huge = format!(
        "GET / HTTP/1.1\r\nX-Pad: {}",
        "a".repeat(http::MAX_REQUEST_HEAD)
    );
    assert!(http_exchange(addr, &huge).starts_with("HTTP/1.1 431 "));

    let missing = http_exchange(addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(missing.contains("Connection: upgrade"), "{missing}");
}

#[test]
fn every_member_receives_every_message_in_the_same_order() {
    const MEMBERS: usize = 4;
    const EACH: usize = 50;
    let (addr, _server) = start(server::DEFAULT_MAX_OUTPUT);

    let mut members: Vec<Ws> = (0..MEMBERS).map(|k| join(addr, &format!("m{k}"))).collect();
    // Everyone is in once the last join has reached everyone.
    let last_join = format!("* m{} joined ({MEMBERS} here)", MEMBERS - 1);
    for ws in &mut members[..MEMBERS - 1] {
        wait_for_line(ws, &last_join);
    }

    // All members talk at once; each then reads until it has every message.
    let threads: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(k, mut ws)| {
            thread::spawn(move || {
                for i in 0..EACH {
                    ws.send(Message::text(format!("#{i} from m{k}"))).unwrap();
                }
                let mut seen = Vec::with_capacity(MEMBERS * EACH);
                while seen.len() < MEMBERS * EACH {
                    let line = next_text(&mut ws);
                    assert!(!line.starts_with("* "), "unexpected notice {line:?}");
                    seen.push(line);
                }
                seen
            })
        })
        .collect();
    let orders: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    for (k, order) in orders.iter().enumerate() {
        assert_eq!(order, &orders[0], "m{k} saw another order than m0");
    }
    for k in 0..MEMBERS {
        let from_k: Vec<&String> = orders[0]
            .iter()
            .filter(|l| l.ends_with(&format!(" from m{k}")))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("m{k}: #{i} from m{k}")).collect();
        assert_eq!(
            from_k,
            expected.iter().collect::<Vec<_>>(),
            "m{k}'s own order"
        );
    }
}

#[test]
fn ping_is_answered_with_a_pong_carrying_its_payload() {
    let (addr, _server) = start(server::DEFAULT_MAX_OUTPUT);
    let mut ws = join(addr, "pinger");
    for round in 0..3 {
        let payload = format!("are you there? {round}");
        ws.send(Message::Ping(payload.clone().into())).unwrap();
        match ws.read().unwrap() {
            Message::Pong(got) => assert_eq!(got, payload.as_bytes()),
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    // The member is still in the room.
    ws.send(Message::text("still here")).unwrap();
    assert_eq!(next_text(&mut ws), "pinger: still here");
}

#[test]
fn close_handshake_is_answered_and_the_server_closes_tcp_first() {
    let (addr, _server) = start(server::DEFAULT_MAX_OUTPUT);
    let mut alice = join(addr, "alice");
    let mut bob = join(addr, "bob");

    alice
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .unwrap();
    let answer = next_close(&mut alice);
    assert_eq!(answer.code, CloseCode::Normal);
    assert_closed_by_server(&mut alice);

    wait_for_line(&mut bob, "* alice left (1 here)");
    bob.send(Message::text("anyone?")).unwrap();
    assert_eq!(next_text(&mut bob), "bob: anyone?");
}

#[test]
fn a_member_gone_without_a_close_frame_is_announced_as_left() {
    let (addr, _server) = start(server::DEFAULT_MAX_OUTPUT);
    let mut witness = join(addr, "witness");
    let gone = join(addr, "gone");
    drop(gone); // FIN without a close frame, like a killed browser tab
    wait_for_line(&mut witness, "* gone left (1 here)");
}

#[test]
fn binary_and_oversized_messages_are_refused_with_their_close_codes() {
    let (addr, _server) = start(server::DEFAULT_MAX_OUTPUT);
    let mut witness = join(addr, "witness");

    let mut binary = join(addr, "binary");
    binary.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(next_close(&mut binary).code, CloseCode::Unsupported);
    wait_for_line(&mut witness, "* binary left (1 here)");

    let mut big = join(addr, "big");
    big.send(Message::text("x".repeat(server::MAX_MESSAGE + 1)))
        .unwrap();
    assert_eq!(next_close(&mut big).code, CloseCode::Size);
    wait_for_line(&mut witness, "* big left (1 here)");

    // Invalid UTF-8 in a text frame (the client API cannot produce one, so build the frame).
    let mut bad = join(addr, "bad");
    let frame = Frame::message(vec![0xff, 0xfe], OpCode::Data(Data::Text), true);
    bad.send(Message::Frame(frame)).unwrap(); // tungstenite masks it
    assert_eq!(next_close(&mut bad).code, CloseCode::Invalid);
    wait_for_line(&mut witness, "* bad left (1 here)");
}

#[test]
fn split_and_fragmented_frames_are_reassembled() {
    let (addr, _server) = start(server::DEFAULT_MAX_OUTPUT);
    let mut ws = join(addr, "slow");

    // One frame written in three pieces: the server sees it over several `on_data` calls (the
    // pauses only make that likely; the result must be the same either way).
    let mut frame = Frame::message(b"split".to_vec(), OpCode::Data(Data::Text), true);
    frame.header_mut().mask = Some([9, 8, 7, 6]);
    let mut wire = Vec::new();
    frame.format(&mut wire).unwrap();
    for piece in [&wire[..1], &wire[1..4], &wire[4..]] {
        ws.get_mut().write_all(piece).unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(next_text(&mut ws), "slow: split");

    // One message in three fragments, with a ping between them (allowed by RFC 6455, 5.4).
    let fragments = [
        Frame::message(b"frag".to_vec(), OpCode::Data(Data::Text), false),
        Frame::ping(b"mid".to_vec()),
        Frame::message(b"men".to_vec(), OpCode::Data(Data::Continue), false),
        Frame::message(b"ted".to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for fragment in fragments {
        ws.write(Message::Frame(fragment)).unwrap();
    }
    ws.flush().unwrap();
    match ws.read().unwrap() {
        Message::Pong(payload) => assert_eq!(payload, &b"mid"[..]),
        other => panic!("expected the pong first, got {other:?}"),
    }
    assert_eq!(next_text(&mut ws), "slow: fragmented");
}

#[test]
fn shutdown_sends_going_away_and_waits_for_each_member_to_answer() {
    let (addr, server) = start(server::DEFAULT_MAX_OUTPUT);
    let mut members = [join(addr, "a"), join(addr, "b")];
    wait_for_line(&mut members[0], "* b joined (2 here)");

    server.handle().shutdown(TIMEOUT).unwrap();
    for mut ws in members {
        // The close frame comes first: members leave silently, nobody hears "* a left".
        match ws.read() {
            Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected a close frame, got {other:?}"),
        }
        // Our answer (sent by this read) lets the server close the connection.
        assert_closed_by_server(&mut ws);
        // Dropping it sends our FIN, which the server's graceful close waits for.
    }
    let returned = server.wait_returned(TIMEOUT);
    returned.result.expect("run");
    assert_eq!(
        returned.stats.closed.shutdown_deadline, 0,
        "nobody was cut off"
    );
}

#[test]
fn a_member_that_never_reads_is_reset_at_the_output_cap_while_the_others_keep_up() {
    const MESSAGE: usize = 16 << 10;
    const COUNT: usize = 1_000; // 16 MiB to every member: far past the kernel buffers and cap
    /// How far (in messages) the sender may run ahead of the slower reader: 512 KiB, half the
    /// cap, so a reader starved of CPU on a busy machine is never mistaken for one that does
    /// not read.
    const WINDOW: usize = 32;
    let (addr, server) = start(server::DEFAULT_MAX_OUTPUT);

    // A small receive buffer, so the kernel holds little of what the stalled member is sent
    // and the server's queue for it grows sooner.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4 << 10).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stalled = join_over(addr, "stalled", socket.into());

    let readers: Vec<_> = ["r1", "r2"]
        .into_iter()
        .map(|name| {
            let mut ws = join(addr, name);
            let (ready_tx, ready_rx) = mpsc::channel();
            let progress = Arc::new(AtomicUsize::new(0));
            let received = Arc::clone(&progress);
            let reader = thread::spawn(move || {
                wait_for_line(&mut ws, "* sender joined (4 here)");
                ready_tx.send(()).unwrap();
                for i in 0..COUNT {
                    // The stalled member's departure is announced somewhere in between.
                    let line = next_chat(&mut ws);
                    let expected = format!("sender: {i:06} ");
                    assert!(line.starts_with(&expected), "{i}: {:.30}", line);
                    assert_eq!(line.len(), expected.len() + MESSAGE - 7);
                    received.store(i + 1, Ordering::Release);
                }
                Instant::now()
            });
            (reader, ready_rx, progress)
        })
        .collect();
    let mut sender = join(addr, "sender");
    for (_, ready, _) in &readers {
        util::recv(ready, "a reader to see the sender join");
    }

    // Lock-step: each message is sent once the previous one came back, so every round trip
    // is a broadcast to all four members measured from the sender's side. The sender also waits
    // for the readers to come within `WINDOW` messages; each such wait has its own hang guard.
    let padding = "x".repeat(MESSAGE - 7);
    let mut round_trips = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        for (_, _, progress) in &readers {
            let deadline = Instant::now() + TIMEOUT;
            while progress.load(Ordering::Acquire) + WINDOW < i {
                assert!(Instant::now() < deadline, "a reader stopped at message {i}");
                thread::yield_now();
            }
        }
        let text = format!("{i:06} {padding}");
        let sent = Instant::now();
        sender.send(Message::text(text)).unwrap();
        let echo = next_chat(&mut sender);
        round_trips.push(sent.elapsed());
        assert!(echo.starts_with(&format!("sender: {i:06} ")));
    }
    let sender_done = Instant::now();
    let lags: Vec<Duration> = readers
        .into_iter()
        .map(|(reader, _, _)| {
            reader
                .join()
                .unwrap()
                .saturating_duration_since(sender_done)
        })
        .collect();

    // Measurements only (benches/ws.rs measures): how long the broadcasts took is the machine's
    // business. What the test proves is above and below: every reader got all COUNT messages in
    // order while the stalled member held its place, and the sender got every echo.
    round_trips.sort();
    let median = round_trips[COUNT / 2];
    let worst = round_trips[COUNT - 1];
    eprintln!(
        "round trips: median {median:?}, worst {worst:?}; readers' lag behind the sender: {lags:?}"
    );

    // The stalled member was reset by the cap, and only it. (The readers have left by now.)
    let stats = util::stats(server.handle());
    assert_eq!(stats.closed.output_limit, 1, "{stats}");
    let mut got = 0;
    let ended = loop {
        match stalled.read() {
            Ok(_) if got < COUNT => got += 1,
            Ok(_) => panic!("the stalled member received everything"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&ended, Error::Io(e) if e.kind() == ErrorKind::ConnectionReset),
        "the stalled member's connection ended with {ended:?} after {got} messages"
    );
    // The others are still members.
    sender.send(Message::text("done")).unwrap();
    assert_eq!(next_chat(&mut sender), "sender: done");
}

/// A handler that closes gracefully in `on_data` and leaves more than `max_input` unconsumed
/// still gets its queued output ("bye"; in the chat a 1009 close frame) delivered: a closing
/// connection's leftover is moot and does not count against the bound. (Found while building
/// this example, when the "message too big" close frame arrived as a reset.)
#[test]
fn graceful_close_with_unread_leftover_input_still_delivers_the_reply() {
    struct ByeWithoutReading;
    impl sockloop::Handler for ByeWithoutReading {
        fn on_data(&mut self, cx: &mut sockloop::Context<'_>, _input: &mut sockloop::Input<'_>) {
            cx.write(b"bye\n");
            cx.close();
        }
    }
    let options = sockloop::ListenOptions::new().max_input(16);
    let (addr, _server) = util::serve_with(options, || ByeWithoutReading);
    let mut stream = util::client(addr);
    stream.write_all(&[b'x'; 64]).unwrap();
    // Expected: "bye\n", then EOF. Actual: a reset (CloseReason::InputLimit), "bye" never sent.
    assert_eq!(read_to_eof(&mut stream), b"bye\n");
}

/// Served with TLS under it (what `ws_chat --tls` does), the chat is the same: members join over
/// `wss://`, ALPN settles on `http/1.1`, and every member sees every message in one order.
#[cfg(feature = "tls")]
#[test]
fn members_chat_over_wss_as_over_ws() {
    use sockloop::rustls::{ClientConnection, StreamOwned};
    type Wss = WebSocket<StreamOwned<ClientConnection, TcpStream>>;

    let pki = tls_util::Pki::new();
    let config = pki.server_config(&[b"http/1.1"]);
    let (addr, _server) = spawn_run(move |reactor| {
        let options = server::listen_options(server::DEFAULT_MAX_OUTPUT).tls(config);
        server::serve(reactor, localhost(), options)
            .expect("listen on 127.0.0.1:0")
            .0
    });
    let client_config = pki.client_config(&[b"h2", b"http/1.1"]);
    let text = |ws: &mut Wss| loop {
        match ws.read() {
            Ok(Message::Text(text)) => return text.as_str().to_owned(),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    };
    let join = |name: &str| -> Wss {
        let tls = ClientConnection::new(client_config.clone(), tls_util::localhost_name())
            .expect("a TLS client");
        let url = format!("wss://localhost:{}/ws?name={name}", addr.port());
        let (ws, response) = tungstenite::client(url, StreamOwned::new(tls, util::client(addr)))
            .unwrap_or_else(|e| panic!("{name}: handshake failed: {e}"));
        assert_eq!(response.status(), 101);
        assert_eq!(ws.get_ref().conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        ws
    };

    let mut alice = join("alice");
    assert_eq!(text(&mut alice), "* alice joined (1 here)");
    let mut bob = join("bob");
    assert_eq!(text(&mut bob), "* bob joined (2 here)");
    assert_eq!(text(&mut alice), "* bob joined (2 here)");
    for i in 0..20 {
        let (from, name) = if i % 2 == 0 {
            (&mut alice, "alice")
        } else {
            (&mut bob, "bob")
        };
        from.send(Message::text(format!("#{i} over wss"))).unwrap();
        let line = format!("{name}: #{i} over wss");
        assert_eq!(text(&mut alice), line);
        assert_eq!(text(&mut bob), line);
    }
    bob.close(None).unwrap();
    assert_eq!(text(&mut alice), "* bob left (1 here)");
}
