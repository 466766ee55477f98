//! The TLS configurations of the TLS bench: one server configuration for both servers, and the
//! client's.
//!
//! Both sides use rustls 0.23 with the ring provider (the one `sockloop::rustls` is built with;
//! tokio-rustls is built on the same crate), speak TLS 1.3 only, and resume no session: the
//! server keeps no session cache and sends no tickets, and the client stores none. So every
//! handshake is a full one: an X25519 key exchange and an ECDSA P-256 signature on the server.
//!
//! The certificate is self-signed and made once per run by the bench (rcgen), then handed to
//! the server children in their environment ([`CERT_ENV`], [`KEY_ENV`], as hex DER), so that
//! every server of a run signs with the same key.

use std::sync::Arc;

use sockloop::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use sockloop::rustls::client::Resumption;
use sockloop::rustls::crypto::{ring, CryptoProvider};
use sockloop::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sockloop::rustls::server::NoServerSessionStorage;
use sockloop::rustls::{
    version, ClientConfig, DigitallySignedStruct, Error, ServerConfig, SignatureScheme,
};

/// The server certificate (DER, hex) in a server child's environment.
pub const CERT_ENV: &str = "SOCKLOOP_TLS_BENCH_CERT";
/// The server's private key (PKCS#8 DER, hex) in a server child's environment.
pub const KEY_ENV: &str = "SOCKLOOP_TLS_BENCH_KEY";

/// The name the certificate carries, which the client sends as SNI.
pub const SERVER_NAME: &str = "localhost";

/// A fresh self-signed ECDSA P-256 certificate for [`SERVER_NAME`], put into this process's
/// environment for the server children it starts.
pub fn make_identity() -> Result<(), String> {
    let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
        .map_err(|e| format!("cannot make a certificate: {e}"))?;
    std::env::set_var(CERT_ENV, hex(certified.cert.der()));
    std::env::set_var(KEY_ENV, hex(&certified.key_pair.serialize_der()));
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The server configuration both servers use, from the certificate in the environment.
pub fn server_config() -> Result<Arc<ServerConfig>, String> {
    let from_env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| unhex(&v))
            .ok_or_else(|| format!("no {name} in the environment (the bench sets it)"))
    };
    let cert = CertificateDer::from(from_env(CERT_ENV)?);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(from_env(KEY_ENV)?));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| e.to_string())?;
    // No resumption: no session cache (TLS 1.2's session ids, TLS 1.3's stateful tickets) and
    // no TLS 1.3 tickets sent after the handshake (the default ticketer makes none either).
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client's configuration: TLS 1.3, no resumption, and no certificate verification.
///
/// Not verifying the server's certificate (its chain, and its signature over the handshake)
/// changes nothing the server does; it only takes two ECDSA verifications off the client's
/// CPU, which is the bench's bottleneck.
pub fn client_config() -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnything(provider)))
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The name the client connects to.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("a valid DNS name")
}

/// A certificate verifier that accepts any certificate and any handshake signature.
#[derive(Debug)]
struct TrustAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: sockloop::rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
