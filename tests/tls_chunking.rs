//! The chunking property of `tests/chunking.rs` over TLS: however the peer splits its plaintext
//! into writes (and so into TLS records), and whatever order the loop sees events in, a handler
//! behind `ListenOptions::tls` is offered exactly the plaintext sent, once each, in order; its
//! replies arrive byte-exact through the peer's rustls client; its connection closes once, for a
//! reason that fits. The scenarios and the checks are the plain property's own
//! (`chunking/harness.rs`, run with [`harness::run_wrapped`]); the peer completes its handshake
//! first, ends with `close_notify` and FIN where the plain peer sends FIN, and resets as it does.

#![cfg(feature = "tls")]

#[path = "chunking/harness.rs"]
mod harness;
#[path = "util/tls.rs"]
mod tls_util;

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};

use proptest::collection::vec;
use proptest::prelude::*;
use sockloop::rustls::{ClientConfig, ClientConnection, ServerConfig};
use sockloop::{CloseReason, ListenOptions};

use harness::{
    Consume, Layer, Local, LocalAction, Payload, PeerEnd, ReadClosed, Reply, Scenario, Style, Wrap,
};
use tls_util::{localhost_name, Pki};

/// Generated scenarios per run when `PROPTEST_CASES` is not set, as in `tests/chunking.rs`.
const CASES: u32 = 64;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// The listener's and the peer's TLS configurations, made once for all runs.
struct Tls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let pki = Pki::new();
        Tls {
            server: pki.server_config(&[]),
            client: pki.client_config(&[]),
        }
    })
}

impl Wrap for Tls {
    fn listen_options(&self, options: ListenOptions) -> ListenOptions {
        options.tls(Arc::clone(&self.server))
    }

    fn layer(&self) -> Box<dyn Layer> {
        let conn = ClientConnection::new(Arc::clone(&self.client), localhost_name())
            .expect("a client connection");
        Box::new(TlsLayer { conn })
    }
}

/// The peer's side: rustls's client, driven by hand over the non-blocking socket. Each write
/// becomes one record (the scenario's writes are at most a few KiB), sent at once as far as
/// the socket takes it.
struct TlsLayer {
    conn: ClientConnection,
}

