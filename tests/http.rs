//! The HTTP example's protocol behaviour over raw TCP: responses, keep-alive, pipelining, the
//! limits (400, 411, 413, 414, 431), closes, the header timeout and the lingering-time cap.
//!
//! The example's own handler (`examples/http_server/`) runs in-process on a reactor thread,
//! with the listener options the example derives from its configuration; only the limits are
//! smaller, so the tests stay fast. The `http_server` binary itself is tried with curl and wrk
//! (see its module docs and examples/http_server/README.md).

#[cfg(feature = "tls")]
#[path = "util/tls.rs"]
mod tls_util;
mod util;

#[path = "../examples/http_server/handler.rs"]
mod handler;
#[allow(dead_code)] // the servers' flag; the handlers use only `peer`
#[path = "../examples/common/proxy.rs"]
mod proxy;
#[path = "../examples/http_server/request.rs"]
mod request;
#[path = "../examples/http_server/response.rs"]
mod response;
#[path = "../examples/http_server/session.rs"]
mod session;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use handler::{Config, HttpConn};
use request::{parse_head, Limits, Parsed};
use response::{Status, HELLO};

const MAX_BODY: u64 = 1024;
const HEADER_TIMEOUT: Duration = Duration::from_millis(300);
const LINGERING_TIME: Duration = Duration::from_millis(500);
/// How often a trickling client sends its next byte.
const TRICKLE_PACE: Duration = Duration::from_millis(20);

const CONFIG: Config = Config {
    limits: Limits {
        max_head: 8 << 10,
        max_body: MAX_BODY,
    },
    header_timeout: HEADER_TIMEOUT,
    idle_timeout: Duration::from_secs(30),
    lingering_time: LINGERING_TIME,
};

/// The example's handler on an ephemeral port, with the test configuration.
fn server() -> (SocketAddr, util::ReactorThread) {
    util::serve_with(CONFIG.listen_options(), || HttpConn::new(&CONFIG))
}

/// A parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A blocking client that keeps whatever it read beyond the response it was asked for, so
/// pipelined responses can be taken one at a time; over TCP, or over TLS (`S` a rustls stream).
struct Client<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: util::client(addr),
            buf: Vec::new(),
        }
    }
}

impl<S: Read + Write> Client<S> {
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads more bytes into the buffer; panics at EOF (a response was still expected).
    fn fill(&mut self) {
        let mut chunk = [0u8; 16 << 10];
        let n = self.stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "EOF; unparsed: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next response; `head_only` for the answer to a HEAD request (no body).
    fn next_response(&mut self, head_only: bool) -> Response {
        let deadline = Instant::now() + util::TIMEOUT;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = parsed.parse(&self.buf).unwrap() {
                let status = parsed.code.unwrap();
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        let value = String::from_utf8(h.value.to_vec()).unwrap();
                        (h.name.to_string(), value)
                    })
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let len = if head_only || status < 200 { 0 } else { len };
                while self.buf.len() < head + len {
                    assert!(Instant::now() < deadline, "response body incomplete");
                    self.fill();
                }
                let body = self.buf[head..head + len].to_vec();
                self.buf.drain(..head + len);
                return Response {
                    status,
                    headers,
                    body,
                };
            }
            assert!(Instant::now() < deadline, "no complete response head");
            self.fill();
        }
    }

    fn response(&mut self) -> Response {
        self.next_response(false)
    }

    /// Sends a HEAD request and reads its (bodiless) response.
    fn head_response(&mut self, head_request: &[u8]) -> Response {
        self.send(head_request);
        self.next_response(true)
    }
}

impl Client {
    /// Asserts the server closed the connection after what was read (clean EOF, no more bytes).
    #[track_caller]
    fn assert_closed(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        util::assert_eof(&mut self.stream);
    }

