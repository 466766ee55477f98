//! TLS through rustls as a transport under any handler (feature `tls`): handshakes, the
//! lifecycle (on_open after the handshake, close_notify both ways, truncation), failures that
//! stay local, and flow control, against sockloop's own client and rustls's blocking one.

#![cfg(feature = "tls")]

#[path = "util/tls.rs"]
mod tls_util;
#[path = "util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use sockloop::rustls::{ClientConnection, StreamOwned};
use sockloop::{CloseReason, ConnectOptions, Context, Handler, Input, ListenOptions};
use tls_util::{localhost_name, Pki};

/// Echoes, and reports what its connection negotiated and why it closed.
struct TlsEcho {
    tx: mpsc::Sender<String>,
}

impl Handler for TlsEcho {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let tls = cx.tls().expect("a TLS connection");
        let _ = self.tx.send(format!(
            "open {:?} alpn={:?} sni={:?}",
            tls.protocol_version(),
            tls.alpn_protocol().map(String::from_utf8_lossy),
            tls.server_name()
        ));
    }
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }
    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        let _ = self.tx.send(format!("close {reason}"));
    }
}

fn serve_tls(
    pki: &Pki,
    options: ListenOptions,
) -> (SocketAddr, util::ReactorThread, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let options = options.tls(pki.server_config(&[b"echo/1"]));
    let (addr, server) = util::serve_with(options, move || TlsEcho { tx: tx.clone() });
    (addr, server, rx)
}

/// A blocking rustls client over a fresh TCP connection to `addr`.
fn client(pki: &Pki, addr: SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
    let conn = ClientConnection::new(pki.client_config(&[b"echo/1"]), localhost_name()).unwrap();
    StreamOwned::new(conn, util::client(addr))
}

/// Sends `data` in pieces of `step` bytes, reading each piece's echo before the next.
fn echo_in_steps(c: &mut impl ReadWrite, data: &[u8], step: usize) -> Vec<u8> {
    let mut echoed = Vec::with_capacity(data.len());
    let mut buf = vec![0; 64 << 10];
    for piece in data.chunks(step) {
        c.write_all(piece).unwrap();
        c.flush().unwrap();
        let want = echoed.len() + piece.len();
        while echoed.len() < want {
            let n = c.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "EOF after {} of {} echoed bytes",
                echoed.len(),
                data.len()
            );
            echoed.extend_from_slice(&buf[..n]);
        }
    }
    echoed
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn a_tls_echo_round_trip_with_alpn_and_sni() {
    let pki = Pki::new();
    let (addr, server, rx) = serve_tls(&pki, ListenOptions::new());
    let mut c = client(&pki, addr);
    let data = util::pattern(1, 1 << 20);
    let echoed = echo_in_steps(&mut c, &data, 16 << 10);
    util::assert_bytes_eq(&echoed, &data, "TLS echo");
    let open = util::recv(&rx, "on_open");
    assert!(open.starts_with("open Some(TLSv1_3)"), "{open}");
    assert!(
        open.contains("alpn=Some(\"echo/1\")") && open.contains("sni=Some(\"localhost\")"),
        "{open}"
    );
    drop(c);
    server.stop();
}

/// Waits for the next "close ..." report.
fn next_close(rx: &mpsc::Receiver<String>) -> String {
    loop {
        let event = util::recv(rx, "on_close");
        if let Some(reason) = event.strip_prefix("close ") {
            return reason.to_string();
        }
    }
}

/// Reads until the TLS stream ends; returns what came and how it ended.
fn read_to_end_tls(
    c: &mut StreamOwned<ClientConnection, TcpStream>,
) -> (Vec<u8>, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
    }
}

/// The client sends `close_notify`: the server hears it as the peer's FIN (`on_read_closed`,
/// whose default closes), answers with its own `close_notify`, and both ends see clean ends.
#[test]
fn close_notify_both_ways() {
    let pki = Pki::new();
    let (addr, server, rx) = serve_tls(&pki, ListenOptions::new());
    let mut c = client(&pki, addr);
    assert_eq!(echo_in_steps(&mut c, b"last words", 64), b"last words");
    c.conn.send_close_notify();
    c.flush().unwrap();
    let (rest, end) = read_to_end_tls(&mut c);
    assert!(rest.is_empty());
    end.expect("the server's close_notify, not a cut stream");
    assert_eq!(next_close(&rx), CloseReason::PeerClosed.to_string());
    server.stop();
}

/// The client's TCP stream ends without `close_notify`: every plaintext byte before it is
/// still delivered (and echoed), then the connection closes as truncated.
#[test]
fn eof_without_close_notify_is_truncation_after_all_plaintext() {
    let pki = Pki::new();
    let (addr, server, rx) = serve_tls(&pki, ListenOptions::new());
    let mut c = client(&pki, addr);
    let data = util::pattern(2, 100_000);
    c.write_all(&data).unwrap();
    c.flush().unwrap();
    // Half-close the TCP stream under TLS: no close_notify.
    c.sock.shutdown(std::net::Shutdown::Write).unwrap();
    let (echoed, _end) = read_to_end_tls(&mut c);
    util::assert_bytes_eq(&echoed, &data, "echo before the truncation");
    assert_eq!(next_close(&rx), CloseReason::Truncated.to_string());
    server.stop();
}

