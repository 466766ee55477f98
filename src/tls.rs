//! What a handler can learn about its connection's TLS session (feature `tls`).

use rustls::pki_types::CertificateDer;
use rustls::{Connection, ProtocolVersion, SupportedCipherSuite};

use crate::context::Context;

/// The TLS session of a connection, as [`Context::tls`] shows it: what the handshake
/// negotiated and who the peer is.
///
/// # Examples
///
/// ```
/// use sockloop::{Context, Handler, Input};
///
/// /// Answers with the ALPN protocol and SNI name the client asked for.
/// struct Whoami;
/// impl Handler for Whoami {
///     fn on_open(&mut self, cx: &mut Context<'_>) {
///         let line = match cx.tls() {
///             Some(tls) => format!(
///                 "{:?} {:?} alpn={:?} sni={:?}\n",
///                 tls.protocol_version(),
///                 tls.cipher_suite().map(|s| s.suite()),
///                 tls.alpn_protocol().map(String::from_utf8_lossy),
///                 tls.server_name(),
///             ),
///             None => "plaintext\n".to_string(),
///         };
///         cx.write(line.as_bytes());
///     }
///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
///         input.consume(input.len());
///     }
/// }
/// ```
#[derive(Debug)]
pub struct TlsInfo<'a> {
    conn: &'a Connection,
}

impl<'a> TlsInfo<'a> {
    /// The negotiated protocol version (TLS 1.2 or 1.3).
    ///
    /// # Examples
    ///
    /// See [`TlsInfo`].
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The negotiated cipher suite.
    ///
    /// # Examples
    ///
    /// See [`TlsInfo`].
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.conn.negotiated_cipher_suite()
    }

    /// The ALPN protocol both sides agreed on, if any (`b"http/1.1"`, `b"h2"`, ...).
    ///
    /// # Examples
    ///
    /// See [`TlsInfo`].
    pub fn alpn_protocol(&self) -> Option<&'a [u8]> {
        self.conn.alpn_protocol()
    }

    /// On a server, the name the client asked for (SNI), if it sent one; on a client, `None`.
    ///
    /// # Examples
    ///
    /// See [`TlsInfo`].
    pub fn server_name(&self) -> Option<&'a str> {
        match self.conn {
            Connection::Server(server) => server.server_name(),
            Connection::Client(_) => None,
        }
    }

    /// The peer's certificate chain, leaf first, if it presented one (a server always does; a
    /// client when the server's configuration asks for client certificates).
    ///
    /// # Examples
    ///
    /// See [`TlsInfo`].
    pub fn peer_certificates(&self) -> Option<&'a [CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The rustls connection itself, for anything else (keying material exporters, ...).
    ///
    /// # Examples
    ///
    /// See [`TlsInfo`].
    pub fn connection(&self) -> &'a Connection {
        self.conn
    }
}

impl Context<'_> {
    /// This connection's TLS session, or `None` for a plain connection. Available from
    /// `on_open` on (TLS connections are opened once their handshake is done).
    ///
    /// # Examples
    ///
    /// See [`TlsInfo`].
    pub fn tls(&self) -> Option<TlsInfo<'_>> {
        let session = self.core.slots.conn(self.id)?.tls()?;
        Some(TlsInfo {
            conn: session.connection(),
        })
    }
}