    /// Trickles a request head that never ends, one byte every [`TRICKLE_PACE`], until the
    /// server closes the connection; returns when the close was seen. Panics if it is still
    /// open after the hang guard ([`util::TIMEOUT`]).
    ///
    /// The head is a header line that goes on and on, within `max_head`: whenever the server's
    /// timer comes, the head is still incomplete, so nothing but the timeout can answer it.
    fn trickle_until_closed(&mut self) -> Instant {
        let started = Instant::now();
        let head = trickled_head();
        self.stream.set_read_timeout(Some(TRICKLE_PACE)).unwrap();
        for &byte in &head {
            assert!(
                started.elapsed() < util::TIMEOUT,
                "still open {:?} after the head started",
                started.elapsed()
            );
            if self.stream.write_all(&[byte]).is_err() {
                return Instant::now(); // reset: the server closed and dropped our bytes
            }
            // Waits up to the pace for the close; nothing else may arrive.
            let mut probe = [0u8; 64];
            match self.stream.read(&mut probe) {
                Ok(0) => return Instant::now(),
                Ok(n) => panic!("a slow sender was sent {n} bytes"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Instant::now(),
                Err(e) => panic!("unexpected read error: {e}"),
            }
        }
        panic!("ran out of bytes to trickle after {:?}", started.elapsed());
    }
}

/// A request head whose last header line never ends: long enough to trickle for longer than the
/// hang guard at [`TRICKLE_PACE`], short enough to stay within the 8 KiB `max_head` (a longer
/// one would be answered with 431).
fn trickled_head() -> Vec<u8> {
    let bytes = (util::TIMEOUT.as_millis() / TRICKLE_PACE.as_millis()) as usize + 100;
    let mut head = b"GET / HTTP/1.1\r\nHost: test\r\nX-Trickle: ".to_vec();
    head.resize(head.len() + bytes, b'a');
    assert!(head.len() < CONFIG.limits.max_head);
    head
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

#[test]
fn get_root_answers_200_with_the_greeting_and_deterministic_headers() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    c.send(&get("/"));
    let want = format!(
        "HTTP/1.1 200 OK\r\nServer: sockloop\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n{HELLO}",
        HELLO.len()
    );
    let got = util::read_exactly(&mut c.stream, want.len());
    util::assert_bytes_eq(&got, want.as_bytes(), "the response to GET /");
    server.stop();
}

#[test]
fn unknown_path_gets_404_and_the_connection_stays_open() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    c.send(&get("/nowhere?x=1"));
    let r = c.response();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("connection"), None);
    c.send(&get("/?x=1"));
    assert_eq!(c.response().body, HELLO.as_bytes());
    server.stop();
}

#[test]
fn two_requests_share_one_kept_alive_connection() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    for _ in 0..2 {
        c.send(&get("/"));
        let r = c.response();
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO.as_bytes()));
    }
    let head = c.head_response(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("20"));
    assert!(head.body.is_empty());
    server.wait_for_connections(1);
    server.stop();
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    let mut batch = get("/");
    batch.extend(get("/missing"));
    batch.extend(b"DELETE / HTTP/1.1\r\nHost: test\r\n\r\n");
    c.send(&batch);
    let statuses: Vec<u16> = (0..3).map(|_| c.response().status).collect();
    assert_eq!(statuses, [200, 404, 405]);
    // Still open, and still in step.
    c.send(&get("/"));
    assert_eq!(c.response().status, 200);
    server.stop();
}

#[test]
fn malformed_requests_get_400_and_the_connection_closes() {
    let (addr, server) = server();
    let cases: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: test\r\nno colon in this header\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: test\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls client hello",
        b"GET / HTTP/1.1\r\n\r\n", // HTTP/1.1 without Host
        b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    ];
    for case in cases {
        let mut c = Client::connect(addr);
        c.send(case);
        let r = c.response();
        assert_eq!(r.status, 400, "for {:?}", String::from_utf8_lossy(case));
        assert_eq!(r.header("connection"), Some("close"));
        c.assert_closed();
    }
    server.stop();
}

