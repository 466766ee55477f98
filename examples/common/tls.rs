//! TLS for the examples: the `--tls`, `--cert`, `--key`, `--cacert` and `--server-name` options, a
//! throwaway certificate authority for a server given no certificate, and the rustls
//! configurations.
//!
//! The TLS code needs the cargo feature `tls`. Without it the options still parse, and `--tls`
//! fails with a message that says how to build with it, so every example builds, and runs
//! without TLS, either way; an example calls [`server`] or [`client`] and never names a cfg.
//!
//! Included by the examples that speak TLS with `#[path = "../common/tls.rs"] mod tls;` (beside
//! `common/mod.rs`, which every example includes, so that the others do not compile it).

// Each example uses its side: a server never calls `client`, a client never `server`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

#[cfg(feature = "tls")]
use std::sync::Arc;

#[cfg(feature = "tls")]
use sockloop::rustls::{
    self,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName},
    ClientConfig, RootCertStore, ServerConfig,
};
use sockloop::{ConnectOptions, ListenOptions};

/// The names the throwaway certificate is made for.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A server example's TLS options (`#[command(flatten)]` them into its arguments).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(next_help_heading = "TLS (build with --features tls)")]
pub struct ServerArgs {
    /// Serve TLS 1.3 and 1.2. Without --cert and --key, a throwaway CA and a certificate for
    /// localhost, 127.0.0.1 and ::1 are made at startup, and the CA's certificate is written to a
    /// file whose path is printed (clients verify the server with it).
    #[arg(long)]
    pub tls: bool,
    /// The server's certificate chain, PEM, leaf first (with --tls and --key).
    #[arg(long, value_name = "FILE", requires = "tls", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The server's private key, PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    #[arg(long, value_name = "FILE", requires = "tls", requires = "cert")]
    pub key: Option<PathBuf>,
}

/// A client example's TLS options (`#[command(flatten)]` them into its arguments).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(next_help_heading = "TLS (build with --features tls)")]
pub struct ClientArgs {
    /// Speak TLS, verifying the server's certificate against the CA of --cacert (there is no
    /// way to skip the verification).
    #[arg(long)]
    pub tls: bool,
    /// The CA certificate(s), PEM, that the server's certificate must chain to, as curl's
    /// --cacert [default: the file `echo_server --tls` writes,
    /// target/sockloop-echo_server-ca.pem].
    #[arg(long, alias = "ca", value_name = "FILE", requires = "tls")]
    pub cacert: Option<PathBuf>,
    /// The name the server's certificate must carry, also sent as SNI (a DNS name or an IP
    /// address) [default: localhost].
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub server_name: Option<String>,
}

/// The error for `--tls` in a build without TLS.
fn needs_feature(example: &str) -> String {
    format!(
        "--tls needs TLS, which this build of {example} left out: build it with the `tls` \
         feature, e.g. cargo run --release --features tls --example {example} -- --tls"
    )
}

/// Where a server example writes the certificate of the CA it made: beside the build, in the
/// target directory (`target/sockloop-<example>-ca.pem`), so that the client examples find it
/// whichever profile built them; in the system's temporary directory for a binary that was moved
/// out of `target/<profile>/examples/`.
pub fn ca_file(example: &str) -> PathBuf {
    let name = format!("sockloop-{example}-ca.pem");
    let target = std::env::current_exe().ok().and_then(|exe| {
        let examples = exe.parent()?;
        if examples.file_name()? != "examples" {
            return None;
        }
        Some(examples.parent()?.parent()?.to_path_buf())
    });
    target.unwrap_or_else(std::env::temp_dir).join(name)
}