impl Layer for TlsLayer {
    fn write(&mut self, sock: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
        // Like a socket's buffer, take more only once what came before is out.
        if !self.flush(sock)? {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = self.conn.writer().write(bytes)?;
        if n == 0 && !bytes.is_empty() {
            return Err(ErrorKind::WouldBlock.into());
        }
        match self.flush(sock) {
            Err(e) if e.kind() != ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }

    fn read(&mut self, sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Ok(0) once close_notify came; UnexpectedEof after a FIN without it.
            match self.conn.reader().read(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                done => return done,
            }
            // Ok(0) is the FIN: the reader above then tells how the stream ended.
            self.conn.read_tls(sock)?;
            let processed = self.conn.process_new_packets();
            // Handshake messages or an alert in answer to what just came.
            let flushed = self.flush(sock);
            processed.map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
            match flushed {
                Err(e) if e.kind() != ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
    }

    fn flush(&mut self, sock: &mut TcpStream) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn close(&mut self) {
        self.conn.send_close_notify();
    }

    fn is_ready(&self) -> bool {
        !self.conn.is_handshaking()
    }
}

fn run(s: &Scenario) -> harness::Outcome {
    harness::run_wrapped(s, tls())
}

proptest! {
    #![proptest_config(config())]

    /// The plain property's generated scenarios (a Unix transport is run over TCP), over TLS.
    #[test]
    fn any_chunking_of_the_plaintext_delivers_every_byte_once(data in vec(any::<u8>(), 0..160)) {
        run(&Scenario::from_bytes(&data));
    }
}

fn text(len: usize) -> Payload {
    Payload::Generated {
        style: Style::Lines,
        seed: 1,
        len,
    }
}

/// A record per byte: every record is decrypted and its byte delivered, lines reassembled.
#[test]
fn one_byte_records_are_reassembled_into_lines() {
    let out = run(&Scenario {
        chunks: vec![1],
        spins: vec![1],
        consume: vec![Consume::Lines],
        reply: Reply::Echo,
        peer_reads_early: true,
        ..Scenario::new(text(700))
    });
    assert!(out.partial > 0, "no line was ever split: {out:?}");
}

/// Sixty records sent with no loop iteration between them reach the server in a few reads,
/// each holding many records: all their plaintext is delivered, not just the first record's.
#[test]
fn records_sent_in_one_burst_are_all_delivered() {
    let out = run(&Scenario {
        chunks: vec![1000],
        reply: Reply::Tagged,
        ..Scenario::new(text(60_000))
    });
    assert_eq!(out.reason, CloseReason::PeerClosed.to_string(), "{out:?}");
    assert!(
        out.calls < 60,
        "no call had several records' plaintext: {out:?}"
    );
}

/// Frames split across records are taken whole, and leftovers offered again.
#[test]
fn frames_split_across_records_are_taken_whole() {
    let frames = Payload::Generated {
        style: Style::Frames,
        seed: 9,
        len: 4000,
    };
    let out = run(&Scenario {
        chunks: vec![3, 50, 1, 700],
        spins: vec![1, 0, 2],
        consume: vec![Consume::Frames],
        reply: Reply::Tagged,
        ..Scenario::new(frames)
    });
    assert!(out.partial > 0, "no frame was ever split: {out:?}");
}

/// The last record, `close_notify` and FIN in one TCP segment: the end of the stream is heard
/// after the last byte, and the trailer written in `on_read_closed` still arrives.
#[test]
fn close_notify_in_the_segment_of_the_last_record_comes_after_it() {
    let out = run(&Scenario {
        chunks: vec![100],
        spins: vec![1],
        end: PeerEnd::HalfCloseWithLastWrite,
        read_closed: ReadClosed::TrailerThenClose,
        consume: vec![Consume::TakePrefix(30)],
        ..Scenario::new(text(1000))
    });
    assert!(out.read_closed, "{out:?}");
}

/// A reset behind the records closes with an error, not as a clean or truncated end.
#[test]
fn reset_after_the_records_closes_with_an_error() {
    let out = run(&Scenario {
        chunks: vec![64],
        spins: vec![1],
        end: PeerEnd::Reset,
        reply: Reply::Echo,
        ..Scenario::new(text(512))
    });
    assert!(out.reason.starts_with("error"), "{out:?}");
}

/// Megabytes of replies wait in the reactor (as ciphertext) for a slow peer; `close_notify`, FIN
/// and the close wait behind them.
#[test]
fn bulk_replies_wait_for_the_socket_and_all_arrive_before_the_end() {
    let out = run(&Scenario {
        chunks: vec![100],
        spins: vec![1],
        reply: Reply::Bulk,
        ..Scenario::new(text(400))
    });
    assert!(out.drained > 0, "output never had to wait: {out:?}");
}

/// `max_input` bounds the plaintext a handler leaves unconsumed, over TLS as over TCP.
#[test]
fn unconsumed_plaintext_over_max_input_resets_with_input_limit() {
    let out = run(&Scenario {
        chunks: vec![500],
        spins: vec![1],
        consume: vec![Consume::Nothing],
        max_input: Some(1024),
        ..Scenario::new(text(3000))
    });
    assert_eq!(out.reason, "input limit exceeded");
}

/// After the handler's `shutdown_write` (its `close_notify`), the peer's records are still read
/// to the end.
#[test]
fn shutdown_write_mid_stream_keeps_reading_to_the_end() {
    run(&Scenario {
        chunks: vec![10],
        spins: vec![1],
        reply: Reply::Tagged,
        local: Some(Local {
            at_call: 1,
            action: LocalAction::ShutdownWrite,
        }),
        ..Scenario::new(text(300))
    });
}

/// A close mid-stream still sends the replies queued before it, then `close_notify`.
#[test]
fn close_mid_stream_sends_the_replies_queued_before_it() {
    run(&Scenario {
        chunks: vec![10],
        spins: vec![1],
        reply: Reply::Tagged,
        greeting: true,
        local: Some(Local {
            at_call: 2,
            action: LocalAction::Close,
        }),
        ..Scenario::new(text(200))
    });
}
