//! TLS material for the tests: a self-signed CA and certificates it signs, made fresh by rcgen,
//! and rustls configurations that trust them.

#![allow(dead_code)]

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedKey, IsCa, KeyPair};
use sockloop::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sockloop::rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A CA and a server certificate for `localhost` (and 127.0.0.1) that it signed.
pub struct Pki {
    pub ca_cert: CertificateDer<'static>,
    pub ca_pem: String,
    ca: CertifiedKey,
    pub server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sockloop test CA");
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca = CertifiedKey {
            cert: ca_cert,
            key_pair: ca_key,
        };
        let (server_chain, server_key) = Self::issue(&ca, &["localhost", "127.0.0.1"]);
        Pki {
            ca_cert: ca.cert.der().clone(),
            ca_pem: ca.cert.pem(),
            ca,
            server_chain,
            server_key,
        }
    }

    /// A certificate for `names` signed by `ca`: (chain, PKCS#8 key).
    fn issue(ca: &CertifiedKey, names: &[&str]) -> (Vec<CertificateDer<'static>>, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &ca.cert, &ca.key_pair).unwrap();
        (vec![cert.der().clone()], key.serialize_der())
    }

    /// A client certificate signed by this CA: (chain, key).
    pub fn client_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let (chain, key) = Self::issue(&self.ca, &["client"]);
        (chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
    }

    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()))
    }

    /// A server configuration with this PKI's certificate and the given ALPN protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), self.server_key())
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_cert.clone()).unwrap();
        roots
    }

    /// A client configuration that trusts this PKI's CA.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder()
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

pub fn localhost_name() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}