#[test]
fn headers_over_8_kib_get_431_and_the_connection_closes() {
    let (addr, server) = server();
    let big = "a".repeat(9 << 10);
    // All at once, and as a head that is still incomplete when it passes the limit.
    let complete = format!("GET / HTTP/1.1\r\nHost: test\r\nX-Big: {big}\r\n\r\n");
    let unfinished = format!("GET / HTTP/1.1\r\nHost: test\r\nX-Big: {big}");
    let many: String = (0..100).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let too_many = format!("GET / HTTP/1.1\r\nHost: test\r\n{many}\r\n");
    for head in [complete, unfinished, too_many] {
        let mut c = Client::connect(addr);
        c.send(head.as_bytes());
        let r = c.response();
        assert_eq!(r.status, 431);
        c.assert_closed();
    }
    let mut c = Client::connect(addr);
    c.send(&get(&format!("/{big}")));
    assert_eq!(c.response().status, 414, "a request line over the limit");
    c.assert_closed();
    server.stop();
}

#[test]
fn oversized_content_length_gets_413_and_a_clean_close_while_the_body_is_still_coming() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    let body = vec![b'x'; 64 << 10];
    c.send(
        format!(
            "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let r = c.response();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    // EOF, not a reset: the server read and dropped the body it refused.
    c.assert_closed();
    server.stop();
}

#[test]
fn body_within_the_limit_is_skipped_and_the_next_request_answered() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    let body = vec![b'G'; MAX_BODY as usize]; // looks like requests, must not be taken for them
    c.send(
        format!(
            "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    c.send(&get("/"));
    assert_eq!(c.response().status, 404);
    assert_eq!(c.response().status, 200);
    server.stop();
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    c.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(c.response().status, 100);
    c.send(b"hello");
    let r = c.response();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    server.stop();
}

#[test]
fn chunked_request_body_gets_411_and_the_connection_closes() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    c.send(b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(c.response().status, 411);
    c.assert_closed();
    server.stop();
}

#[test]
fn connection_close_is_honoured_after_the_response_and_later_requests_are_ignored() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    let mut batch = b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".to_vec();
    batch.extend(get("/"));
    c.send(&batch);
    let r = c.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    c.assert_closed();
    server.stop();
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    c.assert_closed();

    let mut c = Client::connect(addr);
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.response();
        assert_eq!(
            (r.status, r.header("connection")),
            (200, Some("keep-alive"))
        );
    }
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    c.response();
    c.assert_closed();
    server.stop();
}

#[test]
fn requests_split_byte_by_byte_are_still_parsed() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    let mut requests = b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    requests.extend(get("/"));
    for byte in &requests {
        c.send(std::slice::from_ref(byte));
    }
    assert_eq!(c.response().status, 404);
    assert_eq!(c.response().body, HELLO.as_bytes());
    server.stop();
}

/// The example with its test configuration, and a handle to read the reactor's `stats()`.
fn server_with_handle() -> (SocketAddr, sockloop::Handle, util::ReactorThread) {
    let ((addr, handle), server) = util::spawn_reactor(|reactor| {
        let (_, addr) = reactor
            .listen_with(util::localhost(), CONFIG.listen_options(), || {
                HttpConn::new(&CONFIG)
            })
            .unwrap();
        (addr, reactor.handle().unwrap())
    });
    (addr, handle, server)
}

/// A first request head trickled byte by byte is cut by the listener's first-bytes timeout
/// (the close reason says which deadline it was), no earlier than `HEADER_TIMEOUT` after the
/// client began to connect (the deadline counts from the accept, which comes after that).
#[test]
fn slow_first_request_head_is_closed_by_the_header_timeout() {
    let (addr, handle, server) = server_with_handle();
    let connecting = Instant::now();
    let mut c = Client::connect(addr);
    let closed = c.trickle_until_closed();
    let took = closed - connecting;
    assert!(took >= HEADER_TIMEOUT, "closed {took:?} after connecting");
    server.wait_for_connections(0);
    let stats = util::stats(&handle);
    assert_eq!(stats.closed.first_bytes_timeout, 1, "{stats}");
    assert_eq!(stats.closed.total(), 1, "{stats}");
    server.stop();
}