/// A path as the user should type it: absolute, without `..`.
pub fn shown(path: &Path) -> String {
    path.canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// A server's TLS: the configuration to listen with, and where the throwaway CA went.
pub struct ServerTls {
    #[cfg(feature = "tls")]
    config: Arc<ServerConfig>,
    /// The CA certificate file written at startup (`None` with `--cert`).
    pub ca_file: Option<PathBuf>,
    /// The certificates a client of this server can trust: the throwaway CA, or the last
    /// certificate of `--cert`'s chain (the ws_chat demo peer connects with these).
    #[cfg(feature = "tls")]
    pub roots: RootCertStore,
}

/// A client's TLS: the configuration to connect with and the name to verify.
pub struct ClientTls {
    #[cfg(feature = "tls")]
    pub config: Arc<ClientConfig>,
    #[cfg(feature = "tls")]
    pub server_name: ServerName<'static>,
    /// The CA file the server is verified with.
    pub ca_file: PathBuf,
}

/// The TLS a server example asked for: `None` without `--tls`. With `--cert` and `--key` it
/// serves those; otherwise it makes a throwaway CA and a certificate for [`LOCAL_NAMES`], and
/// writes the CA's certificate to [`ca_file`]`(example)`. `alpn` lists the protocols it speaks,
/// in order of preference (`b"http/1.1"`); empty for none.
///
/// # Errors
///
/// A message for the user: `--tls` in a build without the `tls` feature, an unreadable or
/// invalid PEM file, a key that does not fit the certificate, a CA file that cannot be written.
pub fn server(
    args: &ServerArgs,
    example: &str,
    alpn: &[&[u8]],
) -> Result<Option<ServerTls>, String> {
    if !args.tls {
        return Ok(None);
    }
    #[cfg(feature = "tls")]
    return imp::server(args, example, alpn).map(Some);
    #[cfg(not(feature = "tls"))]
    return {
        let _ = alpn;
        Err(needs_feature(example))
    };
}

/// The TLS a client example asked for: `None` without `--tls`; otherwise a configuration that
/// trusts the CA of `--cacert` (by default the file `echo_server --tls` writes) and verifies the
/// name of `--server-name` (by default `localhost`).
///
/// # Errors
///
/// A message for the user: `--tls` in a build without the `tls` feature, a missing or invalid
/// CA file, an invalid server name.
pub fn client(
    args: &ClientArgs,
    example: &str,
    alpn: &[&[u8]],
) -> Result<Option<ClientTls>, String> {
    if !args.tls {
        return Ok(None);
    }
    #[cfg(feature = "tls")]
    return {
        let _ = example; // only named in the error of a build without TLS
        imp::client(args, alpn).map(Some)
    };
    #[cfg(not(feature = "tls"))]
    return {
        let _ = alpn;
        Err(needs_feature(example))
    };
}

impl ServerTls {
    /// `options`, serving this TLS.
    pub fn listen_options(&self, options: ListenOptions) -> ListenOptions {
        #[cfg(feature = "tls")]
        return options.tls(Arc::clone(&self.config));
        #[cfg(not(feature = "tls"))]
        return options;
    }

    /// Says on stdout how the server is secured and, for a throwaway CA, where its certificate
    /// is and how to use it (`try_with` is a command with `{ca}` where the file goes).
    pub fn announce(&self, try_with: &str) {
        match &self.ca_file {
            Some(file) => {
                let file = shown(file);
                println!(
                    "TLS: certificate for localhost, 127.0.0.1 and ::1, signed by a throwaway \
                     CA made at startup; its certificate is in {file}"
                );
                println!("try: {}", try_with.replace("{ca}", &file));
            }
            None => println!("TLS: serving the certificate given with --cert"),
        }
    }
}

/// The files of a throwaway PKI: the CA's certificate, and the server's certificate and key.
pub struct PkiFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a throwaway CA and a certificate for [`LOCAL_NAMES`], and writes them as PEM into
/// `dir` (`ca.pem`, `cert.pem`, `key.pem`, the key readable by its owner only): for an example
/// that starts its own server in another process (c10k) and hands it the files.
///
/// # Errors
///
/// A message for the user: a build without the `tls` feature, a file that cannot be written.
pub fn write_throwaway_pki(dir: &Path, example: &str) -> Result<PkiFiles, String> {
    #[cfg(feature = "tls")]
    return {
        let _ = example;
        let pki = Pki::new(&LOCAL_NAMES)?;
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        write_file(&files.ca, &pki.ca_pem, false)?;
        write_file(&files.cert, &pki.cert_pem, false)?;
        write_file(&files.key, &pki.key_pem, true)?;
        Ok(files)
    };
    #[cfg(not(feature = "tls"))]
    return {
        let _ = dir;
        Err(needs_feature(example))
    };
}

impl ClientTls {
    /// This TLS without session resumption: every connection makes a full handshake (for
    /// load that is meant to measure handshakes).
    pub fn without_resumption(self) -> ClientTls {
        #[cfg(feature = "tls")]
        return {
            let mut config = (*self.config).clone();
            config.resumption = rustls::client::Resumption::disabled();
            ClientTls {
                config: Arc::new(config),
                ..self
            }
        };
        #[cfg(not(feature = "tls"))]
        return self;
    }

    /// `options`, speaking this TLS.
    pub fn connect_options(&self, options: ConnectOptions) -> ConnectOptions {
        #[cfg(feature = "tls")]
        return options.tls(Arc::clone(&self.config), self.server_name.clone());
        #[cfg(not(feature = "tls"))]
        return options;
    }
}

/// A throwaway CA and a server certificate it signed, made with rcgen.
#[cfg(feature = "tls")]
pub struct Pki {
    /// The CA's certificate, PEM (what a client trusts).
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    /// The server's chain (leaf only) and key, PEM and DER.
    pub cert_pem: String,
    pub key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

#[cfg(feature = "tls")]
impl Pki {
    /// A fresh CA and a certificate for `names` (DNS names or IP addresses) signed by it: ECDSA
    /// P-256 keys, valid from 1975 to 4096 (rcgen's defaults), so they never expire mid-demo.
    pub fn new(names: &[&str]) -> Result<Pki, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let fail = |e: rcgen::Error| format!("cannot make a certificate: {e}");
        let ca_key = KeyPair::generate().map_err(fail)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(DnType::CommonName, "sockloop examples throwaway CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;

        let key = KeyPair::generate().map_err(fail)?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut leaf = CertificateParams::new(names.clone()).map_err(fail)?;
        leaf.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(fail)?;
        Ok(Pki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
        })
    }

    /// The server's certificate chain and key.
    pub fn identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(self.key_der.clone());
        (self.chain.clone(), PrivateKeyDer::Pkcs8(key))
    }

    /// A root store that trusts this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("rcgen's CA certificate parses");
        roots
    }
}

