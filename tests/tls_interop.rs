//! sockloop's TLS against implementations it shares no code with, over real sockets: OpenSSL's
//! `s_client` and `s_server`, Python's `ssl` module and curl. The handshake (TLS 1.2 and 1.3),
//! ALPN, SNI and certificate verification agree both ways; client certificates are verified
//! and required; bytes come through intact; a `close_notify` is heard as a clean close; a small
//! HTTP/1.1 handler keeps one connection alive for curl and answers pipelined requests in order.
//!
//! The servers and clients run as child processes, killed on drop. A test whose tool is not
//! installed says so and passes, unless `SOCKLOOP_REQUIRE_TOOLS` is set (CI sets it): then it
//! fails.

#![cfg(feature = "tls")]

#[path = "util/tls.rs"]
mod tls_util;
#[path = "util/mod.rs"]
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sockloop::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sockloop::rustls::server::WebPkiClientVerifier;
use sockloop::rustls::{
    self, ClientConfig, ClientConnection, ProtocolVersion, ServerConfig, StreamOwned,
};
use sockloop::{CloseReason, ConnId, ConnectOptions, Context, Handler, Input, ListenOptions};
use tls_util::{localhost_name, Pki};

// ---------------------------------------------------------------------------------------------
// Tools, certificate files and child processes
// ---------------------------------------------------------------------------------------------

/// Whether `tool` can be run (it is run with `args`, which should just print a version). A
/// missing tool skips the test, or fails it when `SOCKLOOP_REQUIRE_TOOLS` is set.
fn have(tool: &str, args: &[&str]) -> bool {
    let ran = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match ran {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let required =
                std::env::var_os("SOCKLOOP_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty());
            assert!(
                !required,
                "{tool} is not installed, and SOCKLOOP_REQUIRE_TOOLS is set"
            );
            let test = thread::current().name().unwrap_or("a test").to_string();
            eprintln!(
                "skipped {test}: {tool} is not installed (set SOCKLOOP_REQUIRE_TOOLS=1 to fail \
                 instead)"
            );
            false
        }
        Err(e) => panic!("running {tool}: {e}"),
    }
}

/// Returns from the test when `tool` is missing (see [`have`]).
macro_rules! require {
    ($tool:literal, $($arg:literal),*) => {
        if !have($tool, &[$($arg),*]) {
            return;
        }
    };
}