/// A later request head trickled byte by byte is cut by the example's header timer, which it
/// arms at the head's first byte and which new bytes do not re-arm: an abort (the timer's close
/// reason), no earlier than `HEADER_TIMEOUT` after that first byte was sent.
#[test]
fn slow_later_request_head_is_closed_by_the_header_timer() {
    let (addr, handle, server) = server_with_handle();
    let mut c = Client::connect(addr);
    c.send(&get("/"));
    assert_eq!(c.response().status, 200);
    let head_started = Instant::now();
    let closed = c.trickle_until_closed();
    let took = closed - head_started;
    assert!(
        took >= HEADER_TIMEOUT,
        "closed {took:?} after the head started"
    );
    server.wait_for_connections(0);
    let stats = util::stats(&handle);
    assert_eq!(stats.closed.aborted, 1, "{stats}");
    assert_eq!(stats.closed.total(), 1, "{stats}");
    server.stop();
}

/// After a rejection the example closes gracefully and caps the wait for the client's FIN with
/// its lingering-time timer. A client that never sends FIN but keeps trickling bytes (each read
/// and dropped by the closing connection) is reset by that timer: the close reason is the
/// timer's abort, not the reactor's own 5 s linger bound (a `Local` close), and it comes no
/// earlier than `LINGERING_TIME` after the request was sent (the timer is armed after that).
#[test]
fn client_trickling_after_a_rejection_is_reset_at_the_lingering_time() {
    let (addr, handle, server) = server_with_handle();
    let mut c = Client::connect(addr);
    let sent = Instant::now();
    c.send(b"GET / HTTP/9.9\r\n\r\n");
    assert_eq!(c.response().status, 400);
    c.assert_closed();
    let deadline = Instant::now() + util::TIMEOUT;
    while server.connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "still open {:?} after the request",
            sent.elapsed()
        );
        let _ = c.stream.write_all(b"x"); // fails once the server has reset the connection
        std::thread::sleep(TRICKLE_PACE); // the trickle's pace
    }
    let took = sent.elapsed();
    assert!(took >= LINGERING_TIME, "reset {took:?} after the request");
    let stats = util::stats(&handle);
    assert_eq!(stats.closed.aborted, 1, "{stats}");
    assert_eq!(stats.closed.total(), 1, "{stats}");
    server.stop();
}

#[test]
fn kept_alive_connection_between_requests_is_not_cut_by_the_header_timeout() {
    let (addr, server) = server();
    let mut c = Client::connect(addr);
    c.send(&get("/"));
    assert_eq!(c.response().status, 200);
    // Silent for twice the header timeout: neither a byte nor EOF may arrive.
    c.stream.set_read_timeout(Some(2 * HEADER_TIMEOUT)).unwrap();
    let mut probe = [0u8; 1];
    let e = c
        .stream
        .read(&mut probe)
        .expect_err("the server sent something");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    c.stream.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    c.send(&get("/"));
    assert_eq!(c.response().status, 200);
    server.stop();
}

#[test]
fn parser_routes_absolute_targets_and_rejects_ambiguous_framing() {
    let limits = CONFIG.limits;
    let status = |head: &[u8]| match parse_head(head, &limits) {
        Parsed::Request(r) => r.status,
        Parsed::Reject(s) => s,
        Parsed::Partial => panic!("partial: {:?}", String::from_utf8_lossy(head)),
    };
    assert_eq!(
        status(b"GET http://test/?q HTTP/1.1\r\nHost: test\r\n\r\n"),
        Status::Ok
    );
    assert_eq!(
        status(b"GET HTTP://test HTTP/1.1\r\nHost: test\r\n\r\n"),
        Status::Ok
    );
    assert_eq!(
        status(b"\r\nGET /a HTTP/1.1\r\nHost: test\r\n\r\n"),
        Status::NotFound
    );
    let cl_and_te =
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(status(cl_and_te), Status::BadRequest);
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n"),
        Status::BadRequest
    );
    let huge = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    assert_eq!(status(huge), Status::PayloadTooLarge);
    assert_eq!(
        parse_head(b"GET / HTTP/1.1\r\nHost: t\r\n", &limits),
        Parsed::Partial
    );
}

/// Closes gracefully as soon as anything arrives, like the example after a rejection.
struct CloseOnData;

impl sockloop::Handler for CloseOnData {
    fn on_data(&mut self, cx: &mut sockloop::Context<'_>, input: &mut sockloop::Input<'_>) {
        input.consume(input.len());
        cx.close();
    }
}