/// Bytes that are not a ClientHello end that connection with a TLS error (after the alert), and
/// the handler never hears `on_open`; a good client is served meanwhile.
#[test]
fn garbage_instead_of_a_client_hello_closes_only_that_connection() {
    let pki = Pki::new();
    let (addr, server, rx) = serve_tls(&pki, ListenOptions::new());
    let mut garbage = util::client(addr);
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The alert, then the server's FIN: never a response.
    let mut sink = Vec::new();
    let _ = garbage.read_to_end(&mut sink);
    assert!(!sink.starts_with(b"HTTP"), "{sink:?}");
    assert_eq!(sink.first(), Some(&21), "a TLS alert record: {sink:?}");
    drop(garbage);
    let reason = next_close(&rx);
    assert!(reason.starts_with("TLS error"), "{reason}");
    let mut good = client(&pki, addr);
    assert_eq!(
        echo_in_steps(&mut good, b"still served", 64),
        b"still served"
    );
    assert!(util::recv(&rx, "on_open").starts_with("open"));
    drop(good);
    server.stop();
}

/// A client that connects and says nothing, and one that sends its ClientHello a byte at a time,
/// are both closed by the handshake timeout, without `on_open`, while another client is served.
#[test]
fn silent_and_dribbling_clients_meet_the_handshake_timeout() {
    let pki = Pki::new();
    let options = ListenOptions::new().tls_handshake_timeout(Duration::from_millis(300));
    let (addr, server, rx) = serve_tls(&pki, options);
    let _silent = util::client(addr);
    // A real ClientHello, dribbled: one byte every 20 ms would take seconds.
    let mut hello = Vec::new();
    let mut conn = ClientConnection::new(pki.client_config(&[]), localhost_name()).unwrap();
    conn.write_tls(&mut hello).unwrap();
    let mut dribbler = util::client(addr);
    let dribble = std::thread::spawn(move || {
        for byte in &hello {
            if dribbler.write_all(std::slice::from_ref(byte)).is_err() {
                return true; // closed by the server
            }
            // Pacing the dribble, not synchronising: the server's deadline decides.
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut rest = Vec::new();
        let _ = dribbler.read_to_end(&mut rest);
        true
    });
    let mut good = client(&pki, addr);
    assert_eq!(echo_in_steps(&mut good, b"served", 64), b"served");
    let reasons = [next_close(&rx), next_close(&rx)];
    for reason in &reasons {
        assert_eq!(reason, &CloseReason::HandshakeTimeout.to_string());
    }
    assert!(dribble.join().unwrap());
    drop(good);
    server.stop();
}

/// Counts plaintext and pauses its own reading after the first `stop_after` bytes, until told
/// to resume through a channel the test holds.
struct PausingSink {
    stop_after: usize,
    got: usize,
    paused: bool,
    tx: mpsc::Sender<usize>,
}

impl Handler for PausingSink {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.got += input.take_all().len();
        let _ = self.tx.send(self.got);
        if self.got >= self.stop_after && !self.paused {
            self.paused = true;
            let me = cx.id();
            let _ = cx.pause_reading(me);
        }
    }
}

/// A handler that stops taking plaintext (it pauses its reading) stops the reading of
/// ciphertext too: the peer is held back by TCP flow control, and the server's bytes read stop
/// growing, instead of buffering without end.
#[test]
fn a_paused_tls_reader_holds_the_peer_back() {
    let pki = Pki::new();
    let (tx, rx) = mpsc::channel();
    let options = ListenOptions::new().tls(pki.server_config(&[]));
    let ((addr, handle), server) = util::spawn_reactor(move |reactor| {
        let addr = reactor
            .listen_with(util::localhost(), options, move || PausingSink {
                stop_after: 1 << 20,
                got: 0,
                paused: false,
                tx: tx.clone(),
            })
            .unwrap()
            .1;
        (addr, reactor.handle().unwrap())
    });
    // The client encrypts with rustls and writes the records itself, so that a full socket
    // shows as a write timeout (rustls's blocking stream would wait on a read instead).
    let mut tls = ClientConnection::new(pki.client_config(&[]), localhost_name()).unwrap();
    let mut sock = util::client(addr);
    while tls.is_handshaking() {
        tls.complete_io(&mut sock).unwrap();
    }
    sock.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![b'x'; 64 << 10];
    let mut sent = 0usize;
    let deadline = std::time::Instant::now() + util::TIMEOUT;
    'fill: loop {
        tls.writer().write_all(&chunk).unwrap();
        while tls.wants_write() {
            if tls.write_tls(&mut sock).is_err() {
                break 'fill; // held back: the socket stayed full past the timeout
            }
        }
        sent += chunk.len();
        assert!(
            std::time::Instant::now() < deadline,
            "the peer was never held back ({sent} bytes sent)"
        );
    }
    let read_now = util::stats(&handle).bytes_read;
    let read_later = util::stats(&handle).bytes_read;
    assert_eq!(read_now, read_later, "the paused connection was still read");
    let got = rx.try_iter().last().unwrap_or(0);
    assert!(got >= 1 << 20, "{got} plaintext bytes before the pause");
    assert!(
        (got as u64) < read_now + 1,
        "delivered {got} plaintext bytes, read {read_now} ciphertext bytes"
    );
    drop(sock);
    server.stop();
}