/// Writes `text` to `path`, readable by its owner only where permissions exist (`key` files).
pub fn write_file(path: &Path, text: &str, private: bool) -> Result<(), String> {
    use std::io::Write;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    open.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A server configuration for `chain` and `key`, speaking `alpn`.
#[cfg(feature = "tls")]
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, String> {
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration that trusts `roots`, speaking `alpn`, with session resumption as
/// rustls does it by default (`resume`) or without, so that every connection makes a full
/// handshake.
#[cfg(feature = "tls")]
pub fn client_config(roots: RootCertStore, alpn: &[&[u8]], resume: bool) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

/// The certificates of a PEM file (leaf first, for a chain).
#[cfg(feature = "tls")]
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let fail = |e| format!("cannot read certificates from {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(fail)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in this file", path.display()));
    }
    Ok(certs)
}

/// A root store with every certificate of the PEM file `path`.
#[cfg(feature = "tls")]
pub fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

#[cfg(feature = "tls")]
mod imp {
    use super::*;

    pub(super) fn server(
        args: &ServerArgs,
        example: &str,
        alpn: &[&[u8]],
    ) -> Result<ServerTls, String> {
        if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
            // What a client would be given to trust: the chain's last certificate, its CA's
            // (or the certificate itself, if it is self-signed).
            let mut roots = RootCertStore::empty();
            let _ = roots.add(chain[chain.len() - 1].clone());
            return Ok(ServerTls {
                config: server_config(chain, key, alpn)?,
                ca_file: None,
                roots,
            });
        }
        let pki = Pki::new(&LOCAL_NAMES)?;
        let file = ca_file(example);
        write_file(&file, &pki.ca_pem, false)?;
        let (chain, key) = pki.identity();
        Ok(ServerTls {
            config: server_config(chain, key, alpn)?,
            ca_file: Some(file),
            roots: pki.roots(),
        })
    }

    pub(super) fn client(args: &ClientArgs, alpn: &[&[u8]]) -> Result<ClientTls, String> {
        let file = args
            .cacert
            .clone()
            .unwrap_or_else(|| ca_file("echo_server"));
        let roots = read_roots(&file).map_err(|e| match args.cacert {
            Some(_) => e,
            None => format!(
                "{e}\n(without --cacert the CA is the one `echo_server --tls` wrote: start it first, \
                 or give --cacert FILE)"
            ),
        })?;
        let name = args.server_name.as_deref().unwrap_or("localhost");
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("invalid --server-name {name:?}: {e}"))?;
        Ok(ClientTls {
            config: client_config(roots, alpn, true),
            server_name,
            ca_file: file,
        })
    }
}