/// A graceful close waits for the peer's FIN up to 5 s without progress, and bytes read from a
/// closing connection are no progress: a peer that never sends FIN but trickles a byte every
/// second loses the connection, as a `Local` close (the linger bound gave up on the FIN). (Before
/// the fix, reads counted, and such a peer held the connection, its slot and its socket forever:
/// the trickle below would have gone on until the hang guard.)
#[test]
fn trickling_peer_cannot_hold_a_closing_connection_open() {
    let ((addr, handle), server) = util::spawn_reactor(|reactor| {
        let (_, addr) = reactor.listen(util::localhost(), || CloseOnData).unwrap();
        (addr, reactor.handle().unwrap())
    });
    let mut c = util::client(addr);
    c.write_all(b"x").unwrap();
    util::wait_until("the server to close its side", || {
        let mut probe = [0u8; 1];
        matches!(c.read(&mut probe), Ok(0))
    });
    let closed_at = Instant::now();
    // A byte every second until the server lets go: each one is read by the closing connection.
    let deadline = closed_at + util::TIMEOUT;
    while server.connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "still open {:?} after the server's graceful close",
            closed_at.elapsed()
        );
        std::thread::sleep(Duration::from_secs(1)); // the trickle's pace is the point here
        let _ = c.write_all(b"y"); // fails once the server has let go
    }
    eprintln!("released {:?} after the close", closed_at.elapsed());
    let stats = util::stats(&handle);
    assert_eq!(stats.closed.local, 1, "{stats}");
    assert_eq!(stats.closed.total(), 1, "{stats}");
    server.stop();
}

/// Served over TLS with ALPN `http/1.1` (what `http_server --tls` does), the handler is the same:
/// a client offering h2 first settles on HTTP/1.1, keep-alive and pipelining work, and
/// `Connection: close` ends the connection with close_notify, so the client sees a clean end.
#[cfg(feature = "tls")]
#[test]
fn https_with_alpn_http_1_1_keeps_alive_and_pipelines() {
    use sockloop::rustls::{ClientConnection, StreamOwned};

    let pki = tls_util::Pki::new();
    let options = CONFIG
        .listen_options()
        .tls(pki.server_config(&[b"http/1.1"]));
    let (addr, server) = util::serve_with(options, || HttpConn::new(&CONFIG));
    let tls = ClientConnection::new(
        pki.client_config(&[b"h2", b"http/1.1"]),
        tls_util::localhost_name(),
    )
    .expect("a TLS client");
    let mut c = Client {
        stream: StreamOwned::new(tls, util::client(addr)),
        buf: Vec::new(),
    };
    c.send(&get("/"));
    let r = c.response();
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO.as_bytes()));
    assert_eq!(c.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));

    let mut batch = get("/");
    batch.extend(get("/missing"));
    batch.extend(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    c.send(&batch);
    let statuses: Vec<u16> = (0..3).map(|_| c.response().status).collect();
    assert_eq!(statuses, [200, 404, 200]);
    // After the closing response: close_notify, which rustls reports as a clean EOF.
    let mut rest = Vec::new();
    c.stream.read_to_end(&mut rest).expect("a clean TLS close");
    assert!(rest.is_empty(), "nothing after the closing response");
    server.stop();
}

/// A graceful shutdown (SIGTERM in the example) closes an idle keep-alive connection at once,
/// but a connection that has not had its first request yet gets to send it and is answered:
/// behind a load balancer in TCP mode, that request is already on its way.
#[test]
fn shutdown_answers_a_first_request_still_to_come_and_closes_idle_connections() {
    let (addr, handle, server) = server_with_handle();
    let mut fresh = util::client(addr);
    let mut idle = util::client(addr);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 15];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK");
    util::wait_until("both connections accepted", || {
        util::stats(&handle).accepted == 2
    });
    handle.shutdown(Duration::from_secs(60)).unwrap();
    // The idle one is closed by the shutdown: once it sees EOF, the shutdown has begun.
    let _ = util::read_to_eof(&mut idle);
    fresh
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let answer = util::read_to_eof(&mut fresh);
    assert!(
        answer.starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    drop((fresh, idle));
    server.wait_for_connections(0);
    server.stop();
}