/// sockloop's own TLS client, on the same reactor as the server: it hears `on_open` after the
/// handshake, with the ALPN protocol, and its writes (and a write from elsewhere) arrive.
#[test]
fn sockloop_client_to_sockloop_server() {
    struct Client {
        tx: mpsc::Sender<String>,
        got: Vec<u8>,
    }
    impl Handler for Client {
        fn on_open(&mut self, cx: &mut Context<'_>) {
            let tls = cx.tls().expect("TLS");
            let _ = self.tx.send(format!(
                "client open {:?} {:?} certs={}",
                tls.protocol_version(),
                tls.alpn_protocol().map(String::from_utf8_lossy),
                tls.peer_certificates().map_or(0, |c| c.len())
            ));
            cx.write(b"hello over tls");
        }
        fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
            self.got.extend_from_slice(input.take_all());
            if self.got == b"hello over tls" {
                let _ = self.tx.send("client echoed".into());
                cx.close();
            }
        }
        fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
            let _ = self.tx.send(format!("client close {reason}"));
        }
    }
    let pki = Pki::new();
    let (tx, rx) = mpsc::channel();
    let server_config = pki.server_config(&[b"echo/1"]);
    let client_config = pki.client_config(&[b"echo/1"]);
    let (_addr, server) = util::spawn_reactor({
        let tx = tx.clone();
        move |reactor| {
            let options = ListenOptions::new().tls(server_config);
            let server_tx = tx.clone();
            let (_, addr) = reactor
                .listen_with(util::localhost(), options, move || TlsEcho {
                    tx: server_tx.clone(),
                })
                .unwrap();
            let options = ConnectOptions::new().tls(client_config, localhost_name());
            reactor.connect_with(
                addr,
                options,
                Client {
                    tx,
                    got: Vec::new(),
                },
            );
            addr
        }
    });
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &String| e.starts_with("client close")) {
        seen.push(util::recv(&rx, "the client's events"));
    }
    assert!(
        seen.iter()
            .any(|e| e.starts_with("client open Some(TLSv1_3) Some(\"echo/1\") certs=1")),
        "{seen:?}"
    );
    assert!(seen.contains(&"client echoed".to_string()), "{seen:?}");
    assert!(
        seen.contains(&format!("client close {}", CloseReason::Local)),
        "{seen:?}"
    );
    server.stop();
}

/// A client that does not trust the server's certificate fails its handshake: it hears
/// `on_close` with the TLS error and never `on_open`.
#[test]
fn an_untrusted_server_certificate_fails_the_clients_handshake() {
    struct Client(mpsc::Sender<String>);
    impl Handler for Client {
        fn on_open(&mut self, _cx: &mut Context<'_>) {
            let _ = self.0.send("open".into());
        }
        fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
            input.consume(input.len());
        }
        fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
            let _ = self.0.send(format!("close {reason}"));
        }
    }
    let pki = Pki::new();
    let other = Pki::new(); // a CA that did not sign the server's certificate
    let (tx, rx) = mpsc::channel();
    let server_config = pki.server_config(&[]);
    let client_config = other.client_config(&[]);
    let (_, server) = util::spawn_reactor(move |reactor| {
        let (_, addr) = reactor
            .listen_with(
                util::localhost(),
                ListenOptions::new().tls(server_config),
                || util::Sink,
            )
            .unwrap();
        let options = ConnectOptions::new().tls(client_config, localhost_name());
        reactor.connect_with(addr, options, Client(tx));
    });
    let first = util::recv(&rx, "the client's first event");
    assert!(first.starts_with("close TLS error"), "{first}");
    assert!(first.contains("certificate"), "{first}");
    server.stop();
}

/// Output counts ciphertext: a 1,000-byte write queues its TLS record, header and tag
/// included.
#[test]
fn queued_output_counts_ciphertext() {
    struct Writer(mpsc::Sender<usize>);
    impl Handler for Writer {
        fn on_open(&mut self, cx: &mut Context<'_>) {
            let before = cx.queued();
            cx.write(&[b'q'; 1000]);
            let _ = self.0.send(cx.queued() - before);
        }
        fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
            input.consume(input.len());
        }
    }
    let pki = Pki::new();
    let (tx, rx) = mpsc::channel();
    let options = ListenOptions::new().tls(pki.server_config(&[]));
    let (addr, server) = util::serve_with(options, move || Writer(tx.clone()));
    let mut c = client(&pki, addr);
    let mut buf = [0u8; 1000];
    c.read_exact(&mut buf).unwrap();
    let queued = util::recv(&rx, "the queued count");
    // TLS 1.3: 5 header bytes, 1 content type byte, 16 tag bytes per record.
    assert_eq!(queued, 1000 + 22);
    drop(c);
    server.stop();
}
