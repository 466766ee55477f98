//! The examples' TLS options (`examples/common/tls.rs`): the PEM files of a throwaway PKI serve
//! through `--cert`/`--key` and verify through `--cacert` for every name the certificate is made
//! for (localhost, 127.0.0.1, ::1), ALPN settles on what the server offers, and a name the
//! certificate does not carry is refused before a byte of plaintext passes.

#![cfg(feature = "tls")]

#[path = "../examples/common/tls.rs"]
mod tls;
mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;

use sockloop::rustls::{ClientConnection, StreamOwned};
use sockloop::ListenOptions;
use util::{Echo, TempDir};

/// An echo server serving the certificate and key of `files` as `--tls --cert --key` would,
/// offering `alpn`.
fn serve(files: &tls::PkiFiles, alpn: &[&[u8]]) -> (SocketAddr, util::ReactorThread) {
    let args = tls::ServerArgs {
        tls: true,
        cert: Some(files.cert.clone()),
        key: Some(files.key.clone()),
    };
    let server = tls::server(&args, "example_tls", alpn)
        .expect("the PEM files make a server")
        .expect("--tls was given");
    assert!(
        server.ca_file.is_none(),
        "no CA is made when --cert is given"
    );
    util::serve_with(server.listen_options(ListenOptions::new()), || Echo)
}

/// A client as `--tls --cacert CA --server-name NAME` makes it, connected to `addr`.
fn connect(
    files: &tls::PkiFiles,
    name: &str,
    alpn: &[&[u8]],
    addr: SocketAddr,
) -> StreamOwned<ClientConnection, std::net::TcpStream> {
    let args = tls::ClientArgs {
        tls: true,
        cacert: Some(files.ca.clone()),
        server_name: Some(name.to_string()),
    };
    let client = tls::client(&args, "example_tls", alpn)
        .expect("the CA file makes a client")
        .expect("--tls was given");
    let conn = ClientConnection::new(client.config, client.server_name).expect("a client");
    StreamOwned::new(conn, util::client(addr))
}

#[test]
fn throwaway_pki_files_serve_and_verify_for_every_name() {
    let dir = TempDir::new("example-tls");
    let files = tls::write_throwaway_pki(dir.path(), "example_tls").expect("the PKI files");
    let (addr, server) = serve(&files, &[b"http/1.1"]);
    for name in tls::LOCAL_NAMES {
        let mut stream = connect(&files, name, &[b"h2", b"http/1.1"], addr);
        let message = format!("hello {name}");
        stream.write_all(message.as_bytes()).expect("write");
        let mut echo = vec![0; message.len()];
        stream.read_exact(&mut echo).expect("read the echo");
        assert_eq!(echo, message.as_bytes(), "echo for {name}");
        assert_eq!(
            stream.conn.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "ALPN settles on the one protocol the server offers ({name})"
        );
    }
    server.stop();
}

#[test]
fn a_name_the_certificate_does_not_carry_is_refused() {
    let dir = TempDir::new("example-tls");
    let files = tls::write_throwaway_pki(dir.path(), "example_tls").expect("the PKI files");
    let (addr, server) = serve(&files, &[]);
    let mut stream = connect(&files, "example.test", &[], addr);
    let result = stream.write_all(b"secret").and_then(|()| {
        let mut byte = [0];
        stream.read(&mut byte)
    });
    let error = result.expect_err("the handshake fails");
    assert!(
        error.to_string().contains("not valid for name"),
        "refused for its name: {error}"
    );
    server.stop();
}

#[test]
fn a_key_that_does_not_fit_the_certificate_is_reported() {
    let dir = TempDir::new("example-tls");
    let one = tls::write_throwaway_pki(&subdir(&dir, "one"), "example_tls").unwrap();
    let two = tls::write_throwaway_pki(&subdir(&dir, "two"), "example_tls").unwrap();
    let args = tls::ServerArgs {
        tls: true,
        cert: Some(one.cert),
        key: Some(two.key),
    };
    let error = tls::server(&args, "example_tls", &[])
        .err()
        .expect("a mismatched key is refused");
    assert!(error.contains("do not make a TLS identity"), "{error}");
}

/// A new directory `name` in `dir`.
fn subdir(dir: &TempDir, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("mkdir");
    path
}