/// PEM armour for DER bytes (the certificates and keys for the command-line tools).
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut base64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for group in der.chunks(3) {
        let bits = group
            .iter()
            .enumerate()
            .fold(0u32, |bits, (i, &b)| bits | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            base64.push(match i <= group.len() {
                true => ALPHABET[(bits >> (18 - 6 * i) & 63) as usize],
                false => b'=',
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in base64.chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A test's PKI as PEM files in a temporary directory: the CA, the server's certificate and
/// key, and a client identity signed by the same CA.
struct PemFiles {
    dir: util::TempDir,
    client_chain: Vec<CertificateDer<'static>>,
}

impl PemFiles {
    fn new(pki: &Pki) -> PemFiles {
        let dir = util::TempDir::new("tls-interop");
        let (client_chain, client_key) = pki.client_identity();
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
        };
        write("ca.pem", pki.ca_pem.clone());
        write("server.pem", pem("CERTIFICATE", &pki.server_chain[0]));
        write(
            "server.key",
            pem("PRIVATE KEY", pki.server_key().secret_der()),
        );
        write("client.pem", pem("CERTIFICATE", &client_chain[0]));
        write("client.key", pem("PRIVATE KEY", client_key.secret_der()));
        PemFiles { dir, client_chain }
    }

    fn path(&self, name: &str) -> String {
        let path: PathBuf = self.dir.join(name);
        path.to_str().expect("a UTF-8 temp path").to_string()
    }
}

/// A child process whose output threads collect; killed (and reaped) on drop.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Proc {
    fn spawn(command: &mut Command) -> Proc {
        let name = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let collect = |pipe: Option<Box<dyn Read + Send>>| {
            let sink = Arc::new(Mutex::new(Vec::new()));
            let mut pipe = pipe.expect("a piped stream");
            let filled = Arc::clone(&sink);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // Ends at EOF: the child exited or was killed.
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    filled.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
            sink
        };
        let stdout = collect(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = collect(child.stderr.take().map(|p| Box::new(p) as _));
        Proc {
            name,
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Everything the process said, for failure messages.
    fn transcript(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.stdout(),
            self.stderr()
        )
    }

    fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("write to the child's stdin");
        stdin.flush().unwrap();
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until the standard output satisfies `done`; panics after [`util::TIMEOUT`] or if
    /// the process exits first.
    #[track_caller]
    fn wait_stdout(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + util::TIMEOUT;
        loop {
            if done(&self.stdout()) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // It may have written the last of it just before exiting: judge the complete
                // output, once the collecting threads have seen EOF.
                self.wait_collected();
                if done(&self.stdout()) {
                    return;
                }
                panic!("exited ({status}) before {what}: {}", self.transcript());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {:?}: {}",
                util::TIMEOUT,
                self.transcript()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to exit; panics after [`util::TIMEOUT`]. Its output is complete
    /// once this returns (the collecting threads have seen EOF). Its input stays open: s_client
    /// quits at the end of its input, which must not race with what it should read first.
    #[track_caller]
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + util::TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {:?}: {}",
                util::TIMEOUT,
                self.transcript()
            );
            thread::sleep(Duration::from_millis(5));
        };
        self.wait_collected();
        status
    }

    /// Waits for the output threads of an exited child to finish: they do once they read EOF,
    /// and they have when no one else holds their buffers.
    #[track_caller]
    fn wait_collected(&self) {
        util::wait_until("the child's output to be collected", || {
            Arc::strong_count(&self.stdout) == 1 && Arc::strong_count(&self.stderr) == 1
        });
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_client` to `addr`, verifying the server as `localhost` against the test CA and
/// giving up on a verification error; `extra` adds options.
fn s_client(addr: SocketAddr, files: &PemFiles, extra: &[&str]) -> Proc {
    let ca = files.path("ca.pem");
    Proc::spawn(
        Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args(["-servername", "localhost", "-verify_hostname", "localhost"])
            .args(["-CAfile", &ca, "-verify_return_error"])
            // Lines that start with Q, R or k are bytes to send, not commands.
            .arg("-nocommands")
            .args(extra),
    )
}

// ---------------------------------------------------------------------------------------------
// The sockloop server these clients talk to
// ---------------------------------------------------------------------------------------------

/// What a server connection negotiated, from `Context::tls()` in `on_open`.
#[derive(Clone, Debug, PartialEq)]
struct Negotiated {
    version: Option<ProtocolVersion>,
    alpn: Option<String>,
    sni: Option<String>,
    /// The peer's leaf certificate, if it presented one.
    peer_cert: Option<Vec<u8>>,
}

impl Negotiated {
    fn of(cx: &Context<'_>) -> Negotiated {
        let tls = cx.tls().expect("a TLS connection");
        Negotiated {
            version: tls.protocol_version(),
            alpn: tls
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            sni: tls.server_name().map(str::to_string),
            peer_cert: tls
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.to_vec()),
        }
    }
}

/// How a connection ended, as far as these tests tell endings apart.
#[derive(Debug, PartialEq)]
enum Ended {
    PeerClosed,
    Local,
    Truncated,
    Tls(rustls::Error),
    Other(String),
}

impl From<CloseReason> for Ended {
    fn from(reason: CloseReason) -> Ended {
        match reason {
            CloseReason::PeerClosed => Ended::PeerClosed,
            CloseReason::Local => Ended::Local,
            CloseReason::Truncated => Ended::Truncated,
            CloseReason::Tls(e) => Ended::Tls(e),
            other => Ended::Other(format!("{other:?}")),
        }
    }
}

/// One server callback, as reported to the test.
#[derive(Debug, PartialEq)]
enum Seen {
    Open(ConnId, Negotiated),
    ReadClosed(ConnId),
    Closed(ConnId, Ended),
}

/// Echoes, and reports its connection's session, the peer's end of the stream and the close.
struct ReportingEcho {
    tx: Sender<Seen>,
}

impl Handler for ReportingEcho {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = self.tx.send(Seen::Open(cx.id(), Negotiated::of(cx)));
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }

    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        let _ = self.tx.send(Seen::ReadClosed(cx.id()));
        cx.close();
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let _ = self.tx.send(Seen::Closed(cx.id(), reason.into()));
    }
}

/// A TLS echo server with `config` on an ephemeral port of 127.0.0.1.
fn serve_echo(config: Arc<ServerConfig>) -> (SocketAddr, util::ReactorThread, Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let options = ListenOptions::new().tls(config);
    let (addr, server) = util::serve_with(options, move || ReportingEcho { tx: tx.clone() });
    (addr, server, rx)
}

#[track_caller]
fn next_seen(rx: &Receiver<Seen>, what: &str) -> Seen {
    util::recv(rx, what)
}

/// Asserts the server's whole story of one connection: opened with `want`, the peer's clean
/// end of stream, then a close for that reason.
#[track_caller]
fn assert_clean_session(rx: &Receiver<Seen>, want: &Negotiated) {
    let Seen::Open(id, got) = next_seen(rx, "on_open") else {
        panic!("the first event was not on_open");
    };
    assert_eq!(&got, want, "what the server negotiated");
    assert_eq!(next_seen(rx, "on_read_closed"), Seen::ReadClosed(id));
    assert_eq!(
        next_seen(rx, "on_close"),
        Seen::Closed(id, Ended::PeerClosed)
    );
}

// ---------------------------------------------------------------------------------------------
// openssl s_client
// ---------------------------------------------------------------------------------------------

/// `s_client` with `version_flag` handshakes with ALPN and SNI, verifies our certificate, and
/// gets its lines echoed; closing its input makes it send `close_notify`, which the server
/// hears as a clean end.
fn s_client_echo(version_flag: &str, version: ProtocolVersion, version_name: &str) {
    let pki = Pki::new();
    let files = PemFiles::new(&pki);
    let (addr, _server, rx) = serve_echo(pki.server_config(&[b"echo/1"]));
    let mut client = s_client(addr, &files, &[version_flag, "-alpn", "echo/1"]);
    let lines = format!("first line through {version_name}\nand a second: {addr}\n");
    client.send(lines.as_bytes());
    client.wait_stdout("the echo", |out| out.contains(&lines));
    client.close_stdin();
    let status = client.wait_exit();
    let out = client.stdout();
    assert!(status.success(), "{}", client.transcript());
    for expected in [
        "Verification: OK",
        "Verified peername: localhost",
        "Verify return code: 0 (ok)",
        "ALPN protocol: echo/1",
        &format!("New, {version_name}, Cipher is"),
    ] {
        assert!(
            out.contains(expected),
            "no {expected:?}: {}",
            client.transcript()
        );
    }
    assert_clean_session(
        &rx,
        &Negotiated {
            version: Some(version),
            alpn: Some("echo/1".into()),
            sni: Some("localhost".into()),
            peer_cert: None,
        },
    );
}

#[test]
fn openssl_s_client_handshakes_tls12_with_alpn_and_sni_and_echoes() {
    require!("openssl", "version");
    s_client_echo("-tls1_2", ProtocolVersion::TLSv1_2, "TLSv1.2");
}

#[test]
fn openssl_s_client_handshakes_tls13_with_alpn_and_sni_and_echoes() {
    require!("openssl", "version");
    s_client_echo("-tls1_3", ProtocolVersion::TLSv1_3, "TLSv1.3");
}

/// The verification above is real: `s_client` trusting another CA refuses our certificate
/// (`-verify_return_error`), and the server hears its alert as a TLS error, never `on_open`.
#[test]
fn openssl_s_client_refuses_a_certificate_from_another_ca() {
    require!("openssl", "version");
    let pki = Pki::new();
    let stranger = PemFiles::new(&Pki::new());
    let (addr, _server, rx) = serve_echo(pki.server_config(&[b"echo/1"]));
    let mut client = s_client(addr, &stranger, &["-tls1_3"]);
    assert!(!client.wait_exit().success(), "{}", client.transcript());
    let said = format!("{}{}", client.stdout(), client.stderr());
    assert!(
        said.contains("verify error:num=") && !said.contains("Verification: OK"),
        "{}",
        client.transcript()
    );
    // Both CAs have the same name, so OpenSSL finds the stranger's and the signature fails.
    match next_seen(&rx, "on_close of the refusing client") {
        Seen::Closed(_, Ended::Tls(e)) => assert_eq!(
            e,
            rustls::Error::AlertReceived(rustls::AlertDescription::DecryptError)
        ),
        other => panic!("expected a close with a TLS error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Python's ssl module
// ---------------------------------------------------------------------------------------------

/// Verifies the server as `localhost` against the CA file, echoes 64 KiB (in `sendall`s of
/// `step` bytes, each echoed before the next is sent), then `unwrap()`s: sends `close_notify`
/// and waits for the server's. Prints what it negotiated.
const PYTHON_CLIENT: &str = r#"
import socket, ssl, sys
port, cafile, step = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=cafile)
# Strict X.509 checks (the default from Python 3.13 on) want extensions that rcgen's test
# certificates leave out (key usage, key identifiers); the chain and the name are still checked.
ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
ctx.set_alpn_protocols(["echo/1"])
data = bytes(i * 7 % 251 for i in range(65536))
with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    got = bytearray()
    for at in range(0, len(data), step):
        tls.sendall(data[at:at + step])
        while len(got) < min(at + step, len(data)):
            try:
                chunk = tls.recv(65536)
            except TimeoutError:
                sys.exit("timed out with %d of %d bytes echoed" % (len(got), len(data)))
            if not chunk:
                sys.exit("EOF after %d of %d echoed bytes" % (len(got), len(data)))
            got += chunk
    if got != data:
        sys.exit("the echo differs")
    version, alpn = tls.version(), tls.selected_alpn_protocol()
    tls.unwrap()
print("OK", version, alpn, len(got))
"#;

/// Runs [`PYTHON_CLIENT`] with `step` against a TLS echo server, and checks both sides' story.
fn python_echo(step: usize) {
    let pki = Pki::new();
    let files = PemFiles::new(&pki);
    let (addr, _server, rx) = serve_echo(pki.server_config(&[b"echo/1"]));
    let mut python = Proc::spawn(Command::new("python3").args([
        "-c",
        PYTHON_CLIENT,
        &addr.port().to_string(),
        &files.path("ca.pem"),
        &step.to_string(),
    ]));
    let status = python.wait_exit();
    assert!(status.success(), "{}", python.transcript());
    assert_eq!(
        python.stdout().trim(),
        "OK TLSv1.3 echo/1 65536",
        "{}",
        python.transcript()
    );
    assert_clean_session(
        &rx,
        &Negotiated {
            version: Some(ProtocolVersion::TLSv1_3),
            alpn: Some("echo/1".into()),
            sni: Some("localhost".into()),
            peer_cert: None,
        },
    );
}

/// Pieces of 4 KiB: each `sendall` is one TLS record, and each arrives on its own.
#[test]
fn python_ssl_client_verifies_echoes_and_closes_with_close_notify() {
    require!("python3", "--version");
    python_echo(4096);
}

/// 64 KiB in one `sendall`: four full records at once. A regression test: the server used to
/// stop reading a TLS connection after one record's plaintext (a short read, which in edge mode
/// meant "drained"), stranding the rest of the burst.
#[test]
fn python_ssl_client_echoes_64k_sent_in_one_burst() {
    require!("python3", "--version");
    python_echo(65536);
}

// ---------------------------------------------------------------------------------------------
// Client certificates
// ---------------------------------------------------------------------------------------------

/// A server configuration that requires a client certificate signed by `pki`'s CA.
fn client_auth_config(pki: &Pki) -> Arc<ServerConfig> {
    let verifier = WebPkiClientVerifier::builder(Arc::new(pki.roots()))
        .build()
        .expect("a client verifier");
    let mut config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server_chain.clone(), pki.server_key())
        .unwrap();
    config.alpn_protocols = vec![b"echo/1".to_vec()];
    Arc::new(config)
}

/// A blocking rustls client presenting `chain` and `key`, connected and handshaken.
fn rustls_client_with_identity(
    pki: &Pki,
    addr: SocketAddr,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> StreamOwned<ClientConnection, TcpStream> {
    let mut config = ClientConfig::builder()
        .with_root_certificates(pki.roots())
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"echo/1".to_vec()];
    let conn = ClientConnection::new(Arc::new(config), localhost_name()).unwrap();
    let mut stream = StreamOwned::new(conn, util::client(addr));
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("handshake with a client certificate");
    }
    stream
}

/// Writes `bytes` and reads their echo.
#[track_caller]
fn echo_once(stream: &mut impl ReadWrite, bytes: &[u8]) {
    stream.write_all(bytes).unwrap();
    stream.flush().unwrap();
    let mut got = vec![0; bytes.len()];
    stream.read_exact(&mut got).expect("the echo");
    assert_eq!(got, bytes);
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Waits for the server's `on_close` of a handshake that failed, which never opened.
#[track_caller]
fn rejected(rx: &Receiver<Seen>) -> rustls::Error {
    match next_seen(rx, "the rejected handshake's on_close") {
        Seen::Closed(_, Ended::Tls(e)) => e,
        other => panic!("expected a close with a TLS error, got {other:?}"),
    }
}

/// With a client verifier, `s_client` with a certificate signed by the CA is served and its
/// certificate reaches the handler; without one, over TLS 1.2 and 1.3, or with one from another
/// CA, the handshake fails (`CloseReason::Tls` on our side, an alert on s_client's), while a
/// client that was accepted before goes on being served.
#[test]
fn client_certificates_are_verified_and_required() {
    require!("openssl", "version");
    let pki = Pki::new();
    let files = PemFiles::new(&pki);
    let (addr, _server, rx) = serve_echo(client_auth_config(&pki));

    // A rustls client with its own certificate from the CA, open throughout.
    let (chain, key) = pki.client_identity();
    let leaf = chain[0].to_vec();
    let mut steady = rustls_client_with_identity(&pki, addr, chain, key);
    echo_once(&mut steady, b"before the rejections");
    match next_seen(&rx, "on_open of the steady client") {
        Seen::Open(_, session) => assert_eq!(session.peer_cert, Some(leaf)),
        other => panic!("expected on_open, got {other:?}"),
    }

    // Three clients the server must refuse, at once: no certificate over TLS 1.2, none over
    // TLS 1.3, and one from another CA. Their input stays open, so each quits on what the
    // server tells it.
    let stranger = PemFiles::new(&Pki::new());
    let (cert, key) = (stranger.path("client.pem"), stranger.path("client.key"));
    let mut bare12 = s_client(addr, &files, &["-tls1_2", "-brief"]);
    let mut bare13 = s_client(addr, &files, &["-tls1_3", "-brief"]);
    let mut foreign = s_client(addr, &files, &["-brief", "-cert", &cert, "-key", &key]);
    for refused in [&mut bare12, &mut bare13, &mut foreign] {
        let status = refused.wait_exit();
        assert!(!status.success(), "{}", refused.transcript());
    }
    // And a rustls client without a certificate: over TLS 1.3 its side of the handshake
    // completes, and the server's refusal is the alert its first read meets.
    let conn = ClientConnection::new(pki.client_config(&[b"echo/1"]), localhost_name()).unwrap();
    let mut bare_rustls = StreamOwned::new(conn, util::client(addr));
    bare_rustls.write_all(b"never echoed").unwrap();
    bare_rustls.flush().unwrap();
    let mut sink = Vec::new();
    let refusal = bare_rustls
        .read_to_end(&mut sink)
        .expect_err("the server's alert");
    assert!(sink.is_empty(), "{sink:?}");
    assert_eq!(
        refusal
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>()),
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired
        )),
        "{refusal}"
    );
    // Hanging up lets the server finish its close (it waits for our FIN after its alert).
    drop(bare_rustls);
    // TLS 1.2: the server refuses within the handshake, before its Finished, so s_client
    // (whose -brief reports a completed handshake as "CONNECTION ESTABLISHED") never
    // completes it.
    let said = bare12.stderr();
    assert!(
        said.contains("alert certificate required") && !said.contains("CONNECTION ESTABLISHED"),
        "{}",
        bare12.transcript()
    );
    // TLS 1.3: the client's side of the handshake is over before the server reads its
    // (empty) certificate, so the refusal is an alert on its first read.
    let said = bare13.stderr();
    let established = said.find("CONNECTION ESTABLISHED");
    let refused = said.find("alert certificate required");
    assert!(
        matches!((established, refused), (Some(e), Some(r)) if e < r),
        "{}",
        bare13.transcript()
    );
    // Both test CAs have the same name, so the chain is built and its signature fails.
    assert!(
        foreign.stderr().contains("alert decrypt error"),
        "{}",
        foreign.transcript()
    );

    // The steady client is served meanwhile, and still is.
    echo_once(&mut steady, b"after the rejections");

    // The server closed each refused connection with the TLS error, never opening it.
    let mut errors: Vec<String> = (0..4).map(|_| format!("{:?}", rejected(&rx))).collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            "InvalidCertificate(BadSignature)",
            "NoCertificatesPresented",
            "NoCertificatesPresented",
            "NoCertificatesPresented"
        ]
    );

    // s_client with the CA's client certificate is served, and the handler sees it.
    let (cert, key) = (files.path("client.pem"), files.path("client.key"));
    let mut good = s_client(addr, &files, &["-tls1_3", "-cert", &cert, "-key", &key]);
    good.send(b"with a certificate\n");
    good.wait_stdout("the echo", |out| out.contains("with a certificate\n"));
    good.close_stdin();
    assert!(good.wait_exit().success(), "{}", good.transcript());
    match next_seen(&rx, "on_open of s_client") {
        Seen::Open(_, session) => {
            assert_eq!(
                session.peer_cert.as_deref(),
                Some(&files.client_chain[0][..]),
                "the certificate the handler sees"
            );
            assert_eq!(session.version, Some(ProtocolVersion::TLSv1_3));
        }
        other => panic!("expected on_open, got {other:?}"),
    }
    drop(steady);
}

/// A refused client that hangs up is let go at once: the server reads the FIN behind the
/// failed handshake, rather than holding the connection until its linger check gives up on a
/// FIN (5 s without progress). A reactor timer one second short of that check tells the two
/// apart: `on_close` must come before it fires. A regression test: after a fatal TLS error the
/// connection used to read nothing more, so it never saw the FIN.
#[test]
fn a_refused_client_that_hangs_up_is_let_go_at_once() {
    require!("openssl", "version");
    let pki = Pki::new();
    let files = PemFiles::new(&pki);
    let config = client_auth_config(&pki);
    let (tx, rx) = mpsc::channel();
    let (addr, _server) = util::spawn_reactor(move |reactor| {
        let linger_check_near = util::flag_after(reactor, Duration::from_secs(4));
        let factory = move || Hurried {
            linger_check_near: std::rc::Rc::clone(&linger_check_near),
            tx: tx.clone(),
        };
        let options = ListenOptions::new().tls(config);
        reactor
            .listen_with(util::localhost(), options, factory)
            .unwrap()
            .1
    });
    let mut refused = s_client(addr, &files, &["-tls1_2", "-brief"]);
    assert!(!refused.wait_exit().success(), "{}", refused.transcript());
    let (reason, late) = util::recv(&rx, "on_close of the refused connection");
    assert_eq!(reason, Ended::Tls(rustls::Error::NoCertificatesPresented));
    assert!(
        !late,
        "the refused connection was held until the linger check"
    );
}

/// Reports its close and whether the loop timer `linger_check_near` had fired by then.
struct Hurried {
    linger_check_near: std::rc::Rc<std::cell::Cell<bool>>,
    tx: Sender<(Ended, bool)>,
}

impl Handler for Hurried {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        let _ = self.tx.send((reason.into(), self.linger_check_near.get()));
    }
}

// ---------------------------------------------------------------------------------------------
// sockloop's client against openssl s_server
// ---------------------------------------------------------------------------------------------

/// What the sockloop client saw.
#[derive(Debug, PartialEq)]
enum ClientSeen {
    Open(Negotiated),
    Reply(Vec<u8>),
    Closed(Ended),
}

/// Sends `lines` once open, closes once `want` bytes came back, and reports all of it.
struct LinesClient {
    lines: &'static [u8],
    want: usize,
    got: Vec<u8>,
    tx: Sender<ClientSeen>,
}

impl Handler for LinesClient {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = self.tx.send(ClientSeen::Open(Negotiated::of(cx)));
        cx.write(self.lines);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.got.extend_from_slice(input.take_all());
        if self.got.len() >= self.want {
            let _ = self
                .tx
                .send(ClientSeen::Reply(std::mem::take(&mut self.got)));
            cx.close();
        }
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        let _ = self.tx.send(ClientSeen::Closed(reason.into()));
    }
}

/// sockloop's client (`ConnectOptions::tls`) verifies `s_server`'s certificate, negotiates
/// `version` and ALPN, has its lines reversed (`-rev`), and closes with `close_notify`, which
/// ends s_server's session cleanly.
fn sockloop_client_against_s_server(version_flag: &str, version: ProtocolVersion) {
    let pki = Pki::new();
    let files = PemFiles::new(&pki);
    let mut server = Proc::spawn(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-naccept",
                "1",
                "-rev",
            ])
            .args(["-cert", &files.path("server.pem")])
            .args(["-key", &files.path("server.key")])
            .args(["-alpn", "echo/1", version_flag]),
    );
    server.wait_stdout("s_server's address", |out| {
        out.contains("ACCEPT 127.0.0.1:") && out.contains('\n')
    });
    let addr: SocketAddr = server
        .stdout()
        .lines()
        .find_map(|line| line.strip_prefix("ACCEPT "))
        .expect("an ACCEPT line")
        .parse()
        .expect("s_server's address");

    const LINES: &[u8] = b"hello sockloop\nsecond line\n";
    const REVERSED: &[u8] = b"poolkcos olleh\nenil dnoces\n";
    let (tx, rx) = mpsc::channel();
    let config = pki.client_config(&[b"echo/1"]);
    let (_, _client) = util::spawn_reactor(move |reactor| {
        let options = ConnectOptions::new().tls(config, localhost_name());
        let handler = LinesClient {
            lines: LINES,
            want: REVERSED.len(),
            got: Vec::new(),
            tx,
        };
        reactor.connect_with(addr, options, handler);
    });
    assert_eq!(
        util::recv(&rx, "on_open"),
        ClientSeen::Open(Negotiated {
            version: Some(version),
            alpn: Some("echo/1".into()),
            sni: None,
            peer_cert: Some(pki.server_chain[0].to_vec()),
        })
    );
    assert_eq!(
        util::recv(&rx, "the reply"),
        ClientSeen::Reply(REVERSED.to_vec()),
        "{}",
        server.transcript()
    );
    assert_eq!(
        util::recv(&rx, "on_close"),
        ClientSeen::Closed(Ended::Local),
        "{}",
        server.transcript()
    );
    // Our close_notify ended its session, and with it (-naccept 1) the server.
    assert!(server.wait_exit().success(), "{}", server.transcript());
    // It reports a stream cut without close_notify as an error ("unexpected eof").
    let said = server.stderr();
    assert!(
        said.contains("CONNECTION CLOSED") && !said.contains("error"),
        "{}",
        server.transcript()
    );
}

#[test]
fn sockloop_client_against_openssl_s_server_tls12() {
    require!("openssl", "version");
    sockloop_client_against_s_server("-tls1_2", ProtocolVersion::TLSv1_2);
}

#[test]
fn sockloop_client_against_openssl_s_server_tls13() {
    require!("openssl", "version");
    sockloop_client_against_s_server("-tls1_3", ProtocolVersion::TLSv1_3);
}

// ---------------------------------------------------------------------------------------------
// HTTPS: curl, keep-alive and pipelining
// ---------------------------------------------------------------------------------------------

/// A minimal HTTP/1.1 server for these tests (the `http_server` example has a life of its own):
/// requests without bodies, answered in order, the connection kept alive unless a request says
/// `Connection: close`. Each response's body names the request and its number on the
/// connection, so that reuse and order show in the bytes.
struct MiniHttp {
    served: usize,
}

/// The response [`MiniHttp`] gives the `n`-th request on a connection (from 1).
fn mini_response(method: &str, path: &str, n: usize, close: bool) -> Vec<u8> {
    let (status, body) = match method {
        "GET" | "HEAD" => ("200 OK", format!("{method} {path} #{n}\n")),
        _ => ("405 Method Not Allowed", format!("no {method} #{n}\n")),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

impl Handler for MiniHttp {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut request = httparse::Request::new(&mut headers);
            let head = match request.parse(input.as_slice()) {
                Ok(httparse::Status::Complete(head)) => head,
                Ok(httparse::Status::Partial) => return, // the rest comes with later bytes
                Err(e) => {
                    cx.write(format!("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n{e}").as_bytes());
                    cx.close();
                    return;
                }
            };
            let close = request.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close")
            });
            self.served += 1;
            let (method, path) = (request.method.unwrap_or(""), request.path.unwrap_or(""));
            cx.write(&mini_response(method, path, self.served, close));
            input.consume(head);
            if close {
                cx.close();
                return;
            }
        }
    }
}

/// [`MiniHttp`] behind TLS with ALPN `http/1.1`, its callbacks recorded.
fn https_server(pki: &Pki) -> (SocketAddr, util::ReactorThread, Receiver<util::Event>) {
    let (tx, rx) = mpsc::channel();
    let options = ListenOptions::new().tls(pki.server_config(&[b"http/1.1"]));
    let (addr, server) = util::serve_with(options, move || {
        util::Recorder::new(MiniHttp { served: 0 }, tx.clone())
    });
    (addr, server, rx)
}

/// The opens and closes among the recorded events of a stopped server.
fn opens_and_closes(rx: &Receiver<util::Event>) -> Vec<util::Event> {
    rx.try_iter()
        .filter(|e| matches!(e, util::Event::Open(_) | util::Event::Close(..)))
        .collect()
}

/// `curl --http1.1` verifies our certificate, negotiates http/1.1 by ALPN, and fetches two URLs
/// over one kept-alive connection: the second response is the connection's second (`#2`), curl
/// made one connect in all, and the server accepted exactly one connection.
#[test]
fn curl_fetches_two_urls_over_one_kept_alive_tls_connection() {
    require!("curl", "--version");
    let pki = Pki::new();
    let files = PemFiles::new(&pki);
    let (addr, server, rx) = https_server(&pki);
    let port = addr.port();
    let mut curl = Proc::spawn(
        Command::new("curl")
            .args(["--http1.1", "--silent", "--show-error", "--verbose"])
            .args(["--max-time", "15"])
            .args(["--cacert", &files.path("ca.pem")])
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args([
                "--write-out",
                "%{http_code} %{http_version} %{num_connects} %{ssl_verify_result}\\n",
            ])
            .arg(format!("https://localhost:{port}/first"))
            .arg(format!("https://localhost:{port}/second")),
    );
    assert!(curl.wait_exit().success(), "{}", curl.transcript());
    // The second transfer made no new connection (num_connects 0); both verified (0).
    assert_eq!(
        curl.stdout(),
        "GET /first #1\n200 1.1 1 0\nGET /second #2\n200 1.1 0 0\n",
        "{}",
        curl.transcript()
    );
    let said = curl.stderr();
    assert!(
        said.contains("ALPN: server accepted http/1.1")
            && said.contains("Re-using existing connection"),
        "{}",
        curl.transcript()
    );
    server.wait_for_connections(0);
    server.stop();
    // One connection, opened and closed by curl: with close_notify (PeerClosed) or, for curl
    // versions that skip it on exit, without (Truncated).
    let events = opens_and_closes(&rx);
    let truncated = util::Reason::Other(CloseReason::Truncated.to_string());
    assert!(
        matches!(
            &events[..],
            [util::Event::Open(a), util::Event::Close(b, why)]
                if a == b && (*why == util::Reason::PeerClosed || *why == truncated)
        ),
        "{events:?}"
    );
}

/// Four requests in one write (one TLS record) over a rustls client: each is answered, in
/// order, on the one connection, which closes after the one that asked, with `close_notify`
/// (a clean end of stream for rustls).
#[test]
fn pipelined_requests_over_tls_are_answered_in_order() {
    let pki = Pki::new();
    let (addr, server, rx) = https_server(&pki);
    let conn = ClientConnection::new(pki.client_config(&[b"http/1.1"]), localhost_name()).unwrap();
    let mut client = StreamOwned::new(conn, util::client(addr));
    let requests = [
        "GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "HEAD /two HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "DELETE /three HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ]
    .concat();
    // One write: rustls makes it one record, so the server decrypts all four at once.
    client.write_all(requests.as_bytes()).unwrap();
    client.flush().unwrap();
    let mut got = Vec::new();
    // Ok(0) only after the server's close_notify; a bare FIN is an UnexpectedEof error.
    client
        .read_to_end(&mut got)
        .expect("the responses, then close_notify");
    assert_eq!(client.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let want = [
        mini_response("GET", "/one", 1, false),
        mini_response("HEAD", "/two", 2, false),
        mini_response("DELETE", "/three", 3, false),
        mini_response("GET", "/last", 4, true),
    ]
    .concat();
    util::assert_bytes_eq(&got, &want, "the pipelined responses");
    // Our close_notify, then FIN: the server, closing already, hears the peer's clean end.
    client.conn.send_close_notify();
    client.flush().unwrap();
    drop(client);
    server.wait_for_connections(0);
    server.stop();
    let events = opens_and_closes(&rx);
    assert!(
        matches!(
            &events[..],
            [util::Event::Open(a), util::Event::Close(b, util::Reason::Local)] if a == b
        ),
        "{events:?}"
    );
}
