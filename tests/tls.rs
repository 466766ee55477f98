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

use sockloop::rustls::{ClientConnection, StreamOwned};
use sockloop::{CloseReason, Context, Handler, Input, ListenOptions};
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
